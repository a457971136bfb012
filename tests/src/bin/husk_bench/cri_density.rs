//! Section 6b (`density-cri`): the density sizes as pods of 5 sleeping busybox containers
//! through containerd's CRI plugin, as the kubelet drives it (RunPodSandbox with the pause
//! image, then CreateContainer + StartContainer per container; StopPodSandbox +
//! RemovePodSandbox), with runtime handler `husk` (husk shim + husk) against `runc` (Go shim +
//! runc). Both shims serve a whole pod (containerd 1.6 groups a pod's tasks by the
//! `io.kubernetes.cri.sandbox-id` annotation), so there is one shim per pod. Host network: no
//! CNI, so the network set-up stays out of the figures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use husk_e2e::{
    bytes_field, decode, mounts_under, remove_cgroup, unique_id, Containerd, CriClient, Field, Proto, BUSYBOX_REF,
    K8S_NS,
};

use crate::ctrd::{combos, shim_pids, Combo, Mem};
use crate::density::{in_parallel, memory_with_all_running, sizes_side_by_side, until_settled, Outcome};
use crate::measure::{reap_orphans, NotAvailable};
use crate::report::Report;
use crate::Options;

/// The namespace the CRI plugin keeps everything in.
/// Containers per pod.
pub const POD_SIZE: usize = 5;
/// runtime.v1.NamespaceMode NODE: the pod shares the host's network namespace.
const NAMESPACE_MODE_NODE: u64 = 2;
/// runtime.v1.ContainerState CONTAINER_RUNNING.
const CONTAINER_RUNNING: u64 = 1;
/// The CRI runtime handlers for combos 0 (husk shim + husk) and 1 (Go shim + runc), as
/// registered by the test harness's CRI config.
const HANDLERS: [&str; 2] = ["husk", "runc"];

/// A private containerd ready for CRI calls, with the pause and busybox images.
fn start_cri_containerd() -> Result<(Containerd, CriClient), NotAvailable> {
    Containerd::builder()
        .ctr_timeout(Duration::from_secs(120))
        .start_cri_with_images()
        .map_err(|what| NotAvailable::Unexpected { what })
}

/// PodSandboxConfig (metadata 1, linux 8) of pod `name`: host network (no hostname, like the
/// kubelet for a host-network pod) and the kubelet's cgroup parent, so that every pod and
/// container cgroup lands below `cgroup_parent`.
fn sandbox_config(name: &str, cgroup_parent: &str) -> Proto {
    let metadata = Proto::new()
        .string(1, name)
        .string(2, &unique_id("uid"))
        .string(3, "default");
    // LinuxPodSandboxConfig: cgroup_parent 1, security_context 2 (namespace_options 1:
    // network 1).
    let namespaces = Proto::new().varint(1, NAMESPACE_MODE_NODE);
    let linux = Proto::new()
        .string(1, cgroup_parent)
        .message(2, Proto::new().message(1, namespaces));
    Proto::new().message(1, metadata).message(8, linux)
}

/// How many containers each pod gets: [`POD_SIZE`] each, the last pod the rest.
fn pod_sizes(n: usize) -> Vec<usize> {
    (0..n.div_ceil(POD_SIZE))
        .map(|i| POD_SIZE.min(n - i * POD_SIZE))
        .collect()
}

/// A CRI call that must succeed, as a benchmark error otherwise.
fn call(cri: &CriClient, method: &str, request: Proto) -> Result<Vec<u8>, NotAvailable> {
    cri.call("RuntimeService", method, request)
        .map_err(|what| NotAvailable::Unexpected { what })
}

fn id_of(resp: &[u8]) -> String {
    String::from_utf8_lossy(&bytes_field(resp, 1)).into_owned()
}

