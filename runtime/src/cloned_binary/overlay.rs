//! The zero-copy sealed view of husk's binary (runc 1.2's exeseal recipe): a read-only
//! overlayfs made with the new mount API whose only lower layers are the binary's directory
//! and a dummy directory. It is never attached to any mount tree, so nothing can reach it but
//! the fd we open in it; an overlay without an upper layer has a read-only superblock, which
//! no remount can make writable, so `/proc/PID/exe` of every husk child names a file that
//! nobody can open for writing (EROFS) — and, unlike the memfd copy, exec maps the page cache
//! of the real binary instead of a fresh 4 MB copy in shmem for every container.

use crate::sys::SysError;
use nix::errno::Errno;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

// linux/mount.h; the libc crate does not carry the fsopen family's constants.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// Overlayfs runs "lower-only" (read-only, no upper or work dir) only with two or more lower
/// layers, so the binary's directory needs a companion. Any directory will do as long as it
/// is not the binary's directory, one of its ancestors or descendants (overlayfs refuses
/// overlapping layers with ELOOP); it is on top of nothing, and the binary's layer is first,
/// so a file of the same name in it cannot shadow the binary.
const DUMMY_LOWER_CANDIDATES: &[&str] = &["/run", "/tmp", "/var/tmp", "/dev"];

/// An O_PATH fd of `/proc/self/exe` seen through a fresh, detached, read-only overlayfs.
/// Fails where overlayfs or fsopen(2) is missing, without the privilege (in a user namespace
/// on old kernels), or when the file at the binary's path is no longer the binary running.
pub fn sealed_view() -> Result<OwnedFd, SysError> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| SysError::from_io("readlink", "/proc/self/exe", &e))?;
    let (dir, name) = match (exe.parent(), exe.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => return Err(SysError::new("find the directory of", exe.display(), Errno::ENOENT)),
    };
    let dummy = dummy_lower_for(dir)
        .ok_or_else(|| SysError::new("find a second lower layer for", dir.display(), Errno::ELOOP))?;
    let context = fsopen_overlay()?;
    let lowerdir = lowerdir_option(&[dir, Path::new(dummy)]);
    fsconfig_string(&context, "lowerdir", &lowerdir)
        .map_err(|errno| SysError::new("set the overlay lowerdir", lowerdir.to_string_lossy(), errno))?;
    // xino is auto-enabled when the layers are on different filesystems and then logs to
    // dmesg for nothing; it only changes inode numbers, which the check below wants unmapped.
    let _ = fsconfig_string(&context, "xino", &OsString::from("off"));
    fsconfig_create(&context).map_err(|errno| SysError::new("create", "the sealed overlay of husk", errno))?;
    let mount = fsmount_read_only(&context)?;
    let view = open_path_in(&mount, name)?;
    check_same_file(&view)?;
    Ok(view)
}

/// The first candidate that does not overlap `bin_dir` (neither contains the other).
pub fn dummy_lower_for(bin_dir: &Path) -> Option<&'static str> {
    DUMMY_LOWER_CANDIDATES.iter().copied().find(|candidate| {
        let candidate = Path::new(candidate);
        !bin_dir.starts_with(candidate) && !candidate.starts_with(bin_dir)
    })
}

/// `lowerdir=a:b`, with `\` and `:` in each path escaped as overlayfs parses them.
pub fn lowerdir_option(layers: &[&Path]) -> OsString {
    let escaped: Vec<Vec<u8>> = layers
        .iter()
        .map(|layer| {
            let mut out = Vec::new();
            for &b in layer.as_os_str().as_bytes() {
                if b == b'\\' || b == b':' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out
        })
        .collect();
    OsString::from_vec(escaped.join(&b':'))
}

fn fsopen_overlay() -> Result<OwnedFd, SysError> {
    // SAFETY: fsopen with a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    owned(fd).map_err(|errno| SysError::new("fsopen", "overlay", errno))
}

fn fsconfig_string(context: &OwnedFd, key: &str, value: &OsStr) -> Result<(), Errno> {
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    let value = CString::new(value.as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: fsconfig on our context fd with NUL-terminated key and value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn fsconfig_create(context: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// A detached mount of the context: read-only, nosuid, nodev, but executable.
fn fsmount_read_only(context: &OwnedFd) -> Result<OwnedFd, SysError> {
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    // SAFETY: fsmount of our created context; the fd returned is ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsmount, context.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    owned(fd).map_err(|errno| SysError::new("fsmount", "the sealed overlay of husk", errno))
}

fn open_path_in(mount: &OwnedFd, name: &OsStr) -> Result<OwnedFd, SysError> {
    let c_name =
        CString::new(name.as_bytes()).map_err(|_| SysError::new("open", name.to_string_lossy(), Errno::EINVAL))?;
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat relative to our mount fd with a NUL-terminated name.
    let fd = unsafe { libc::openat(mount.as_raw_fd(), c_name.as_ptr(), flags) };
    owned(fd.into()).map_err(|errno| {
        let what = PathBuf::from(name);
        SysError::new("open in the sealed overlay", what.display(), errno)
    })
}

/// The name in the binary's directory may meanwhile be another file (an upgrade in
/// progress); exec'ing that would run a different husk than the one the caller started.
/// With xino off, overlayfs reports a lower file's own inode number (only st_dev is its own).
fn check_same_file(view: &OwnedFd) -> Result<(), SysError> {
    let running = std::fs::metadata("/proc/self/exe").map_err(|e| SysError::from_io("stat", "/proc/self/exe", &e))?;
    let seen = fstat(view).map_err(|errno| SysError::new("stat", "the sealed overlay view of husk", errno))?;
    use std::os::unix::fs::MetadataExt;
    if seen.st_ino != running.ino() || seen.st_size as u64 != running.size() {
        return Err(SysError::new(
            "find the running binary in",
            "the sealed overlay",
            Errno::ESTALE,
        ));
    }
    Ok(())
}

fn fstat(fd: &OwnedFd) -> Result<libc::stat, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the buffer for a valid fd (O_PATH fds allowed since Linux 3.6).
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    Ok(unsafe { st.assume_init() })
}

fn owned(fd: libc::c_long) -> Result<OwnedFd, Errno> {
    if fd < 0 {
        return Err(Errno::last());
    }
    let raw = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_layer_never_overlaps_the_binary_directory() {
        assert_eq!(dummy_lower_for(Path::new("/usr/bin")), Some("/run"));
        assert_eq!(dummy_lower_for(Path::new("/run/husk/bin")), Some("/tmp"));
        assert_eq!(dummy_lower_for(Path::new("/tmp/x")), Some("/run"));
        assert_eq!(dummy_lower_for(Path::new("/")), None);
    }

    #[test]
    fn lowerdir_paths_are_escaped() {
        let got = lowerdir_option(&[Path::new("/a:b/c\\d"), Path::new("/run")]);
        assert_eq!(got, OsString::from("/a\\:b/c\\\\d:/run"));
    }
}
