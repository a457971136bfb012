//! The shim binary's lifecycle verbs (`start`, `delete`, the daemon) on the containerd-shim
//! crate's bootstrap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_address;
use containerd_shim::{api::DeleteResponse, spawn, Config, ExitSignal, Flags, Shim, StartOpts};

use crate::container::read_pid_file;
use crate::options::RuntimeOptions;
use crate::runtime::Runtime;

const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// Annotations that put containers of one pod into one shim (CRI, and runc shim grouping).
const GROUP_ANNOTATIONS: [&str; 2] = ["io.kubernetes.cri.sandbox-id", "io.containerd.runc.v2.group"];

pub struct HuskShim {
    namespace: String,
    id: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

/// The shim (and so the socket) this container belongs to: its pod's, else its own.
pub fn grouping(bundle: &Path, id: &str) -> String {
    let spec = std::fs::read(bundle.join("config.json")).ok();
    let annotations = spec
        .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("annotations").cloned());
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|key| annotations.as_ref()?.get(*key)?.as_str().map(str::to_string))
        .unwrap_or_else(|| id.to_string())
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The `ShimCgroup` option: moves the daemon into that cgroup in every hierarchy that has it
/// (each v1 controller, the unified one), as containerd's runc shim does.
fn join_cgroup(root: &Path, cgroup: &str, pid: u32) -> std::io::Result<()> {
    let rel = cgroup.trim_start_matches('/');
    let mut hierarchies: Vec<PathBuf> = vec![root.to_path_buf()];
    hierarchies.extend(std::fs::read_dir(root)?.flatten().map(|e| e.path()));
    let mut joined = 0;
    for procs in hierarchies.iter().map(|h| h.join(rel).join("cgroup.procs")) {
        if procs.is_file() {
            std::fs::write(&procs, pid.to_string())?;
            joined += 1;
        }
    }
    if joined == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no hierarchy has that cgroup",
        ));
    }
    Ok(())
}

const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// The daemon's oom_score_adj: one above containerd's (our parent at `start`), capped, so the OOM
/// killer takes a shim before containerd, as containerd's runc shim does (AdjustOOMScore).
pub fn shim_oom_score(containerd: i32) -> i32 {
    (containerd + 1).min(OOM_SCORE_ADJ_MAX)
}

/// Raising a score needs no privilege; lowering it (containerd at -1000..-2) needs
/// CAP_SYS_RESOURCE, and without it the shim keeps its inherited score and says so.
fn adjust_oom_score(containerd_pid: u32, shim_pid: u32) {
    let read = std::fs::read_to_string(format!("/proc/{containerd_pid}/oom_score_adj"));
    let Some(score) = read.ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
        eprintln!("failed to read oom_score_adj of containerd ({containerd_pid})");
        return;
    };
    let target = shim_oom_score(score);
    let path = format!("/proc/{shim_pid}/oom_score_adj");
    if let Err(err) = std::fs::write(&path, target.to_string()) {
        eprintln!("failed to set oom_score_adj {target}: {path}: {err}");
    }
}

/// A SIGKILLed shim leaves its socket in /run/containerd/s. `shim delete` also runs after a
/// failed create in a pod whose shim still serves other containers, so the socket is removed
/// only when nothing listens on it any more.
fn remove_stale_socket(address_file: &Path) {
    let Ok(address) = std::fs::read_to_string(address_file) else {
        return;
    };
    let Some(path) = address.trim().strip_prefix("unix://") else {
        return;
    };
    let refused = matches!(
        std::os::unix::net::UnixStream::connect(path),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    );
    if refused {
        let _ = std::fs::remove_file(path);
    }
}

