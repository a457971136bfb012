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
        Err(Error::NotFound(_)) if force => return StateDir::remove_abandoned(&global.root, id).map(|_| ()),
        Err(e) => return Err(e),
    };
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
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
