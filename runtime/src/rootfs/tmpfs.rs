//! tmpfs mounts over a directory of the image: the directory's mode is kept unless `mode=` is
//! given (runc 1.1.8 and crun: the mode is put in the mount data, so the tmpfs is born with
//! it), and `tmpcopyup` starts the tmpfs with a copy of the directory's content.
//!
//! The copy reads the covered directory through an fd opened before the mount (an fd keeps
//! naming the inode it was opened on, mounted over or not), so no scratch mount on the host is
//! needed, and every step is an *at() call with O_NOFOLLOW: a symlink in the image is copied as
//! a symlink, never followed.

use crate::sys::{Context, SysError};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, fstat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchown, fchownat, Gid, Uid};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The permission bits of the directory `target` is open on, if it is one.
pub fn directory_mode(target: BorrowedFd) -> Option<u32> {
    let st = fstat(target).ok()?;
    (SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR).then_some(st.st_mode & 0o7777)
}

/// The mount data with `mode=<existing>` in front: a `mode=` of the options comes later in
/// the string and wins.
pub fn data_keeping_mode(data: Option<String>, existing: Option<u32>) -> Option<String> {
    let Some(mode) = existing else {
        return data;
    };
    Some(match data {
        Some(rest) => format!("mode={mode:o},{rest}"),
        None => format!("mode={mode:o}"),
    })
}

/// A directory fd that can be listed, on the same inode as the O_PATH `target`.
pub fn open_listable(target: BorrowedFd, shown: &Path) -> Result<OwnedFd, SysError> {
    openat(
        target,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("tmpcopyup: open the image's directory", shown.display())
}

/// Copy what `from` holds into the fresh tmpfs `to`, with owners and modes; the tmpfs root takes
/// the owner of the directory it covers (as runc's copy does).
pub fn copy_up(from: BorrowedFd, to: BorrowedFd, shown: &Path) -> Result<(), SysError> {
    let st = fstat(from).ctx("tmpcopyup: stat", shown.display())?;
    copy_dir(from, to, shown, 0)?;
    // `to` is an O_PATH fd: fchown would refuse it, AT_EMPTY_PATH takes it.
    let owner = (Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)));
    fchownat(to, "", owner.0, owner.1, AtFlags::AT_EMPTY_PATH).ctx("tmpcopyup: chown the tmpfs on", shown.display())
}

/// Deeper than this is refused rather than risking the fd limit (two fds per level).
const MAX_DEPTH: u32 = 256;

fn copy_dir(from: BorrowedFd, to: BorrowedFd, shown: &Path, depth: u32) -> Result<(), SysError> {
    if depth > MAX_DEPTH {
        return Err(SysError::new("tmpcopyup: copy", shown.display(), Errno::ELOOP));
    }
    let mut dir = Dir::openat(
        from,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("tmpcopyup: list", shown.display())?;
    let names: Vec<(Vec<u8>, Option<Type>)> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_bytes().to_vec(), e.file_type()))
        .filter(|(name, _)| name.as_slice() != b"." && name.as_slice() != b"..")
        .collect();
    for (name, _) in names {
        let name = OsStr::from_bytes(&name);
        copy_entry(from, to, name, &shown.join(name), depth)?;
    }
    Ok(())
}

fn copy_entry(from: BorrowedFd, to: BorrowedFd, name: &OsStr, shown: &Path, depth: u32) -> Result<(), SysError> {
    let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW).ctx("tmpcopyup: stat", shown.display())?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let owner = (Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)));
    let fail = |op: &'static str| move |errno: Errno| SysError::new(format!("tmpcopyup: {op}"), shown.display(), errno);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(to, name, Mode::from_bits_truncate(0o700)).map_err(fail("create directory"))?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let src = openat(from, name, flags, Mode::empty()).map_err(fail("open directory"))?;
            let dst = openat(to, name, flags, Mode::empty()).map_err(fail("open directory"))?;
            copy_dir(src.as_fd(), dst.as_fd(), shown, depth + 1)?;
            fchown(dst.as_fd(), owner.0, owner.1).map_err(fail("chown"))?;
            fchmod(dst.as_fd(), perm).map_err(fail("chmod"))
        }
        SFlag::S_IFREG => {
            let src = openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(fail("open"))?;
            let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let dst = openat(to, name, create, Mode::from_bits_truncate(0o600)).map_err(fail("create"))?;
            let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
            std::io::copy(&mut src, &mut dst).ctx("tmpcopyup: copy", shown.display())?;
            fchown(dst.as_fd(), owner.0, owner.1).map_err(fail("chown"))?;
            fchmod(dst.as_fd(), perm).map_err(fail("chmod"))
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(from, name).map_err(fail("read link"))?;
            nix::unistd::symlinkat(target.as_os_str(), to, name).map_err(fail("create link"))?;
            fchownat(to, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(fail("chown"))
        }
        _ => {
            // Devices, fifos, sockets: the same node, as mknod makes it.
            mknodat(to, name, kind, perm, st.st_rdev).map_err(fail("create node"))?;
            fchownat(to, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(fail("chown"))?;
            fchmodat(to, name, perm, FchmodatFlags::NoFollowSymlink).map_err(fail("chmod"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_mode_goes_first_so_that_a_given_mode_wins() {
        assert_eq!(data_keeping_mode(None, Some(0o750)).as_deref(), Some("mode=750"));
        assert_eq!(
            data_keeping_mode(Some("size=1m,mode=700".into()), Some(0o1777)).as_deref(),
            Some("mode=1777,size=1m,mode=700")
        );
        assert_eq!(
            data_keeping_mode(Some("size=1m".into()), None).as_deref(),
            Some("size=1m")
        );
    }
}
