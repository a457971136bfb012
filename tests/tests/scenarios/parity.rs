//! containerd's Go shim behaviours the husk shim must match (issue 11): runtime options, the
//! shim's OOM score, kill-all when a host-pid init exits, metrics, logging, leftovers.

use std::time::Duration;

use husk_e2e::{cgroup_dirs, output_text, processes_mentioning, unique_id, wait_until};

use super::{
    assert_clean, containerd_with_busybox, delete_and_check, kill_and_wait_stopped, run, run_ok, task_status, Via,
};

/// `ctr run --no-pivot`: ctr sends `containerd.runc.v1.Options` to a runtime named
/// io.containerd.runc.*, and the legacy `containerd.linux.runc.CreateOptions` to any other
/// (the husk shim's): both must start the container without pivot_root.
pub fn no_pivot_option_is_honoured(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("nopivot");
    let out = run(&ctrd, via, &["--rm", "--no-pivot"], &id, &["echo", "hi"]);
    assert!(
        out.status.success(),
        "ctr run --no-pivot: {}\n{}",
        output_text(&out),
        ctrd.log_tail(30)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_clean(&ctrd, &id);
}

/// The PID column of `ctr tasks ls` for `id`.
fn task_pid(ctrd: &husk_e2e::Containerd, id: &str) -> u32 {
    let list = ctrd.ctr_ok(&["tasks", "ls"]);
    list.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(1)?.parse().ok())?
        })
        .next()
        .unwrap_or_else(|| panic!("no pid for {id} in {list}"))
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn oom_score_adj(pid: u32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The shim (the task's parent: it is the subreaper) runs at containerd's oom_score_adj + 1,
/// so the OOM killer picks it before containerd; the container gets only what its spec says.
pub fn shim_oom_score_is_one_above_containerd(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("oomscore");
    run_ok(&ctrd, via, &["-d"], &id, &["sleep", "1000"]);
    let task = task_pid(&ctrd, &id);
    let shim = parent_of(task);
    let containerd = oom_score_adj(ctrd.pid());
    // The footprint, for the record (docs/shim.md): threads and RSS of the idle shim.
    let status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap_or_default();
    let footprint: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("Threads:") || l.starts_with("VmRSS:"))
        .collect();
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{shim}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .collect()
        })
        .unwrap_or_default();
    eprintln!("shim {shim}: {footprint:?} {threads:?}");
    assert_eq!(oom_score_adj(shim), (containerd + 1).min(1000), "shim {shim}");
    // ctr's spec sets no oomScoreAdj: the init inherits the shim's, on both shims.
    assert_eq!(oom_score_adj(task), oom_score_adj(shim), "init {task}");
    kill_and_wait_stopped(&ctrd, &id);
    delete_and_check(&ctrd, &id, &[]);
}

/// An init in the host's pid namespace leaves its children behind when it exits (no pid
/// namespace dies with it): the shim kills every process left in the container's cgroup.
pub fn host_pid_init_exit_kills_the_rest(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("hostpid");
    let script = "sleep 1000 & sleep 1000 & sleep 1; exit 0";
    // The test's own pid namespace (the host's; /proc/1/ns is not readable in this sandbox).
    let host_pid = format!("pid:/proc/{}/ns/pid", std::process::id());
    run_ok(&ctrd, via, &["-d", "--with-ns", &host_pid], &id, &["sh", "-c", script]);
    let stopped = wait_until(Duration::from_secs(15), || task_status(&ctrd, &id) == "STOPPED");
    assert!(stopped, "init did not exit: {}", ctrd.ctr_ok(&["tasks", "ls"]));
    let cgroup = format!("/{}/{id}", ctrd.namespace());
    let procs = |dirs: &[std::path::PathBuf]| -> Vec<String> {
        dirs.iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let dirs = cgroup_dirs(&cgroup);
    let emptied = wait_until(Duration::from_secs(20), || procs(&dirs).is_empty());
    let left = procs(&dirs);
    for pid in &left {
        // Clean up before failing: these are our sleeps.
        let _ = std::process::Command::new("kill").args(["-9", pid]).status();
    }
    assert!(emptied, "processes left in {cgroup} after the init exited: {left:?}");
    delete_and_check(&ctrd, &id, &[]);
}

/// The metric names `ctr tasks metrics --format json` prints (zero values are omitted by Go's
/// json, so only names that have a value count), as "path.to.leaf" without list indexes.
#[allow(dead_code)] // husk_shim.rs only
pub fn metric_names(json: &str) -> std::collections::BTreeSet<String> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{path}.{k}"), out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, path, out)),
            _ => {
                out.insert(path.to_string());
            }
        }
    }
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("metrics json {e}: {json}"));
    let mut names = std::collections::BTreeSet::new();
    walk(&value, "", &mut names);
    names
}

