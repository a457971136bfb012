//! `husk delete ID [--force]`: poststop hooks, cgroup, state dir. A created (never started)
//! container is deleted without --force, as runc does; a running one needs --force.

use super::Global;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{SavedState, StateDir};
use husk_protocol::Status;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;

pub fn delete(global: &Global, id: &str, force: bool) -> Result<()> {
    let dir = match StateDir::open(&global.root, id) {
        Ok(dir) => dir,
        // runc: `delete --force` of an unknown container succeeds, so cleanup is idempotent;
        // a directory a killed create left without state.json goes too (runc removes it).
        Err(Error::NotFound(_)) if force => {
            return StateDir::remove_abandoned(&global.root, id, release_abandoned_cgroup).map(|_| ())
        }
        Err(e) => return Err(e),
    };
    let saved = dir.load()?;
    let mut status = saved.status(&dir.path);
    if status != Status::Stopped && dying(saved.pid) {
        // `kill KILL` returned but the init has not finished exiting: wait (bounded) for it,
        // so that delete right after kill does not see a "running" container.
        wait_for_exit(saved.pid);
        status = if exited(saved.pid) {
            Status::Stopped
        } else {
            saved.status(&dir.path)
        };
    }
    match status {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&saved)?,
        _ if force => kill_and_wait(&saved)?,
        _ => {
            return Err(Error::WrongStatus {
                id: id.to_string(),
                op: "delete",
                status,
            })
        }
    }
    destroy(dir, &saved)
}

/// The cgroup a killed create had made (see `CREATING_CGROUP_FILE`): its processes killed (an
/// init that outlived its parent, or had not yet noticed), then removed. runc leaves it.
fn release_abandoned_cgroup(state_dir: &std::path::Path) -> Result<()> {
    let file = state_dir.join(crate::state::CREATING_CGROUP_FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(());
    };
    let cgroup: crate::cgroups::Cgroup = serde_json::from_str(&text).map_err(|e| Error::CorruptState {
        path: file.display().to_string(),
        why: e.to_string(),
    })?;
    let _ = super::kill::signal_all(&cgroup, libc::SIGKILL);
    Ok(cgroup.destroy()?)
}

/// The init has a SIGKILL pending or has already exited (a zombie not yet reaped).
fn dying(pid: i32) -> bool {
    if exited(pid) {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    status
        .lines()
        .filter_map(|l| l.strip_prefix("SigPnd:").or_else(|| l.strip_prefix("ShdPnd:")))
        .filter_map(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .any(|mask| mask & SIGKILL_BIT != 0)
}

/// The process is gone or a zombie: it will never run again.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the ")" that ends the command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
        Err(_) => true,
    }
}

/// Up to 2 s for the init to exit, on a pidfd (no polling loop).
fn wait_for_exit(pid: i32) {
    if let Ok(pidfd) = super::start::pidfd_open(pid) {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(2_000u16));
    }
}

/// SIGKILL everything in the container and wait for the init to be gone.
pub fn kill_and_wait(saved: &SavedState) -> Result<()> {
    let pidfd = super::start::pidfd_open(saved.pid).ok();
    super::kill::signal_all(&saved.cgroup, libc::SIGKILL)?;
    let _ = super::kill::send(saved.pid, libc::SIGKILL);
    if let Some(pidfd) = pidfd {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        // The kernel delivers SIGKILL promptly; 10 s is a safety net, not a wait we expect.
        let _ = poll(&mut fds, PollTimeout::from(10_000u16));
    }
    Ok(())
}

pub fn destroy(dir: StateDir, saved: &SavedState) -> Result<()> {
    // Stragglers (e.g. an exec'd process re-parented away) would keep the cgroup busy.
    let _ = super::kill::signal_all(&saved.cgroup, libc::SIGKILL);
    saved.cgroup.destroy()?;
    let state = saved.to_oci(Status::Stopped);
    hooks::run_all_warn(
        "poststop",
        saved.hooks.as_ref().and_then(|h| h.poststop().as_ref()),
        &state,
    );
    dir.remove()
}
