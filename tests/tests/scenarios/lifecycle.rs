//! Create, start, exit, kill, delete, exec, pause: the task lifecycle.

use husk_e2e::output_text;

use super::{
    assert_clean, containerd_with_busybox, delete_and_check, kill_and_wait_stopped, run, run_ok, task_status, Via,
};
use husk_e2e::unique_id;

pub fn echo_prints_output(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("echo");
    assert_eq!(run_ok(&ctrd, via, &["--rm"], &id, &["echo", "hi"]), "hi\n");
    assert_clean(&ctrd, &id);
}

pub fn exit_status_reaches_ctr(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("exit");
    let out = run(&ctrd, via, &["--rm"], &id, &["sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "ctr run: {}\n{}",
        output_text(&out),
        ctrd.log_tail(40)
    );
    assert_clean(&ctrd, &id);
}

pub fn detached_task_is_killed_and_deleted(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("det");
    run_ok(&ctrd, via, &["-d"], &id, &["sleep", "1000"]);
    assert_eq!(task_status(&ctrd, &id), "RUNNING");
    let ps = ctrd.ctr_ok(&["tasks", "ps", &id]);
    assert_eq!(ps.lines().count(), 2, "one process expected: {ps}");
    kill_and_wait_stopped(&ctrd, &id);
    delete_and_check(&ctrd, &id, &[]);
}

pub fn exec_runs_in_running_task(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("exec");
    run_ok(&ctrd, via, &["-d"], &id, &["sleep", "1000"]);
    // The exec joins the task's pid namespace: it sees sleep as pid 1.
    let out = ctrd.ctr_ok(&["tasks", "exec", "--exec-id", "e1", &id, "cat", "/proc/1/cmdline"]);
    assert_eq!(out, "sleep\u{0}1000\u{0}");
    let failed = ctrd.ctr(&["tasks", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 3"]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "exec exit status: {}",
        output_text(&failed)
    );
    kill_and_wait_stopped(&ctrd, &id);
    delete_and_check(&ctrd, &id, &[]);
}

pub fn pause_and_resume(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("pause");
    run_ok(&ctrd, via, &["-d"], &id, &["sleep", "1000"]);
    ctrd.ctr_ok(&["tasks", "pause", &id]);
    assert_eq!(task_status(&ctrd, &id), "PAUSED");
    ctrd.ctr_ok(&["tasks", "resume", &id]);
    assert_eq!(task_status(&ctrd, &id), "RUNNING");
    // Deleting a running task with --force kills it first.
    delete_and_check(&ctrd, &id, &["--force"]);
}