/// One pod of `containers` sleeping busybox containers under `handler`: RunPodSandbox, then
/// CreateContainer + StartContainer for each. The pod's id goes to `pods` as soon as it
/// exists, so a pod that fails half-way is still removed.
fn run_pod(
    cri: &CriClient,
    (handler, cgroup_parent): (&str, &str),
    index: usize,
    containers: usize,
    pods: &Mutex<Vec<String>>,
) -> Result<(), NotAvailable> {
    let sandbox = sandbox_config(&format!("bench-{index}"), cgroup_parent);
    let request = Proto::new().message(1, sandbox.clone()).string(2, handler);
    let pod = id_of(&call(cri, "RunPodSandbox", request)?);
    pods.lock().unwrap_or_else(|p| p.into_inner()).push(pod.clone());
    for c in 0..containers {
        // ContainerConfig: metadata 1, image 2, command 3.
        let config = Proto::new()
            .message(1, Proto::new().string(1, &format!("sleeper-{c}")))
            .message(2, Proto::new().string(1, BUSYBOX_REF))
            .string(3, "sleep")
            .string(3, "100000");
        let request = Proto::new()
            .string(1, &pod)
            .message(2, config)
            .message(3, sandbox.clone());
        let container = id_of(&call(cri, "CreateContainer", request)?);
        call(cri, "StartContainer", Proto::new().string(1, &container))?;
    }
    Ok(())
}

/// The number of top-level `field` entries of a message (a repeated field's length).
fn count_of(msg: &[u8], field: u32) -> usize {
    decode(msg)
        .into_iter()
        .filter(|(f, v)| *f == field && matches!(v, Field::Bytes(_)))
        .count()
}

/// ListContainers (filter 1 = ContainerFilter: state 2 = ContainerStateValue) → containers
/// (field 1); `state` None lists every container.
fn containers(cri: &CriClient, state: Option<u64>) -> usize {
    let request = match state {
        Some(s) => Proto::new().message(1, Proto::new().message(2, Proto::new().varint(1, s))),
        None => Proto::new(),
    };
    cri.call("RuntimeService", "ListContainers", request)
        .map(|resp| count_of(&resp, 1))
        .unwrap_or(0)
}

/// What is left after every pod was removed: CRI sandboxes and containers, containerd
/// containers and tasks in k8s.io, shims, cgroups below the pods' parent, mounts under the
/// state dir (rootfs, the pods' /dev/shm). Given 10 s to settle.
fn leftovers(ctrd: &Containerd, cri: &CriClient, combo: &Combo, cgroup_parent: &str) -> Vec<String> {
    until_settled(|| {
        let mut left = Vec::new();
        let sandboxes = cri
            .call("RuntimeService", "ListPodSandbox", Proto::new())
            .map(|resp| count_of(&resp, 1))
            .unwrap_or(0);
        let counts = [
            ("CRI sandboxes", sandboxes),
            ("CRI containers", containers(cri, None)),
            ("containerd containers", ctr_lines(ctrd, "containers")),
            ("tasks", ctr_lines(ctrd, "tasks")),
            ("shim processes", shim_pids(ctrd.address(), combo.shim).len()),
            ("cgroup dirs", cgroup_children(cgroup_parent)),
            ("mounts under the state dir", mounts_under(&ctrd.state()).len()),
        ];
        for (what, n) in counts {
            if n > 0 {
                left.push(format!("{n} {what}"));
            }
        }
        left
    })
}

/// `ctr -n k8s.io <what> ls -q`: how many lines.
fn ctr_lines(ctrd: &Containerd, what: &str) -> usize {
    let out = ctrd.ctr(&["-n", K8S_NS, what, "ls", "-q"]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Sub-cgroups of `parent` summed over every hierarchy.
fn cgroup_children(parent: &str) -> usize {
    husk_e2e::cgroup_dirs(parent)
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).count())
        .sum()
}

