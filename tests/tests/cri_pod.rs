//! A pod through containerd's CRI plugin with runtime handler `husk`, the way the kubelet
//! drives it: RunPodSandbox (the pause image), CreateContainer + StartContainer (busybox),
//! ContainerStatus until it exits, its CRI log file, then StopPodSandbox + RemovePodSandbox.
//! One pod uses the host network (no CNI); the other the pod network from Debian's
//! containernetworking-plugins (bridge + host-local), on a bridge removed afterwards.
//! A third pod has two containers (httpd server, SIGTERM-ignoring client) and goes through
//! ExecSync, ContainerStats, PodSandboxStats, UpdateContainerResources, StopContainer with a
//! timeout, RemoveContainer. The CRI client is curl plus hand-encoded protobuf
//! (husk_e2e::CriClient).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use husk_e2e::{
    bytes_field, cgroup_dirs, decode, pause_image_archive, processes_mentioning, remove_cgroup, uint64_value,
    unique_id, varint_field, wait_until, Containerd, CriClient, ExecOutput, Field, Proto, TempDir, BUSYBOX_REF,
    HUSK_RUNTIME, K8S_NS, PAUSE_REF,
};

/// runtime.v1.NamespaceMode NODE: share the host's namespace.
const NAMESPACE_MODE_NODE: u64 = 2;
/// runtime.v1.ContainerState CONTAINER_EXITED.
const CONTAINER_EXITED: u64 = 2;

fn start_cri_containerd() -> (Containerd, CriClient) {
    start_cri_containerd_with("")
}

/// [`start_cri_containerd`] with `extra` TOML appended to containerd's config.
fn start_cri_containerd_with(extra: &str) -> (Containerd, CriClient) {
    Containerd::builder()
        .extra_config(extra)
        .start_cri_with_images()
        .unwrap_or_else(|e| panic!("{e}"))
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
    config.string(3, log_dir).message(8, Proto::new().message(2, security))
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
        Proto::new().string(1, &pod).message(2, config).message(3, sandbox),
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
    let shim = if handler == "runc" {
        "containerd-shim-runc-v2"
    } else {
        "containerd-shim-husk-v2"
    };
    let shims: Vec<_> = processes_mentioning(&address)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(shim))
        .collect();
    assert_eq!(shims.len(), 1, "shims: {shims:?}");
    assert!(shims[0].1.contains(&pod), "shim is not the pod's: {shims:?}");

    while_up(&pod);
    remove_pod(ctrd, cri, &pod);
    log
}

/// StopPodSandbox + RemovePodSandbox, then check that the pod's shim and every process
/// naming the pod are gone.
fn remove_pod(ctrd: &Containerd, cri: &CriClient, pod: &str) {
    cri.runtime("StopPodSandbox", Proto::new().string(1, pod));
    cri.runtime("RemovePodSandbox", Proto::new().string(1, pod));
    let address = ctrd.address().display().to_string();
    let gone = wait_until(Duration::from_secs(10), || {
        processes_mentioning(&address)
            .iter()
            .all(|(_, cmd)| !cmd.contains("containerd-shim-husk-v2") && !cmd.contains("containerd-shim-runc-v2"))
    });
    assert!(gone, "shim left after RemovePodSandbox");
    assert!(processes_mentioning(pod).is_empty(), "pod processes left");
}

#[test]
fn busybox_pod_runs_under_husk_through_cri() {
    let (ctrd, cri) = start_cri_containerd();
    let log = run_pod(&ctrd, &cri, true, "echo hello from husk");
    // CRI log lines: "<time> stdout F <text>".
    assert!(log.contains(" stdout F hello from husk"), "log: {log}");
}

/// Debian 12's stock /etc/containerd/config.toml (containerd 1.6.20~ds1), with what an
/// operator of this test host adds (restrict_oom_score_adj: no CAP_SYS_RESOURCE here; the
/// sandbox image) and the private paths every test containerd needs.
const DEBIAN_STOCK_CONFIG: &str = r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
temp = "{dir}/tmp"

[grpc]
  address = "{dir}/c.sock"

[ttrpc]
  address = "{dir}/c.sock.ttrpc"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    sandbox_image = "registry.k8s.io/pause:husk"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{dir}/opt"
