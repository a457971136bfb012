//! The checks runc enforces that keep a config from reaching the host: ids the kernel would
//! read as "unchanged", sysctls written into a namespace that is the host's, mounts that fake
//! /proc, and device rules runc would not accept. Pure, except that a namespace joined by path
//! is compared with the host's by inode (reading, never changing, the system).

use super::ConfigError;
use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Ids from 2^31 up are refused: u32::MAX is "leave unchanged" to setresuid/setresgid (the
/// process would stay root), and the kernel treats ids as signed in places.
pub const MAX_ID: u64 = (1 << 31) - 1;

/// The files under /proc that may be bind-mounted over (what lxcfs emulates), as runc allows.
pub const PROC_MOUNT_ALLOW_LIST: [&str; 9] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
];

pub fn validate(spec: &Spec, linux: &Linux) -> Result<(), ConfigError> {
    validate_ids(spec, linux)?;
    for m in spec.mounts().iter().flatten() {
        check_proc_mount(m.destination(), m.typ().as_deref())?;
        // Refused up front: passed on as fs data, a bind would ignore them silently.
        for idmap in ["idmap", "ridmap"] {
            if m.options().iter().flatten().any(|o| o == idmap) {
                return Err(ConfigError::IdmapMount(m.destination().display().to_string(), idmap));
            }
        }
    }
    for (index, rule) in linux
        .resources()
        .iter()
        .flat_map(|r| r.devices().iter().flatten())
        .enumerate()
    {
        crate::rootfs::devices::check_cgroup_rule(rule).map_err(|why| ConfigError::BadDeviceRule(index, why))?;
    }
    Ok(())
}

fn check_id(value: u64, field: &'static str) -> Result<(), ConfigError> {
    if value > MAX_ID {
        return Err(ConfigError::IdOutOfRange(value, field));
    }
    Ok(())
}

fn validate_ids(spec: &Spec, linux: &Linux) -> Result<(), ConfigError> {
    if let Some(process) = spec.process() {
        let user = process.user();
        check_id(user.uid().into(), "process.user.uid")?;
        check_id(user.gid().into(), "process.user.gid")?;
        for gid in user.additional_gids().iter().flatten() {
            check_id((*gid).into(), "process.user.additionalGids")?;
        }
    }
    let maps = [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ];
    for (field, list) in maps {
        for map in list.iter().flatten() {
            check_id(map.container_id().into(), field)?;
            check_id(map.host_id().into(), field)?;
            // The last id of each range must stay a valid id too.
            let size = u64::from(map.size());
            for start in [map.container_id(), map.host_id()] {
                if size > 0 && u64::from(start) + size - 1 > u64::from(u32::MAX - 1) {
                    return Err(ConfigError::IdOutOfRange(u64::from(start) + size - 1, field));
                }
            }
        }
    }
    Ok(())
}

/// runc's checkProcMount on a path inside the container: only proc may go on /proc, and only the
/// allow-list may be covered below it. Used on the config's path here and on the resolved mount
/// target (the fd's path) in the rootfs set-up, where a symlink in the image is already followed.
pub fn check_proc_mount(dest: &Path, typ: Option<&str>) -> Result<(), ConfigError> {
    if typ == Some("proc") {
        return Ok(());
    }
    let clean: std::path::PathBuf = Path::new("/").join(crate::rootfs::resolve::relative(dest));
    if !clean.starts_with("/proc") {
        return Ok(());
    }
    if clean != Path::new("/proc") && PROC_MOUNT_ALLOW_LIST.iter().any(|p| clean == Path::new(p)) {
        return Ok(());
    }
    Err(ConfigError::ProcMount(clean.display().to_string()))
}

/// A sysctl is allowed only when a namespace other than the host's isolates it (runc's
/// validator plus its checkHostNs): ipc keys with an ipc namespace, net.* with a network
/// namespace, kernel.domainname with a uts namespace; a namespace joined by a path that is the
/// host's own does not count. kernel.hostname is refused: the hostname field says it.
pub fn validate_sysctl(key: &str, new_ns: &HashSet<LinuxNamespaceType>, linux: &Linux) -> Result<(), ConfigError> {
    const IPC_KEYS: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    let kind = if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    };
    let refused = || ConfigError::SysctlNotNamespaced(key.to_string());
    let Some(kind) = kind else {
        return Err(refused());
    };
    if key.contains("..") || key.contains('/') {
        return Err(refused());
    }
    if new_ns.contains(&kind) {
        return Ok(());
    }
    let joined = linux.namespaces().iter().flatten().find(|ns| ns.typ() == kind);
    match joined.and_then(|ns| ns.path().as_deref()) {
        Some(path) if !is_host_namespace(kind, path) => Ok(()),
        Some(_) => Err(ConfigError::SysctlInHostNamespace(key.to_string())),
        None => Err(refused()),
    }
}

/// Whether `path` is the namespace husk itself runs in (same device and inode as
/// /proc/self/ns/<kind>). A path that cannot be read is left to the join to report.
fn is_host_namespace(kind: LinuxNamespaceType, path: &Path) -> bool {
    let name = match kind {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        _ => return false,
    };
    let (Ok(theirs), Ok(ours)) = (
        std::fs::metadata(path),
        std::fs::metadata(format!("/proc/self/ns/{name}")),
    ) else {
        return false;
    };
    theirs.dev() == ours.dev() && theirs.ino() == ours.ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_mounts_outside_the_allow_list_are_refused() {
        assert!(check_proc_mount(Path::new("/proc"), Some("proc")).is_ok());
        assert!(check_proc_mount(Path::new("/proc"), Some("bind")).is_err());
        assert!(check_proc_mount(Path::new("/proc/./self"), None).is_err());
        assert!(check_proc_mount(Path::new("/proc/meminfo"), Some("bind")).is_ok());
        assert!(check_proc_mount(Path::new("/procfs"), Some("bind")).is_ok());
        assert!(check_proc_mount(Path::new("//proc/sys"), Some("tmpfs")).is_err());
    }
}
