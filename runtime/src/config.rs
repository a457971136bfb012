//! Loading and validating a bundle's config.json. Everything here is pure: a config is rejected
//! before husk touches the system, so a bad bundle leaves nothing behind.

#[cfg(test)]
mod fuzz_tests;
pub mod security;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("failed to read {path}: {why}")]
    Read { path: String, why: String },
    #[error("{path}: {why}")]
    Parse { path: String, why: String },
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("process.args must not be empty")]
    EmptyArgs,
    #[error("process.cwd {0:?} must be an absolute path")]
    RelativeCwd(String),
    #[error("rootfs {0} does not exist or is not a directory")]
    NoRootfs(String),
    #[error("namespace {0} is listed twice")]
    DuplicateNamespace(String),
    #[error("namespace {0}: path {1:?} must be absolute")]
    RelativeNamespacePath(String, String),
    #[error("mount destination {0:?} must be an absolute path")]
    RelativeMountDestination(String),
    #[error("mount destination {0:?} must not contain '..'")]
    DotDotMountDestination(String),
    #[error("{0:?} in {1} must be an absolute path without '..'")]
    BadPath(String, &'static str),
    #[error("hostname is set but the container has no private uts namespace")]
    HostnameWithoutUts,
    #[error("uid/gid mappings are set but the container has no user namespace")]
    MappingsWithoutUserns,
    #[error("a new user namespace needs both uidMappings and gidMappings")]
    UsernsWithoutMappings,
    #[error("sysctl {0:?} is not namespaced by the container's namespaces")]
    SysctlNotNamespaced(String),
    #[error("sysctl {0:?} is not allowed in the host's namespace")]
    SysctlInHostNamespace(String),
    #[error("id {0} in {1} is out of range (ids must be below 2147483648)")]
    IdOutOfRange(u64, &'static str),
    #[error("mount on {0:?} is refused: only proc may be mounted on /proc, and below it only runc's allow-list")]
    ProcMount(String),
    #[error("linux.resources.devices[{0}]: {1}")]
    BadDeviceRule(usize, String),
    #[error("unsupported rootfsPropagation {0:?}")]
    BadPropagation(String),
    #[error("unsupported rlimit type {0:?}")]
    BadRlimit(String),
    #[error("rlimit {0}: soft limit is above hard limit")]
    RlimitSoftAboveHard(String),
    #[error("{0}")]
    Seccomp(String),
    #[error("linux.timeOffsets needs a new time namespace")]
    TimeOffsetsWithoutTimens,
    #[error("linux.timeOffsets: unknown clock {0:?} (monotonic or boottime)")]
    BadTimeOffsetClock(String),
    #[error("linux.timeOffsets: {0}: nanosecs must be below 1000000000")]
    BadTimeOffsetNanos(String),
    #[error("process.scheduler: {0}")]
    BadScheduler(String),
    #[error("process.ioPriority: priority {0} is outside 0..7")]
    BadIoPriority(i64),
    #[error("linux.personality: unsupported flag {0:?}")]
    BadPersonalityFlag(String),
    #[error("{0} is not supported by husk yet")]
    Unsupported(&'static str),
    #[error("mount on {0:?}: the {1} option (idmapped mounts) is not supported by husk yet")]
    IdmapMount(String, &'static str),
}

/// Read `<bundle>/config.json`, validate it and the rootfs it names.
pub fn load(bundle: &Path) -> Result<Spec, ConfigError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        why: crate::sys::io_error_text(&e),
    })?;
    let mut spec: Spec = parse_ignoring_unknown_capabilities(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    root_relative_mount_destinations(&mut spec);
    validate(&spec)?;
    let rootfs = rootfs_path(bundle, &spec)?;
    if !rootfs.is_dir() {
        return Err(ConfigError::NoRootfs(rootfs.display().to_string()));
    }
    Ok(spec)
}

/// Parse a config.json. runc ignores capability names it does not know, with a warning, so
/// that a config listing capabilities newer than runc or the kernel still runs (runc 1.1.5
/// libcontainer/capabilities/capabilities.go, capSlice: "ignoring unknown or unavailable
/// capabilities"); oci-spec refuses them while parsing. Only when the plain parse fails are the
/// unknown names taken out and the parse tried again, so a good config is parsed once.
fn parse_ignoring_unknown_capabilities(text: &str) -> serde_json::Result<Spec> {
    let first = match serde_json::from_str(text) {
        Ok(spec) => return Ok(spec),
        Err(e) => e,
    };
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Err(first);
    };
    let unknown = value
        .pointer_mut("/process/capabilities")
        .map(remove_unknown_capabilities)
        .unwrap_or_default();
    if unknown.is_empty() {
        return Err(first);
    }
    log::warn!("ignoring unknown capabilities: {}", unknown.join(", "));
    serde_json::from_value(value)
}