"#;

/// packaging/containerd/register-husk.sh run on the config, as an operator would.
fn register_husk(config: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/containerd/register-husk.sh");
    let options = config.with_file_name("husk-options.toml");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--config")
        .arg(config)
        .arg("--options")
        .arg(&options)
        .arg("--husk-binary")
        .arg(husk_e2e::husk_bin())
        .output()
        .expect("run register-husk.sh");
    assert!(
        out.status.success(),
        "register-husk.sh: {}",
        husk_e2e::output_text(&out)
    );
}

/// The headline failure of the old drop-in: imported into Debian's stock config it replaced
/// the whole CRI table, so CRI did not load (no runc for default_runtime_name) and the CNI
/// bin_dir fell back to /opt/cni/bin. After register-husk.sh the CRI plugin answers, the CNI
/// setting is kept, and pods run under both handlers, husk and runc (the control).
#[test]
fn registering_husk_in_debians_stock_config_keeps_cri_and_runc_working() {
    assert_eq!(
        PAUSE_REF, "registry.k8s.io/pause:husk",
        "DEBIAN_STOCK_CONFIG names the pause image"
    );
    let mut ctrd = Containerd::builder()
        .own_config(DEBIAN_STOCK_CONFIG)
        .prepare_config(register_husk)
        .start();
    let cri = CriClient::new(ctrd.address());
    let version = cri
        .call("RuntimeService", "Version", Proto::new())
        .unwrap_or_else(|e| panic!("CRI is not serving: {e}\n{}", ctrd.log_tail(40)));
    assert!(
        String::from_utf8_lossy(&version).contains("containerd"),
        "Version: {version:?}"
    );
    let config_dump = Command::new("containerd")
        .arg("--config")
        .arg(ctrd.dir().join("config.toml"))
        .args(["config", "dump"])
        .output()
        .expect("config dump");
    let config_dump = String::from_utf8_lossy(&config_dump.stdout);
    assert!(
        config_dump.contains("bin_dir = \"/usr/lib/cni\""),
        "CNI bin_dir lost:\n{config_dump}"
    );

    let archive = ctrd.dir().join("pause.oci.tar");
    pause_image_archive(&archive, PAUSE_REF).expect("pause image built");
    ctrd.ctr_ok(&["-n", K8S_NS, "images", "import", &archive.to_string_lossy()]);
    ctrd.import_busybox(K8S_NS);
    for image in [PAUSE_REF, BUSYBOX_REF] {
        let known = wait_until(Duration::from_secs(10), || {
            let spec = Proto::new().message(1, Proto::new().string(1, image));
            cri.call("ImageService", "ImageStatus", spec)
                .is_ok_and(|resp| !bytes_field(&resp, 1).is_empty())
        });
        assert!(known, "CRI does not see {image}:\n{}", ctrd.log_tail(40));
    }
    for handler in ["husk", "runc"] {
        let log = run_pod_with(&ctrd, &cri, handler, true, "echo hello", &|_| {});
        assert!(log.contains(" stdout F hello"), "{handler}: log: {log}");
    }
}

/// The bridge the CNI config below makes on the host; removed on drop. Each test that uses
/// CNI has its own bridge and subnet: the tests of this file run in parallel.
const BRIDGE: &str = "husk-cni0";
const SUBNET: &str = "10.231.7";

