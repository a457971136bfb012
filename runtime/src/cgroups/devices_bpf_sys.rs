//! The bpf(2) calls behind device rules on cgroup v2: load a BPF_PROG_TYPE_CGROUP_DEVICE program,
//! attach it to a cgroup directory, and retire the one attached before — new first, old after,
//! so the cgroup is never without a filter. Kernel facts in docs/cgroups.md ("Devices on v2").

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::devices_bpf::{Insn, RuleError};

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may sit on one cgroup; all must allow. Needed to attach the new program
/// beside the old one, and what systemd uses too.
const BPF_F_ALLOW_MULTI: u32 = 2;
/// A cgroup holds at most 64 programs per attach type (BPF_CGROUP_MAX_PROGS).
const MAX_PROGS: usize = 64;
/// The verifier's log for a failed load; the programs are tiny, so is the log.
const LOG_SIZE: usize = 64 * 1024;
/// Not GPL: the program calls no GPL-only helper (it calls no helper at all).
const LICENSE: &[u8] = b"Apache\0";
/// Shown by `bpftool prog` (at most 15 bytes).
const PROG_NAME: &[u8] = b"husk_devices";

/// Everything that can go wrong while putting a device program on a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error(transparent)]
    Rule(#[from] RuleError),

    #[error("failed to open cgroup directory: {path}: {source}")]
    Open { path: PathBuf, source: Errno },

    #[error("failed to load device program (bpf BPF_PROG_LOAD, {insns} instructions) for cgroup: {path}: {source}{}", verifier_log(.log))]
    Load {
        path: PathBuf,
        insns: usize,
        source: Errno,
        log: String,
    },

    #[error("failed to {action} device program (bpf {syscall}) on cgroup: {path}: {source}")]
    Bpf {
        action: &'static str,
        syscall: &'static str,
        path: PathBuf,
        source: Errno,
    },
}

impl DeviceFilterError {
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Rule(_) => None,
            Self::Open { source, .. } | Self::Load { source, .. } | Self::Bpf { source, .. } => Some(*source),
        }
    }
}

fn verifier_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; verifier log: {}", log.trim().replace('\n', " | "))
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(cmd, attr, sizeof attr). The kernel accepts a shorter attr than its own (the rest is
/// taken as zero), so these structs stop at the last field husk sets.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> Result<i64, Errno> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] value of the layout the kernel expects
    // for `cmd`; any pointers inside it point to buffers the caller keeps alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn fd_of(ret: i64) -> OwnedFd {
    // SAFETY: bpf(2) returned a new file descriptor (with O_CLOEXEC) that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

fn open_cgroup(dir: &Path) -> Result<OwnedFd, DeviceFilterError> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| DeviceFilterError::Open {
        path: dir.into(),
        source: Errno::EINVAL,
    })?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(DeviceFilterError::Open {
            path: dir.into(),
            source: Errno::last(),
        });
    }
    Ok(fd_of(i64::from(fd)))
}

fn load_with_log(prog: &[u8], insn_cnt: usize, log: Option<&mut [u8]>) -> Result<OwnedFd, Errno> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insn_cnt as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(fd_of)
}

/// Loads `prog` as a cgroup device program. On failure the load is repeated with a log buffer
/// (the verifier is slower with one) and the error carries the verifier's explanation.
/// `cgroup` only names the cgroup the program is for in the error.
pub fn load_program(prog: &[Insn], cgroup: &Path) -> Result<OwnedFd, DeviceFilterError> {
    let bytes: Vec<u8> = prog.iter().flat_map(Insn::encode).collect();
    let source = match load_with_log(&bytes, prog.len(), None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut buf = vec![0u8; LOG_SIZE];
    let source = match load_with_log(&bytes, prog.len(), Some(&mut buf)) {
        Ok(fd) => return Ok(fd),      // a transient failure (ENOMEM, EAGAIN): take the program
        Err(Errno::ENOSPC) => source, // the log was truncated: keep the first error and what we have
        Err(e) => e,
    };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let log = String::from_utf8_lossy(&buf[..end]).into_owned();
    Err(DeviceFilterError::Load {
        path: cgroup.into(),
        insns: prog.len(),
        source,
        log,
    })
}

fn query(cgroup: &OwnedFd, dir: &Path) -> Result<Vec<u32>, DeviceFilterError> {
    let mut ids = vec![0u32; MAX_PROGS];
    loop {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // More than we made room for: prog_cnt now says how many.
            Err(Errno::ENOSPC) if attr.prog_cnt as usize > ids.len() => ids.resize(attr.prog_cnt as usize, 0),
            Err(source) => {
                return Err(DeviceFilterError::Bpf {
                    action: "query",
                    syscall: "BPF_PROG_QUERY",
                    path: dir.into(),
                    source,
                })
            }
        }
    }
}

