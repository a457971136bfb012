//! Linux security modules: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.
//!
//! What to do is decided by pure functions from the config and what the host has
//! ([`HostLsm`]), before anything is made: a label the host cannot enforce is an error naming
//! it (as runc refuses), never a silently unconfined container. The labels are applied by the
//! init just before execve (after the startContainer hooks, which must not inherit them): the
//! kernel switches at the next exec, so writing the exec attribute earlier would confine the
//! hooks the init forks too.

use crate::sys::{Context, SysError};
use oci_spec::runtime::Spec;
use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LsmError {
    #[error("process.apparmorProfile {0:?} is set but AppArmor is not enabled on this host")]
    NoAppArmor(String),
    #[error("process.selinuxLabel {0:?} is set but SELinux is not enabled on this host")]
    NoSelinux(String),
    #[error("linux.mountLabel {0:?} is set but SELinux is not enabled on this host")]
    NoSelinuxForMounts(String),
}

/// Which security modules the host runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostLsm {
    pub apparmor: bool,
    pub selinux: bool,
}

impl HostLsm {
    pub fn detect() -> HostLsm {
        let apparmor =
            std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y");
        // selinuxfs is mounted there when SELinux is enabled (enforcing or permissive).
        let selinux = Path::new("/sys/fs/selinux/enforce").exists();
        HostLsm { apparmor, selinux }
    }
}

/// What the init writes to its exec attributes just before execve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecLabels {
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
}

fn set(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// The labels to apply, or why this host cannot honour the config. Empty strings mean unset.
pub fn plan(spec: &Spec, host: HostLsm) -> Result<ExecLabels, LsmError> {
    let labels = match spec.process() {
        Some(process) => plan_process(process, host)?,
        None => ExecLabels::default(),
    };
    if let (Some(label), false) = (spec.linux().as_ref().and_then(|l| set(l.mount_label())), host.selinux) {
        return Err(LsmError::NoSelinuxForMounts(label));
    }
    Ok(labels)
}

/// The labels of one process (the init's, or one `husk exec` runs).
pub fn plan_process(process: &oci_spec::runtime::Process, host: HostLsm) -> Result<ExecLabels, LsmError> {
    let apparmor_profile = set(process.apparmor_profile());
    let selinux_label = set(process.selinux_label());
    if let (Some(profile), false) = (&apparmor_profile, host.apparmor) {
        return Err(LsmError::NoAppArmor(profile.clone()));
    }
    if let (Some(label), false) = (&selinux_label, host.selinux) {
        return Err(LsmError::NoSelinux(label.clone()));
    }
    Ok(ExecLabels {
        apparmor_profile,
        selinux_label,
    })
}

/// The fs data of a mount with the SELinux mount label added, for the filesystems that take a
/// `context=` option (the in-memory ones a container mounts itself; proc and sysfs do not).
pub fn mount_data(fstype: Option<&str>, data: Option<String>, mount_label: Option<&str>) -> Option<String> {
    let labelled = matches!(fstype, Some("tmpfs" | "devpts" | "mqueue"));
    match (mount_label.filter(|l| !l.is_empty() && labelled), data) {
        (Some(label), Some(data)) => Some(format!("{data},context=\"{label}\"")),
        (Some(label), None) => Some(format!("context=\"{label}\"")),
        (None, data) => data,
    }
}

/// Write the exec attributes; the kernel applies them at the next execve.
pub fn apply_exec_labels(labels: &ExecLabels) -> Result<(), SysError> {
    if let Some(profile) = &labels.apparmor_profile {
        // The per-LSM file (kernel 5.8+) first, the shared one on older kernels.
        let text = format!("exec {profile}");
        let per_lsm = "/proc/self/attr/apparmor/exec";
        let path = if Path::new(per_lsm).exists() {
            per_lsm
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(path, text).ctx(&format!("set apparmor profile {profile} in"), path)?;
    }
    if let Some(label) = &labels.selinux_label {
        let path = "/proc/self/attr/exec";
        std::fs::write(path, label).ctx(&format!("set selinux label {label} in"), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        for (k, val) in json.as_object().unwrap() {
            for (kk, vv) in val.as_object().unwrap() {
                v[k][kk] = vv.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn labels_the_host_cannot_enforce_are_errors_naming_them() {
        let aa = spec(serde_json::json!({"process": {"apparmorProfile": "docker-default"}}));
        assert_eq!(
            plan(&aa, HostLsm::default()),
            Err(LsmError::NoAppArmor("docker-default".into()))
        );
        let with_aa = plan(
            &aa,
            HostLsm {
                apparmor: true,
                selinux: false,
            },
        )
        .unwrap();
        assert_eq!(with_aa.apparmor_profile.as_deref(), Some("docker-default"));
        let se = spec(serde_json::json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}));
        assert!(matches!(
            plan(
                &se,
                HostLsm {
                    apparmor: true,
                    selinux: false
                }
            ),
            Err(LsmError::NoSelinux(_))
        ));
        let ml = spec(serde_json::json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}));
        assert!(matches!(
            plan(&ml, HostLsm::default()),
            Err(LsmError::NoSelinuxForMounts(_))
        ));
        assert_eq!(
            plan(
                &ml,
                HostLsm {
                    apparmor: false,
                    selinux: true
                }
            )
            .unwrap(),
            ExecLabels::default()
        );
    }

    #[test]
    fn empty_labels_mean_unset() {
        let s = spec(serde_json::json!({"process": {"apparmorProfile": "", "selinuxLabel": ""}}));
        assert_eq!(plan(&s, HostLsm::default()).unwrap(), ExecLabels::default());
    }

    #[test]
    fn mount_label_goes_to_in_memory_filesystems_only() {
        let l = Some("s0:c1");
        assert_eq!(
            mount_data(Some("tmpfs"), Some("mode=755".into()), l).as_deref(),
            Some("mode=755,context=\"s0:c1\"")
        );
        assert_eq!(
            mount_data(Some("devpts"), None, l).as_deref(),
            Some("context=\"s0:c1\"")
        );
        assert_eq!(mount_data(Some("proc"), None, l), None);
        assert_eq!(
            mount_data(Some("tmpfs"), Some("size=1m".into()), None).as_deref(),
            Some("size=1m")
        );
    }
}