struct BridgeGuard(&'static str);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

/// Debian's containernetworking-plugins (bridge + host-local) for the pod network, binaries
/// linked into the private containerd's CNI bin dir, IPAM state in its temp dir.
fn write_cni_config(ctrd: &Containerd, bridge: &str, subnet: &str) {
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
  "type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
  "ipam": {{"type": "host-local", "dataDir": "{}",
            "ranges": [[{{"subnet": "{subnet}.0/24"}}]]}}
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

/// [`write_cni_config`], then wait for CRI to report the network ready: it reloads the CNI
/// config when the directory changes.
fn enable_cni(ctrd: &Containerd, cri: &CriClient, bridge: &str, subnet: &str) {
    write_cni_config(ctrd, bridge, subnet);
    let ready = wait_until(Duration::from_secs(10), || {
        cri.call("RuntimeService", "Status", Proto::new())
            .is_ok_and(|resp| all_conditions_true(&bytes_field(&resp, 1)))
    });
    assert!(ready, "CRI network not ready:\n{}", ctrd.log_tail(40));
}

#[test]
fn pod_network_pod_gets_a_cni_address_and_its_hostname() {
    let _bridge = BridgeGuard(BRIDGE);
    let (ctrd, cri) = start_cri_containerd();
    enable_cni(&ctrd, &cri, BRIDGE, SUBNET);
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

/// The two-container pod's own CNI bridge and subnet (see [`BRIDGE`]).
const PAIR_BRIDGE: &str = "husk-cni1";
const PAIR_SUBNET: &str = "10.231.8";
/// The pod's server: busybox httpd serving one file on port 8080 of the pod's network.
const SERVER_SCRIPT: &str = "mkdir -p /www && echo hi from server > /www/index.html && \
                             exec httpd -f -p 8080 -h /www";
/// The pod's client ignores SIGTERM, so StopContainer must fall back to SIGKILL.
const CLIENT_SCRIPT: &str = "trap '' TERM; sleep 1000";
/// What StopContainer's timeout is set to, in seconds.
const STOP_TIMEOUT: u64 = 2;

/// ContainerConfig (metadata 1, image 2, command 3, log_path 11) of a busybox container
/// `name` running `sh -c script`.
fn container_config(name: &str, script: &str) -> Proto {
    Proto::new()
        .message(1, Proto::new().string(1, name))
        .message(2, Proto::new().string(1, BUSYBOX_REF))
        .string(3, "sh")
        .string(3, "-c")
        .string(3, script)
        .string(11, &format!("{name}.log"))
}

/// CreateContainer + StartContainer in `pod`; returns the container's id.
fn start_container(cri: &CriClient, pod: &str, sandbox: &Proto, name: &str, script: &str) -> String {
    let request = Proto::new()
        .string(1, pod)
        .message(2, container_config(name, script))
        .message(3, sandbox.clone());
    let resp = cri.runtime("CreateContainer", request);
    let id = String::from_utf8(bytes_field(&resp, 1)).expect("utf-8 container id");
    cri.runtime("StartContainer", Proto::new().string(1, &id));
    id
}

/// The init pid of task `id` in k8s.io: ContainerStatus has no pid, `ctr tasks ls` has
/// (columns TASK PID STATUS).
fn task_pid(ctrd: &Containerd, id: &str) -> u32 {
    let tasks = ctrd.ctr_ok(&["-n", K8S_NS, "tasks", "ls"]);
    husk_e2e::task_pid_in(&tasks, id).unwrap_or_else(|| panic!("no task {id} in:\n{tasks}"))
}

/// The inode of the socket listening on TCP `port` in the network namespace of `pid`, from
/// /proc/<pid>/net/tcp{,6} (columns: sl, local_address, rem_address, st, ..., inode = 10th).
/// A socket's inode is unique, and net/tcp lists only the sockets of that namespace, so two
/// pids showing the same listener share the namespace. This stands in for comparing the
/// /proc/<pid>/ns/net links, which this VM's kernel refuses (EACCES) to read for container
/// processes, as for its own PID 1, even with CAP_SYS_PTRACE.
fn tcp_listener(pid: u32, port: u16) -> Option<String> {
    // busybox httpd listens on "::" (IPv4 too), so the socket is in tcp6.
    let table = ["tcp", "tcp6"]
        .map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).unwrap_or_default())
        .join("\n");
    let local = format!(":{port:04X}");
    table.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let listening = cols.get(3) == Some(&"0A");
        (listening && cols.get(1)?.ends_with(&local)).then(|| cols.get(9).map(|s| s.to_string()))?
    })
}

/// The v1 memory cgroup directory of `pid`, from its /proc/<pid>/cgroup line
/// "N:memory:/path" (CRI without a cgroup parent leaves the path to the runtime).
fn memory_cgroup(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    let path = text
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "memory").then_some(path)
        })
        .unwrap_or_else(|| panic!("no memory cgroup in:\n{text}"));
    Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'))
}

