//! husk's commands end to end, as root on the real kernel: create/start/state/kill/delete,
//! run (foreground and detached), list, spec, the pid file, the json log, and concurrency.
//! Each case runs on husk and on runc 1.1.5, the control, and asserts the same result.

mod runtime_support;

use std::process::Stdio;
use std::time::Duration;

use husk_e2e::{assert_no_cgroup, output_text, wait_until, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::Value;

#[test]
fn create_start_kill_delete_walk_through_every_state() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["annotations"] = serde_json::json!({ "org.example/key": "v1" });
        bundle.save();
        let id = bundle.id();
        let pid_file = bundle.path().join("init.pid");
        let path = bundle.path().to_str().unwrap();
        rt.run_ok(&["create", "--bundle", path, "--pid-file", pid_file.to_str().unwrap(), id]);

        let state = rt.state(id).expect("state after create");
        assert_eq!(state_keys(&state), STATE_KEYS, "{name}: {state}");
        assert_eq!(state["status"], "created", "{name}: {state}");
        assert_eq!(state["id"], id, "{name}");
        assert_eq!(state["bundle"], path, "{name}");
        assert_eq!(state["rootfs"], bundle.rootfs().to_str().unwrap(), "{name}");
        assert_eq!(state["annotations"], bundle.config()["annotations"], "{name}");
        assert!(state["ociVersion"].is_string(), "{name}: {state}");
        let created = state["created"].as_str().unwrap_or_default();
        assert!(
            created.ends_with('Z') && created.contains('T'),
            "{name}: created {created:?}"
        );
        let pid = state["pid"].as_i64().unwrap();
        assert!(pid > 0, "{name}: {state}");
        let written = std::fs::read_to_string(&pid_file).expect("pid file");
        assert_eq!(
            written,
            pid.to_string(),
            "{name}: the pid file holds the pid, no newline"
        );
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{name}: init is alive"
        );

        rt.run_ok(&["start", id]);
        assert_eq!(status_of(&rt, id).as_deref(), Some("running"), "{name}");
        // start returns once the init is released from exec.fifo, before its execve (runc 1.1.5
        // showed comm "runc:[2:INIT]" right after start): wait for the exec.
        let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let execd = wait_until(Duration::from_secs(10), || comm().trim() == "sleep");
        assert!(execd, "{name}: the init never exec'd the process: comm {:?}", comm());

        rt.run_ok(&["kill", id, "KILL"]);
        wait_status(&rt, id, "stopped");
        assert_eq!(rt.state(id).unwrap()["pid"], 0, "{name}: a stopped container has pid 0");

        rt.run_ok(&["delete", id]);
        assert!(rt.state(id).is_none(), "{name}: state after delete must fail");
        assert!(rt.container_ids().is_empty(), "{name}: {:?}", rt.container_ids());
        assert_no_cgroup(&bundle.cgroups_path());
    }
}

#[test]
fn start_twice_is_refused() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let out = rt.run(&["start", bundle.id()]);
        assert_refused(&rt, &out, "running");
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{}", rt.name());
    }
}

#[test]
fn delete_of_a_running_container_needs_force() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        let pid = create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let out = rt.run(&["delete", bundle.id()]);
        assert_refused(&rt, &out, "running");
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{}", rt.name());
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert!(zombie_or_gone(pid), "{}: the init outlived delete --force", rt.name());
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// The fields of `state` that go-runc's State and containerd read, and the rest runc 1.1.5
/// prints. Values differ deliberately in two: ociVersion (runc names the spec it was built with,
/// "1.0.2-dev") and owner, which runc's `state` leaves "" (only its `list` fills it).
const STATE_KEYS: [&str; 9] = [
    "annotations",
    "bundle",
    "created",
    "id",
    "ociVersion",
    "owner",
    "pid",
    "rootfs",
    "status",
];

fn state_keys(state: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = state
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

fn zombie_or_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(true)
}

