//! The container process's identity: groups, gid, uid, with capabilities kept across the switch;
//! and its stdio, which that user must be able to use.

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// Switch to the process's user. PR_SET_KEEPCAPS keeps the permitted set through setresuid so
/// that capabilities::apply can then set exactly what the config asks.
pub fn switch_user(user: &User, allow_setgroups: bool) -> Result<(), SysError> {
    if allow_setgroups {
        // Each gid once, as runc 1.1 (libcontainer/user, GetAdditionalGroups: a map) sets them.
        let mut groups: Vec<Gid> = Vec::new();
        for gid in user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)) {
            if !groups.contains(&gid) {
                groups.push(gid);
            }
        }
        setgroups(&groups).ctx(
            "setgroups",
            format!("{:?}", user.additional_gids().as_deref().unwrap_or_default()),
        )?;
    }
    nix::sys::prctl::set_keepcaps(true).ctx("set", "PR_SET_KEEPCAPS")?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx("setresgid", user.gid())?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx("setresuid", user.uid())?;
    nix::sys::prctl::set_keepcaps(false).ctx("clear", "PR_SET_KEEPCAPS")?;
    if let Some(umask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// runc's fixStdioPermissions: before the switch to a non-root user, make stdio (the pty slave of
/// a terminal process, or the pipes it was given) owned by that uid, or the process could not
/// reopen its own terminal (`tty`, `ssh`, `sudo` do). Only the uid changes: the pty keeps the
/// tty group that devpts gave it. /dev/null is left alone, and so is an fd whose owner or group
/// this user namespace cannot map (EINVAL, EPERM), as runc does.
pub fn give_stdio_to(uid: u32) -> Result<(), SysError> {
    let null_rdev = nix::sys::stat::stat("/dev/null").ok().map(|st| st.st_rdev);
    for fd in 0..3 {
        // SAFETY: fds 0..3 stay open for the call; a closed one gives EBADF.
        let st = match nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }) {
            Ok(st) => st,
            // A closed stdio fd: nothing to give.
            Err(Errno::EBADF) => continue,
            Err(errno) => return Err(SysError::new("fstat stdio fd", fd, errno)),
        };
        if st.st_uid == uid || Some(st.st_rdev) == null_rdev {
            continue;
        }
        // SAFETY: fchown on one of our stdio fds; -1 keeps the group.
        if unsafe { libc::fchown(fd, uid, u32::MAX) } != 0 {
            match Errno::last() {
                Errno::EINVAL | Errno::EPERM => continue,
                errno => return Err(SysError::new(format!("chown stdio fd {fd} to uid"), uid, errno)),
            }
        }
    }
    Ok(())
}
