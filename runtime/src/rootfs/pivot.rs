//! Making the rootfs the container's `/`.

use crate::sys::{Context, SysError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use std::os::fd::AsFd;
use std::path::Path;

/// pivot_root(".", ".") stacks the old root on top of the new one at the same place; it is then
/// unmounted lazily. MS_SLAVE first, so the unmount does not propagate back to the host's mounts.
pub fn pivot(rootfs: &Path) -> Result<(), SysError> {
    let flags = nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let old_root = nix::fcntl::open("/", flags, nix::sys::stat::Mode::empty()).ctx("open", "/")?;
    let new_root = nix::fcntl::open(rootfs, flags, nix::sys::stat::Mode::empty()).ctx("open", rootfs.display())?;
    fchdir(new_root.as_fd()).ctx("chdir into", rootfs.display())?;
    pivot_root(".", ".").ctx("pivot_root into", rootfs.display())?;
    fchdir(old_root.as_fd()).ctx("chdir into", "old root")?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("make old root rslave", ".")?;
    umount2(".", MntFlags::MNT_DETACH).ctx("unmount", "old root")?;
    chdir("/").ctx("chdir to", "/")
}

/// --no-pivot: for a rootfs on a ramfs, where pivot_root is refused. Move the rootfs onto `/`
/// and chroot; the host's root stays reachable below, which is why pivot_root is the default.
pub fn move_root(rootfs: &Path) -> Result<(), SysError> {
    chdir(rootfs).ctx("chdir into", rootfs.display())?;
    mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).ctx("move rootfs onto", "/")?;
    chroot(".").ctx("chroot into", rootfs.display())?;
    chdir("/").ctx("chdir to", "/")
}
