//! containerd-shim-husk-v2 against a private containerd, for what the shared scenarios
//! (husk_shim.rs) do not cover: both output streams with an exit code, runc underneath via
//! BinaryName, exec with a tty and big output, ps with exec ids, metrics, a containerd restart
//! under a running task, a SIGKILLed shim, and a create that fails.
//!
//! Each lifecycle test runs twice: with husk (the default) and with BinaryName = runc, passed
//! as containerd 1.6's `ctr --runtime-config-path` file (ctr refuses `--runc-binary` for any
//! runtime but io.containerd.runc.v2).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use husk_e2e::{
    assert_no_leftovers, output_text, processes_mentioning, run_with_timeout, target_dir, unique_id, wait_until,
    Containerd, EventWatch, BUSYBOX_REF, HUSK_RUNTIME,
};

const RUNC: &str = "/usr/sbin/runc";

#[derive(Clone, Copy, PartialEq)]
enum Under {
    Husk,
    Runc,
}

struct Setup {
    ctrd: Containerd,
    runtime_args: Vec<String>,
}

fn setup(under: Under) -> Setup {
    let mut ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    let mut runtime_args = vec!["--runtime".to_string(), HUSK_RUNTIME.to_string()];
    if under == Under::Runc {
        let path = ctrd.dir().join("runc-options.toml");
        std::fs::write(&path, format!("BinaryName = \"{RUNC}\"\n")).expect("write runtime options");
        runtime_args.extend(["--runtime-config-path".to_string(), path.display().to_string()]);
    }
    Setup { ctrd, runtime_args }
}

impl Setup {
    fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> std::process::Output {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(self.runtime_args.iter().map(String::as_str));
        args.extend_from_slice(flags);
        args.extend([BUSYBOX_REF, id]);
        args.extend_from_slice(cmd);
        self.ctrd.ctr(&args)
    }

    fn run_detached(&self, id: &str) {
        let out = self.run(&["-d"], id, &["sleep", "1000"]);
        assert!(
            out.status.success(),
            "ctr run -d: {}\n{}",
            output_text(&out),
            self.ctrd.log_tail(40)
        );
    }

    fn status(&self, id: &str) -> String {
        let list = self.ctrd.ctr_ok(&["tasks", "ls"]);
        list.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&id))
            .and_then(|cols| cols.get(2).map(|s| s.to_string()))
            .unwrap_or_default()
    }

    fn kill_and_delete(&self, id: &str) {
        self.ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id]);
        assert!(
            wait_until(Duration::from_secs(10), || self.status(id) == "STOPPED"),
            "task not stopped"
        );
        self.ctrd.ctr_ok(&["tasks", "delete", id]);
        self.ctrd.ctr_ok(&["containers", "delete", id]);
    }

    fn assert_clean(&self, id: &str) {
        assert_eq!(self.ctrd.ctr_ok(&["containers", "ls", "-q"]), "", "containers left");
        assert_no_leftovers(id, &self.ctrd.state(), &format!("/{}/{id}", self.ctrd.namespace()));
    }
}

fn both_streams_and_exit_code(under: Under) {
    let s = setup(under);
    let id = unique_id("streams");
    let out = s.run(&["--rm"], &id, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}\n{}",
        output_text(&out),
        s.ctrd.log_tail(40)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("err\n"),
        "stderr: {}",
        output_text(&out)
    );
    s.assert_clean(&id);
}