/// The metric names of a running busybox task, and `ctr tasks metrics` still answers (last
/// values of the cgroup) once the task has stopped and before it is deleted.
#[allow(dead_code)] // husk_shim.rs only
pub fn metrics_of(ctrd: &husk_e2e::Containerd, via: &Via, id: &str) -> std::collections::BTreeSet<String> {
    // Every counter the shims report must be non-zero in both containers, or the json (which
    // drops zeros) lacks it in one: page cache and block I/O of its own (the image's files are
    // charged to whichever container read them first; fsync puts the writes in this cgroup's
    // blkio counters), and enough user and system time for a clock tick each.
    let workload = "dd if=/dev/zero of=/tmp/metrics-cache bs=64k count=64 conv=fsync 2>/dev/null; \
                    x=$(seq 1 300000); sleep 1000";
    run_ok(ctrd, via, &["-d"], id, &["sh", "-c", workload]);
    let metrics = || ctrd.ctr_ok(&["tasks", "metrics", "--format", "json", id]);
    // v1 names; give a loaded machine time to run the workload.
    let settled = |json: &str| {
        ["\"cache\"", "io_service_bytes_recursive", "\"user\""]
            .iter()
            .all(|name| json.contains(name))
    };
    let mut json = metrics();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !settled(&json) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        json = metrics();
    }
    let values = json.matches(':').count() - json.matches(": {").count() - json.matches(": [").count();
    eprintln!("{id}: {values} metric values");
    let names = metric_names(&json);
    kill_and_wait_stopped(ctrd, id);
    let stopped = ctrd.ctr(&["tasks", "metrics", "--format", "json", id]);
    assert!(
        stopped.status.success(),
        "metrics of a stopped task: {}\n{}",
        output_text(&stopped),
        ctrd.log_tail(20)
    );
    assert!(
        !ctrd.log().contains("failed to read cgroup of init"),
        "{}",
        ctrd.log_tail(20)
    );
    delete_and_check(ctrd, id, &[]);
    names
}

/// A runtime error reaches both the client (the RPC error) and containerd's log, through the
/// `log` fifo containerd opens for each shim. husk shim only: the Go shim (1.6.20) returns runc's
/// error to the client but does not log it itself, so there is no control line to compare.
#[allow(dead_code)] // husk_shim.rs only
pub fn runtime_error_reaches_containerd_log(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("logerr");
    let out = run(&ctrd, via, &["--rm"], &id, &["/no/such/binary"]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("/no/such/binary"),
        "client error: {}",
        output_text(&out)
    );
    let logged = wait_until(Duration::from_secs(20), || {
        ctrd.log()
            .lines()
            .any(|l| l.contains("level=error") && l.contains("/no/such/binary") && !l.contains("ctr"))
    });
    assert!(logged, "runtime error not in containerd's log:\n{}", ctrd.log_tail(40));
    let _ = ctrd.ctr(&["containers", "delete", &id]);
    assert_clean(&ctrd, &id);
}

/// A client killed while attached to a running task (ctr gone), then its shim killed too:
/// containerd's cleanup (`shim delete`) and a task delete leave no shim, mount, cgroup or state.
pub fn killed_client_and_shim_leave_nothing(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("orphan");
    let _fifos = husk_e2e::ClientFifos(id.clone());
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(via.runtime_args());
    args.extend([husk_e2e::BUSYBOX_REF.into(), id.clone(), "sleep".into(), "1000".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = ctrd
        .ctr_command(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = wait_until(Duration::from_secs(20), || task_status(&ctrd, &id) == "RUNNING");
    let _ = client.kill();
    let _ = client.wait();
    assert!(running, "task never ran: {}", ctrd.log_tail(30));
    let shim = parent_of(task_pid(&ctrd, &id));
    let socket = shim_socket(&ctrd, &id);
    let _ = std::process::Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status();
    let stopped = wait_until(Duration::from_secs(15), || task_status(&ctrd, &id) != "RUNNING");
    assert!(stopped, "task still RUNNING after its shim died: {}", ctrd.log_tail(30));
    let _ = ctrd.ctr(&["tasks", "delete", "--force", &id]);
    ctrd.ctr_ok(&["containers", "delete", &id]);
    // containerd runs `shim delete` in the background after a shim dies: give it time to end.
    let gone = wait_until(Duration::from_secs(10), || processes_mentioning(&id).is_empty());
    assert!(gone, "{:?}", processes_mentioning(&id));
    assert_clean(&ctrd, &id);
    // The dead shim's socket: the husk shim's `shim delete` removes it. containerd's Go shim
    // (1.6.20) does not (its Cleanup only force-deletes and unmounts; the socket is removed
    // only by a shim that exits normally), and containerd does not either: the test removes
    // it, or every run would leave one in /run/containerd/s.
    let socket_left = socket.exists();
    eprintln!("shim socket {} left after shim delete: {socket_left}", socket.display());
    if !matches!(via, Via::HuskShim) {
        let _ = std::fs::remove_file(&socket);
    }
    assert!(
        !socket_left || !matches!(via, Via::HuskShim),
        "shim socket {} left behind",
        socket.display()
    );
}

/// The shim's socket path, from the `address` file containerd keeps in the task's bundle.
pub(crate) fn shim_socket(ctrd: &husk_e2e::Containerd, id: &str) -> std::path::PathBuf {
    let bundle = ctrd
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(ctrd.namespace())
        .join(id);
    let address = std::fs::read_to_string(bundle.join("address")).expect("shim address file");
    std::path::PathBuf::from(address.trim().trim_start_matches("unix://"))
}
