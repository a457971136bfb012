//! containerd's own Go shim (containerd-shim-runc-v2) driving a runc-compatible binary:
//! the runc CLI contract husk must honour. Each check runs twice: against husk, and
//! against Debian's runc as the control that proves the test itself is right.

use std::path::Path;
use std::time::Duration;

use husk_e2e::{
    assert_no_leftovers, husk_bin, output_text, unique_id, wait_until, Containerd, BUSYBOX_REF,
};

const RUNC: &str = "/usr/sbin/runc";
const GO_SHIM: &str = "io.containerd.runc.v2";

/// A private containerd with busybox imported into its namespace.
fn containerd_with_busybox() -> Containerd {
    let mut ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    ctrd
}

fn run_args<'a>(binary: &'a str, extra: &[&'a str], id: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--runtime", GO_SHIM, "--runc-binary", binary];
    args.extend_from_slice(extra);
    args.push(BUSYBOX_REF);
    args.push(id);
    args.extend_from_slice(cmd);
    args
}

fn assert_clean(ctrd: &Containerd, id: &str) {
    assert_eq!(
        ctrd.ctr_ok(&["containers", "ls", "-q"]),
        "",
        "containers left"
    );
    assert_no_leftovers(id, &ctrd.state(), &format!("/{}/{id}", ctrd.namespace()));
}

fn echo_prints_output(binary: &Path) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("echo");
    let bin = binary.to_string_lossy();
    let out = ctrd.ctr_ok(&run_args(&bin, &["--rm"], &id, &["echo", "hi"]));
    assert_eq!(out, "hi\n");
    assert_clean(&ctrd, &id);
}

fn exit_status_reaches_ctr(binary: &Path) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("exit");
    let bin = binary.to_string_lossy();
    let out = ctrd.ctr(&run_args(&bin, &["--rm"], &id, &["sh", "-c", "exit 7"]));
    assert_eq!(
        out.status.code(),
        Some(7),
        "ctr run: {}\n{}",
        output_text(&out),
        ctrd.log_tail(40)
    );
    assert_clean(&ctrd, &id);
}

fn task_status(ctrd: &Containerd, id: &str) -> String {
    // `ctr tasks ls`: "TASK  PID  STATUS" columns.
    let list = ctrd.ctr_ok(&["tasks", "ls"]);
    list.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
        .next()
        .unwrap_or_default()
}

fn detached_task_is_killed_and_deleted(binary: &Path) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("det");
    let bin = binary.to_string_lossy();
    ctrd.ctr_ok(&run_args(&bin, &["-d"], &id, &["sleep", "1000"]));
    assert_eq!(task_status(&ctrd, &id), "RUNNING");
    let ps = ctrd.ctr_ok(&["tasks", "ps", &id]);
    assert_eq!(ps.lines().count(), 2, "one process expected: {ps}");

    // sleep is pid 1 in its namespace and ignores SIGTERM (no handler): SIGKILL it.
    ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &id]);
    let stopped = wait_until(Duration::from_secs(10), || {
        task_status(&ctrd, &id) == "STOPPED"
    });
    assert!(
        stopped,
        "task not STOPPED after SIGKILL: {}\n{}",
        ctrd.ctr_ok(&["tasks", "ls"]),
        ctrd.log_tail(40)
    );
    ctrd.ctr_ok(&["tasks", "delete", &id]);
    ctrd.ctr_ok(&["containers", "delete", &id]);
    assert_clean(&ctrd, &id);
}

fn exec_runs_in_running_task(binary: &Path) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("exec");
    let bin = binary.to_string_lossy();
    ctrd.ctr_ok(&run_args(&bin, &["-d"], &id, &["sleep", "1000"]));
    // The exec joins the task's pid namespace: it sees sleep as pid 1.
    let out = ctrd.ctr_ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "cat",
        "/proc/1/cmdline",
    ]);
    assert_eq!(out, "sleep\u{0}1000\u{0}");
    let failed = ctrd.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e2",
        &id,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "exec exit status: {}",
        output_text(&failed)
    );
    ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &id]);
    assert!(wait_until(Duration::from_secs(10), || task_status(
        &ctrd, &id
    ) == "STOPPED"));
    ctrd.ctr_ok(&["tasks", "delete", &id]);
    ctrd.ctr_ok(&["containers", "delete", &id]);
    assert_clean(&ctrd, &id);
}

fn pause_and_resume(binary: &Path) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("pause");
    let bin = binary.to_string_lossy();
    ctrd.ctr_ok(&run_args(&bin, &["-d"], &id, &["sleep", "1000"]));
    ctrd.ctr_ok(&["tasks", "pause", &id]);
    assert_eq!(task_status(&ctrd, &id), "PAUSED");
    ctrd.ctr_ok(&["tasks", "resume", &id]);
    assert_eq!(task_status(&ctrd, &id), "RUNNING");
    // Deleting a running task with --force kills it first.
    ctrd.ctr_ok(&["tasks", "delete", "--force", &id]);
    ctrd.ctr_ok(&["containers", "delete", &id]);
    assert_clean(&ctrd, &id);
}

#[test]
fn runc_control_echo_prints_output() {
    echo_prints_output(Path::new(RUNC));
}

#[test]
fn runc_control_exit_status_reaches_ctr() {
    exit_status_reaches_ctr(Path::new(RUNC));
}

#[test]
fn runc_control_detached_task_is_killed_and_deleted() {
    detached_task_is_killed_and_deleted(Path::new(RUNC));
}

#[test]
fn husk_under_go_shim_echo_prints_output() {
    echo_prints_output(&husk_bin());
}

#[test]
fn husk_under_go_shim_exit_status_reaches_ctr() {
    exit_status_reaches_ctr(&husk_bin());
}

#[test]
fn husk_under_go_shim_detached_task_is_killed_and_deleted() {
    detached_task_is_killed_and_deleted(&husk_bin());
}

#[test]
fn runc_control_exec_runs_in_running_task() {
    exec_runs_in_running_task(Path::new(RUNC));
}

#[test]
fn runc_control_pause_and_resume() {
    pause_and_resume(Path::new(RUNC));
}

#[test]
fn husk_under_go_shim_exec_runs_in_running_task() {
    exec_runs_in_running_task(&husk_bin());
}

#[test]
fn husk_under_go_shim_pause_and_resume() {
    pause_and_resume(&husk_bin());
}
