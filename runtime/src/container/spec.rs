//! `husk spec [--rootless]`: a starting config.json, runc 1.1's: `sh` on a terminal, a read-only
//! `rootfs`, no cgroup namespace (clients add their own; two would be refused as listed twice),
//! a deny-all device rule, and no inheritable capabilities (CVE-2022-29162). --rootless maps the
//! caller's uid/gid in a user namespace, drops the network namespace and resources, and
//! bind-mounts /sys (a user namespace cannot mount sysfs without its own network namespace).

use crate::error::{Error, Result};
use crate::sys::Context;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::Path;

const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn default_doc() -> Value {
    let nodev = ["nosuid", "noexec", "nodev"];
    json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS, "ambient": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "husk",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nodev},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// runc's ToRootless: the caller's ids mapped to root, a user namespace instead of the network
/// one, no resources (no cgroup rights), /sys bound from the host, devpts without gid=5.
fn make_rootless(doc: &mut Value, uid: u32, gid: u32) {
    let linux = &mut doc["linux"];
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    linux["namespaces"] =
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]);
    if let Some(linux) = linux.as_object_mut() {
        linux.remove("resources");
    }
    let Some(mounts) = doc["mounts"].as_array_mut() else {
        return;
    };
    for mount in mounts {
        match mount["destination"].as_str() {
            Some("/sys") => {
                *mount = json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            Some("/dev/pts") => {
                if let Some(options) = mount["options"].as_array_mut() {
                    options.retain(|o| o != "gid=5");
                }
            }
            _ => {}
        }
    }
}

pub fn default_spec(rootless: bool) -> Result<Spec> {
    let mut doc = default_doc();
    if rootless {
        make_rootless(
            &mut doc,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    serde_json::from_value(doc).map_err(|e| Error::Usage(format!("failed to build the default spec: {e}")))
}

pub fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!("File {} exists. Remove it first", path.display())));
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless)?)
        .map_err(|e| Error::Usage(format!("failed to encode the default spec: {e}")))?;
    std::fs::write(&path, text + "\n").ctx("write", path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_has_no_cgroup_namespace_or_inheritable_caps() {
        let spec = serde_json::to_value(default_spec(false).unwrap()).unwrap();
        let namespaces = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(!namespaces.iter().any(|ns| ns["type"] == "cgroup"), "{spec}");
        assert!(spec["process"]["capabilities"].get("inheritable").is_none(), "{spec}");
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
        let rootless = serde_json::to_value(default_spec(true).unwrap()).unwrap();
        assert!(rootless["linux"].get("resources").is_none());
        assert!(rootless["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ns| ns["type"] == "user"));
    }
}
