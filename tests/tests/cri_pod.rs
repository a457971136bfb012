//! A pod through containerd's CRI plugin with runtime handler `husk`, the way the kubelet
//! drives it: RunPodSandbox (the pause image), CreateContainer + StartContainer (busybox),
//! ContainerStatus until it exits, its CRI log file, then StopPodSandbox + RemovePodSandbox.
//! One pod uses the host network (no CNI); the other the pod network from Debian's
//! containernetworking-plugins (bridge + host-local), on a bridge removed afterwards.
//! The CRI client is curl plus hand-encoded protobuf (husk_e2e::CriClient).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use husk_e2e::{
    bytes_field, decode, pause_image_archive, processes_mentioning, unique_id, varint_field,
    wait_until, Containerd, CriClient, Field, Proto, TempDir, BUSYBOX_REF, HUSK_RUNTIME, PAUSE_REF,
};

/// The namespace the CRI plugin keeps everything in.
const K8S_NS: &str = "k8s.io";
/// runtime.v1.NamespaceMode NODE: share the host's namespace.
const NAMESPACE_MODE_NODE: u64 = 2;
/// runtime.v1.ContainerState CONTAINER_EXITED.
const CONTAINER_EXITED: u64 = 2;

fn start_cri_containerd() -> (Containerd, CriClient) {
    start_cri_containerd_with("")
}

/// [`start_cri_containerd`] with `extra` TOML appended to containerd's config.
fn start_cri_containerd_with(extra: &str) -> (Containerd, CriClient) {
    let mut ctrd = Containerd::builder()
        .cri(true)
        .cri_option(&format!("sandbox_image = \"{PAUSE_REF}\""))
        .extra_config(extra)
        .start();
    let archive = ctrd.dir().join("pause.oci.tar");
    pause_image_archive(&archive, PAUSE_REF).expect("pause image built");
    ctrd.ctr_ok(&["-n", K8S_NS, "images", "import", &archive.to_string_lossy()]);
    ctrd.import_busybox(K8S_NS);
    let cri = CriClient::new(ctrd.address());
    // CRI learns of imported images from containerd's events; wait so it does not try a pull.
    for image in [PAUSE_REF, BUSYBOX_REF] {
        let known = wait_until(Duration::from_secs(10), || {
            let spec = Proto::new().message(1, Proto::new().string(1, image));
            cri.call("ImageService", "ImageStatus", spec)
                .is_ok_and(|resp| !bytes_field(&resp, 1).is_empty())
        });
        assert!(known, "CRI does not see {image}:\n{}", ctrd.log_tail(40));
    }
    (ctrd, cri)
}

/// PodSandboxConfig: metadata, log_directory, and with `host_network` the host's network
/// namespace and no hostname (like the kubelet for a host-network pod: it shares the host's
/// UTS namespace, and husk, like runc, refuses a hostname without a private one); else a
/// hostname equal to `name` and the pod network from CNI.
fn sandbox_config(name: &str, log_dir: &str, host_network: bool) -> Proto {
    let metadata = Proto::new()
        .string(1, name)
        .string(2, &unique_id("uid"))
        .string(3, "default");
    let config = Proto::new().message(1, metadata);
    if !host_network {
        return config.string(2, name).string(3, log_dir);
    }
    let namespaces = Proto::new().varint(1, NAMESPACE_MODE_NODE);
    let security = Proto::new().message(1, namespaces);
    config
        .string(3, log_dir)
        .message(8, Proto::new().message(2, security))
}

/// Run a pod with one busybox container running `script` through CRI, wait for it to exit 0,
/// check that the pod had one shim, stop and remove the pod; returns the container's log.
fn run_pod(ctrd: &Containerd, cri: &CriClient, host_network: bool, script: &str) -> String {
    run_pod_with(ctrd, cri, "husk", host_network, script, &|_| {})
}

/// [`run_pod`] with runtime handler `handler`, calling `while_up(pod id)` after the
/// container exited, while the sandbox still runs.
fn run_pod_with(
    ctrd: &Containerd,
    cri: &CriClient,
    handler: &str,
    host_network: bool,
    script: &str,
    while_up: &dyn Fn(&str),
) -> String {
    let logs = TempDir::new("pod-logs");
    let log_dir = logs.path().to_string_lossy().into_owned();
    let sandbox = sandbox_config("husk-pod", &log_dir, host_network);

    let resp = cri.runtime(
        "RunPodSandbox",
        Proto::new().message(1, sandbox.clone()).string(2, handler),
    );
    let pod = String::from_utf8(bytes_field(&resp, 1)).expect("utf-8 pod id");
    assert!(!pod.is_empty(), "no pod id");

    let config = Proto::new()
        .message(1, Proto::new().string(1, "hello"))
        .message(2, Proto::new().string(1, BUSYBOX_REF))
        .string(3, "sh")
        .string(3, "-c")
        .string(3, script)
        .string(11, "hello.log");
    let resp = cri.runtime(
        "CreateContainer",
        Proto::new()
            .string(1, &pod)
            .message(2, config)
            .message(3, sandbox),
    );
    let container = String::from_utf8(bytes_field(&resp, 1)).expect("utf-8 container id");
    cri.runtime("StartContainer", Proto::new().string(1, &container));

    let status = || {
        let resp = cri.runtime("ContainerStatus", Proto::new().string(1, &container));
        bytes_field(&resp, 1)
    };
    assert!(
        wait_until(Duration::from_secs(20), || varint_field(&status(), 3)
            == CONTAINER_EXITED),
        "container did not exit:\n{}",
        ctrd.log_tail(60)
    );
    let log = std::fs::read_to_string(logs.join("hello.log")).expect("container log");
    assert_eq!(varint_field(&status(), 7), 0, "exit code; log: {log}");

    // One shim for the pod: the container joined the sandbox's shim
    // (io.kubernetes.cri.sandbox-id grouping).
    let address = ctrd.address().display().to_string();
    let shims: Vec<_> = processes_mentioning(&address)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim-husk-v2"))
        .collect();
    assert_eq!(shims.len(), 1, "shims: {shims:?}");
    assert!(
        shims[0].1.contains(&pod),
        "shim is not the pod's: {shims:?}"
    );

    while_up(&pod);
    cri.runtime("StopPodSandbox", Proto::new().string(1, &pod));
    cri.runtime("RemovePodSandbox", Proto::new().string(1, &pod));
    let gone = wait_until(Duration::from_secs(10), || {
        processes_mentioning(&address)
            .iter()
            .all(|(_, cmd)| !cmd.contains("containerd-shim-husk-v2"))
    });
    assert!(gone, "shim left after RemovePodSandbox");
    assert!(processes_mentioning(&pod).is_empty(), "pod processes left");
    log
}