/// N containers as pods of [`POD_SIZE`] under handler `HANDLERS[j]` (the shim and runtime
/// of `combos()[j]`) in a fresh CRI containerd: time until all run, memory, time to remove
/// all pods, what is left.
fn pods_one(j: usize, n: usize, opts: &Options) -> (&'static str, Result<Outcome, NotAvailable>) {
    let (ctrd, cri) = match start_cri_containerd() {
        Ok(started) => started,
        Err(e) => return (HANDLERS[j], Err(e)),
    };
    let combo = &combos(ctrd.dir())[j];
    let parent = format!("/{}", unique_id("husk-bench-cri"));
    let outcome = match &combo.missing {
        Some(e) => Err(e.clone()),
        None => pods_measured(&ctrd, &cri, combo, (HANDLERS[j], &parent), n, opts),
    };
    remove_cgroup(&parent);
    drop(ctrd);
    reap_orphans();
    (combo.name, outcome)
}

fn pods_measured(
    ctrd: &Containerd,
    cri: &CriClient,
    combo: &Combo,
    (handler, parent): (&str, &str),
    n: usize,
    opts: &Options,
) -> Result<Outcome, NotAvailable> {
    let containerd_idle = Mem::read(ctrd.pid() as i32).unwrap_or_default();
    let pods = Mutex::new(Vec::new());
    let sizes = pod_sizes(n);
    let began = Instant::now();
    let started = in_parallel(
        sizes.len(),
        opts.parallel,
        |i, _| run_pod(cri, (handler, parent), i, sizes[i], &pods),
        ctrd.dir(),
    );
    let start = began.elapsed();
    let running = containers(cri, Some(CONTAINER_RUNNING));
    let (shims, mem, containerd_busy) = memory_with_all_running(ctrd, combo.shim);
    let pods = pods.into_inner().unwrap_or_else(|p| p.into_inner());
    let began = Instant::now();
    let removed = in_parallel(
        pods.len(),
        opts.parallel,
        |i, _| {
            call(cri, "StopPodSandbox", Proto::new().string(1, &pods[i]))?;
            call(cri, "RemovePodSandbox", Proto::new().string(1, &pods[i])).map(|_| ())
        },
        ctrd.dir(),
    );
    let remove = began.elapsed();
    reap_orphans();
    let leftovers = leftovers(ctrd, cri, combo, parent);
    started?;
    if let Err(e) = removed {
        eprintln!("husk-bench: density-cri removal: {e}");
    }
    Ok(Outcome {
        start,
        running,
        shims,
        mem,
        containerd_idle,
        containerd_busy,
        remove,
        leftovers,
    })
}

/// Section 6b: for each N, both handlers (alternating which goes first), each in a fresh
/// private containerd with CRI.
pub fn bench_density_cri(opts: &Options, report: &mut Report) {
    let title = format!(
        "\n## 6b. density through CRI: N sleeping containers as pods of {POD_SIZE} (RunPodSandbox + \
         {POD_SIZE} × CreateContainer/StartContainer, {} pods in parallel, host network; one shim per pod), N = {:?}",
        opts.parallel, opts.n
    );
    sizes_side_by_side(opts, report, ("density-cri", &title), |j, n| pods_one(j, n, opts));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_fill_pods_of_five_and_the_rest_goes_last() {
        assert_eq!(pod_sizes(10), [5, 5]);
        assert_eq!(pod_sizes(12), [5, 5, 2]);
        assert_eq!(pod_sizes(3), [3]);
        assert_eq!(pod_sizes(500).len(), 100);
    }

    #[test]
    fn a_repeated_field_is_counted() {
        let list = Proto::new()
            .message(1, Proto::new().string(1, "a"))
            .message(1, Proto::new().string(1, "b"))
            .varint(2, 7)
            .into_bytes();
        assert_eq!(count_of(&list, 1), 2);
        assert_eq!(count_of(&list, 2), 0);
    }

    #[test]
    fn a_pod_shares_the_host_network_below_the_cgroup_parent() {
        let config = sandbox_config("bench-0", "/parent").into_bytes();
        let linux = bytes_field(&config, 8);
        assert_eq!(bytes_field(&linux, 1), b"/parent");
        let namespaces = bytes_field(&bytes_field(&linux, 2), 1);
        assert_eq!(husk_e2e::varint_field(&namespaces, 1), NAMESPACE_MODE_NODE);
    }
}
