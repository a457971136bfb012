//! Paths inside the container's rootfs, resolved with openat2(RESOLVE_IN_ROOT): a symlink in the
//! image that points to `/etc` resolves to `<rootfs>/etc`, and `..` cannot climb out. Mounts are
//! then made on `/proc/self/fd/N` of the resolved fd, never on a string path the container could
//! swap for a symlink between check and use.

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// What to create at a mount destination that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Dir,
    File,
    Nothing,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// openat2 fails with EAGAIN when a rename or mount anywhere on the host raced a `..` lookup
/// under RESOLVE_IN_ROOT (the kernel cannot prove the walk stayed inside). Retrying is the
/// documented answer; with other containers being set up at the same time the race is common.
fn open_resolved(root: BorrowedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match openat2(root, path, how(flags)) {
            Err(Errno::EAGAIN) if tries < 128 => tries += 1,
            other => return other,
        }
    }
}

/// `/a/b/c` → `a/b/c`, with `.` dropped; `..` is left to openat2, which keeps it in the root.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

/// Open `path` inside `root` as an O_PATH fd, creating it (and missing parents as directories)
/// when asked. A dangling symlink on the way is followed inside the root and its target made,
/// as runc's securejoin does.
pub fn open_in_root(root: BorrowedFd, path: &Path, create: Create) -> Result<OwnedFd, SysError> {
    open_in_root_depth(root, path, create, 0)
}

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

fn open_in_root_depth(root: BorrowedFd, path: &Path, create: Create, depth: u32) -> Result<OwnedFd, SysError> {
    let rel = relative(path);
    let target = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel.clone()
    };
    match open_resolved(root, &target, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) if create != Create::Nothing => {}
        Err(errno) => return Err(SysError::new("resolve in rootfs", path.display(), errno)),
    }
    if depth > MAX_SYMLINKS {
        return Err(SysError::new("resolve in rootfs", path.display(), Errno::ELOOP));
    }
    let parts: Vec<_> = rel.components().collect();
    let mut done = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        let candidate = done.join(part);
        match open_resolved(root, &candidate, OFlag::O_PATH) {
            Ok(_) => {
                done = candidate;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(SysError::new("resolve in rootfs", candidate.display(), errno)),
        }
        let parent_path = if done.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            done.clone()
        };
        let parent = open_resolved(root, &parent_path, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
            .ctx("open directory in rootfs", parent_path.display())?;
        // A missing entry in procfs may be a magic link (/proc/self/fd/N) that vanished or is
        // about to appear: never follow its text, and never make anything there.
        if nix::sys::statfs::fstatfs(&parent).is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        {
            return Err(SysError::new(
                "resolve in rootfs (a path through /proc)",
                path.display(),
                Errno::ELOOP,
            ));
        }
        if let Ok(link) = nix::fcntl::readlinkat(parent.as_fd(), part.as_os_str()) {
            let rest: PathBuf = parts[i + 1..].iter().collect();
            let link = PathBuf::from(link);
            let next = if link.is_absolute() {
                link.join(rest)
            } else {
                Path::new("/").join(&done).join(link).join(rest)
            };
            return open_in_root_depth(root, &next, create, depth + 1);
        }
        let last = i + 1 == parts.len();
        make_entry(
            parent.as_fd(),
            part.as_os_str(),
            if last { create } else { Create::Dir },
            &candidate,
        )?;
        done = candidate;
    }
    open_resolved(root, &target, OFlag::O_PATH).ctx("resolve in rootfs", path.display())
}

fn make_entry(parent: BorrowedFd, name: &std::ffi::OsStr, kind: Create, shown: &Path) -> Result<(), SysError> {
    let made = match kind {
        Create::File => nix::fcntl::openat(
            parent,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
        _ => nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o755)),
    };
    match made {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(SysError::new("create mount point in rootfs", shown.display(), errno)),
    }
}

/// The path through which mount(2) reaches an fd's file: the kernel follows the magic link to
/// the very inode resolved above.
pub fn proc_fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Removed on drop, also when an assertion fails.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn tempdir() -> Scratch {
        let dir = std::env::temp_dir().join(format!("husk-resolve-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn rand_suffix() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    fn open_dir(p: &Path) -> OwnedFd {
        nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn absolute_symlink_stays_inside_the_root() {
        let outside = tempdir();
        let root = tempdir();
        // The image's /evil points at the host's `outside` dir; resolving must not reach it.
        symlink(outside.as_path(), root.join("evil")).unwrap();
        let root_fd = open_dir(&root);
        let fd = open_in_root(root_fd.as_fd(), Path::new("/evil/target"), Create::Dir).unwrap();
        let resolved = std::fs::read_link(proc_fd_path(&fd)).unwrap();
        assert!(
            resolved.starts_with(root.as_path()),
            "{resolved:?} escaped {:?}",
            root.as_path()
        );
        assert!(!outside.join("target").exists());
    }

    #[test]
    fn dotdot_cannot_climb_out_and_files_are_created() {
        let root = tempdir();
        let root_fd = open_dir(&root);
        let fd = open_in_root(root_fd.as_fd(), Path::new("/../../x/file"), Create::File).unwrap();
        let resolved = std::fs::read_link(proc_fd_path(&fd)).unwrap();
        assert_eq!(resolved, root.join("x/file"));
        assert!(root.join("x/file").is_file());
    }
}