/// run -d, exec (status and output), ps with the exec's id, pause/resume, metrics, kill, delete.
fn detached_lifecycle(under: Under) {
    let s = setup(under);
    let id = unique_id("life");
    s.run_detached(&id);
    assert_eq!(s.status(&id), "RUNNING");
    let out = s.ctrd.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in-exec; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-exec\n");

    let exec = s
        .ctrd
        .ctr_command(&["tasks", "exec", "--exec-id", "bg", &id, "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn();
    let mut exec = ChildGuard(exec.expect("spawn ctr exec"));
    assert!(
        wait_until(Duration::from_secs(10), || s
            .ctrd
            .ctr_ok(&["tasks", "ps", &id])
            .contains("bg")),
        "ps lacks the exec id: {}",
        s.ctrd.ctr_ok(&["tasks", "ps", &id])
    );

    s.ctrd.ctr_ok(&["tasks", "pause", &id]);
    assert_eq!(s.status(&id), "PAUSED");
    s.ctrd.ctr_ok(&["tasks", "resume", &id]);
    assert_eq!(s.status(&id), "RUNNING");

    let metrics = s.ctrd.ctr_ok(&["tasks", "metrics", &id]);
    assert!(
        metrics.contains("memory.usage_in_bytes") && metrics.contains("pids.current"),
        "metrics: {metrics}"
    );

    s.ctrd
        .ctr_ok(&["tasks", "kill", "--exec-id", "bg", "-s", "SIGKILL", &id]);
    let _ = exec.0.wait();
    // A paused task still dies of SIGKILL (the shim thaws it after the kill).
    s.ctrd.ctr_ok(&["tasks", "pause", &id]);
    s.kill_and_delete(&id);
    s.assert_clean(&id);
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ctr tasks exec -t` needs a terminal on ctr's side: `script` gives it one.
fn in_terminal(ctrd: &Containerd, args: &[&str]) -> std::process::Output {
    let cmd = ctrd.ctr_command(args);
    let mut line = String::from("exec");
    line.push_str(&format!(" {}", cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy().replace('\'', "'\\''")));
    }
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    run_with_timeout(&mut script, Duration::from_secs(60))
}

fn exec_tty_big_output(under: Under) {
    let s = setup(under);
    let id = unique_id("tty");
    s.run_detached(&id);
    let cmd = "tty; head -c 1200000 /dev/zero | tr '\\0' x; exit 5";
    let out = in_terminal(
        &s.ctrd,
        &["tasks", "exec", "-t", "--exec-id", "t1", &id, "sh", "-c", cmd],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "not a tty: {}",
        &text[..text.len().min(300)]
    );
    assert_eq!(text.matches('x').count(), 1_200_000, "tty output truncated");
    assert_eq!(out.status.code(), Some(5));
    s.kill_and_delete(&id);
    s.assert_clean(&id);
}

fn stdin_closed(under: Under) {
    let s = setup(under);
    let id = unique_id("stdin");
    s.run_detached(&id);
    let out = s.ctrd.ctr_with_input(
        &["tasks", "exec", "--exec-id", "cat", &id, "sh", "-c", "cat; echo eof"],
        b"piped\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "piped\neof\n",
        "{}",
        output_text(&out)
    );
    s.kill_and_delete(&id);
    s.assert_clean(&id);
}

fn bad_bundle(under: Under) {
    let s = setup(under);
    let id = unique_id("bad");
    let out = s.run(&["--rm"], &id, &["/no/such/binary"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The runtime's own message (from its json log) reaches ctr.
    assert!(
        err.contains("/no/such/binary"),
        "ctr error lacks the runtime's message: {err}"
    );
    let _ = s.ctrd.ctr(&["containers", "delete", &id]);
    assert!(
        wait_until(Duration::from_secs(10), || processes_mentioning(&id).is_empty()),
        "shim or container left: {:?}",
        processes_mentioning(&id)
    );
    s.assert_clean(&id);
}

fn shim_pid(id: &str) -> Option<i32> {
    processes_mentioning(id)
        .into_iter()
        .find(|(_, cmd)| cmd.contains("containerd-shim-husk-v2"))
        .map(|(pid, _)| pid)
}

/// `ctr run -d` leaves its stdio fifos in /run/containerd/fifo/<n>/<id>-std*, and only a
/// `ctr tasks delete` of a live task removes them; after a dead shim containerd has already
/// deleted the task, so they stay (the Go shim too). Ours to remove: their names carry the id.
fn remove_ctr_fifo_dirs(id: &str) {
    let Ok(dirs) = std::fs::read_dir("/run/containerd/fifo") else {
        return;
    };
    for dir in dirs.flatten() {
        let ours = std::fs::read_dir(dir.path())
            .map(|files| {
                files
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with(&format!("{id}-")))
            })
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

fn sigkilled_shim(under: Under) {
    let s = setup(under);
    let id = unique_id("shimkill");
    s.run_detached(&id);
    let pid = shim_pid(&id).expect("shim process");
    let bundle = s
        .ctrd
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(s.ctrd.namespace())
        .join(&id);
    let address = std::fs::read_to_string(bundle.join("address")).expect("shim address file");
    let socket = address.trim().trim_start_matches("unix://").to_string();
    // SAFETY: kill(2) on a pid we just looked up.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // containerd notices the dead shim and runs `shim delete`: the task ends as stopped.
    let gone = wait_until(Duration::from_secs(20), || {
        let st = s.status(&id);
        st.is_empty() || st == "STOPPED"
    });
    assert!(gone, "task still {}\n{}", s.status(&id), s.ctrd.log_tail(40));
    let _ = s.ctrd.ctr(&["tasks", "delete", &id]);
    s.ctrd.ctr_ok(&["containers", "delete", &id]);
    s.assert_clean(&id);
    remove_ctr_fifo_dirs(&id);
    // The dead shim's socket in /run/containerd/s is gone too (husk's shim removes it in
    // `shim delete`; and that is the shim in both variants).
    assert!(
        wait_until(Duration::from_secs(20), || !std::path::Path::new(&socket).exists()),
        "socket {socket} left behind"
    );
}

/// A containerd restarted on the same config; killed on drop, before the `Containerd` it
/// stands in for tears everything down.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        if !wait_until(Duration::from_secs(10), || matches!(self.0.try_wait(), Ok(Some(_)))) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn restart_containerd(ctrd: &Containerd) -> Restarted {
    let config = ctrd.dir().join("config.toml");
    let needle = config.display().to_string();
    let daemons: Vec<i32> = processes_mentioning(&needle)
        .into_iter()
        .filter(|(_, c)| c.starts_with("/usr/bin/containerd") || c.starts_with("containerd"))
        .map(|(p, _)| p)
        .collect();
    assert!(!daemons.is_empty(), "containerd not found");
    for pid in &daemons {
        // SAFETY: signalling the test's own containerd.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    assert!(
        wait_until(Duration::from_secs(15), || processes_mentioning(&needle)
            .iter()
            .all(|(p, _)| !daemons.contains(p))),
        "containerd did not stop"
    );
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(ctrd.dir().join("containerd.log"))
        .expect("containerd log");
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        target_dir().display()
    );
    let child = Command::new("/usr/bin/containerd")
        .arg("--config")
        .arg(&config)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("restart containerd");
    let restarted = Restarted(child);
    assert!(
        wait_until(Duration::from_secs(30), || ctrd.ctr(&["version"]).status.success()),
        "containerd did not come back"
    );
    restarted
}

fn survives_restart(under: Under) {
    let s = setup(under);
    let id = unique_id("restart");
    s.run_detached(&id);
    let shim_before = shim_pid(&id);
    let restarted = restart_containerd(&s.ctrd);
    assert_eq!(
        s.status(&id),
        "RUNNING",
        "task lost across the restart\n{}",
        s.ctrd.log_tail(40)
    );
    assert_eq!(shim_pid(&id), shim_before, "the shim must keep running");
    // The exit happens after the restart and must be observed by the new containerd.
    s.ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &id]);
    assert!(
        wait_until(Duration::from_secs(20), || s.status(&id) == "STOPPED"),
        "exit not observed after restart\n{}",
        s.ctrd.log_tail(40)
    );
    s.ctrd.ctr_ok(&["tasks", "delete", &id]);
    s.ctrd.ctr_ok(&["containers", "delete", &id]);
    s.assert_clean(&id);
    drop(restarted);
}

fn husk_shims_in(namespace: &str) -> Vec<i32> {
    processes_mentioning(namespace)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim-husk-v2") && !cmd.contains(" start"))
        .map(|(pid, _)| pid)
        .collect()
}

/// Containers with the same group annotation share one shim, which exits with the last one.
fn grouped_containers(under: Under) {
    let s = setup(under);
    let ns = s.ctrd.namespace().to_string();
    let group = format!("io.containerd.runc.v2.group={}", unique_id("pod"));
    let (a, b) = (unique_id("grpa"), unique_id("grpb"));
    for id in [&a, &b] {
        let out = s.run(&["-d", "--label", &group], id, &["sleep", "1000"]);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    assert_eq!(
        husk_shims_in(&ns).len(),
        1,
        "one shim per group: {:?}",
        processes_mentioning(&ns)
    );
    s.kill_and_delete(&a);
    assert_eq!(s.status(&b), "RUNNING");
    assert_eq!(husk_shims_in(&ns).len(), 1, "the shim serves the rest of the group");
    s.kill_and_delete(&b);
    assert!(
        wait_until(Duration::from_secs(10), || husk_shims_in(&ns).is_empty()),
        "shim outlived its group"
    );
    s.assert_clean(&a);
    s.assert_clean(&b);
}

fn log_uris(under: Under) {
    let s = setup(under);
    let logs = s.ctrd.dir().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let cmd = ["sh", "-c", "echo to-out; echo to-err >&2"];

    let id = unique_id("filelog");
    let file = logs.join("file.log");
    let uri = format!("file://{}", file.display());
    let out = s.run(&["--rm", "--log-uri", &uri], &id, &cmd);
    assert!(out.status.success(), "{}\n{}", output_text(&out), s.ctrd.log_tail(30));
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        text.contains("to-out\n") && text.contains("to-err\n"),
        "file log: {text:?}"
    );
    s.assert_clean(&id);

    // containerd's logging-binary contract: stdout on fd 3, stderr on fd 4, ready on fd 5.
    let logger = logs.join("logger.sh");
    std::fs::write(
        &logger,
        "#!/bin/sh\nexec 5>&-\n/bin/cat <&3 >\"$1/out\" &\n/bin/cat <&4 >\"$1/err\" &\nwait\n",
    )
    .expect("write logger");
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod logger");
    let id = unique_id("binlog");
    let uri = format!("binary://{}?{}", logger.display(), logs.display());
    let out = s.run(&["--rm", "--log-uri", &uri], &id, &cmd);
    assert!(out.status.success(), "{}\n{}", output_text(&out), s.ctrd.log_tail(30));
    let read = |name: &str| std::fs::read_to_string(logs.join(name)).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read("out") == "to-out\n"
            && read("err") == "to-err\n"),
        "binary log: {:?} {:?}",
        read("out"),
        read("err")
    );
    s.assert_clean(&id);
}

fn oom_event(under: Under) {
    let s = setup(under);
    let id = unique_id("oom");
    let events = EventWatch::start(&s.ctrd);
    let hog = "x=a; while true; do x=$x$x; done";
    let out = s.run(&["--rm", "--memory-limit", "16777216"], &id, &["sh", "-c", hog]);
    assert_eq!(out.status.code(), Some(137), "not OOM-killed: {}", output_text(&out));
    assert!(
        events.wait_for("/tasks/oom", Duration::from_secs(10)),
        "no /tasks/oom event:\n{}",
        events.text()
    );
    s.assert_clean(&id);
}

/// Every scenario runs twice: with husk (the default) and with BinaryName = runc.
macro_rules! with_husk_and_runc {
    ($($scenario:ident => $husk:ident, $runc:ident;)*) => {$(
        #[test]
        fn $husk() {
            $scenario(Under::Husk);
        }

        #[test]
        fn $runc() {
            $scenario(Under::Runc);
        }
    )*};
}

with_husk_and_runc! {
    both_streams_and_exit_code => run_rm_delivers_both_streams_and_exit_code_with_husk, run_rm_delivers_both_streams_and_exit_code_with_runc;
    detached_lifecycle => detached_task_exec_ps_pause_metrics_kill_with_husk, detached_task_exec_ps_pause_metrics_kill_with_runc;
    exec_tty_big_output => exec_with_tty_delivers_a_megabyte_whole_with_husk, exec_with_tty_delivers_a_megabyte_whole_with_runc;
    stdin_closed => stdin_is_piped_through_and_closed_with_husk, stdin_is_piped_through_and_closed_with_runc;
    bad_bundle => failed_create_returns_the_runtime_message_and_leaves_nothing_with_husk, failed_create_returns_the_runtime_message_and_leaves_nothing_with_runc;
    sigkilled_shim => sigkilled_shim_leaves_nothing_after_containerd_cleanup_with_husk, sigkilled_shim_leaves_nothing_after_containerd_cleanup_with_runc;
    survives_restart => containerd_restart_keeps_the_task_and_sees_its_exit_with_husk, containerd_restart_keeps_the_task_and_sees_its_exit_with_runc;
    grouped_containers => grouped_containers_share_one_shim_that_exits_with_the_last_with_husk, grouped_containers_share_one_shim_that_exits_with_the_last_with_runc;
    log_uris => file_and_binary_log_uris_receive_the_output_with_husk, file_and_binary_log_uris_receive_the_output_with_runc;
    oom_event => oom_kill_publishes_a_tasks_oom_event_with_husk, oom_kill_publishes_a_tasks_oom_event_with_runc;
}
