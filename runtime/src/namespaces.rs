//! Namespaces: which to create with clone3, which to join by path, and the joins themselves.

use crate::sys::{Context, SysError};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
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
/// namespace's root would be husk's own cgroup).
pub fn clone_flags(namespaces: &[LinuxNamespace]) -> CloneFlags {
    namespaces
        .iter()
        .filter(|ns| ns.path().is_none() && ns.typ() != LinuxNamespaceType::Cgroup)
        .fold(CloneFlags::empty(), |acc, ns| acc | clone_flag(ns.typ()))
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
    Ok(NamespaceFile { kind, fd, path: path.display().to_string() })
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
    pub fn enter(namespaces: &[LinuxNamespace]) -> Result<ForChildren, SysError> {
        let mut restore = Vec::new();
        for ns in namespaces {
            let (Some(path), true) = (ns.path(), matches!(ns.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::Time)) else {
                continue;
            };
            let own = format!("/proc/self/ns/{}_for_children", proc_name(ns.typ()));
            restore.push(open(ns.typ(), Path::new(&own))?);
            join(&open(ns.typ(), path)?)?;
        }
        Ok(ForChildren { restore })
    }

    pub fn leave(self) -> Result<(), SysError> {
        for ns in &self.restore {
            join(ns)?;
        }
        Ok(())
    }
}