/// The pids of this containerd's husk shims.
fn shim_pids(ctrd: &Containerd) -> Vec<i32> {
    let address = ctrd.address().display().to_string();
    processes_mentioning(&address)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim-husk-v2"))
        .map(|(pid, _)| pid)
        .collect()
}

/// ExecSync returns the command's stdout, stderr and exit code.
fn check_exec_sync(cri: &CriClient, client: &str) {
    let out = cri.exec_sync(client, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10);
    let expected = ExecOutput {
        stdout: "out\n".into(),
        stderr: "err\n".into(),
        exit_code: 3,
    };
    assert_eq!(out, expected);
}

/// The client reaches the server on 127.0.0.1, and both containers' inits are in the
/// sandbox's network namespace, which is not the host's.
fn check_shared_network(ctrd: &Containerd, cri: &CriClient, pod: &str, ids: [&str; 2]) {
    let [server, client] = ids;
    let url = "http://127.0.0.1:8080/";
    let mut last = None;
    // httpd may still be binding its port right after StartContainer.
    let fetched = wait_until(Duration::from_secs(10), || {
        let out = cri.exec_sync(client, &["wget", "-qO-", url], 5);
        let ok = out.exit_code == 0 && out.stdout == "hi from server\n";
        last = Some(out);
        ok
    });
    assert!(fetched, "client did not reach the server: {last:?}");
    let listener = |id: &str| tcp_listener(task_pid(ctrd, id), 8080);
    let in_pod = listener(pod);
    assert!(in_pod.is_some(), "the sandbox sees no listener on 8080");
    assert_eq!(listener(server), in_pod, "server's net namespace");
    assert_eq!(listener(client), in_pod, "client's net namespace");
    let host = tcp_listener(std::process::id(), 8080);
    assert_ne!(host, in_pod, "the pod network is the host's");
}

/// ContainerStats (stats 1 = ContainerStats: attributes 1, cpu 2, memory 3) of the client has
/// non-zero cumulative CPU time and working set; PodSandboxStats as far as containerd has it.
fn check_stats(cri: &CriClient, pod: &str, client: &str) {
    let resp = cri.runtime("ContainerStats", Proto::new().string(1, client));
    let stats = bytes_field(&resp, 1);
    assert_eq!(bytes_field(&bytes_field(&stats, 1), 1), client.as_bytes());
    check_cpu_and_memory(&bytes_field(&stats, 2), &bytes_field(&stats, 3), "container");

    // PodSandboxStats (stats 1 = PodSandboxStats: linux 2 = LinuxPodSandboxStats: cpu 1,
    // memory 2, containers 5): containerd 1.6.20 has it (from the pod's cgroup parent).
    let resp = cri.runtime("PodSandboxStats", Proto::new().string(1, pod));
    let linux = bytes_field(&bytes_field(&resp, 1), 2);
    check_cpu_and_memory(&bytes_field(&linux, 1), &bytes_field(&linux, 2), "pod");
    let containers = decode(&linux).into_iter().filter(|(f, _)| *f == 5).count();
    assert_eq!(containers, 2, "containers in the pod's stats");
}

/// CpuUsage (timestamp 1, usage_core_nano_seconds 2) and MemoryUsage (timestamp 1,
/// working_set_bytes 2, usage_bytes 4).
fn check_cpu_and_memory(cpu: &[u8], memory: &[u8], what: &str) {
    assert!(varint_field(cpu, 1) > 0, "{what} cpu timestamp: {cpu:?}");
    let cpu_ns = uint64_value(cpu, 2);
    assert!(cpu_ns.is_some_and(|n| n > 0), "{what} cpu usage: {cpu_ns:?}");
    assert!(varint_field(memory, 1) > 0, "{what} memory timestamp");
    let working_set = uint64_value(memory, 2);
    assert!(
        working_set.is_some_and(|n| n > 0),
        "{what} working set: {working_set:?}"
    );
    eprintln!(
        "{what} stats: cpu {cpu_ns:?} ns, working set {working_set:?}, usage {:?}",
        uint64_value(memory, 4)
    );
}

