//! husk as Docker's runtime (`docker run --runtime husk`, Docker 20.10 from Debian's docker.io)
//! against runc (`--runtime runc`) as the control: every case runs under both on one private
//! dockerd (see husk_e2e::Dockerd) and asserts the same observable result.
//! Skipped (with a line on stderr) where docker.io is not installed.

use std::path::PathBuf;
use std::process::Output;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use husk_e2e::{docker_available, output_text, unique_id, wait_until, Dockerd, DOCKER_BUSYBOX as IMAGE};

const RUNTIMES: [&str; 2] = ["runc", "husk"];
/// A pid 1 that exits 0 on SIGTERM (a shell as pid 1 ignores it by default).
const STOPPABLE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";

/// One dockerd for the whole test binary, stopped at exit (Rust never drops statics).
fn daemon() -> Option<&'static Dockerd> {
    static DAEMON: OnceLock<Mutex<Option<&'static Dockerd>>> = OnceLock::new();
    extern "C" fn stop() {
        if let Some(slot) = DAEMON.get() {
            if let Some(d) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // SAFETY: the only reference handed out is 'static but every test has
                // finished when atexit handlers run; reclaim the leaked box to drop it.
                drop(unsafe { Box::from_raw(d as *const Dockerd as *mut Dockerd) });
            }
        }
    }
    if !docker_available() {
        eprintln!("docker.io is not installed: skipping");
        return None;
    }
    let slot = DAEMON.get_or_init(|| Mutex::new(None));
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Box::leak(Box::new(Dockerd::start())));
        // SAFETY: registers a plain extern "C" fn with no arguments.
        unsafe { libc::atexit(stop) };
    }
    *guard
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker run --rm --runtime <rt> <flags> busybox <cmd...>`.
fn run(d: &Dockerd, rt: &str, flags: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(flags);
    args.push(IMAGE);
    args.extend_from_slice(cmd);
    d.docker(&args)
}

/// A detached container running [`STOPPABLE`]; returns its full id.
fn start_detached(d: &Dockerd, rt: &str, flags: &[&str]) -> String {
    let name = unique_id(&format!("d-{rt}"));
    let mut args = vec!["run", "-d", "--name", &name, "--runtime", rt];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[IMAGE, "sh", "-c", STOPPABLE]);
    d.docker_ok(&args)
}

/// A control file of a running container's cgroup, read on the host.
fn cgroup_file(d: &Dockerd, id: &str, controller: &str, file: &str) -> String {
    let path = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(d.cgroup_parent().trim_start_matches('/'))
        .join(id)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Runs `case` under runc then husk and asserts both gave `want`.
fn same_under_both<T: PartialEq + std::fmt::Debug>(what: &str, want: T, case: impl Fn(&Dockerd, &str) -> T) {
    let Some(d) = daemon() else { return };
    for rt in RUNTIMES {
        let got = case(d, rt);
        assert_eq!(got, want, "{what} under {rt}");
    }
}

#[test]
fn run_prints_output_and_passes_exit_codes() {
    same_under_both(
        "exit codes",
        vec![(Some(0), "hi".to_string()), (Some(3), String::new())],
        |d, rt| {
            [&["echo", "hi"][..], &["sh", "-c", "exit 3"][..]]
                .iter()
                .map(|cmd| {
                    let out = run(d, rt, &[], cmd);
                    (code(&out), stdout(&out))
                })
                .collect::<Vec<_>>()
        },
    );
}

#[test]
fn run_not_executable_is_126_and_missing_is_127() {
    // Docker maps the runtime's error text: "permission denied" → 126, "no such file" /
    // "not found" → 127 (daemon/start.go translateContainerdStartErr).
    same_under_both("exec errors", vec![Some(126), Some(127)], |d, rt| {
        ["/etc/passwd", "/no/such/binary"]
            .iter()
            .map(|cmd| {
                let out = run(d, rt, &[], &[cmd]);
                eprintln!("{rt} {cmd}: {}", output_text(&out));
                code(&out)
            })
            .collect::<Vec<_>>()
    });
}

#[test]
fn limits_reach_the_cgroup() {
    let want = vec![
        (64 << 20).to_string(),
        "20".to_string(),
        "50000".to_string(),
        "100000".to_string(),
    ];
    same_under_both("--memory/--pids-limit/--cpus", want, |d, rt| {
        let id = start_detached(d, rt, &["--memory", "64m", "--pids-limit", "20", "--cpus", "0.5"]);
        let got = vec![
            cgroup_file(d, &id, "memory", "memory.limit_in_bytes"),
            cgroup_file(d, &id, "pids", "pids.max"),
            cgroup_file(d, &id, "cpu", "cpu.cfs_quota_us"),
            cgroup_file(d, &id, "cpu", "cpu.cfs_period_us"),
        ];
        d.docker_ok(&["rm", "-f", &id]);
        got
    });
}

#[test]
fn update_changes_memory_pids_and_cpus() {
    let want = vec![
        (128 << 20).to_string(),
        (256 << 20).to_string(),
        "30".to_string(),
        "100000".to_string(),
    ];
    same_under_both("docker update", want, |d, rt| {
        let id = start_detached(d, rt, &["--memory", "64m"]);
        d.docker_ok(&[
            "update",
            "--memory",
            "128m",
            "--memory-swap",
            "256m",
            "--pids-limit",
            "30",
            "--cpus",
            "1",
            &id,
        ]);
        let memsw = std::path::Path::new("/sys/fs/cgroup/memory")
            .join(d.cgroup_parent().trim_start_matches('/'))
            .join(&id)
            .join("memory.memsw.limit_in_bytes");
        let got = vec![
            cgroup_file(d, &id, "memory", "memory.limit_in_bytes"),
            // Without swap accounting Docker drops --memory-swap: report what it asked for.
            if memsw.exists() {
                cgroup_file(d, &id, "memory", "memory.memsw.limit_in_bytes")
            } else {
                (256 << 20).to_string()
            },
            cgroup_file(d, &id, "pids", "pids.max"),
            cgroup_file(d, &id, "cpu", "cpu.cfs_quota_us"),
        ];
        d.docker_ok(&["rm", "-f", &id]);
        got
    });
}

#[test]
fn exec_takes_user_workdir_and_env() {
    same_under_both("exec -u -w -e", "1000\n/tmp\nbar".to_string(), |d, rt| {
        let id = start_detached(d, rt, &[]);
        let out = d.docker_ok(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            &id,
            "sh",
            "-c",
            "id -u; pwd; echo $FOO",
        ]);
        d.docker_ok(&["rm", "-f", &id]);
        out
    });
}

#[test]
fn read_only_cap_drop_and_user() {
    let want = vec![
        (Some(1), String::new()),
        (Some(0), "CapEff:\t0000000000000000".to_string()),
        (Some(0), "1000".to_string()),
    ];
    same_under_both("--read-only/--cap-drop ALL/--user", want, |d, rt| {
        let cases: [(&[&str], &[&str]); 3] = [
            (&["--read-only"], &["sh", "-c", "touch /x 2>/dev/null"]),
            (&["--cap-drop", "ALL"], &["grep", "CapEff", "/proc/self/status"]),
            (&["--user", "1000"], &["id", "-u"]),
        ];
        cases
            .iter()
            .map(|(flags, cmd)| {
                let out = run(d, rt, flags, cmd);
                (code(&out), stdout(&out))
            })
            .collect::<Vec<_>>()
    });
}

#[test]
fn network_none_has_only_loopback() {
    same_under_both("--network none", "lo".to_string(), |d, rt| {
        let out = run(d, rt, &["--network", "none"], &["ls", "/sys/class/net"]);
        assert_eq!(code(&out), Some(0), "{}", output_text(&out));
        stdout(&out)
    });
}

#[test]
fn tmpfs_and_read_only_volume() {
    let Some(d) = daemon() else { return };
    let host = husk_e2e::TempDir::new("docker-vol");
    std::fs::write(host.join("f"), "from host").expect("write volume file");
    let volume = format!("{}:/data:ro", host.path().display());
    // /etc is in the image (755): a tmpfs over it keeps that mode (husk gave tmpfs's 1777).
    let script = "stat -c %a /scratch /etc; touch /scratch/x && echo tmpfs-ok; cat /data/f; echo; touch /data/y 2>/dev/null || echo ro";
    let mut results = Vec::new();
    for rt in RUNTIMES {
        let args = ["--tmpfs", "/scratch", "--tmpfs", "/etc", "-v", &volume];
        let out = run(d, rt, &args, &["sh", "-c", script]);
        assert_eq!(code(&out), Some(0), "{rt}: {}", output_text(&out));
        results.push(stdout(&out));
    }
    assert!(
        results[0].ends_with("755\ntmpfs-ok\nfrom host\nro"),
        "runc: {}",
        results[0]
    );
    // The tmpfs mode is whatever runc gives (1777 for a new mount point): husk must match.
    assert_eq!(results[1], results[0], "husk against runc");
}

#[test]
fn stats_top_pause_unpause() {
    same_under_both("stats/top/pause", ("paused", "running", true, true), |d, rt| {
        let id = start_detached(d, rt, &[]);
        let stats = d.docker_ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]);
        let top = d.docker_ok(&["top", &id]);
        d.docker_ok(&["pause", &id]);
        let paused = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &id]);
        d.docker_ok(&["unpause", &id]);
        let running = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &id]);
        d.docker_ok(&["rm", "-f", &id]);
        (
            if paused == "paused" { "paused" } else { "not paused" },
            if running == "running" { "running" } else { "not running" },
            stats.contains("MiB") || stats.contains("KiB"),
            top.contains("sh -c"),
        )
    });
}

#[test]
fn kill_stop_restart() {
    let want = ["137", "0", "running", "1"].map(String::from).to_vec();
    same_under_both("kill/stop/restart", want, |d, rt| {
        let id = start_detached(d, rt, &[]);
        d.docker_ok(&["kill", &id]);
        let exited = wait_until(Duration::from_secs(10), || {
            d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &id]) == "exited"
        });
        assert!(exited, "{rt}: still running after docker kill");
        let killed = d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
        d.docker_ok(&["start", &id]);
        d.docker_ok(&["stop", "-t", "10", &id]);
        let stopped = d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
        d.docker_ok(&["restart", "-t", "10", &id]);
        let status = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &id]);
        let restarts = d.docker_ok(&["exec", &id, "sh", "-c", "echo 1"]);
        d.docker_ok(&["rm", "-f", &id]);
        vec![killed, stopped, status, restarts]
    });
}

#[test]
fn restart_on_failure_retries_twice() {
    same_under_both(
        "--restart on-failure:2",
        ("2".to_string(), "exited".to_string()),
        |d, rt| {
            let name = unique_id(&format!("r-{rt}"));
            d.docker_ok(&[
                "run",
                "-d",
                "--name",
                &name,
                "--runtime",
                rt,
                "--restart",
                "on-failure:2",
                IMAGE,
                "sh",
                "-c",
                "exit 1",
            ]);
            let inspect = |f: &str| d.docker_ok(&["inspect", "-f", f, &name]);
            let done = wait_until(Duration::from_secs(60), || {
                inspect("{{.RestartCount}}") == "2" && inspect("{{.State.Status}}") == "exited"
            });
            let got = (inspect("{{.RestartCount}}"), inspect("{{.State.Status}}"));
            assert!(done, "{rt}: {got:?}");
            d.docker_ok(&["rm", "-f", &name]);
            got
        },
    );
}

#[test]
fn init_runs_docker_init_as_pid_1() {
    same_under_both("--init", "docker-init".to_string(), |d, rt| {
        let out = run(d, rt, &["--init"], &["cat", "/proc/1/comm"]);
        assert_eq!(code(&out), Some(0), "{rt}: {}", output_text(&out));
        stdout(&out)
    });
}

/// `docker <args>` under `script`, which gives it a terminal (as a user's shell would).
fn in_terminal(d: &Dockerd, args: &[&str]) -> Output {
    let cmd = d.command(args);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    husk_e2e::run_with_timeout(&mut script, Duration::from_secs(60))
}

#[test]
fn run_and_exec_with_a_terminal() {
    same_under_both("-it", (Some(0), true, true), |d, rt| {
        let out = in_terminal(
            d,
            &["run", "-it", "--rm", "--runtime", rt, IMAGE, "sh", "-c", "tty; exit 0"],
        );
        let run_tty = String::from_utf8_lossy(&out.stdout).contains("/dev/pts/");
        let id = start_detached(d, rt, &[]);
        let exec = in_terminal(d, &["exec", "-it", &id, "tty"]);
        let exec_tty = String::from_utf8_lossy(&exec.stdout).contains("/dev/pts/");
        d.docker_ok(&["rm", "-f", &id]);
        eprintln!("{rt}: run {}\nexec {}", output_text(&out), output_text(&exec));
        (code(&out), run_tty, exec_tty)
    });
}

#[test]
fn default_bridge_gives_an_address_and_reaches_the_gateway() {
    same_under_both("default bridge", (Some(0), true), |d, rt| {
        let subnet = &d.bridge().subnet;
        let script = format!("ip -4 addr show eth0; ping -c 1 -W 5 {subnet}.1 >/dev/null && echo reached");
        let out = run(d, rt, &[], &["sh", "-c", &script]);
        let text = stdout(&out);
        eprintln!("{rt}: {}", output_text(&out));
        (
            code(&out),
            text.contains(&format!("inet {subnet}.")) && text.ends_with("reached"),
        )
    });
}
