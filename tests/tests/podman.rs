//! husk as podman's OCI runtime (`podman --runtime <husk>`, podman 4.3 and conmon from
//! Debian): run, exit status, detached containers with exec, stop, rm, terminals, pause,
//! top/ps, signals, logs, limits and a non-root user. Every scenario runs twice, under husk
//! and under runc as the control (`<scenario>::husk`, `<scenario>::runc`), each with a
//! private podman (its own storage, containers.conf, locks) that loads the busybox image
//! offline; see podman_support for what it cannot keep private.

#[macro_use]
mod podman_support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use podman_support::{stdout, Oci, Podman, IMAGE};

/// A shell loop that exits 0 on SIGTERM: busybox sleep as pid 1 would ignore it.
const STOPPABLE: &str = "trap 'echo term; exit 0' TERM; echo started; while :; do sleep 0.1; done";

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn run_rm_prints_the_output(p: &Podman) {
    let cidfile = p.dir().join("cid");
    let cidfile = cidfile.to_string_lossy();
    let out = p.ok(&["run", "--rm", "--cidfile", &cidfile, IMAGE, "echo", "hi"]);
    assert_eq!(out, "hi\n");
    let id = std::fs::read_to_string(&*cidfile).unwrap_or_default();
    assert_eq!(p.ok(&["ps", "-aq"]), "", "--rm left the container");
    if !id.is_empty() {
        p.assert_gone(id.trim());
    }
}
under_husk_and_runc!(run_rm_prints_the_output, run_rm_prints_the_output);

fn exit_status_is_passed_through(p: &Podman) {
    let out = p.run(&["run", "--rm", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), Some(7), "{}", husk_e2e::output_text(&out));
    // Podman reads the runtime's error text: "not found" (ENOENT) is 127, "permission
    // denied" (not executable) is 126, as with runc.
    for (cmd, want) in [("/no/such/binary", 127), ("nosuchcmd", 127), ("/etc", 126)] {
        let out = p.run(&["run", "--rm", IMAGE, cmd]);
        assert_eq!(code(&out), Some(want), "{cmd}: {}", husk_e2e::output_text(&out));
    }
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}
under_husk_and_runc!(exit_status_is_passed_through, exit_status_is_passed_through);

