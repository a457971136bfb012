//! The one error type of the cgroups module.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing a container's cgroups.
///
/// Messages follow "failed to <verb> <object>: <path>: <errno>" so that `husk` can print them as
/// they are; configuration problems name the resource and say what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to read {what}: {path}: {}", crate::sys::io_error_text(source))]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("failed to write {value:?}: {path}: {}", crate::sys::io_error_text(source))]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("failed to create cgroup directory: {path}: {}", crate::sys::io_error_text(source))]
    Mkdir { path: PathBuf, source: io::Error },

    #[error("failed to remove cgroup directory: {path}: {}", crate::sys::io_error_text(source))]
    Rmdir { path: PathBuf, source: io::Error },

    #[error("failed to parse {what}: {path}: unexpected {content:?}")]
    Parse {
        what: &'static str,
        path: PathBuf,
        content: String,
    },

    #[error("failed to find a cgroup filesystem in {0}: no cgroup or cgroup2 mount")]
    NoCgroupMounts(PathBuf),

    #[error("failed to use cgroups path {0:?}: systemd cgroup paths (slice:prefix:name) need the systemd driver (husk --systemd-cgroup); or use a cgroupfs path such as /husk/<id>")]
    SystemdPath(String),

    #[error("failed to use cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    #[error("failed to apply {resource}: the {controller} cgroup controller is not available on this host")]
    MissingController {
        resource: &'static str,
        controller: &'static str,
    },

    #[error("invalid configuration: linux.resources.unified key {key:?}: the {controller} controller is a cgroup v1 hierarchy on this host, and unified keys are cgroup v2 files")]
    UnifiedKeyForV1Controller { key: String, controller: String },

    #[error("failed to apply unified {key}: the {controller} controller is not enabled for this cgroup")]
    UnifiedControllerMissing { key: String, controller: String },

    #[error("failed to apply {resource}: invalid value: {reason}")]
    InvalidValue { resource: &'static str, reason: String },

    #[error("failed to apply {resource}: not supported on cgroup {version}: {reason}")]
    Unsupported {
        resource: &'static str,
        version: &'static str,
        reason: &'static str,
    },

    #[error("failed to apply {resource}: the kernel does not provide {path} ({hint})")]
    MissingFile {
        resource: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// runc's words: a container created in a frozen cgroup would hang in the freezer.
    #[error("failed to create container: container's cgroup unexpectedly frozen: {0}")]
    UnexpectedlyFrozen(PathBuf),

    #[error("failed to freeze cgroup: {path}: still {state:?} after {millis} ms")]
    FreezeTimeout { path: PathBuf, state: String, millis: u128 },

    #[error("failed to {action} cgroup: {path}: {}", crate::sys::errno_text(*source))]
    Sys {
        action: &'static str,
        path: PathBuf,
        source: nix::Error,
    },

    /// A device rule that cannot become a cgroup v2 device program.
    #[error(transparent)]
    DeviceRule(#[from] super::devices_bpf::RuleError),

    /// The systemd driver: its paths, annotations and D-Bus calls.
    #[error(transparent)]
    Systemd(#[from] Box<super::systemd::SystemdError>),

    /// Loading or attaching the cgroup v2 device program.
    #[error(transparent)]
    DeviceFilter(#[from] super::devices_bpf::DeviceFilterError),
}

impl CgroupError {
    /// The errno behind the error, if it came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Read { source, .. }
            | Self::Write { source, .. }
            | Self::Mkdir { source, .. }
            | Self::Rmdir { source, .. } => source.raw_os_error(),
            Self::Sys { source, .. } => Some(*source as i32),
            Self::DeviceFilter(e) => e.errno().map(|e| e as i32),
            _ => None,
        }
    }
}