/// Remove the names oci-spec cannot parse from every set of a `process.capabilities` object;
/// returns them, sorted and without repeats.
fn remove_unknown_capabilities(sets: &mut serde_json::Value) -> Vec<String> {
    let mut unknown = std::collections::BTreeSet::new();
    for names in sets.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
        if let Some(names) = names.as_array_mut() {
            names.retain(|name| {
                let known = serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
                if !known {
                    unknown.insert(name.as_str().map_or_else(|| name.to_string(), str::to_owned));
                }
                known
            });
        }
    }
    unknown.into_iter().collect()
}

/// A relative mount destination is taken from `/`, with a warning: runtime-spec 1.1 deprecates
/// such destinations but says they MUST be read relative to "/", and runc 1.1.5 mounts them
/// there ("mount destination data is not absolute. Support for non-absolute mount destinations
/// will be removed in a future release.", libcontainer/specconv/spec_linux.go).
fn root_relative_mount_destinations(spec: &mut Spec) {
    for mount in spec.mounts_mut().iter_mut().flatten() {
        if mount.destination().is_relative() {
            log::warn!(
                "mount destination {} is not absolute: taken from /",
                mount.destination().display()
            );
            let absolute = Path::new("/").join(mount.destination());
            mount.set_destination(absolute);
        }
    }
}

/// `root.path` is relative to the bundle unless absolute.
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf, ConfigError> {
    let root = spec.root().as_ref().ok_or(ConfigError::Missing("root"))?;
    Ok(bundle.join(root.path()))
}

pub fn validate(spec: &Spec) -> Result<(), ConfigError> {
    let process = spec.process().as_ref().ok_or(ConfigError::Missing("process"))?;
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err(ConfigError::EmptyArgs);
    }
    if !process.cwd().is_absolute() {
        return Err(ConfigError::RelativeCwd(process.cwd().display().to_string()));
    }
    validate_mounts(spec)?;
    let linux = spec.linux().as_ref().ok_or(ConfigError::Missing("linux"))?;
    let new_ns = validate_namespaces(linux)?;
    // A joined UTS namespace (by path) is private too: runc sets the hostname in it.
    let uts = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        return Err(ConfigError::HostnameWithoutUts);
    }
    validate_userns(linux, &new_ns)?;
    validate_time_offsets(linux, &new_ns)?;
    validate_linux_paths(linux)?;
    if let Some(prop) = linux.rootfs_propagation() {
        crate::rootfs::propagation_flags(prop).ok_or_else(|| ConfigError::BadPropagation(prop.clone()))?;
    }
    for (key, _) in linux.sysctl().iter().flatten() {
        security::validate_sysctl(key, &new_ns, linux)?;
    }
    security::validate(spec, linux)?;
    for rlimit in process.rlimits().iter().flatten() {
        crate::init::rlimits::validate(rlimit)?;
    }
    if let Some(sched) = process.scheduler() {
        crate::init::sched::sched_attr(sched)?;
    }
    if let Some(prio) = process.io_priority() {
        crate::init::sched::ioprio_value(prio)?;
    }
    if let Some(personality) = linux.personality() {
        crate::init::sched::persona(personality)?;
    }
    if let Some(seccomp) = linux.seccomp() {
        crate::seccomp::validate(seccomp).map_err(|e| ConfigError::Seccomp(e.to_string()))?;
    }
    if linux.intel_rdt().is_some() {
        return Err(ConfigError::Unsupported("linux.intelRdt"));
    }
    Ok(())
}

