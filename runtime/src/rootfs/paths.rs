//! maskedPaths and readonlyPaths, applied after pivot_root from inside the container.

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// Hide a file behind /dev/null and a directory behind an empty read-only tmpfs.
pub fn mask(path: &str) -> Result<(), SysError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SysError::from_io("stat masked path", path, &e)),
    };
    let result = if meta.is_dir() {
        mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
    } else {
        mount(Some("/dev/null"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    };
    result.ctx("mask", path)
}

pub fn make_readonly(path: &str) -> Result<(), SysError> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(errno) => return Err(SysError::new("bind mount read-only path", path, errno)),
    }
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked(path);
    mount(Some(path), path, None::<&str>, flags, None::<&str>).ctx("remount read-only", path)
}

/// Remount the container's `/` read-only, keeping the flags the kernel will not let us drop.
pub fn readonly_root() -> Result<(), SysError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked("/");
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).ctx("remount read-only", "/")
}

/// In a user namespace the kernel refuses a remount that would drop nosuid/nodev/noexec that a
/// more privileged mount set: keep the ones the mount already has.
pub fn locked(path: &str) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    let mut flags = MsFlags::empty();
    for (st_flag, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(st_flag) {
            flags |= ms;
        }
    }
    flags
}
