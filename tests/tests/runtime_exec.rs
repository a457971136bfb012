//! `husk exec`: a new process in a running container's namespaces, cgroup, rootfs and
//! security settings; flags and process.json; refusals. Each case runs on husk and on
//! runc 1.1.5, the control, and asserts the same result.

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

/// The pids `ps --format json` lists for the container.
fn ps_pids(rt: &Runtime, id: &str) -> Vec<i64> {
    let ps: serde_json::Value = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", id])).unwrap();
    ps.as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_i64)
        .collect()
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let (bundle, init) = running(&rt);
        let pid_file = bundle.path().join("exec.pid");
        let pid_path = pid_file.to_str().unwrap();
        rt.run_ok(&["exec", "--detach", "--pid-file", pid_path, bundle.id(), "sleep", "50"]);
        let pid = std::fs::read_to_string(&pid_file).expect("exec pid file");
        for link in ["pid", "net", "mnt", "uts", "ipc"] {
            assert_eq!(ns_link(&init.to_string(), link), ns_link(&pid, link), "{name}: {link}");
        }
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let want = format!(":memory:{}", bundle.cgroups_path());
        assert!(cgroup.lines().any(|l| l.ends_with(&want)), "{name}: {cgroup}");
        let pids = ps_pids(&rt, bundle.id());
        assert!(pids.contains(&pid.parse::<i64>().unwrap()), "{name}: {pids:?}");
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn exec_sees_the_container_and_returns_the_exit_code() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, _) = running(&rt);
        let script = "hostname; echo $$; ls / | head -1; exit 3";
        let out = rt.run(&["exec", bundle.id(), "sh", "-c", script]);
        let name = rt.name();
        assert_eq!(out.status.code(), Some(3), "{name}: {}", output_text(&out));
        let lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
        assert_eq!(lines[0], "husk", "{name}");
        assert_ne!(lines[1], "1", "{name}: the exec'd process is not the init");
        assert_eq!(lines[2], "bin", "{name}: the container's rootfs");
    }
}

#[test]
fn exec_flags_set_cwd_env_and_user() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, _) = running(&rt);
        let script = "pwd; echo $FOO; id -u; id -g; echo $HOME; echo $PATH";
        let flags = ["--cwd", "/tmp", "--env", "FOO=bar", "--user", "1000:1001"];
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend([bundle.id(), "sh", "-c", script]);
        let out = rt.run_ok(&args);
        let lines: Vec<&str> = out.lines().collect();
        // HOME: user 1000's home in the rootfs's /etc/passwd, as runc sets it.
        let want = ["/tmp", "bar", "1000", "1001", "/home/user"];
        assert_eq!(&lines[..5], want, "{}: {out}", rt.name());
        assert!(
            lines[5].contains("/bin"),
            "{}: the config's env is kept: {out}",
            rt.name()
        );
        // --env TERM=dumb replaces the config's TERM=xterm in its place (runc's os.Setenv), so
        // a C program's getenv sees it too: husk passed both, and `env` showed TERM twice.
        let terms = rt.run_ok(&["exec", "--env", "TERM=dumb", bundle.id(), "env"]);
        let terms: Vec<&str> = terms.lines().filter(|l| l.starts_with("TERM=")).collect();
        assert_eq!(terms, ["TERM=dumb"], "{}: --env replaces the config's TERM", rt.name());
    }
}

#[test]
fn exec_with_a_process_json() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, _) = running(&rt);
        let process = bundle.path().join("process.json");
        let mut spec_process = bundle.config()["process"].clone();
        spec_process["args"] = json!(["sh", "-c", "echo $MODE; cat /proc/self/status | grep NoNewPrivs"]);
        spec_process["env"] = json!(["PATH=/bin", "MODE=from-json"]);
        std::fs::write(&process, spec_process.to_string()).unwrap();
        let out = rt.run_ok(&["exec", "--process", process.to_str().unwrap(), bundle.id()]);
        assert_eq!(out, "from-json\nNoNewPrivs:\t1\n", "{}", rt.name());
    }
}

#[test]
fn exec_keeps_the_containers_capability_bounds() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, init) = running(&rt);
        let out = rt.run_ok(&["exec", bundle.id(), "grep", "CapBnd", "/proc/self/status"]);
        let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
        let init_bnd = status.lines().find(|l| l.starts_with("CapBnd")).unwrap();
        assert_eq!(out.trim(), init_bnd, "{}", rt.name());
    }
}

