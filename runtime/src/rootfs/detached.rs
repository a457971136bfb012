//! Bind mounts made with the new mount API (open_tree + move_mount): the mount is created
//! detached, held by an fd, and attached onto the target's fd. Every later change (the `ro`
//! remount, propagation) goes through that same fd: a path component swapped in the rootfs
//! (RENAME_EXCHANGE) between the mount and the remount cannot move the flags onto another mount.

use crate::sys::SysError;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A detached copy of the mount (tree, when `recursive`) at `source`, as `mount --bind` makes.
pub fn clone_tree(source: &Path, recursive: bool) -> Result<OwnedFd, SysError> {
    let shown = source.display();
    let path = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| SysError::new("clone mount of", &shown, Errno::EINVAL))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree reads a NUL-terminated path and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(SysError::new("clone mount of", &shown, Errno::last()));
    }
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach the detached mount `tree` on the file or directory `target` is open on. `tree`
/// then refers to the attached mount's root.
pub fn attach(tree: BorrowedFd, target: BorrowedFd, shown: &Path) -> Result<(), SysError> {
    let empty = c"";
    // SAFETY: both paths are empty C strings; both fds are open for the call's length.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(SysError::new("attach bind mount on", shown.display(), Errno::last()));
    }
    Ok(())
}

/// mount_setattr(AT_RECURSIVE) on the mount `target` is open on (its root) and every mount
/// below it: the `r*` options. Through the fd, never a path the container could swap.
pub fn set_recursive_attrs(target: BorrowedFd, set: u64, clear: u64, shown: &Path) -> Result<(), SysError> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE;
    // SAFETY: an empty C path with AT_EMPTY_PATH; attr is a valid mount_attr of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        let op = "set recursive mount attributes (mount_setattr) of";
        return Err(SysError::new(op, shown.display(), Errno::last()));
    }
    Ok(())
}
