//! Making the rootfs the container's `/`.

use crate::sys::{Context, SysError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

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
/// The host's full proc and sysfs mounts are taken away first (as runc's msMoveRoot does): the
/// kernel lets a nested user namespace mount a fresh proc or sysfs only while a fully visible
/// one exists in the mount namespace, and with chroot the host's would still count.
pub fn move_root(rootfs: &Path) -> Result<(), SysError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    for point in full_proc_and_sysfs_mounts(&mountinfo, rootfs) {
        hide_host_mount(&point)?;
    }
    chdir(rootfs).ctx("chdir into", rootfs.display())?;
    mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).ctx("move rootfs onto", "/")?;
    chroot(".").ctx("chroot into", rootfs.display())?;
    chdir("/").ctx("chdir to", "/")
}

/// Unmount a host mount in our mount namespace (rslave first, so nothing reaches the host);
/// where that is not allowed (a mount locked by a user namespace), cover it with a tmpfs.
fn hide_host_mount(point: &Path) -> Result<(), SysError> {
    let rslave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    match mount(None::<&str>, point, None::<&str>, rslave, None::<&str>) {
        Ok(()) => {}
        // Gone with a parent unmounted before it.
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(errno) => return Err(SysError::new("make rslave the host mount", point.display(), errno)),
    }
    match umount2(point, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
            mount(Some("tmpfs"), point, Some("tmpfs"), MsFlags::empty(), None::<&str>)
                .ctx("cover with a tmpfs the host mount", point.display())
        }
        Err(errno) => Err(SysError::new("unmount the host mount", point.display(), errno)),
    }
}

/// The mount points of every proc and sysfs mounted whole (root "/"), outside `rootfs`.
fn full_proc_and_sysfs_mounts(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            let root = *fields.get(3)?;
            let point = PathBuf::from(crate::cgroups::mountinfo::unescape_octal(fields.get(4)?));
            let whole = root == "/" && matches!(fstype, "proc" | "sysfs");
            (whole && !point.starts_with(rootfs)).then_some(point)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_host_proc_and_sysfs_mounts_are_hidden() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
24 22 0:23 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
25 1 0:21 /sys /mnt/procsys ro - proc proc rw
26 1 0:24 / /run/a\\040b rw - proc proc rw
90 1 0:40 / /b/rootfs/proc rw - proc proc rw
";
        let points = full_proc_and_sysfs_mounts(text, Path::new("/b/rootfs"));
        assert_eq!(
            points,
            vec![PathBuf::from("/proc"), PathBuf::from("/sys"), PathBuf::from("/run/a b")]
        );
    }
}