/// The ids of the device programs attached directly to the cgroup at `dir`.
pub fn attached_device_programs(dir: &Path) -> Result<Vec<u32>, DeviceFilterError> {
    query(&open_cgroup(dir)?, dir)
}

/// An fd for an attached program, `None` when it is gone already or an LSM hides it from us
/// (runc skips those too: another device program can only restrict further).
fn program_by_id(id: u32, dir: &Path) -> Result<Option<OwnedFd>, DeviceFilterError> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => Ok(Some(fd_of(fd))),
        Err(e @ (Errno::ENOENT | Errno::EPERM | Errno::EACCES)) => {
            log::debug!("leaving device program {id} on {}: {e}", dir.display());
            Ok(None)
        }
        Err(source) => Err(DeviceFilterError::Bpf {
            action: "open",
            syscall: "BPF_PROG_GET_FD_BY_ID",
            path: dir.into(),
            source,
        }),
    }
}

fn attach_or_detach(cmd: libc::c_int, cgroup: &OwnedFd, prog: &OwnedFd, dir: &Path) -> Result<(), DeviceFilterError> {
    let attach = cmd == BPF_PROG_ATTACH;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: if attach { BPF_F_ALLOW_MULTI } else { 0 },
        ..Default::default()
    };
    match bpf(cmd, &mut attr) {
        Ok(_) => Ok(()),
        // Detached meanwhile (the cgroup is going away, or a concurrent update): nothing to do.
        Err(Errno::ENOENT) if !attach => Ok(()),
        Err(source) => {
            let (action, syscall) = if attach {
                ("attach", "BPF_PROG_ATTACH")
            } else {
                ("detach", "BPF_PROG_DETACH")
            };
            Err(DeviceFilterError::Bpf {
                action,
                syscall,
                path: dir.into(),
                source,
            })
        }
    }
}

/// Makes `prog` the device filter of the cgroup at `dir`: loads it, attaches it (ALLOW_MULTI),
/// then detaches the programs that were there before. Between the two steps both filters
/// apply, so an update never opens a window with no filter (at worst a moment with both).
pub fn attach_device_filter(dir: &Path, prog: &[Insn]) -> Result<(), DeviceFilterError> {
    let cgroup = open_cgroup(dir)?;
    let new = load_program(prog, dir)?;
    let mut old = Vec::new();
    for id in query(&cgroup, dir)? {
        old.extend(program_by_id(id, dir)?);
    }
    attach_or_detach(BPF_PROG_ATTACH, &cgroup, &new, dir)?;
    // The attachment holds the program now; `new` is closed on return.
    for fd in &old {
        attach_or_detach(BPF_PROG_DETACH, &cgroup, fd, dir)?;
    }
    Ok(())
}

/// Detaches every device program attached directly to `dir` (rmdir does it too; for tests and
/// for turning the filter off).
pub fn detach_device_programs(dir: &Path) -> Result<(), DeviceFilterError> {
    let cgroup = open_cgroup(dir)?;
    for id in query(&cgroup, dir)? {
        if let Some(fd) = program_by_id(id, dir)? {
            attach_or_detach(BPF_PROG_DETACH, &cgroup, &fd, dir)?;
        }
    }
    Ok(())
}