/// `exec --cap` adds the capability to the bounding, effective and permitted sets but not the
/// inheritable one (runc 1.1.2's fix of CVE-2022-29162, exec.go), so root gets it, a non-root
/// user does not (no ambient without inheritable). husk also made it inheritable, and thus
/// ambient: CapInh and CapAmb 0000000000000001, and CapEff 1 for user 1000.
#[test]
fn exec_cap_adds_a_capability_but_never_an_inheritable_one() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let (bundle, _) = running(&rt);
        for user in ["0:0", "1000:1000"] {
            let args = ["exec", "--cap", "CAP_CHOWN", "--user", user, bundle.id()];
            let out = rt.run_ok(&[&args[..], &["grep", "^Cap", "/proc/self/status"]].concat());
            let field = |key: &str| {
                out.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(str::trim)
                    .unwrap_or("?")
            };
            let bnd = u64::from_str_radix(field("CapBnd:"), 16).unwrap_or(0);
            assert_eq!(bnd & 1, 1, "{name} {user}: CAP_CHOWN is in the bounding set: {out}");
            assert_eq!(field("CapInh:"), "0000000000000000", "{name} {user}: {out}");
            assert_eq!(field("CapAmb:"), "0000000000000000", "{name} {user}: {out}");
            let eff = u64::from_str_radix(field("CapEff:"), 16).unwrap_or(0);
            let want = if user == "0:0" { 1 } else { 0 };
            assert_eq!(eff & 1, want, "{name} {user}: CAP_CHOWN effective: {out}");
        }
    }
}

/// The init's missing cwd is made (runc's prepareRootfs does, images name workdirs they do not
/// ship), an exec's is not: runc's setns init only chdirs and exec fails with 255, "chdir to
/// cwd ... no such file or directory". husk made the directory in the container's rootfs and
/// ran the process there.
#[test]
fn exec_into_a_missing_cwd_fails_and_makes_nothing() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["root"]["readonly"] = false.into();
        bundle.config_mut()["process"]["cwd"] = "/made/for/init".into();
        bundle.save();
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        assert!(
            bundle.rootfs().join("made/for/init").is_dir(),
            "{name}: the init's cwd is made"
        );
        let out = rt.run(&["exec", "--cwd", "/not/for/exec", bundle.id(), "pwd"]);
        assert_eq!(out.status.code(), Some(255), "{name}: {}", output_text(&out));
        assert_refused(&rt, &out, "/not/for/exec");
        assert!(
            stderr_of(&out).contains("no such file or directory"),
            "{name}: {}",
            output_text(&out)
        );
        assert!(!bundle.rootfs().join("not").exists(), "{name}: exec made its cwd");
    }
}

#[test]
fn exec_of_a_missing_program_fails_clearly_and_leaves_no_process() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, init) = running(&rt);
        let out = rt.run(&["exec", bundle.id(), "/no/such/program"]);
        assert_refused(&rt, &out, "/no/such/program");
        assert_eq!(
            ps_pids(&rt, bundle.id()),
            [i64::from(init)],
            "{}: only the init is left",
            rt.name()
        );
    }
}

#[test]
fn exec_into_a_stopped_or_paused_container_is_refused() {
    for rt in Runtime::husk_and_runc() {
        let (bundle, _) = running(&rt);
        rt.run_ok(&["pause", bundle.id()]);
        let out = rt.run(&["exec", bundle.id(), "true"]);
        assert_refused(&rt, &out, "paused");
        rt.run_ok(&["resume", bundle.id()]);
        rt.run_ok(&["kill", bundle.id(), "KILL"]);
        wait_status(&rt, bundle.id(), "stopped");
        let out = rt.run(&["exec", bundle.id(), "true"]);
        assert_refused(&rt, &out, "stopped");
        let out = rt.run(&["exec", "ghost", "true"]);
        assert_refused(&rt, &out, "does not exist");
    }
}

#[test]
fn a_foreground_exec_does_not_block_other_commands() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let (bundle, _) = running(&rt);
        let mut child = rt
            .command(&["exec", bundle.id(), "sleep", "30"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{name}");
        rt.run_ok(&["delete", "--force", bundle.id()]);
        let done = husk_e2e::wait_until(std::time::Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = child.kill();
        }
        let _ = child.wait();
        assert!(done, "{name}: exec did not return after its container was deleted");
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}
