//! The last steps before execve: find the program, close every fd the container must not
//! inherit, and exec.

use crate::sys::{errno_text, Context, SysError};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the process could not be started, in the words of Go's exec.LookPath and runc, which
/// clients match: Docker and Podman map "executable file not found" and "no such file or
/// directory" to exit 127, "permission denied" to 126.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotInPath { name: String },
    #[error("exec: {name:?}: stat {name}: {}", errno_text(*errno))]
    Stat { name: String, errno: Errno },
    #[error("exec: {name:?}: permission denied")]
    NotExecutable { name: String },
    #[error("exec {path}: {}", errno_text(*errno))]
    Execve { path: String, errno: Errno },
}

/// Resolve args[0] as execvp would, against the container's PATH, so that a missing binary
/// fails `create` rather than surfacing later with no one to tell.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, ExecError> {
    if arg0.contains('/') {
        let name = arg0.to_string();
        return match executable(Path::new(arg0)) {
            Ok(true) => Ok(PathBuf::from(arg0)),
            Ok(false) => Err(ExecError::NotExecutable { name }),
            Err(errno) => Err(ExecError::Stat { name, errno }),
        };
    }
    // As runc (Go's exec.LookPath on the process's env): no PATH searches nowhere, and an
    // empty entry means the working directory. `ctr run --rootfs` sends no PATH, for one.
    let path_var = env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or("");
    for dir in path_var.split(':').filter(|_| !path_var.is_empty()) {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if executable(&candidate) == Ok(true) {
            return Ok(candidate);
        }
    }
    Err(ExecError::NotInPath { name: arg0.to_string() })
}

/// A regular file (not a directory) with an execute bit, as Go's findExecutable checks.
fn executable(path: &Path) -> Result<bool, Errno> {
    let meta = std::fs::metadata(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(!meta.is_dir() && meta.permissions().mode() & 0o111 != 0)
}

/// Mark every fd from `first` upwards close-on-exec, except those in `keep`. CVE-2024-21626:
/// an inherited fd to a host directory would let the container escape. close_range(2) needs
/// neither /proc nor a loop; where it is missing (ENOSYS before 5.9, EINVAL for the CLOEXEC
/// flag before 5.11) or a seccomp profile refuses it (EPERM), walk /proc/self/fd as runc 1.1
/// does. Call it before the seccomp filter is loaded anyway: profiles deny what they do not
/// list, and that includes fcntl far less often than close_range.
pub fn cloexec_from(first: i32, keep: &[i32]) -> Result<(), SysError> {
    match cloexec_with_close_range(first, keep) {
        Err(e) if matches!(e.errno, Errno::EPERM | Errno::ENOSYS | Errno::EINVAL) => {
            cloexec_by_walking_proc(first, keep)
        }
        other => other,
    }
}

fn cloexec_with_close_range(first: i32, keep: &[i32]) -> Result<(), SysError> {
    let mut keep: Vec<u32> = keep.iter().filter(|fd| **fd >= first).map(|fd| *fd as u32).collect();
    keep.sort_unstable();
    let mut start = first as u32;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > start {
            // SAFETY: close_range only changes fd flags here (CLOSE_RANGE_CLOEXEC).
            let rc = unsafe { libc::syscall(libc::SYS_close_range, start, fd - 1, libc::CLOSE_RANGE_CLOEXEC) };
            if rc != 0 {
                return Err(SysError::new(
                    "close_range",
                    format!("{start}..{}", fd - 1),
                    Errno::last(),
                ));
            }
        }
        start = fd.saturating_add(1);
    }
    Ok(())
}

/// The fallback: FD_CLOEXEC on each fd /proc/self/fd lists. The directory's own fd is in the
/// list too; it is closed by the time the walk ends, so EBADF on it is expected.
fn cloexec_by_walking_proc(first: i32, keep: &[i32]) -> Result<(), SysError> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx("list", "/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first && !keep.contains(fd)) {
        // SAFETY: F_SETFD only changes the flags of an fd number; a stale number gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 && Errno::last() != Errno::EBADF {
            return Err(SysError::new("set FD_CLOEXEC on fd", fd, Errno::last()));
        }
    }
    Ok(())
}

/// The kernel's struct sigaction (not glibc's, whose mask is 1024 bits): rt_sigaction(2) takes
/// this and the mask size, 8 bytes.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The kernel's highest signal; glibc's SIGRTMAX() is the same 64 on Linux.
const KERNEL_SIGRTMAX: i32 = 64;

/// execve keeps ignored signals ignored and the mask as it is. husk is a Rust program, whose
/// runtime ignores SIGPIPE, and its caller may have blocked or ignored others: the container's
/// process must start with every signal at its default and none blocked (else `yes | head`
/// spins forever on EPIPE). The raw syscalls, not glibc: its signal() and sigaction() refuse
/// 32 and 33, which it keeps for itself, and its sigprocmask will not touch them either.
fn reset_signals() {
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signo in (1..=KERNEL_SIGRTMAX).filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP) {
        // SAFETY: the kernel reads one KernelSigaction; no handler is installed.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
    let empty: u64 = 0;
    // SAFETY: the kernel reads an 8-byte mask.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        )
    };
}

pub fn execve(program: &Path, args: &[String], env: &[String]) -> ExecError {
    reset_signals();
    let path = program.display().to_string();
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let Ok(prog) = CString::new(program.as_os_str().as_encoded_bytes()) else {
        return ExecError::Execve {
            path,
            errno: Errno::EINVAL,
        };
    };
    let argv: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let errno = nix::unistd::execve(&prog, &argv, &envp).err().unwrap_or(Errno::EINVAL);
    ExecError::Execve { path, errno }
}
