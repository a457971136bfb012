//! The compiled filter as the kernel takes it: BPF instructions plus seccomp(2) flags.
//!
//! Generating the BPF is libseccomp's expensive step (~10-20 ms for a Docker-sized profile);
//! installing it is one syscall. So the runtime prepares a `Program` in the parent, before it
//! clones the init, optionally from an on-disk cache keyed by the profile, and the init only
//! calls [`Program::load`]: no allocation, no libseccomp state, nothing to go wrong late.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

use super::{compile, SeccompError};

// seccomp(2) constants (linux/seccomp.h).
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// The kernel refuses longer classic BPF programs with EINVAL (linux/bpf_common.h).
const BPF_MAXINSNS: usize = 4096;
pub(crate) const FLAG_TSYNC: u32 = 1;
pub(crate) const FLAG_LOG: u32 = 2;
pub(crate) const FLAG_SPEC_ALLOW: u32 = 4;
pub(crate) const FLAG_NEW_LISTENER: u32 = 8;
pub(crate) const FLAG_TSYNC_ESRCH: u32 = 16;
pub(crate) const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// Bumped whenever the cache file layout or the compiler's output for a profile changes.
const CACHE_MAGIC: &[u8; 8] = b"HUSKBPF2";

/// A filter ready for the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// struct sock_filter instructions, one u64 each so the buffer is aligned like the array.
    instructions: Vec<u64>,
    flags: u32,
}

impl Program {
    /// The BPF of `filter`, behind the ENOSYS stub for syscalls newer than the profile, with the
    /// kernel flags the profile asks for.
    pub fn new(profile: &LinuxSeccomp, filter: &compile::Filter) -> Result<Program, SeccompError> {
        let bpf = filter.export_bpf()?;
        let mut instructions = super::enosys::stub(profile);
        instructions.extend(
            bpf.chunks_exact(8)
                .map(|chunk| u64::from_ne_bytes(chunk.try_into().unwrap_or_default())),
        );
        Ok(Program {
            instructions,
            flags: kernel_flags(profile, filter.uses_notify()),
        })
    }

    pub fn instructions(&self) -> usize {
        self.instructions.len()
    }

    /// The seccomp(2) flags the load will pass (SECCOMP_FILTER_FLAG_*).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    pub fn uses_notify(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }

    /// Installs the filter on the calling thread (all threads with TSYNC): one seccomp(2) call.
    ///
    /// Returns the notify fd (O_CLOEXEC) when the filter has NOTIFY rules. Without no_new_privs
    /// the caller needs CAP_SYS_ADMIN, else EACCES. Irreversible for the process's lifetime.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        if self.instructions.len() > BPF_MAXINSNS {
            let instructions = self.instructions.len();
            return Err(SeccompError::ProgramTooLong { instructions });
        }
        // Fits: BPF_MAXINSNS < u16::MAX.
        let len = self.instructions.len() as u16;
        let prog = libc::sock_fprog {
            len,
            filter: self.instructions.as_ptr() as *mut libc::sock_filter,
        };
        let flags = libc::c_ulong::from(self.flags);
        let prog_ptr: *const libc::sock_fprog = &prog;
        // SAFETY: `prog` points at `len` initialized 8-byte instructions that outlive the call;
        // the kernel copies them before returning.
        let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog_ptr) };
        let rc = Errno::result(rc).map_err(|errno| SeccompError::Load {
            flags: self.flags,
            errno,
        })?;
        if self.uses_notify() {
            // SAFETY: with NEW_LISTENER the kernel returns a fresh fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
        }
        if rc > 0 {
            // TSYNC without TSYNC_ESRCH reports the thread it could not synchronize.
            return Err(SeccompError::TsyncFailed { tid: rc as i32 });
        }
        Ok(None)
    }

    fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + key.len() + self.instructions.len() * 8);
        out.extend_from_slice(CACHE_MAGIC);
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for instruction in &self.instructions {
            out.extend_from_slice(&instruction.to_ne_bytes());
        }
        out
    }

    /// The cached program if `bytes` were written for exactly `key`; any mismatch is a miss.
    fn decode(bytes: &[u8], key: &[u8]) -> Option<Program> {
        let rest = bytes.strip_prefix(CACHE_MAGIC)?;
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let key_len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let (stored_key, rest) = rest.split_at_checked(key_len)?;
        if stored_key != key {
            return None;
        }
        let (flags, rest) = rest.split_first_chunk::<4>()?;
        if rest.is_empty() || rest.len() % 8 != 0 {
            return None;
        }
        let instructions = rest
            .chunks_exact(8)
            .map(|chunk| u64::from_ne_bytes(chunk.try_into().unwrap_or_default()))
            .collect();
        Some(Program {
            instructions,
            flags: u32::from_le_bytes(*flags),
        })
    }
}

