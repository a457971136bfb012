//! `husk state ID`: the OCI state JSON.

use super::Global;
use crate::error::Result;
use crate::state::StateDir;
use husk_protocol::ContainerState;

pub fn state(global: &Global, id: &str) -> Result<ContainerState> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    Ok(saved.to_oci(saved.status(&dir.path)))
}
