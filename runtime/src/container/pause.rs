//! `husk pause`, `resume` and the pid list for `ps`: the container's cgroup freezer.

use super::Global;
use crate::error::{Error, Result};
use crate::state::StateDir;
use husk_protocol::Status;

pub fn pause(global: &Global, id: &str) -> Result<()> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    match saved.status(&dir.path) {
        Status::Running | Status::Created => Ok(saved.cgroup.freeze()?),
        status => Err(Error::WrongStatus {
            id: id.to_string(),
            op: "pause",
            status,
        }),
    }
}

pub fn resume(global: &Global, id: &str) -> Result<()> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    match saved.status(&dir.path) {
        Status::Paused => Ok(saved.cgroup.thaw()?),
        status => Err(Error::WrongStatus {
            id: id.to_string(),
            op: "resume",
            status,
        }),
    }
}

pub fn pids(global: &Global, id: &str) -> Result<Vec<i32>> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    // A stopped container's cgroup may still hold processes its init left behind (no pid
    // namespace): runc 1.1 (ps.go, container.Processes) lists them, whatever the status.
    if saved.status(&dir.path) == Status::Stopped && !saved.cgroup.exists() {
        return Ok(Vec::new());
    }
    Ok(saved.cgroup.pids()?)
}