/// The seccomp(2) flags for a profile. NEW_LISTENER when a NOTIFY rule made it into the
/// filter; TSYNC together with it needs TSYNC_ESRCH (the kernel cannot return both a thread id
/// and an fd); WAIT_KILLABLE_RECV is only valid with NEW_LISTENER and dropped otherwise.
pub(crate) fn kernel_flags(profile: &LinuxSeccomp, notify: bool) -> u32 {
    let mut flags = if notify { FLAG_NEW_LISTENER } else { 0 };
    for &flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => FLAG_WAIT_KILLABLE_RECV,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if flags & FLAG_TSYNC != 0 && notify {
        flags |= FLAG_TSYNC_ESRCH;
    }
    flags
}

/// Validates and compiles a profile into a loadable program.
pub fn prepare(profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let filter = compile::compile(profile)?;
    Program::new(profile, &filter)
}

/// [`prepare`] through a cache directory (e.g. `<root>/seccomp-cache`): a hit skips
/// libseccomp's BPF generation. A cache entry is used only when it was written for the very same
/// profile, libseccomp version and architecture (compared in full, not by hash); an unreadable
/// or unwritable cache costs a compile, never an error.
pub fn prepare_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<Program, SeccompError> {
    let key = cache_key(profile)?;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    let path = cache_dir.join(format!("{:016x}.bpf", hasher.finish()));
    if let Some(program) = fs::read(&path).ok().and_then(|bytes| Program::decode(&bytes, &key)) {
        // The profile was valid when it was cached, but validation is cheap and stays the gate.
        super::validate(profile)?;
        return Ok(program);
    }
    let program = prepare(profile)?;
    if let Err(err) = store(&path, &program.encode(&key)) {
        log::debug!("seccomp: cannot cache the compiled filter at {}: {err}", path.display());
    }
    Ok(program)
}

/// Everything the compiled program depends on besides husk itself (covered by CACHE_MAGIC).
fn cache_key(profile: &LinuxSeccomp) -> Result<Vec<u8>, SeccompError> {
    let mut key = serde_json::to_vec(profile).map_err(SeccompError::Malformed)?;
    let version = super::libseccomp_version().unwrap_or_default();
    key.extend_from_slice(format!("\0libseccomp {version}\0{}", std::env::consts::ARCH).as_bytes());
    Ok(key)
}

/// Writes the entry under a temporary name and renames it, so readers never see half a file.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(value: serde_json::Value) -> LinuxSeccomp {
        super::super::parse_profile(&value).expect("valid profile")
    }

    #[test]
    fn flags_follow_the_profile_and_notify() {
        let tsync = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}));
        assert_eq!(kernel_flags(&tsync, false), FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW);
        assert_eq!(
            kernel_flags(&tsync, true),
            FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_WAIT_KILLABLE_RECV | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH
        );
        let plain = profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert_eq!(kernel_flags(&plain, false), 0);
        assert_eq!(kernel_flags(&plain, true), FLAG_NEW_LISTENER);
    }

    #[test]
    fn program_beyond_the_kernel_limit_is_refused_before_the_syscall() {
        let program = Program {
            instructions: vec![0; BPF_MAXINSNS + 1],
            flags: 0,
        };
        let err = program.load().unwrap_err();
        assert!(
            matches!(err, SeccompError::ProgramTooLong { instructions: 4097 }),
            "{err:?}"
        );
        assert_eq!(err.errno(), Some(libc::EINVAL));
    }

    #[test]
    fn prepared_program_matches_the_exported_bpf() {
        let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}));
        let program = prepare(&p).expect("prepare");
        let bpf = compile::compile(&p).expect("compile").export_bpf().expect("bpf");
        assert!(
            super::super::enosys::stub(&p).is_empty(),
            "default ALLOW needs no ENOSYS stub"
        );
        assert_eq!(program.instructions() * 8, bpf.len());
        assert!(!program.uses_notify());
    }

    #[test]
    fn cache_round_trips_and_rejects_another_profile() {
        let dir = std::env::temp_dir().join(format!("husk-seccomp-cache-{}", std::process::id()));
        let a = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}));
        let b = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}));
        let first = prepare_cached(&a, &dir).expect("miss");
        let entries = fs::read_dir(&dir).expect("cache dir").count();
        assert_eq!(entries, 1);
        assert_eq!(prepare_cached(&a, &dir).expect("hit"), first);
        let key_a = cache_key(&a).expect("key");
        let key_b = cache_key(&b).expect("key");
        let encoded = first.encode(&key_a);
        assert_eq!(Program::decode(&encoded, &key_a), Some(first.clone()));
        assert_eq!(
            Program::decode(&encoded, &key_b),
            None,
            "an entry for another profile is a miss"
        );
        assert_eq!(
            Program::decode(&encoded[..encoded.len() - 3], &key_a),
            None,
            "truncated entry"
        );
        assert_ne!(prepare_cached(&b, &dir).expect("b"), first);
        let _ = fs::remove_dir_all(&dir);
    }
}
