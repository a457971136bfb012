//! The process's working directory (CVE-2024-21626). A cwd such as `/proc/self/fd/5` would, by
//! chdir(2), follow an fd husk holds (the state dir, a cgroup dir) to a host directory and start
//! the process outside the container. So the cwd is resolved inside the root with openat2
//! (RESOLVE_IN_ROOT, no magic links), made when missing as runc does, entered with fchdir, and
//! getcwd(2) must then name a path under the root.

use super::resolve::{open_in_root, Create};
use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::path::Path;

/// chdir to `cwd`, a path inside the current root ("/" after pivot_root, chroot or setns),
/// made first when missing and `make_missing`: the init's is (runc's prepareRootfs makes it),
/// an exec'd process's is not (runc's setns init only chdirs, and fails with ENOENT).
pub fn enter(cwd: &Path, make_missing: bool) -> Result<(), SysError> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/")?;
    let create = if make_missing { Create::Dir } else { Create::Nothing };
    let dir = open_in_root(std::os::fd::AsFd::as_fd(&root), cwd, create)
        .map_err(|e| SysError::new("resolve cwd inside the container", cwd.display(), e.errno))?;
    nix::unistd::fchdir(&dir).ctx("chdir to cwd", cwd.display())?;
    check_reachable(cwd)
}

/// getcwd(2) prefixes a directory outside the root with "(unreachable)"; glibc turns that into
/// ENOENT. Either way the process must not start there.
fn check_reachable(cwd: &Path) -> Result<(), SysError> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the raw syscall writes at most buf.len() bytes into buf.
    let len = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if len < 0 {
        return Err(SysError::new("check cwd", cwd.display(), Errno::last()));
    }
    if buf.first() != Some(&b'/') {
        return Err(SysError::new(
            "check cwd (it is outside the container's root)",
            cwd.display(),
            Errno::EPERM,
        ));
    }
    Ok(())
}