/// The namespaces the container creates anew (those listed without a path).
fn validate_namespaces(linux: &oci_spec::runtime::Linux) -> Result<HashSet<LinuxNamespaceType>, ConfigError> {
    let mut seen = HashSet::new();
    let mut new_ns = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        let name = ns.typ().to_string();
        if !seen.insert(ns.typ()) {
            return Err(ConfigError::DuplicateNamespace(name));
        }
        match ns.path() {
            Some(path) if !path.is_absolute() => {
                return Err(ConfigError::RelativeNamespacePath(name, path.display().to_string()))
            }
            Some(_) => {}
            None => {
                new_ns.insert(ns.typ());
            }
        }
    }
    Ok(new_ns)
}

fn validate_userns(linux: &oci_spec::runtime::Linux, new_ns: &HashSet<LinuxNamespaceType>) -> Result<(), ConfigError> {
    let uid_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let gid_maps = linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let userns = new_ns.contains(&LinuxNamespaceType::User);
    if (uid_maps || gid_maps) && !userns {
        let joins_userns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::User);
        if !joins_userns {
            return Err(ConfigError::MappingsWithoutUserns);
        }
    }
    if userns && !(uid_maps && gid_maps) {
        return Err(ConfigError::UsernsWithoutMappings);
    }
    Ok(())
}

fn validate_time_offsets(
    linux: &oci_spec::runtime::Linux,
    new_ns: &HashSet<LinuxNamespaceType>,
) -> Result<(), ConfigError> {
    let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    if !new_ns.contains(&LinuxNamespaceType::Time) {
        return Err(ConfigError::TimeOffsetsWithoutTimens);
    }
    for (clock, offset) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(ConfigError::BadTimeOffsetClock(clock.clone()));
        }
        if offset.nanosecs().unwrap_or(0) >= 1_000_000_000 {
            return Err(ConfigError::BadTimeOffsetNanos(clock.clone()));
        }
    }
    Ok(())
}

fn validate_mounts(spec: &Spec) -> Result<(), ConfigError> {
    for mount in spec.mounts().iter().flatten() {
        let dest = mount.destination();
        let shown = dest.display().to_string();
        if !dest.is_absolute() {
            return Err(ConfigError::RelativeMountDestination(shown));
        }
        if dest.components().any(|c| c == Component::ParentDir) {
            return Err(ConfigError::DotDotMountDestination(shown));
        }
    }
    Ok(())
}

fn validate_linux_paths(linux: &oci_spec::runtime::Linux) -> Result<(), ConfigError> {
    let lists = [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ];
    for (field, paths) in lists {
        for path in paths.iter().flatten() {
            check_container_path(path, field)?;
        }
    }
    for device in linux.devices().iter().flatten() {
        check_container_path(&device.path().display().to_string(), "linux.devices")?;
    }
    Ok(())
}

fn check_container_path(path: &str, field: &'static str) -> Result<(), ConfigError> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError::BadPath(path.to_string(), field));
    }
    Ok(())
}

