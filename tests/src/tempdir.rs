//! Temporary directories that unmount what was left mounted below them before removal.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A directory removed on drop. Anything still mounted below it (a container's rootfs,
/// a snapshot, a leaked bind mount) is lazily unmounted first, deepest first, so the
/// removal never descends into a host filesystem.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// A new directory `/tmp/husk-e2e-<prefix>-XXXXXX`.
    pub fn new(prefix: &str) -> TempDir {
        TempDir::new_in(Path::new("/tmp"), prefix)
    }

    /// A new directory below `parent` (e.g. `/run` for a tmpfs).
    pub fn new_in(parent: &Path, prefix: &str) -> TempDir {
        let template = parent.join(format!("husk-e2e-{prefix}-XXXXXX"));
        let mut bytes = template.into_os_string().into_vec();
        bytes.push(0);
        // SAFETY: bytes is a NUL-terminated, writable buffer that mkdtemp fills in place.
        let ret = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if ret.is_null() {
            panic!(
                "failed to create temp dir below {}: {}",
                parent.display(),
                io::Error::last_os_error()
            );
        }
        bytes.pop();
        TempDir {
            path: PathBuf::from(OsString::from_vec(bytes)),
            keep: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Leave the directory in place (for debugging a failing test); it is printed on drop.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("HUSK_E2E_KEEP").is_some() {
            eprintln!("husk-e2e: keeping {}", self.path.display());
            return;
        }
        unmount_all_under(&self.path);
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            if err.kind() != io::ErrorKind::NotFound {
                eprintln!("husk-e2e: failed to remove {}: {err}", self.path.display());
            }
        }
    }
}

/// Lazily unmount every mount point at or below `dir`, deepest first. Errors are printed,
/// not returned: this runs in Drop, where the best thing to do is go on cleaning.
pub fn unmount_all_under(dir: &Path) {
    // A mount can be stacked several times on one point; loop until none is left.
    for _ in 0..8 {
        let mut points = crate::leftovers::mounts_under(dir);
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            let Ok(c) = CString::new(point.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINVAL) && err.raw_os_error() != Some(libc::ENOENT) {
                    eprintln!("husk-e2e: failed to unmount {}: {err}", point.display());
                }
            }
        }
    }
}
