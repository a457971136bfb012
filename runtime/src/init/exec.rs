//! The last steps before execve: find the program, close every fd the container must not
//! inherit, and exec.

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolve args[0] as execvp would, against the container's PATH, so that a missing binary
/// fails `create` rather than surfacing later with no one to tell.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, SysError> {
    if arg0.contains('/') {
        return check_executable(Path::new(arg0)).map(|_| PathBuf::from(arg0));
    }
    let path_var = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(SysError::new(
        "find executable",
        format!("{arg0:?} in $PATH"),
        Errno::ENOENT,
    ))
}

fn check_executable(path: &Path) -> Result<(), SysError> {
    let meta = std::fs::metadata(path).ctx("find executable", path.display())?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(SysError::new("find executable", path.display(), Errno::EACCES));
    }
    Ok(())
}

/// Mark every fd from `first` upwards close-on-exec, except those in `keep`, with close_range(2)
/// (no /proc needed, one call per gap). CVE-2024-21626: an inherited fd to a host directory
/// would let the container escape.
pub fn cloexec_from(first: i32, keep: &[i32]) -> Result<(), SysError> {
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

/// execve keeps ignored signals ignored and the mask as it is. husk is a Rust program, whose
/// runtime ignores SIGPIPE, and its caller may have blocked or ignored others: the container's
/// process must start with every signal at its default and none blocked (else `yes | head`
/// spins forever on EPIPE).
fn reset_signals() {
    for signo in 1..libc::SIGRTMAX() {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        // SAFETY: restoring the default disposition; no handler is installed.
        unsafe { libc::signal(signo, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

pub fn execve(program: &Path, args: &[String], env: &[String]) -> SysError {
    reset_signals();
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let Ok(prog) = CString::new(program.as_os_str().as_encoded_bytes()) else {
        return SysError::new("exec", program.display(), Errno::EINVAL);
    };
    let argv: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let errno = nix::unistd::execve(&prog, &argv, &envp).err().unwrap_or(Errno::EINVAL);
    SysError::new("exec", program.display(), errno)
}
