//! `husk features`: the runtime-spec features document, listing what husk really supports.

use serde_json::json;

pub fn features_json() -> String {
    let mut annotations = serde_json::Map::new();
    annotations.insert("org.opencontainers.runc.version".into(), json!("compatible"));
    annotations.insert("run.husk.version".into(), json!(env!("CARGO_PKG_VERSION")));
    if let Some(version) = crate::seccomp::libseccomp_version() {
        annotations.insert("io.github.seccomp.libseccomp.version".into(), json!(version));
    }
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::options::all_names(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            // runtime-spec features.md: "enabled" means the support is built in, unrelated to
            // whether the host runs the LSM (runc 1.1 says true on hosts with neither). husk
            // applies both when the host has them; create refuses a label the host cannot enforce.
            "apparmor": { "enabled": true },
            "selinux": { "enabled": true },
            "seccomp": crate::seccomp::features(),
            "intelRdt": { "enabled": false },
        },
        "annotations": annotations,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