#[test]
fn busybox_pod_runs_under_husk_through_cri() {
    let (ctrd, cri) = start_cri_containerd();
    let log = run_pod(&ctrd, &cri, true, "echo hello from husk");
    // CRI log lines: "<time> stdout F <text>".
    assert!(log.contains(" stdout F hello from husk"), "log: {log}");
}

/// The bridge the CNI config below makes on the host; removed on drop.
const BRIDGE: &str = "husk-cni0";
const SUBNET: &str = "10.231.7";

struct BridgeGuard;

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
    }
}

/// Debian's containernetworking-plugins (bridge + host-local) for the pod network, binaries
/// linked into the private containerd's CNI bin dir, IPAM state in its temp dir.
fn write_cni_config(ctrd: &Containerd) {
    let cni = ctrd.dir().join("cni");
    let bin = cni.join("bin");
    std::fs::create_dir_all(&bin).expect("cni bin dir");
    for plugin in ["bridge", "host-local", "loopback"] {
        let src = Path::new(CNI_PLUGINS).join(plugin);
        assert!(
            src.is_file(),
            "{} missing: apt-get install containernetworking-plugins",
            src.display()
        );
        std::os::unix::fs::symlink(&src, bin.join(plugin)).expect("plugin linked");
    }
    let conf = format!(
        r#"{{"cniVersion": "0.4.0", "name": "husk-test", "plugins": [{{
  "type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "ipMasq": false,
  "ipam": {{"type": "host-local", "dataDir": "{}",
            "ranges": [[{{"subnet": "{SUBNET}.0/24"}}]]}}
}}]}}"#,
        cni.join("ipam").display()
    );
    let net_d = cni.join("net.d");
    std::fs::create_dir_all(&net_d).expect("cni conf dir");
    std::fs::write(net_d.join("10-husk.conflist"), conf).expect("cni conf written");
}

const CNI_PLUGINS: &str = "/usr/lib/cni";

/// RuntimeStatus: every RuntimeCondition (field 1) has status (field 2) true; CRI reports
/// RuntimeReady and NetworkReady.
fn all_conditions_true(status: &[u8]) -> bool {
    let conditions: Vec<_> = decode(status)
        .into_iter()
        .filter_map(|(f, v)| match v {
            Field::Bytes(b) if f == 1 => Some(b),
            _ => None,
        })
        .collect();
    !conditions.is_empty() && conditions.iter().all(|c| varint_field(c, 2) == 1)
}

#[test]
fn pod_network_pod_gets_a_cni_address_and_its_hostname() {
    let _bridge = BridgeGuard;
    let (ctrd, cri) = start_cri_containerd();
    write_cni_config(&ctrd);
    // CRI reloads the CNI config when the directory changes; wait until it reports ready.
    let ready = wait_until(Duration::from_secs(10), || {
        cri.call("RuntimeService", "Status", Proto::new())
            .is_ok_and(|resp| all_conditions_true(&bytes_field(&resp, 1)))
    });
    assert!(ready, "CRI network not ready:\n{}", ctrd.log_tail(40));
    let log = run_pod(&ctrd, &cri, false, "hostname; ip -4 addr show eth0");
    assert!(log.contains(" stdout F husk-pod"), "log: {log}");
    assert!(log.contains(&format!("inet {SUBNET}.")), "log: {log}");
}

/// The packaging's way of passing options (packaging/containerd/husk-v2.toml): CRI hands a
/// non-runc runtime only `ConfigPath`, and the shim must read BinaryName and Root from that
/// file. Proven by husk's state showing up under the file's Root while the pod runs.
#[test]
fn cri_passes_the_options_file_to_the_shim() {
    let dir = TempDir::new("husk-opts");
    let root = dir.join("husk-root");
    let options = dir.join("husk-options.toml");
    let text = format!(
        "# as packaging/containerd/husk-options.toml, with a private Root\nBinaryName = \"{}\"\nRoot = \"{}\"\nSystemdCgroup = false\n",
        husk_e2e::husk_bin().display(),
        root.display()
    );
    std::fs::write(&options, text).expect("options written");
    // A second handler next to the harness's "husk": a new table, not a reopened one.
    let extra = format!(
        r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-opts]
  runtime_type = "{HUSK_RUNTIME}"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk-opts.options]
  ConfigPath = "{}""#,
        options.display()
    );
    let (ctrd, cri) = start_cri_containerd_with(&extra);
    let log = run_pod_with(&ctrd, &cri, "husk-opts", true, "echo opts", &|pod| {
        let state = root.join(K8S_NS).join(pod);
        assert!(state.is_dir(), "no husk state at {}", state.display());
    });
    assert!(log.contains(" stdout F opts"), "log: {log}");
}
