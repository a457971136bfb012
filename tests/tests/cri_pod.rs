//! A pod through containerd's CRI plugin with runtime handler `husk`, the way the kubelet
//! drives it: RunPodSandbox (the pause image), CreateContainer + StartContainer (busybox),
//! ContainerStatus until it exits, its CRI log file, then StopPodSandbox + RemovePodSandbox.
//! The pod uses the host network, so no CNI plugin is needed.

use std::time::Duration;

use husk_e2e::{
    bytes_field, pause_image_archive, processes_mentioning, unique_id, varint_field, wait_until,
    Containerd, CriClient, Proto, TempDir, BUSYBOX_REF, PAUSE_REF,
};

/// The namespace the CRI plugin keeps everything in.
const K8S_NS: &str = "k8s.io";
/// runtime.v1.NamespaceMode NODE: share the host's namespace.
const NAMESPACE_MODE_NODE: u64 = 2;
/// runtime.v1.ContainerState CONTAINER_EXITED.
const CONTAINER_EXITED: u64 = 2;

fn start_cri_containerd() -> (Containerd, CriClient) {
    let mut ctrd = Containerd::builder()
        .cri(true)
        .cri_option(&format!("sandbox_image = \"{PAUSE_REF}\""))
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

/// PodSandboxConfig: metadata, log_directory, linux.security_context with the host network.
/// No hostname: like the kubelet for a host-network pod (it shares the host's UTS namespace,
/// and husk, like runc, refuses a hostname without a private one).
fn sandbox_config(name: &str, log_dir: &str) -> Proto {
    let metadata = Proto::new()
        .string(1, name)
        .string(2, &unique_id("uid"))
        .string(3, "default");
    let namespaces = Proto::new().varint(1, NAMESPACE_MODE_NODE);
    let security = Proto::new().message(1, namespaces);
    Proto::new()
        .message(1, metadata)
        .string(3, log_dir)
        .message(8, Proto::new().message(2, security))
}

#[test]
fn busybox_pod_runs_under_husk_through_cri() {
    let (ctrd, cri) = start_cri_containerd();
    let logs = TempDir::new("pod-logs");
    let log_dir = logs.path().to_string_lossy().into_owned();
    let sandbox = sandbox_config("husk-pod", &log_dir);

    let resp = cri.runtime(
        "RunPodSandbox",
        Proto::new().message(1, sandbox.clone()).string(2, "husk"),
    );
    let pod = String::from_utf8(bytes_field(&resp, 1)).expect("utf-8 pod id");
    assert!(!pod.is_empty(), "no pod id");

    let config = Proto::new()
        .message(1, Proto::new().string(1, "hello"))
        .message(2, Proto::new().string(1, BUSYBOX_REF))
        .string(3, "sh")
        .string(3, "-c")
        .string(3, "echo hello from husk; cat /proc/1/cmdline")
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
    assert_eq!(varint_field(&status(), 7), 0, "exit code");

    // CRI log lines: "<time> stdout F <text>".
    let log = std::fs::read_to_string(logs.join("hello.log")).expect("container log");
    assert!(log.contains(" stdout F hello from husk"), "log: {log}");

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

    cri.runtime("StopPodSandbox", Proto::new().string(1, &pod));
    cri.runtime("RemovePodSandbox", Proto::new().string(1, &pod));
    let gone = wait_until(Duration::from_secs(10), || {
        processes_mentioning(&address)
            .iter()
            .all(|(_, cmd)| !cmd.contains("containerd-shim-husk-v2"))
    });
    assert!(gone, "shim left after RemovePodSandbox");
    assert!(processes_mentioning(&pod).is_empty(), "pod processes left");
}
