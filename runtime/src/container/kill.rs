//! `husk kill ID [SIGNAL] [--all]`.

use super::Global;
use crate::error::{Error, Result};
use crate::state::StateDir;
use crate::sys::SysError;
use husk_protocol::Status;

pub fn kill(global: &Global, id: &str, signal: &str, all: bool) -> Result<()> {
    let signo = crate::signals::parse(signal)?;
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
    // `--all` signals the cgroup, which may still hold processes once the init has exited (a
    // container sharing the host's pid namespace): runc 1.1 allows it on a stopped container,
    // and containerd's shim relies on it to clean up after such an init.
    if status == Status::Stopped && !all {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "kill",
            status,
        });
    }
    if all {
        signal_all(&saved.cgroup, signo)
    } else {
        send(saved.pid, signo)
    }
}

/// Signal every process in the container's cgroup. For SIGKILL the cgroup is frozen first so
/// that nothing forks between listing and killing (as runc does), then thawed.
pub fn signal_all(cgroup: &crate::cgroups::Cgroup, signo: i32) -> Result<()> {
    // An empty cgroup (the usual case at delete, once the init has exited) has nobody left to
    // fork: skip the freeze/thaw, which flips the kernel's freezer static key on every CPU.
    if cgroup.pids().is_ok_and(|pids| pids.is_empty()) {
        return Ok(());
    }
    let freeze = signo == libc::SIGKILL && cgroup.freeze().is_ok();
    let result = cgroup.pids().map_err(Error::from).and_then(|pids| {
        for pid in pids {
            match send(pid, signo) {
                Err(Error::Sys(e)) if e.errno == nix::errno::Errno::ESRCH => {}
                other => other?,
            }
        }
        Ok(())
    });
    if freeze {
        cgroup.thaw()?;
    }
    result
}

pub fn send(pid: i32, signo: i32) -> Result<()> {
    // SAFETY: kill(2) with a pid and a validated signal number.
    if unsafe { libc::kill(pid, signo) } != 0 {
        return Err(SysError::new(
            format!("send signal {signo} to"),
            format!("pid {pid}"),
            nix::errno::Errno::last(),
        )
        .into());
    }
    Ok(())
}