/// UpdateContainerResources (container_id 1, linux 2 = LinuxContainerResources:
/// memory_limit_in_bytes 4) reaches the container's v1 memory cgroup.
fn check_memory_update(ctrd: &Containerd, cri: &CriClient, client: &str) {
    let limit: u64 = 64 << 20;
    let resources = Proto::new().varint(4, limit);
    cri.runtime(
        "UpdateContainerResources",
        Proto::new().string(1, client).message(2, resources),
    );
    let file = memory_cgroup(task_pid(ctrd, client)).join("memory.limit_in_bytes");
    let text = std::fs::read_to_string(&file).expect("memory.limit_in_bytes");
    assert_eq!(text.trim(), limit.to_string(), "{}", file.display());
}

/// StopContainer (container_id 1, timeout 2) on a container that ignores SIGTERM: it is
/// SIGKILLed after the timeout and reported as exited with 137 (128 + SIGKILL).
fn check_stop_with_timeout(cri: &CriClient, client: &str) {
    let started = Instant::now();
    cri.runtime("StopContainer", Proto::new().string(1, client).varint(2, STOP_TIMEOUT));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(STOP_TIMEOUT) && took < Duration::from_secs(10),
        "StopContainer took {took:?}"
    );
    let resp = cri.runtime("ContainerStatus", Proto::new().string(1, client));
    let status = bytes_field(&resp, 1);
    assert_eq!(varint_field(&status, 3), CONTAINER_EXITED, "state");
    assert_eq!(varint_field(&status, 7), 137, "exit code");
    eprintln!("StopContainer with timeout {STOP_TIMEOUT}s took {took:?}");
}

/// Two containers in one pod, driven as the kubelet does: exec probes, stats, a resize, a
/// stop that needs SIGKILL, removal; one shim serves the pod throughout.
#[test]
fn two_container_pod_shares_network_execs_updates_and_stops() {
    let _bridge = BridgeGuard(PAIR_BRIDGE);
    let (ctrd, cri) = start_cri_containerd();
    enable_cni(&ctrd, &cri, PAIR_BRIDGE, PAIR_SUBNET);
    let logs = TempDir::new("pod-logs");
    // The kubelet always gives a cgroup parent (LinuxPodSandboxConfig, field 8: cgroup_parent
    // 1); without one CRI's PodSandboxStats fails with "cgroupPath is empty".
    let parent = CgroupGuard(format!("/{}", unique_id("husk-pod")));
    let sandbox = sandbox_config("husk-pair", &logs.path().to_string_lossy(), false)
        .message(8, Proto::new().string(1, &parent.0));
    let resp = cri.runtime(
        "RunPodSandbox",
        Proto::new().message(1, sandbox.clone()).string(2, "husk"),
    );
    let pod = String::from_utf8(bytes_field(&resp, 1)).expect("utf-8 pod id");

    let server = start_container(&cri, &pod, &sandbox, "server", SERVER_SCRIPT);
    let client = start_container(&cri, &pod, &sandbox, "client", CLIENT_SCRIPT);
    let shims = shim_pids(&ctrd);
    assert_eq!(shims.len(), 1, "shims after two containers: {shims:?}");

    check_exec_sync(&cri, &client);
    check_shared_network(&ctrd, &cri, &pod, [&server, &client]);
    check_stats(&cri, &pod, &client);
    check_memory_update(&ctrd, &cri, &client);
    check_stop_with_timeout(&cri, &client);
    cri.runtime("StopContainer", Proto::new().string(1, &server).varint(2, STOP_TIMEOUT));
    for id in [&server, &client] {
        cri.runtime("RemoveContainer", Proto::new().string(1, id));
    }
    assert_eq!(shim_pids(&ctrd), shims, "the pod's shim changed");
    remove_pod(&ctrd, &cri, &pod);
    // The pod's and containers' cgroups are gone; the parent is the kubelet's to remove.
    for dir in cgroup_dirs(&parent.0) {
        let children: Vec<_> = std::fs::read_dir(&dir)
            .expect("cgroup dir")
            .filter_map(|e| e.ok().filter(|e| e.path().is_dir()).map(|e| e.path()))
            .collect();
        assert!(children.is_empty(), "cgroups left: {children:?}");
    }
}

/// A cgroup path (the pod's parent) removed from every hierarchy on drop.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        remove_cgroup(&self.0);
    }
}