#[test]
fn created_container_is_deleted_without_force() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["delete", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn run_returns_the_exit_code_of_the_process() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sh_bundle("echo out; echo err >&2; exit 7");
        let out = run_fg(&rt, &bundle);
        assert_eq!(out.status.code(), Some(7), "{name}: {}", output_text(&out));
        assert_eq!(stdout_of(&out), "out\n", "{name}");
        assert_eq!(stderr_of(&out), "err\n", "{name}");
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// A foreground `run` as a child process, returned once the container is running.
fn spawn_run(rt: &Runtime, bundle: &Bundle) -> std::process::Child {
    let path = bundle.path().to_str().unwrap();
    let child = rt
        .command(&["run", "--bundle", path, bundle.id()])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn run");
    wait_status(rt, bundle.id(), "running");
    child
}

/// The exit status of `child` within 10 s (killed and panicking otherwise).
fn exit_of(mut child: std::process::Child, what: &str) -> std::process::ExitStatus {
    let exited = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    assert!(exited, "run did not return after {what}");
    status
}

#[test]
fn run_of_a_process_killed_by_sigkill_exits_137() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        let child = spawn_run(&rt, &bundle);
        rt.run_ok(&["kill", bundle.id(), "SIGKILL"]);
        assert_eq!(exit_of(child, "the kill").code(), Some(137), "{}", rt.name());
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn run_forwards_sigterm_to_the_container() {
    for rt in Runtime::husk_and_runc() {
        // pid 1 ignores signals it has no handler for: trap one.
        let bundle = sh_bundle("trap 'exit 42' TERM; while true; do sleep 0.05; done");
        let child = spawn_run(&rt, &bundle);
        std::thread::sleep(Duration::from_millis(100)); // let sh install the trap
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(exit_of(child, "SIGTERM").code(), Some(42), "{}", rt.name());
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn run_detach_leaves_a_running_container() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = Bundle::new(&["sleep", "100"]);
        let path = bundle.path().to_str().unwrap();
        let out = rt.run(&["run", "--detach", "--bundle", path, bundle.id()]);
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{name}");
        let pid = init_pid(&rt, bundle.id());
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "{name}");
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn list_shows_table_json_and_quiet() {
    for rt in Runtime::husk_and_runc() {
        list_shows_table_json_and_quiet_on(&rt);
    }
}

fn list_shows_table_json_and_quiet_on(rt: &Runtime) {
    let name = rt.name();
    assert_eq!(rt.run_ok(&["list", "-q"]), "", "{name}: an empty root lists nothing");
    let a = Bundle::new(&["sleep", "100"]);
    let b = Bundle::new(&["sleep", "100"]);
    let pid_a = create_ok(rt, &a);
    create_ok(rt, &b);
    rt.run_ok(&["start", b.id()]);

    let mut ids = vec![a.id().to_string(), b.id().to_string()];
    ids.sort();
    let quiet: Vec<String> = rt.run_ok(&["list", "-q"]).lines().map(String::from).collect();
    assert_eq!(quiet, ids, "{name}");

    let json: Value = serde_json::from_str(&rt.run_ok(&["list", "--format", "json"])).unwrap();
    let entries = json.as_array().expect("list --format json is an array");
    assert_eq!(entries.len(), 2, "{name}: {json}");
    let entry_a = entries.iter().find(|e| e["id"] == a.id()).expect("a is listed");
    assert_eq!(entry_a["status"], "created", "{name}");
    assert_eq!(entry_a["pid"], pid_a, "{name}");
    let entry_b = entries.iter().find(|e| e["id"] == b.id()).expect("b is listed");
    assert_eq!(entry_b["status"], "running", "{name}");

    let table = rt.run_ok(&["list"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], "{name}");
    let row_a = lines.clone().find(|l| l.starts_with(a.id())).expect("row for a");
    let cells: Vec<&str> = row_a.split_whitespace().collect();
    assert_eq!(cells[1], pid_a.to_string(), "{name}");
    assert_eq!(cells[2], "created", "{name}");
    assert_eq!(cells[3], a.path().to_str().unwrap(), "{name}");
    assert_eq!(lines.count(), 2, "{name}: {table}");
    for bundle in [&a, &b] {
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(rt, bundle.id(), bundle);
    }
}

#[test]
fn spec_writes_a_config_the_runtime_accepts_and_refuses_to_overwrite() {
    for rt in Runtime::husk_and_runc() {
        spec_writes_a_config_the_runtime_accepts_on(&rt);
    }
}

fn spec_writes_a_config_the_runtime_accepts_on(rt: &Runtime) {
    let name = rt.name();
    let dir = TempDir::new("spec");
    rt.run_ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).expect("spec wrote config.json");
    let mut spec: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(spec["ociVersion"].is_string(), "{name}: {spec}");
    assert_eq!(spec["root"]["path"], "rootfs", "{name}");
    assert!(
        spec["process"]["args"].as_array().is_some_and(|a| !a.is_empty()),
        "{name}"
    );
    assert!(!spec["mounts"].as_array().unwrap().is_empty(), "{name}");

    let again = rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert_refused(rt, &again, "exists");
    let kept = std::fs::read_to_string(&path).unwrap();
    assert_eq!(kept, text, "{name}: a refused spec leaves the file alone");

    // The written spec runs, once it no longer asks for a terminal.
    husk_e2e::busybox_rootfs(&dir.join("rootfs")).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["true"]);
    let id = husk_e2e::unique_id("spec");
    let cgroup = format!("/husk-test/{id}");
    spec["linux"]["cgroupsPath"] = cgroup.clone().into();
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = rt.run(&["run", "--bundle", dir.path().to_str().unwrap(), &id]);
    husk_e2e::remove_cgroup(&cgroup);
    assert!(out.status.success(), "{name}: {}", output_text(&out));
}

