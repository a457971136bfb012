//! CVE-2019-5736: a container must never execute or open the on-disk husk binary.
//!
//! The container's init and an exec'd process are forks of `husk`; until they execve, their
//! /proc/PID/exe is whatever husk runs from. If that is the file on disk, a process in the
//! container that execs `/proc/self/exe` (or a `#!/proc/self/exe` script) runs husk's own
//! inode, and an ld.so.preload payload can reopen it for writing once husk exits. So the
//! commands that spawn into a container (create, run, exec) first re-exec husk from a sealed
//! memfd copy of itself (as runc 1.1's cloned_binary.c does): every child then runs from, and
//! /proc/PID/exe names, an anonymous file that nobody can write, shrink or grow.
//!
//! Cost: one copy of the binary into shmem (sendfile, in the kernel) and one execveat; the
//! other commands (start, state, kill, delete, ...) never pay it.

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Writes, resizes and further seal changes are all refused once these are set.
const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// The commands whose children become visible inside a container. Matching any argument, not
/// only the command, can only cause a needless re-exec, never a missed one.
const SPAWNING_COMMANDS: &[&str] = &["create", "run", "exec"];

pub fn needed_for(argv: &[OsString]) -> bool {
    argv.iter()
        .skip(1)
        .any(|a| SPAWNING_COMMANDS.iter().any(|c| a.as_bytes() == c.as_bytes()))
}

/// Whether this process already runs from a copy sealed by [`reexec_sealed`].
pub fn running_from_sealed_copy() -> bool {
    let Ok(exe) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS only reads the seals of a valid fd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals == SEALS
}

/// Replace this process with a sealed memfd copy of its own binary, same argv and environment.
/// Returns only on failure.
pub fn reexec_sealed(argv: &[OsString]) -> SysError {
    match sealed_copy() {
        Ok(memfd) => execveat_empty_path(&memfd, argv),
        Err(e) => e,
    }
}

/// The kernel names a process exec'd from a memfd "memfd:husk"; `ps`, and anyone looking at
/// /proc/PID/comm, expect the name of the binary, as before the re-exec.
pub fn restore_name(argv: &[OsString]) {
    let Some(arg0) = argv.first() else { return };
    let base = std::path::Path::new(arg0).file_name().unwrap_or(arg0.as_os_str());
    let mut name: Vec<u8> = base.as_bytes().iter().copied().take(15).collect();
    name.push(0);
    // SAFETY: PR_SET_NAME reads at most 16 bytes of a NUL-terminated buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

fn sealed_copy() -> Result<OwnedFd, SysError> {
    let exe = std::fs::File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    let size = exe.metadata().ctx("stat", "/proc/self/exe")?.len();
    // SAFETY: memfd_create with a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::memfd_create(c"husk".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(SysError::new("memfd_create", "husk", Errno::last()));
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut left = size;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        // SAFETY: sendfile between two valid fds, with the input's own offset (NULL).
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), chunk) };
        match n {
            n if n > 0 => left -= n as u64,
            0 => return Err(SysError::new("copy", "/proc/self/exe into a memfd", Errno::EIO)),
            _ if Errno::last() == Errno::EINTR => {}
            _ => return Err(SysError::new("copy", "/proc/self/exe into a memfd", Errno::last())),
        }
    }
    // SAFETY: F_ADD_SEALS on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(SysError::new("seal", "the memfd copy of husk", Errno::last()));
    }
    Ok(memfd)
}

/// execveat(fd, "", AT_EMPTY_PATH): the memfd is close-on-exec, which an ELF binary allows.
fn execveat_empty_path(memfd: &OwnedFd, argv: &[OsString]) -> SysError {
    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let args: Vec<CString> = argv.iter().map(|a| to_c(a.as_bytes())).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            to_c(&kv)
        })
        .collect();
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argp.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    SysError::new("execveat", "the sealed memfd copy of husk", Errno::last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_spawning_commands_need_the_sealed_copy() {
        assert!(needed_for(&os(&[
            "husk", "--root", "/r", "create", "--bundle", "b", "id"
        ])));
        assert!(needed_for(&os(&["husk", "exec", "id", "sh"])));
        assert!(needed_for(&os(&["husk", "run", "id"])));
        assert!(!needed_for(&os(&["husk", "start", "id"])));
        assert!(!needed_for(&os(&["husk", "state", "id"])));
        // argv[0] is never the command.
        assert!(!needed_for(&os(&["exec", "kill", "id"])));
    }

    #[test]
    fn a_sealed_copy_refuses_writes_and_resizes() {
        let memfd = sealed_copy().unwrap();
        // SAFETY: F_GET_SEALS on a valid fd.
        assert_eq!(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS) }, SEALS);
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::Write;
        assert_eq!(file.write(b"x").unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(file.set_len(1).unwrap_err().raw_os_error(), Some(libc::EPERM));
        let ours = std::fs::metadata("/proc/self/exe").unwrap().len();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ours);
    }
}
