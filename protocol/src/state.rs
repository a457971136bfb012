//! The OCI runtime state (runtime-spec `state`), as `husk state ID` prints it.
//! runc adds `created`, `rootfs` and `owner`; containerd's go-runc reads `id`, `pid`, `status`,
//! `bundle`, `rootfs` and `created`, so husk prints them too.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A container's status as the runtime-spec names it (plus runc's `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON object `husk state` prints and hooks receive on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// Zero once the container has stopped (runc prints 0 then).
    #[serde(default)]
    pub pid: i32,
    pub status: Status,
    pub bundle: String,
    #[serde(default)]
    pub rootfs: String,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub owner: String,
}
