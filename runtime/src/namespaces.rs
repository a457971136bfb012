//! Namespaces: which to create with clone3, which to join by path, and the joins themselves.

use crate::sys::{Context, SysError};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, LinuxTimeOffset};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns/<name> file name of a namespace kind.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The flags for clone3: every namespace created anew, except cgroup, which the init unshares
/// itself once the parent has moved it into the container's cgroup (else the cgroup
/// namespace's root would be husk's own cgroup), and time, which the parent makes for its
/// child with its offsets already written ([`ForChildren::new_time`]).
pub fn clone_flags(namespaces: &[LinuxNamespace]) -> CloneFlags {
    namespaces
        .iter()
        .filter(|ns| ns.path().is_none() && !matches!(ns.typ(), LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time))
        .fold(CloneFlags::empty(), |acc, ns| acc | clone_flag(ns.typ()))
}

/// Whether `husk create` forks a stage 1 that joins the listed namespaces before it clones the
/// init (as runc's nsexec does): needed when a user namespace is joined, so that the new
/// namespaces belong to it, and when a pid namespace is joined, so that nothing of husk is
/// visible there before it has joined the others.
pub fn joins_before_clone(namespaces: &[LinuxNamespace]) -> bool {
    namespaces
        .iter()
        .any(|ns| ns.path().is_some() && matches!(ns.typ(), LinuxNamespaceType::User | LinuxNamespaceType::Pid))
}

pub fn creates(namespaces: &[LinuxNamespace], kind: LinuxNamespaceType) -> bool {
    namespaces.iter().any(|ns| ns.typ() == kind && ns.path().is_none())
}

/// An open namespace file, ready to join.
pub struct NamespaceFile {
    pub kind: LinuxNamespaceType,
    pub fd: OwnedFd,
    pub path: String,
}

pub fn open(kind: LinuxNamespaceType, path: &Path) -> Result<NamespaceFile, SysError> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(&format!("open {} namespace", proc_name(kind)), path.display())?;
    Ok(NamespaceFile {
        kind,
        fd,
        path: path.display().to_string(),
    })
}

pub fn join(ns: &NamespaceFile) -> Result<(), SysError> {
    nix::sched::setns(ns.fd.as_fd(), clone_flag(ns.kind))
        .ctx(&format!("setns into {} namespace", proc_name(ns.kind)), &ns.path)
}

/// The pid and time namespaces apply to children only: `setns` in the parent makes the next
/// clone land in them, with no extra fork. The guard puts the parent back afterwards.
pub struct ForChildren {
    restore: Vec<NamespaceFile>,
}

impl ForChildren {
    /// Nothing entered yet (for [`ForChildren::new_time`] alone).
    pub fn none() -> ForChildren {
        ForChildren { restore: Vec::new() }
    }

    pub fn enter(namespaces: &[LinuxNamespace]) -> Result<ForChildren, SysError> {
        let mut restore = Vec::new();
        for ns in namespaces {
            let (Some(path), true) = (
                ns.path(),
                matches!(ns.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::Time),
            ) else {
                continue;
            };
            let own = format!("/proc/self/ns/{}_for_children", proc_name(ns.typ()));
            restore.push(open(ns.typ(), Path::new(&own))?);
            join(&open(ns.typ(), path)?)?;
        }
        Ok(ForChildren { restore })
    }

    /// A new time namespace for the next child, with its clock offsets. The kernel takes
    /// /proc/PID/timens_offsets only before any process has entered the namespace, so clone3
    /// cannot make it: unshare(CLONE_NEWTIME) changes only our `time_for_children`, we write
    /// the offsets, the child is born inside, and `leave` puts us back.
    pub fn new_time(&mut self, offsets: Option<&HashMap<String, LinuxTimeOffset>>) -> Result<(), SysError> {
        let kind = LinuxNamespaceType::Time;
        self.restore
            .push(open(kind, Path::new("/proc/self/ns/time_for_children"))?);
        nix::sched::unshare(clone_flag(kind)).ctx("unshare", "time namespace")?;
        let text = time_offsets_text(offsets);
        if !text.is_empty() {
            std::fs::write("/proc/self/timens_offsets", &text).ctx("write", "/proc/self/timens_offsets")?;
        }
        Ok(())
    }

    pub fn leave(self) -> Result<(), SysError> {
        for ns in &self.restore {
            join(ns)?;
        }
        Ok(())
    }
}

/// The lines of /proc/PID/timens_offsets: "<clock> <secs> <nanosecs>" per clock, in a fixed
/// order. Clock names were validated in config.rs (monotonic, boottime).
pub fn time_offsets_text(offsets: Option<&HashMap<String, LinuxTimeOffset>>) -> String {
    let mut clocks: Vec<_> = offsets.into_iter().flatten().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    clocks
        .iter()
        .map(|(clock, off)| format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_offsets_render_one_line_per_clock() {
        let offsets: HashMap<String, LinuxTimeOffset> = serde_json::from_value(serde_json::json!({
            "monotonic": {"secs": -5, "nanosecs": 7}, "boottime": {"secs": 86400}
        }))
        .unwrap();
        assert_eq!(time_offsets_text(Some(&offsets)), "boottime 86400 0\nmonotonic -5 7\n");
        assert_eq!(time_offsets_text(None), "");
    }

    #[test]
    fn new_time_namespace_is_not_a_clone_flag() {
        let list: Vec<LinuxNamespace> =
            serde_json::from_value(serde_json::json!([{"type": "time"}, {"type": "pid"}])).unwrap();
        assert_eq!(clone_flags(&list), CloneFlags::CLONE_NEWPID);
    }
}
