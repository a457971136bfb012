//! The config.toml of a private containerd.

use std::path::Path;

use crate::containerd::{ContainerdBuilder, HUSK_RUNTIME};

/// Plugins a test never needs; leaving them out makes start-up faster and quieter. (The
/// v1 linux runtime must stay: containerd 1.6's tasks service fails to load without it.)
const UNNEEDED_PLUGINS: [&str; 6] = [
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// Plugins whose failure to load must stop containerd at once, not fail a later `ctr run`.
const REQUIRED_PLUGINS: [&str; 3] = [
    "io.containerd.grpc.v1.tasks",
    "io.containerd.runtime.v2.task",
    "io.containerd.snapshotter.v1.overlayfs",
];

/// The config.toml (version 2) for a private containerd living in `dir`.
pub(crate) fn render(dir: &Path, opts: &ContainerdBuilder) -> String {
    let cri = opts.cri;
    let d = dir.display();
    let mut disabled: Vec<&str> = UNNEEDED_PLUGINS.to_vec();
    if !cri {
        disabled.push("io.containerd.grpc.v1.cri");
    }
    let mut required: Vec<&str> = REQUIRED_PLUGINS.to_vec();
    if cri {
        required.push("io.containerd.grpc.v1.cri");
    }
    let quoted = |list: Vec<&str>| list.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let (disabled, required) = (quoted(disabled), quoted(required));
    let mut toml = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
temp = "{d}/tmp"
disabled_plugins = [{disabled}]
required_plugins = [{required}]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    );
    if cri {
        toml.push_str(&cri_tables(d, &opts.cri_options));
    }
    toml.push('\n');
    toml.push_str(&opts.extra_config);
    toml
}

/// CRI keeps CNI config, binaries and network namespaces in the temp dir too (its defaults
/// are /etc/cni/net.d, /opt/cni/bin and /var/run/netns).
fn cri_tables(d: std::path::Display<'_>, options: &[String]) -> String {
    let options = options.iter().map(|l| format!("  {l}\n")).collect::<String>();
    format!(
        r#"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
{options}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
    runtime_type = "{HUSK_RUNTIME}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
"#
    )
}
