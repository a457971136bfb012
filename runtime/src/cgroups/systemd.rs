//! The systemd cgroup driver (`husk --systemd-cgroup`), as runc 1.1 has it.
//!
//! `linux.cgroupsPath` is `slice:prefix:name`. The container's cgroup is a transient scope unit
//! `prefix-name.scope` in `slice`, which systemd creates through D-Bus (`StartTransientUnit`,
//! `Delegate=yes`) with the limits systemd knows as unit properties; husk then writes every limit
//! to cgroupfs as well, through the same writers as the cgroupfs driver, because systemd has no
//! property for many of them (hugetlb, unified keys, rdma...). `update` sets the unit's
//! properties and writes cgroupfs again; `delete` stops the unit. See docs/cgroups.md.
//!
//! This file is the pure part (names, paths, properties) plus the `Cgroup` entry points; the
//! D-Bus client is `systemd_dbus.rs`, loaded only under --systemd-cgroup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::error::CgroupError;
use super::systemd_dbus::Systemd;
use super::systemd_props::{annotation_properties, resource_properties, PropValue, Property};
use super::{mountinfo, Cgroup, CgroupsPath, Layout};

/// husk's scope prefix when `linux.cgroupsPath` is empty, where runc uses "runc": the unit is
/// `husk-<id>.scope`, so a husk and a runc container of the same id never share a unit.
pub const DEFAULT_PREFIX: &str = "husk";
/// runc's default slice for a root runtime.
pub const DEFAULT_SLICE: &str = "system.slice";
/// How long husk waits for systemd to run a start or stop job (runc: 30 s).
const JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The unit that holds a container's cgroup; stored in state.json with the cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdUnit {
    /// "husk-<id>.scope" (or a ".slice" when the name part of the path is one).
    pub unit: String,
    /// The slice it goes in ("system.slice"), unexpanded, as systemd's Slice= takes it.
    pub slice: String,
}

/// What the driver can go wrong on; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("failed to use the systemd cgroup driver: systemd is not running on this host (no /run/systemd/system); drop --systemd-cgroup to use cgroupfs")]
    NotRunning,

    #[error("failed to use systemd cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("failed to use annotation {key}: {reason}")]
    Annotation { key: String, reason: String },

    #[error("failed to connect to systemd: {path}: {source}")]
    Connect { path: String, source: Box<zbus::Error> },

    #[error("failed to {action} systemd unit {unit}: {source}")]
    Call {
        action: &'static str,
        unit: String,
        source: Box<zbus::Error>,
    },

    #[error("failed to {action} systemd unit {unit}: the job ended with {result:?}")]
    JobFailed {
        action: &'static str,
        unit: String,
        result: String,
    },

    #[error("failed to {action} systemd unit {unit}: no answer from systemd within {secs} s")]
    JobTimeout {
        action: &'static str,
        unit: String,
        secs: u64,
    },
}

impl From<SystemdError> for CgroupError {
    /// Boxed: zbus errors are large, and every cgroup function returns a CgroupError.
    fn from(e: SystemdError) -> Self {
        CgroupError::Systemd(Box::new(e))
    }
}

/// Where a systemd cgroupsPath puts the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    pub unit: SystemdUnit,
    /// The unit's cgroup relative to the hierarchy root: "system.slice/husk-<id>.scope".
    pub cgroup: PathBuf,
}

fn invalid_path(path: &str, reason: impl Into<String>) -> SystemdError {
    SystemdError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Expands a slice name into its cgroup path, as systemd nests slices by dashes:
/// "a-b.slice" is "/a.slice/a-b.slice", "-.slice" is the root "/".
pub fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let bad = || format!("invalid slice name {slice:?}: a slice is a name like a-b.slice, without '/'");
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') || stem.is_empty() {
        return Err(bad());
    }
    let mut path = PathBuf::from("/");
    if stem == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for component in stem.split('-') {
        // "a--b.slice" and "-a.slice" name no parent.
        if component.is_empty() {
            return Err(bad());
        }
        path.push(format!("{prefix}{component}.slice"));
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// Parses `linux.cgroupsPath` for the systemd driver: "slice:prefix:name", an empty slice is
/// system.slice; no path at all is "system.slice:husk:<id>".
pub fn parse_systemd_path(cgroups_path: Option<&str>, container_id: &str) -> Result<SystemdPath, SystemdError> {
    let raw = cgroups_path.filter(|p| !p.is_empty());
    let (slice, prefix, name) = match raw {
        None => (DEFAULT_SLICE, DEFAULT_PREFIX, container_id),
        Some(raw) => match raw.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] => (if slice.is_empty() { DEFAULT_SLICE } else { slice }, prefix, name),
            _ => {
                return Err(invalid_path(
                    raw,
                    "the systemd cgroup driver expects \"slice:prefix:name\"",
                ))
            }
        },
    };
    let shown = raw.unwrap_or(container_id);
    let parent = expand_slice(slice).map_err(|reason| invalid_path(shown, reason))?;
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(invalid_path(
            shown,
            "the prefix and name may not contain '/' and the name may not be empty",
        ));
    }
    let unit = if name.ends_with(".slice") {
        // Only the last level: its parents are `slice`.
        expand_slice(name).map_err(|reason| invalid_path(shown, reason))?;
        name.to_string()
    } else {
        format!("{prefix}-{name}.scope")
    };
    let cgroup = parent.strip_prefix("/").unwrap_or(&parent).join(&unit);
    Ok(SystemdPath {
        unit: SystemdUnit {
            unit,
            slice: slice.to_string(),
        },
        cgroup,
    })
}