impl Shim for HuskShim {
    type T = Unserved;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        HuskShim {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    /// Starts (or finds) the daemon and prints its address. containerd 1.6 reads stdout as the
    /// bare address; the crate answers with json that only 1.7+ parses, and every version
    /// accepts the bare address, so print it here and end the process.
    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = grouping(&self.bundle, &opts.id);
        let options = opts.extensions.first().map(|any| RuntimeOptions::from_any(Some(any)));
        let (pid, address) = spawn(opts, &grouping, Vec::new())?;
        adjust_oom_score(std::os::unix::process::parent_id(), pid);
        if let Some(Ok(options)) = options.filter(|o| o.as_ref().is_ok_and(|o| !o.shim_cgroup.is_empty())) {
            if let Err(err) = join_cgroup(Path::new(CGROUP_ROOT), &options.shim_cgroup, pid) {
                eprintln!("failed to move shim {pid} into {}: {err}", options.shim_cgroup);
            }
        }
        write_address(&address)?;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(address.as_bytes()).and_then(|_| stdout.flush());
        std::process::exit(0);
    }

    /// Cleanup after a dead shim: force-delete the container, unmount its rootfs and report
    /// it killed (128 + SIGKILL), as containerd's runc shim does.
    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let options = RuntimeOptions::load(&self.bundle);
        let runtime = Runtime {
            binary: options.binary(),
            root: options.root(&self.namespace),
            log: self.bundle.join("log.json"),
            systemd_cgroup: options.systemd_cgroup,
        };
        // containerd 1.6 runs `shim delete` whenever its connection to a shim closes, after a
        // normal Delete and Shutdown too (cleanupAfterDeadShim). With the runtime's state dir for
        // the id gone, `delete --force` has nothing to do (husk's, runc's and crun's all succeed
        // on an unknown id): skip that process (46-89 ms per container removal under load).
        if runtime.root.join(&self.id).exists() {
            if let Err(err) = runtime.delete(&self.id, true) {
                log::warn!("failed to force-delete {}: {err}", self.id);
            }
        }
        crate::mount::unmount_rootfs(&self.bundle);
        remove_stale_socket(&self.bundle.join("address"));
        let pid = read_pid_file(&self.bundle.join("init.pid")).unwrap_or(0);
        Ok(DeleteResponse {
            pid,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(Timestamp::now()),
            ..Default::default()
        })
    }

    /// `-info`: the name, the shim's version and, when the runtime has a `features` command,
    /// its OCI features json (as containerd's runc shim reports it).
    fn runtime_info(runtime_id: &str, options: Option<&Any>) -> containerd_shim::Result<RuntimeInfo> {
        let options = RuntimeOptions::from_any(options).unwrap_or_default();
        let features = std::process::Command::new(options.binary())
            .arg("features")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| Any {
                type_url: FEATURES_TYPE.to_string(),
                value: out.stdout,
                ..Default::default()
            });
        Ok(RuntimeInfo {
            name: runtime_id.to_string(),
            version: MessageField::some(RuntimeVersion {
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..Default::default()
            }),
            features: features.into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    /// The crate's own daemon never runs: `main` hands the no-action case to `daemon::run`.
    fn create_task_service(&self, _publisher: RemotePublisher) -> Self::T {
        Unserved
    }
}

/// The Task service type the crate's trait asks for; the real one is `rpc.rs` on our own loop.
pub struct Unserved;

impl containerd_shim::Task for Unserved {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_cgroup_is_joined_in_every_hierarchy_that_has_it() {
        let root = std::env::temp_dir().join(format!("husk-fake-cgroupfs-{}", std::process::id()));
        for h in ["memory/shims", "pids/shims", "cpu"] {
            std::fs::create_dir_all(root.join(h)).unwrap();
        }
        std::fs::write(root.join("memory/shims/cgroup.procs"), "").unwrap();
        std::fs::write(root.join("pids/shims/cgroup.procs"), "").unwrap();
        join_cgroup(&root, "/shims", 42).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("memory/shims/cgroup.procs")).unwrap(),
            "42"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("pids/shims/cgroup.procs")).unwrap(),
            "42"
        );
        assert!(join_cgroup(&root, "/elsewhere", 42).is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn shim_oom_score_is_one_above_containerd_and_capped() {
        assert_eq!(shim_oom_score(0), 1);
        assert_eq!(shim_oom_score(-999), -998);
        assert_eq!(shim_oom_score(1000), 1000);
    }

    #[test]
    fn pod_annotations_group_containers_into_one_shim() {
        let dir = std::env::temp_dir().join(format!("husk-grouping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(grouping(&dir, "c1"), "c1");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(grouping(&dir, "c1"), "pod1");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