fn detached_exec_stop_rm(p: &Podman) {
    let id = p.run_detached("web", &[IMAGE, "sh", "-c", STOPPABLE]);
    assert_eq!(p.inspect("web", "{{.State.Status}}"), "running");
    assert_eq!(p.ok(&["exec", "web", "echo", "in"]), "in\n");
    let out = p.run(&["exec", "web", "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), Some(3), "{}", husk_e2e::output_text(&out));
    // An exec'd process is not pid 1: it dies of its own SIGKILL (128 + 9).
    let out = p.run(&["exec", "web", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code(&out), Some(137), "{}", husk_e2e::output_text(&out));
    let out = p.run(&["exec", "web", "nosuchcmd"]);
    assert_eq!(code(&out), Some(127), "{}", husk_e2e::output_text(&out));
    let out = p.run_with_input(&["exec", "-i", "web", "cat"], Some(b"piped\n"));
    assert_eq!(stdout(&out), "piped\n", "{}", husk_e2e::output_text(&out));
    // exec joins the container's pid namespace: the init is pid 1 there.
    let comm = p.ok(&["exec", "web", "cat", "/proc/1/cmdline"]);
    assert!(comm.starts_with("sh\0-c\0"), "{comm:?}");

    let started = Instant::now();
    p.ok(&["stop", "-t", "20", "web"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop waited {:?}: SIGTERM did not reach the trap",
        started.elapsed()
    );
    assert_eq!(p.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    assert_eq!(p.ok(&["logs", "web"]), "started\nterm\n");
    p.ok(&["rm", "web"]);
    p.assert_gone(&id);
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}
under_husk_and_runc!(detached_exec_stop_rm, detached_exec_stop_rm);

fn create_init_then_start_attached(p: &Podman) {
    // podman init runs the runtime's create alone: the init waits on exec.fifo until start.
    let id = p.ok(&["create", "--name", "later", IMAGE, "sh", "-c", "echo late; exit 6"]);
    let id = id.trim();
    assert_eq!(p.inspect("later", "{{.State.Status}}"), "created");
    p.ok(&["init", "later"]);
    assert_eq!(p.inspect("later", "{{.State.Status}}"), "initialized");
    let state = p.oci().state_root().join(id);
    assert!(state.is_dir(), "{} after init", state.display());
    let out = p.run(&["start", "-a", "later"]);
    assert_eq!(stdout(&out), "late\n", "{}", husk_e2e::output_text(&out));
    assert_eq!(p.inspect("later", "{{.State.ExitCode}}"), "6");
    p.ok(&["rm", "later"]);
    p.assert_gone(id);
}
under_husk_and_runc!(create_init_then_start_attached, create_init_then_start_attached);

fn stop_kills_after_the_timeout(p: &Podman) {
    // sleep as pid 1 has no handler, so the kernel drops SIGTERM; podman sends SIGKILL.
    let id = p.run_detached("stubborn", &[IMAGE, "sleep", "1000"]);
    p.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(
        p.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    p.ok(&["rm", "stubborn"]);
    p.assert_gone(&id);
}
under_husk_and_runc!(stop_kills_after_the_timeout, stop_kills_after_the_timeout);

/// `/dev/pts/<n>` and the CRLF a terminal's onlcr adds.
fn assert_pts_line(out: &str) {
    let line = out.strip_suffix("\r\n").unwrap_or_else(|| panic!("no CRLF: {out:?}"));
    let n = line
        .strip_prefix("/dev/pts/")
        .unwrap_or_else(|| panic!("not a pts: {out:?}"));
    assert!(n.parse::<u32>().is_ok(), "not a pts: {out:?}");
}

fn run_with_a_terminal(p: &Podman) {
    // podman -t takes a pty from conmon (--console-socket) even with stdin from /dev/null.
    let out = p.run(&["run", "--rm", "-t", IMAGE, "sh", "-c", "tty; exit 5"]);
    assert_eq!(code(&out), Some(5), "{}", husk_e2e::output_text(&out));
    assert_pts_line(&stdout(&out));
}
under_husk_and_runc!(run_with_a_terminal, run_with_a_terminal);

fn exec_with_a_terminal(p: &Podman) {
    let id = p.run_detached("shell", &[IMAGE, "sleep", "1000"]);
    let out = p.run(&["exec", "-t", "shell", "sh", "-c", "tty; exit 4"]);
    assert_eq!(code(&out), Some(4), "{}", husk_e2e::output_text(&out));
    assert_pts_line(&stdout(&out));
    // Without -t the same exec has no terminal.
    let out = p.run(&["exec", "shell", "tty"]);
    assert_eq!(stdout(&out), "not a tty\n", "{}", husk_e2e::output_text(&out));
    p.ok(&["rm", "-f", "-t", "0", "shell"]);
    p.assert_gone(&id);
}
under_husk_and_runc!(exec_with_a_terminal, exec_with_a_terminal);

fn pause_and_unpause(p: &Podman) {
    let id = p.run_detached("frozen", &[IMAGE, "sleep", "1000"]);
    let freezer = format!("/sys/fs/cgroup/freezer/libpod_parent/libpod-{id}/freezer.state");
    p.ok(&["pause", "frozen"]);
    assert_eq!(p.inspect("frozen", "{{.State.Status}}"), "paused");
    let state = std::fs::read_to_string(&freezer).unwrap_or_default();
    assert_eq!(state.trim(), "FROZEN", "{freezer}");
    p.ok(&["unpause", "frozen"]);
    assert_eq!(p.inspect("frozen", "{{.State.Status}}"), "running");
    let state = std::fs::read_to_string(&freezer).unwrap_or_default();
    assert_eq!(state.trim(), "THAWED", "{freezer}");
    assert_eq!(p.ok(&["exec", "frozen", "echo", "thawed"]), "thawed\n");
    // A paused container can be removed by force.
    p.ok(&["pause", "frozen"]);
    p.ok(&["rm", "-f", "-t", "0", "frozen"]);
    p.assert_gone(&id);
}
under_husk_and_runc!(pause_and_unpause, pause_and_unpause);

fn top_and_ps(p: &Podman) {
    p.run_detached("topped", &[IMAGE, "sleep", "1000"]);
    let top = p.ok(&["top", "topped", "pid", "args"]);
    assert!(
        top.lines().any(|l| l.split_whitespace().eq(["1", "sleep", "1000"])),
        "{top}"
    );
    let ps = p.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("topped Up"), "{ps}");
    let out = p.run(&["run", "--name", "done", IMAGE, "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), Some(3), "{}", husk_e2e::output_text(&out));
    let ps = p.ok(&["ps", "-a", "--filter", "name=done", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (3)"), "{ps}");
    p.ok(&["rm", "-f", "-t", "0", "topped", "done"]);
}
under_husk_and_runc!(top_and_ps, top_and_ps);

fn non_root_user_and_security_options(p: &Podman) {
    // A non-root process.user once broke husk's create/start: the init, already uid 1000,
    // could not open a 0600 exec.fifo.
    let script = "id -u; id -g; touch /x 2>&1; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status";
    let out = p.ok(&[
        "run",
        "--rm",
        "--user",
        "1000:1000",
        "--read-only",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{out}");
    assert!(lines[2].contains("Read-only file system"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    // The same user detached, and an exec as another user.
    let id = p.run_detached("user", &["--user", "1000", IMAGE, "sleep", "1000"]);
    assert_eq!(p.ok(&["exec", "user", "id", "-u"]), "1000\n");
    assert_eq!(p.ok(&["exec", "--user", "0", "user", "id", "-u"]), "0\n");
    p.ok(&["rm", "-f", "-t", "0", "user"]);
    p.assert_gone(&id);
}
under_husk_and_runc!(non_root_user_and_security_options, non_root_user_and_security_options);

fn resource_limits_reach_the_cgroup(p: &Podman) {
    let out = p.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        IMAGE,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    assert_eq!(out, "67108864\n50\n50000\n");
}
under_husk_and_runc!(resource_limits_reach_the_cgroup, resource_limits_reach_the_cgroup);

fn signals_logs_and_restart(p: &Podman) {
    let script = format!("trap 'echo usr1' USR1; {STOPPABLE}");
    p.run_detached("sig", &[IMAGE, "sh", "-c", &script]);
    wait_for_log(p, "sig", "started\n");
    p.ok(&["kill", "-s", "USR1", "sig"]);
    wait_for_log(p, "sig", "started\nusr1\n");
    p.ok(&["restart", "-t", "10", "sig"]);
    assert_eq!(p.inspect("sig", "{{.State.Status}}"), "running");
    wait_for_log(p, "sig", "started\nusr1\nterm\nstarted\n");
    p.ok(&["rm", "-f", "-t", "10", "sig"]);
}
under_husk_and_runc!(signals_logs_and_restart, signals_logs_and_restart);

fn wait_for_log(p: &Podman, name: &str, want: &str) {
    let mut last = String::new();
    let seen = husk_e2e::wait_until(Duration::from_secs(10), || {
        last = p.ok(&["logs", name]);
        last == want
    });
    assert!(seen, "logs of {name}: {last:?}, want {want:?}");
}

fn stdin_reaches_the_container(p: &Podman) {
    let out = p.run_with_input(
        &["run", "--rm", "-i", IMAGE, "sh", "-c", "cat; echo done"],
        Some(b"line one\nline two\n"),
    );
    assert_eq!(
        stdout(&out),
        "line one\nline two\ndone\n",
        "{}",
        husk_e2e::output_text(&out)
    );
}
under_husk_and_runc!(stdin_reaches_the_container, stdin_reaches_the_container);

fn short_lived_containers_start_every_time(p: &Podman) {
    // husk start once opened the init's pidfd after releasing it: a process that exited
    // and was reaped by conmon in between made start fail with ESRCH (about 1 run in 7).
    for i in 0..20 {
        let out = p.run(&["run", "--rm", "--uts", "host", IMAGE, "true"]);
        assert!(out.status.success(), "run {i}: {}", husk_e2e::output_text(&out));
    }
}
under_husk_and_runc!(
    short_lived_containers_start_every_time,
    short_lived_containers_start_every_time
);

/// `cmd` under `script`, which gives it a pty of `cols`x`rows` as the client's terminal
/// (podman -it needs one), with `input` typed into it.
fn in_a_pty(p: &Podman, cmd: &[&str], cols: u32, rows: u32, input: &[u8]) -> Output {
    let line = std::iter::once("podman".to_string())
        .chain(p.global_args())
        .chain(cmd.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .envs(p.envs())
        .args(["-qec", &format!("stty cols {cols} rows {rows}; {line}"), "/dev/null"]);
    husk_e2e::run_with_input(&mut script, Some(input), Duration::from_secs(60))
}

fn interactive_terminal_has_the_clients_size(p: &Podman) {
    // The pty is conmon's, sized from the client's terminal; echo and the prompt come back.
    let out = in_a_pty(
        p,
        &["run", "--rm", "-it", IMAGE, "sh"],
        91,
        33,
        b"echo $((6*7))\nstty size\nexit 3\n",
    );
    let text = stdout(&out).replace('\r', "");
    assert_eq!(code(&out), Some(3), "{}", husk_e2e::output_text(&out));
    assert!(text.contains("\n42\n"), "{text:?}");
    assert!(text.contains("\n33 91\n"), "{text:?}");
    // The same through exec -it.
    let id = p.run_detached("term", &[IMAGE, "sleep", "1000"]);
    let out = in_a_pty(p, &["exec", "-it", "term", "sh"], 77, 22, b"stty size\nexit\n");
    let text = stdout(&out).replace('\r', "");
    assert!(text.contains("\n22 77\n"), "{}", husk_e2e::output_text(&out));
    p.ok(&["rm", "-f", "-t", "0", "term"]);
    p.assert_gone(&id);
}
under_husk_and_runc!(
    interactive_terminal_has_the_clients_size,
    interactive_terminal_has_the_clients_size
);

fn init_and_pod_share_namespaces(p: &Podman) {
    // --init: podman's catatonit is pid 1 and the command its child.
    let out = p.ok(&["run", "--rm", "--init", IMAGE, "cat", "/proc/1/cmdline"]);
    assert!(out.starts_with("/run/podman-init\0--\0cat\0"), "{out:?}");
    // A pod: an infra container (catatonit from a local podman-pause image) whose
    // namespaces the members join by path.
    p.ok(&["pod", "create", "--name", "pod", "--share", "net,ipc,uts,pid"]);
    p.run_detached("member", &["--pod", "pod", IMAGE, "sleep", "1000"]);
    let ns = "stat -L -c %i /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/pid";
    let other = p.ok(&["run", "--rm", "--pod", "pod", IMAGE, "sh", "-c", ns]);
    let member = p.ok(&["exec", "member", "sh", "-c", ns]);
    assert_eq!(other, member);
    let host = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    assert!(
        !other.starts_with(&format!("{}\n", host.unwrap_or(0))),
        "pod uses the host netns"
    );
    // The shared pid namespace: the member's sleep is seen from a second container.
    let ps = p.ok(&["run", "--rm", "--pod", "pod", IMAGE, "ps", "-o", "args"]);
    assert!(ps.lines().any(|l| l.trim() == "sleep 1000"), "{ps}");
    p.ok(&["pod", "rm", "-f", "-t", "0", "pod"]);
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}
under_husk_and_runc!(init_and_pod_share_namespaces, init_and_pod_share_namespaces);

/// podman --tmpfs sends no mode and `tmpcopyup`: the tmpfs over the image's /etc keeps its 755
/// and starts with its files. husk gave an empty tmpfs of mode 1777.
fn tmpfs_keeps_the_image_directorys_mode_and_content(p: &Podman) {
    let script = "stat -c %a /etc; head -n 1 /etc/passwd; touch /etc/new && echo writable";
    let out = p.ok(&["run", "--rm", "--tmpfs", "/etc", IMAGE, "sh", "-c", script]);
    assert_eq!(out, "755\nroot:x:0:0:root:/root:/bin/sh\nwritable\n");
}
under_husk_and_runc!(
    tmpfs_keeps_the_image_directorys_mode_and_content,
    tmpfs_keeps_the_image_directorys_mode_and_content
);

fn concurrent_runs_all_succeed(p: &Podman) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    let word = format!("c{i}");
                    (word.clone(), p.run(&["run", "--rm", IMAGE, "echo", &word]))
                })
            })
            .collect();
        for run in runs {
            let (word, out) = run.join().expect("run thread");
            assert_eq!(stdout(&out), format!("{word}\n"), "{}", husk_e2e::output_text(&out));
        }
    });
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}
under_husk_and_runc!(concurrent_runs_all_succeed, concurrent_runs_all_succeed);

#[test]
fn containers_conf_names_husk_the_default_runtime() {
    let p = Podman::husk_by_name();
    let info = p.ok(&[
        "info",
        "--format",
        "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}",
    ]);
    assert_eq!(info.trim(), format!("husk {}", husk_e2e::husk_bin().display()));
    assert_eq!(p.ok(&["run", "--rm", IMAGE, "echo", "by name"]), "by name\n");
    // A restart policy: podman's cleanup process (started by conmon, configured by the same
    // containers.conf) creates and starts the container again through husk.
    let id = p.run_detached(
        "again",
        &["--restart", "on-failure:2", IMAGE, "sh", "-c", "echo run; exit 1"],
    );
    let mut last = String::new();
    let done = husk_e2e::wait_until(Duration::from_secs(20), || {
        last = p.inspect("again", "{{.RestartCount}} {{.State.Status}}");
        last == "2 exited"
    });
    assert!(done, "restarts: {last}");
    assert_eq!(p.ok(&["logs", "again"]), "run\nrun\nrun\n");
    assert_eq!(p.inspect("again", "{{.OCIRuntime}}"), "husk");
    p.ok(&["rm", "again"]);
    p.assert_gone(&id);
}

#[test]
fn husk_is_the_runtime_podman_ran() {
    let p = Podman::new(Oci::Husk);
    p.run_detached("who", &[IMAGE, "sleep", "1000"]);
    let runtime = p.inspect("who", "{{.OCIRuntime}}");
    assert_eq!(runtime, husk_e2e::husk_bin().to_string_lossy());
    let id = p.inspect("who", "{{.Id}}");
    // husk's own state for the container, as podman created it.
    let state = std::process::Command::new(husk_e2e::husk_bin())
        .args(["state", &id])
        .output()
        .expect("husk state runs");
    let text = String::from_utf8_lossy(&state.stdout);
    assert!(
        text.contains("\"status\": \"running\"") || text.contains("\"status\":\"running\""),
        "{text}"
    );
    p.ok(&["rm", "-f", "-t", "0", "who"]);
    p.assert_gone(&id);
}
