//! `husk exec`: a new process in a running container's namespaces, cgroup, rootfs and
//! security settings; flags and process.json; refusals.

mod runtime_support;

use husk_e2e::{output_text, Bundle, Runtime};
use runtime_support::*;
use serde_json::json;

/// A started `sleep 100` container.
fn running(rt: &Runtime) -> (Bundle, i32) {
    let bundle = Bundle::new(&["sleep", "100"]);
    let pid = create_ok(rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    (bundle, pid)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container() {
    let rt = Runtime::husk();
    let (bundle, init) = running(&rt);
    let pid_file = bundle.path().join("exec.pid");
    rt.run_ok(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        bundle.id(),
        "sleep",
        "50",
    ]);
    let pid = std::fs::read_to_string(&pid_file).expect("exec pid file");
    for link in ["pid", "net", "mnt", "uts", "ipc"] {
        assert_eq!(ns_link(&init.to_string(), link), ns_link(&pid, link), "{link}");
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!(":memory:{}", bundle.cgroups_path());
    assert!(cgroup.lines().any(|l| l.ends_with(&want)), "{cgroup}");
    let ps: serde_json::Value = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", bundle.id()])).unwrap();
    assert!(
        ps.as_array().unwrap().contains(&pid.parse::<i64>().unwrap().into()),
        "{ps}"
    );
}

#[test]
fn exec_sees_the_container_and_returns_the_exit_code() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    let out = rt.run(&[
        "exec",
        bundle.id(),
        "sh",
        "-c",
        "hostname; echo $$; ls / | head -1; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
    assert_eq!(lines[0], "husk");
    assert_ne!(lines[1], "1", "the exec'd process is not the init");
    assert_eq!(lines[2], "bin", "the container's rootfs");
}

#[test]
fn exec_flags_set_cwd_env_and_user() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    let out = rt.run_ok(&[
        "exec",
        "--cwd",
        "/tmp",
        "--env",
        "FOO=bar",
        "--user",
        "1000:1001",
        bundle.id(),
        "sh",
        "-c",
        "pwd; echo $FOO; id -u; id -g; echo $PATH",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["/tmp", "bar", "1000", "1001"], "{out}");
    assert!(lines[4].contains("/bin"), "the config's env is kept: {out}");
}

#[test]
fn exec_with_a_process_json() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    let process = bundle.path().join("process.json");
    let mut spec_process = bundle.config()["process"].clone();
    spec_process["args"] = json!(["sh", "-c", "echo $MODE; cat /proc/self/status | grep NoNewPrivs"]);
    spec_process["env"] = json!(["PATH=/bin", "MODE=from-json"]);
    std::fs::write(&process, spec_process.to_string()).unwrap();
    let out = rt.run_ok(&["exec", "--process", process.to_str().unwrap(), bundle.id()]);
    assert_eq!(out, "from-json\nNoNewPrivs:\t1\n");
}

#[test]
fn exec_keeps_the_containers_capability_bounds() {
    let rt = Runtime::husk();
    let (bundle, init) = running(&rt);
    let out = rt.run_ok(&["exec", bundle.id(), "grep", "CapBnd", "/proc/self/status"]);
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let init_bnd = status.lines().find(|l| l.starts_with("CapBnd")).unwrap();
    assert_eq!(out.trim(), init_bnd);
}

#[test]
fn exec_of_a_missing_program_fails_clearly_and_leaves_no_process() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    let out = rt.run(&["exec", bundle.id(), "/no/such/program"]);
    assert_one_line_error(&out, "/no/such/program");
    let ps: serde_json::Value = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", bundle.id()])).unwrap();
    assert_eq!(ps.as_array().unwrap().len(), 1, "only the init is left: {ps}");
}

#[test]
fn exec_into_a_stopped_or_paused_container_is_refused() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    rt.run_ok(&["pause", bundle.id()]);
    let out = rt.run(&["exec", bundle.id(), "true"]);
    assert_one_line_error(&out, "paused");
    rt.run_ok(&["resume", bundle.id()]);
    rt.run_ok(&["kill", bundle.id(), "KILL"]);
    wait_status(&rt, bundle.id(), "stopped");
    let out = rt.run(&["exec", bundle.id(), "true"]);
    assert_one_line_error(&out, "stopped");
    let out = rt.run(&["exec", "ghost", "true"]);
    assert_one_line_error(&out, "does not exist");
}

#[test]
fn a_foreground_exec_does_not_block_other_commands() {
    let rt = Runtime::husk();
    let (bundle, _) = running(&rt);
    let mut child = rt
        .command(&["exec", bundle.id(), "sleep", "30"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"));
    rt.run_ok(&["delete", "--force", bundle.id()]);
    let done = husk_e2e::wait_until(std::time::Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !done {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(done, "exec did not return after its container was deleted");
    assert_nothing_left(&rt, bundle.id(), &bundle);
}
