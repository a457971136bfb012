//! The container process's identity: groups, gid, uid, with capabilities kept across the switch.

use crate::sys::{Context, SysError};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// Switch to the process's user. PR_SET_KEEPCAPS keeps the permitted set through setresuid so
/// that capabilities::apply can then set exactly what the config asks.
pub fn switch_user(user: &User, allow_setgroups: bool) -> Result<(), SysError> {
    if allow_setgroups {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
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