/// The properties a new unit starts with: what it is, where, which pid, delegation and
/// accounting, as runc sets them; then the limits, then the annotations (which win).
fn unit_properties(unit: &SystemdUnit, id: &str, pid: i32, v2: bool) -> Vec<Property> {
    let mut props: Vec<Property> = vec![("Description".into(), PropValue::Str(format!("husk container {id}")))];
    if unit.unit.ends_with(".slice") {
        props.push(("Wants".into(), PropValue::Str(unit.slice.clone())));
    } else {
        props.push(("Slice".into(), PropValue::Str(unit.slice.clone())));
        props.push(("Delegate".into(), PropValue::Bool(true)));
    }
    props.push(("PIDs".into(), PropValue::U32s(vec![pid as u32])));
    let io_accounting = if v2 { "IOAccounting" } else { "BlockIOAccounting" };
    for accounting in ["MemoryAccounting", "CPUAccounting", io_accounting, "TasksAccounting"] {
        props.push((accounting.into(), PropValue::Bool(true)));
    }
    props.push(("DefaultDependencies".into(), PropValue::Bool(false)));
    props
}

/// Runs `f` (the D-Bus work) with every signal blocked. zbus starts threads, which inherit the
/// mask: blocked there, a signal to husk always reaches the main thread (a foreground `run`
/// forwards them through a signalfd, which only sees signals no other thread can take).
fn with_signals_blocked<T>(f: impl FnOnce() -> Result<T, CgroupError>) -> Result<T, CgroupError> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old)).is_ok();
    let result = f();
    if blocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    result
}

impl Cgroup {
    /// The cgroup for the driver the user chose: `--systemd-cgroup` takes "slice:prefix:name"
    /// (and the `org.systemd.property.*` annotations, checked here, before anything is made).
    pub fn for_driver(
        systemd: bool,
        cgroups_path: Option<&str>,
        container_id: &str,
        annotations: Option<&HashMap<String, String>>,
    ) -> Result<Cgroup, CgroupError> {
        if !systemd {
            return Cgroup::for_container(cgroups_path, container_id);
        }
        annotation_properties(annotations.unwrap_or(&HashMap::new()))?;
        Cgroup::for_systemd(cgroups_path, container_id)
    }

    /// The container's cgroup under the systemd driver: the scope's directory in every hierarchy.
    pub fn for_systemd(cgroups_path: Option<&str>, container_id: &str) -> Result<Cgroup, CgroupError> {
        let path = parse_systemd_path(cgroups_path, container_id)?;
        if !Path::new("/run/systemd/system").is_dir() {
            return Err(SystemdError::NotRunning.into());
        }
        let text = super::fs::read(Path::new(super::MOUNTINFO), "mountinfo")?;
        let mounts = mountinfo::parse_mountinfo(&text);
        let layout =
            mountinfo::layout_of(&mounts).ok_or_else(|| CgroupError::NoCgroupMounts(super::MOUNTINFO.into()))?;
        let mut cgroup = Cgroup::build(layout, &mounts, &CgroupsPath::Absolute(path.cgroup), &[]);
        // The slices above the unit are systemd's: destroy never removes them.
        for h in &mut cgroup.hierarchies {
            h.owned_depth = 1;
        }
        cgroup.systemd = Some(path.unit);
        Ok(cgroup)
    }

    pub fn is_systemd(&self) -> bool {
        self.systemd.is_some()
    }

    /// After clone, before the init proceeds: systemd makes the unit with `pid` in it and the
    /// limits it knows; then the hierarchies systemd does not manage (v1) get their directory
    /// and the pid, and every limit is written to cgroupfs, as runc's Apply then Set.
    pub fn start_systemd_unit(
        &self,
        id: &str,
        pid: i32,
        resources: Option<&LinuxResources>,
        annotations: Option<&HashMap<String, String>>,
    ) -> Result<(), CgroupError> {
        let Some(unit) = &self.systemd else {
            return Ok(());
        };
        with_signals_blocked(|| {
            let systemd = Systemd::connect()?;
            let v2 = self.layout == Layout::V2;
            let mut props = unit_properties(unit, id, pid, v2);
            if let Some(res) = resources {
                props.extend(resource_properties(res, v2, systemd.version())?);
            }
            props.extend(annotation_properties(annotations.unwrap_or(&HashMap::new()))?);
            Ok(systemd.start_transient_unit(&unit.unit, &props, JOB_TIMEOUT)?)
        })?;
        self.create()?;
        self.add_process(pid)?;
        if let Some(res) = resources {
            super::apply::apply(self, res)?;
        }
        Ok(())
    }

    /// `update` under the systemd driver: the unit's properties first, so that systemd does not
    /// put back old values later (on daemon-reload), then cgroupfs by the caller.
    pub(super) fn set_systemd_properties(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let Some(unit) = &self.systemd else {
            return Ok(());
        };
        with_signals_blocked(|| {
            let systemd = Systemd::connect()?;
            let props = resource_properties(resources, self.layout == Layout::V2, systemd.version())?;
            if !props.is_empty() {
                systemd.set_unit_properties(&unit.unit, &props)?;
            }
            Ok(())
        })
    }

    /// `delete` (and a failed create): stop the unit and wait; a unit that is already gone is
    /// fine. The directories are then removed by `destroy` as for cgroupfs.
    pub(super) fn stop_systemd_unit(&self) -> Result<(), CgroupError> {
        let Some(unit) = &self.systemd else {
            return Ok(());
        };
        with_signals_blocked(|| Ok(Systemd::connect()?.stop_unit(&unit.unit, JOB_TIMEOUT)?))
    }
}

#[cfg(test)]
#[path = "systemd_tests.rs"]
mod tests;