/// The namespaces this container joins or creates, in the order husk must enter them:
/// user first (it grants the rights for the others), mount last (paths stop resolving after it).
pub fn namespace_order(kind: LinuxNamespaceType) -> u8 {
    match kind {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Ipc => 1,
        LinuxNamespaceType::Uts => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Pid => 4,
        LinuxNamespaceType::Time => 5,
        LinuxNamespaceType::Cgroup => 6,
        LinuxNamespaceType::Mount => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_from(json: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        merge(&mut base, json);
        serde_json::from_value(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    #[test]
    fn default_spec_is_valid() {
        validate(&Spec::default()).unwrap();
    }

    #[test]
    fn unknown_capabilities_are_dropped_as_runc_does() {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        base["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_KILL", "CAP_BOGUS", "CAP_NEWER"]);
        base["process"]["capabilities"]["permitted"] = serde_json::json!(["CAP_BOGUS", "CAP_KILL"]);
        let spec = parse_ignoring_unknown_capabilities(&base.to_string()).unwrap();
        let caps = spec.process().as_ref().unwrap().capabilities().as_ref().unwrap();
        let kill = oci_spec::runtime::Capability::Kill;
        assert_eq!(caps.bounding().as_ref().unwrap().iter().collect::<Vec<_>>(), [&kill]);
        assert_eq!(caps.permitted().as_ref().unwrap().iter().collect::<Vec<_>>(), [&kill]);
        let mut sets = base["process"]["capabilities"].clone();
        assert_eq!(remove_unknown_capabilities(&mut sets), ["CAP_BOGUS", "CAP_NEWER"]);
    }

    #[test]
    fn a_bad_config_with_known_capabilities_keeps_its_first_error() {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        base["process"]["args"] = serde_json::json!("not a list");
        let err = parse_ignoring_unknown_capabilities(&base.to_string()).unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn a_relative_mount_destination_is_taken_from_the_root() {
        let mut spec = spec_from(serde_json::json!({"mounts": [{"destination": "data", "type": "tmpfs"}]}));
        root_relative_mount_destinations(&mut spec);
        let mounts = spec.mounts().as_ref().unwrap();
        assert!(
            mounts.iter().any(|m| m.destination() == Path::new("/data")),
            "{mounts:?}"
        );
        assert!(validate(&spec).is_ok());
    }

    #[test]
    fn empty_args_are_rejected() {
        let spec = spec_from(serde_json::json!({"process": {"args": []}}));
        assert_eq!(validate(&spec), Err(ConfigError::EmptyArgs));
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let spec = spec_from(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}));
        assert_eq!(validate(&spec), Err(ConfigError::DuplicateNamespace("pid".into())));
    }

    #[test]
    fn mount_destination_with_dotdot_is_rejected() {
        let spec = spec_from(
            serde_json::json!({"mounts": [{"destination": "/a/../../etc", "type": "tmpfs", "source": "tmpfs"}]}),
        );
        assert!(matches!(validate(&spec), Err(ConfigError::DotDotMountDestination(_))));
    }

    #[test]
    fn relative_namespace_path_is_rejected() {
        let spec =
            spec_from(serde_json::json!({"linux": {"namespaces": [{"type": "network", "path": "proc/1/ns/net"}]}}));
        assert!(matches!(validate(&spec), Err(ConfigError::RelativeNamespacePath(..))));
    }

    #[test]
    fn host_sysctl_is_rejected_and_namespaced_one_allowed() {
        let bad = spec_from(serde_json::json!({"linux": {"sysctl": {"vm.swappiness": "10"}}}));
        assert!(matches!(validate(&bad), Err(ConfigError::SysctlNotNamespaced(_))));
        let good = spec_from(serde_json::json!({"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}}));
        validate(&good).unwrap();
    }

    #[test]
    fn time_offsets_need_a_new_time_namespace_and_known_clocks() {
        let offsets = serde_json::json!({"boottime": {"secs": 100}});
        let without = spec_from(serde_json::json!({"linux": {"timeOffsets": offsets}}));
        assert_eq!(validate(&without), Err(ConfigError::TimeOffsetsWithoutTimens));
        let ns = serde_json::json!([{"type": "time"}]);
        let good = spec_from(serde_json::json!({"hostname": "", "linux": {"namespaces": ns, "timeOffsets": offsets}}));
        validate(&good).unwrap();
        let bad = spec_from(
            serde_json::json!({"hostname": "", "linux": {"namespaces": ns, "timeOffsets": {"realtime": {"secs": 1}}}}),
        );
        assert_eq!(validate(&bad), Err(ConfigError::BadTimeOffsetClock("realtime".into())));
    }

    #[test]
    fn hostname_needs_a_private_uts_namespace_new_or_joined() {
        let joined = serde_json::json!([{"type": "uts", "path": "/proc/1/ns/uts"}]);
        validate(&spec_from(
            serde_json::json!({"hostname": "h", "linux": {"namespaces": joined}}),
        ))
        .unwrap();
        let none = spec_from(serde_json::json!({"hostname": "h", "linux": {"namespaces": [{"type": "mount"}]}}));
        assert_eq!(validate(&none), Err(ConfigError::HostnameWithoutUts));
    }

    #[test]
    fn userns_without_mappings_is_rejected() {
        let spec = spec_from(
            serde_json::json!({"hostname": "", "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}]}}),
        );
        assert_eq!(validate(&spec), Err(ConfigError::UsernsWithoutMappings));
    }
}