#[test]
fn log_json_gets_an_error_line_on_failure() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let dir = TempDir::new("log");
        let log = dir.join("runtime.log");
        let log_path = log.to_str().unwrap();
        let out = rt.run(&["--log", log_path, "--log-format", "json", "state", "no-such-container"]);
        assert_refused(&rt, &out, "does not exist");
        let text = std::fs::read_to_string(&log).expect("log file written");
        let line: Value = serde_json::from_str(text.lines().last().expect("a log line"))
            .unwrap_or_else(|e| panic!("{name}: log line is not JSON ({e}): {text}"));
        assert_eq!(line["level"], "error", "{name}: {line}");
        let msg = line["msg"].as_str().expect("msg is a string");
        assert!(msg.contains("does not exist"), "{name}: {msg}");
        assert!(line["time"].is_string(), "{name}: {line}");
        // husk names the container; runc 1.1.5 says only "container does not exist".
        if name == "husk" {
            assert!(msg.contains("no-such-container"), "{name}: {msg}");
        }
    }
}

#[test]
fn a_created_container_whose_init_died_is_stopped_and_cannot_start() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["kill", bundle.id(), "9"]);
        wait_status(&rt, bundle.id(), "stopped");
        let out = rt.run(&["start", bundle.id()]);
        assert_refused(&rt, &out, "stopped");
        let out = rt.run(&["kill", bundle.id(), "KILL"]);
        // runc 1.1.5 says "container not running"; husk names the state, "... is stopped".
        assert!(
            !out.status.success(),
            "{name}: kill of a stopped container: {}",
            output_text(&out)
        );
        if name == "husk" {
            assert_one_line_error(&out, "stopped");
        }
        rt.run_ok(&["delete", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// A SIGKILL to a paused container stops it, with or without --all: runc 1.1.5 thaws the
/// cgroup after the kill (libcontainer/container_linux.go, Signal), since on cgroup v1 a frozen
/// task dies only once thawed. husk sent the signal and left the container paused for good.
#[test]
fn sigkill_to_a_paused_container_stops_it() {
    for rt in Runtime::husk_and_runc() {
        for kill in [vec!["kill"], vec!["kill", "--all"]] {
            let bundle = Bundle::new(&["sleep", "100"]);
            create_ok(&rt, &bundle);
            rt.run_ok(&["start", bundle.id()]);
            rt.run_ok(&["pause", bundle.id()]);
            assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("paused"), "{}", rt.name());
            let mut args = kill.clone();
            args.extend([bundle.id(), "KILL"]);
            rt.run_ok(&args);
            wait_status(&rt, bundle.id(), "stopped");
            rt.run_ok(&["delete", bundle.id()]);
            assert_nothing_left(&rt, bundle.id(), &bundle);
        }
    }
}

/// runc's init waits for `start` as a Go program, which dies on SIGTERM, SIGHUP and SIGINT
/// but ignores SIGUSR1: `kill <created> TERM` stops the container (`docker stop` of a container
/// never started need not wait for its SIGKILL). husk's init, pid 1 of its namespace without
/// handlers, never received them and stayed "created".
#[test]
fn a_terminating_signal_stops_a_created_container() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        for signal in ["TERM", "HUP", "INT"] {
            let bundle = Bundle::new(&["sleep", "100"]);
            create_ok(&rt, &bundle);
            rt.run_ok(&["kill", bundle.id(), signal]);
            wait_status(&rt, bundle.id(), "stopped");
            rt.run_ok(&["delete", bundle.id()]);
            assert_nothing_left(&rt, bundle.id(), &bundle);
        }
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["kill", bundle.id(), "USR1"]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("created"), "{name}: USR1");
        rt.run_ok(&["start", bundle.id()]);
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{name}");
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn a_process_that_exits_by_itself_leaves_a_stopped_container() {
    for rt in Runtime::husk_and_runc() {
        let bundle = sh_bundle("exit 0");
        let path = bundle.path().to_str().unwrap();
        rt.run_ok(&["run", "-d", "--bundle", path, bundle.id()]);
        wait_status(&rt, bundle.id(), "stopped");
        rt.run_ok(&["delete", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// Without a pid namespace the init's children outlive it in the cgroup: `ps` of the stopped
/// container lists them (runc 1.1's ps.go reads the cgroup whatever the status; husk printed
/// nothing for a stopped container), and `delete` kills them with the cgroup.
#[test]
fn ps_of_a_stopped_container_lists_what_its_init_left_behind() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let mut bundle = sh_bundle("sleep 1000 & sleep 0.2; exit 0");
        let namespaces = bundle.config_mut()["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "pid");
        bundle.save();
        let path = bundle.path().to_str().unwrap();
        rt.run_ok(&["run", "-d", "--bundle", path, bundle.id()]);
        wait_status(&rt, bundle.id(), "stopped");
        let ps: Value = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", bundle.id()])).unwrap();
        let pids: Vec<i64> = ps.as_array().unwrap().iter().filter_map(Value::as_i64).collect();
        assert_eq!(pids.len(), 1, "{name}: {ps}");
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap_or_default();
        assert_eq!(comm.trim(), "sleep", "{name}: {ps}");
        rt.run_ok(&["delete", bundle.id()]);
        assert!(zombie_or_gone(pids[0] as i32), "{name}: delete left the sleep running");
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn kill_accepts_numbers_and_realtime_names() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        // Traps make the signals deliverable to pid 1; SIGRTMIN is 34 with glibc (as in runc).
        let bundle = sh_bundle(
            "trap 'echo usr1 >> /dev/shm/log' USR1; trap 'echo rt3 >> /dev/shm/log' 37; \
             trap 'exit 5' TERM; while true; do sleep 0.05; done",
        );
        let pid = create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        std::thread::sleep(Duration::from_millis(200));
        let log = format!("/proc/{pid}/root/dev/shm/log");
        rt.run_ok(&["kill", bundle.id(), "10"]);
        let got = |want: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.ends_with(want));
        assert!(
            wait_until(Duration::from_secs(20), || got("usr1\n")),
            "{name}: USR1 by number"
        );
        // husk takes realtime names; runc 1.1.5 (kill.go, unix.SignalNum) knows only the
        // classic names and says `unknown signal "SIGRTMIN+3"`: it gets the number.
        let rt3 = if name == "husk" { "SIGRTMIN+3" } else { "37" };
        rt.run_ok(&["kill", bundle.id(), rt3]);
        assert!(
            wait_until(Duration::from_secs(20), || got("rt3\n")),
            "{name}: RTMIN+3 as {rt3}"
        );
        rt.run_ok(&["kill", bundle.id(), "term"]);
        wait_status(&rt, bundle.id(), "stopped");
        rt.run_ok(&["delete", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn preserve_fds_passes_extra_fds_to_the_process() {
    for rt in Runtime::husk_and_runc() {
        let out = run_with_fd_3(&rt, "echo through-fd-3 >&3");
        assert_eq!(out, "through-fd-3\n", "{}", rt.name());
    }
}

/// `run --preserve-fds 1` of `sh -c script` with a pipe's write end as fd 3: what the
/// container wrote to it.
fn run_with_fd_3(rt: &Runtime, script: &str) -> String {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let bundle = sh_bundle(script);
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds we own.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let path = bundle.path().to_str().unwrap();
    let mut cmd = rt.command(&["run", "--preserve-fds", "1", "--bundle", path, bundle.id()]);
    let raw = write_end.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; fd 3 in the child is the pipe's write end (no CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = husk_e2e::run_with_timeout(&mut cmd, Duration::from_secs(30));
    drop(write_end);
    assert!(out.status.success(), "{}: {}", rt.name(), output_text(&out));
    let mut got = String::new();
    std::fs::File::from(read_end).read_to_string(&mut got).unwrap();
    assert_nothing_left(rt, bundle.id(), &bundle);
    got
}

#[test]
fn no_pivot_runs_the_container_too() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sh_bundle("ls / | tr '\\n' ' '");
        let path = bundle.path().to_str().unwrap();
        let out = rt.run(&["run", "--no-pivot", "--bundle", path, bundle.id()]);
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        assert!(
            stdout_of(&out).starts_with("bin dev etc "),
            "{name}: {}",
            stdout_of(&out)
        );
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn features_is_json_naming_what_the_runtime_supports() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let features: Value = serde_json::from_str(&rt.run_ok(&["features"])).unwrap();
        let hooks = features["hooks"].as_array().unwrap();
        assert!(
            hooks.contains(&"prestart".into()) && hooks.contains(&"poststop".into()),
            "{name}"
        );
        let namespaces = features["linux"]["namespaces"].as_array().unwrap();
        assert!(namespaces.contains(&"network".into()), "{name}");
        assert!(
            features["mountOptions"].as_array().unwrap().contains(&"rbind".into()),
            "{name}"
        );
    }
}

#[test]
fn the_bundle_defaults_to_the_current_directory_and_is_stored_absolute() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = Bundle::new(&["sleep", "100"]);
        let mut cmd = rt.command(&["create", bundle.id()]);
        cmd.current_dir(bundle.path());
        let out = husk_e2e::run_with_timeout(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        let state = rt.state(bundle.id()).unwrap();
        assert_eq!(state["bundle"], bundle.path().to_str().unwrap(), "{name}: {state}");
        rt.run_ok(&["delete", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// `create` with an absolute bundle and pid file works from a working directory that has been
/// removed, as runc's does (Go's filepath.Abs reads the cwd only for a relative path): a shim
/// serving a pod runs in its first container's bundle, which is removed when that container is
/// deleted, and husk create of the next container failed with "failed to get current directory".
#[test]
fn create_from_a_removed_working_directory() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        let gone = bundle.path().join("cwd-gone");
        std::fs::create_dir(&gone).unwrap();
        let pid_file = bundle.path().join("init.pid");
        let script = r#"cd "$1" && rmdir "$1" && shift && exec "$@""#;
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", script, "sh"]).arg(&gone).arg(rt.bin());
        cmd.arg("--root").arg(rt.root()).args(["create", "--bundle"]);
        cmd.arg(bundle.path()).arg("--pid-file").arg(&pid_file).arg(bundle.id());
        let out = husk_e2e::run_with_timeout(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{}: {}", rt.bin().display(), output_text(&out));
        assert!(pid_file.is_file(), "{}: no pid file", rt.bin().display());
        rt.run_ok(&["delete", "--force", bundle.id()]);
    }
}
