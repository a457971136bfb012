//! The command line as runc 1.1 clients drive it: help and version, --log/--debug, the JSON key
//! order clients parse, ps, update's flags, kill/exec/run/list semantics and `spec`. Each case
//! runs on husk and on runc, the control, and asserts the same observable result; where husk
//! differs on purpose, the test says why.

mod runtime_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use husk_e2e::{output_text, run_with_input, run_with_timeout, wait_until, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::Value;

/// `<bin> <args>` without husk-e2e's `--root`: for the global flags' own spellings.
fn bare(rt: &Runtime, args: &[&str]) -> Output {
    run_with_timeout(Command::new(rt.bin()).args(args), Duration::from_secs(30))
}

/// `run -d` with stdio on /dev/null, so that the container holds none of our pipes open.
fn run_detached(rt: &Runtime, bundle: &Bundle) {
    let path = bundle.path().to_str().unwrap();
    let status = rt
        .command(&["run", "-d", "--bundle", path, bundle.id()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn run -d");
    assert!(status.success(), "{} run -d {} failed", rt.bin().display(), bundle.id());
}

fn sleeper(rt: &Runtime) -> Bundle {
    let bundle = Bundle::new(&["sleep", "1000"]);
    run_detached(rt, &bundle);
    wait_status(rt, bundle.id(), "running");
    bundle
}

/// The cgroup v1 directory of `bundle`'s container for `controller`.
fn cgroup_dir(controller: &str, bundle: &Bundle) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(bundle.cgroups_path().trim_start_matches('/'))
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Where each of `keys` first appears in `text` as a JSON key; asserts they come in this order.
fn assert_key_order(text: &str, keys: &[&str]) {
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("key {k:?} missing from {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "keys not in order {keys:?}: {text}"
    );
}

// ── 5. help and version ─────────────────────────────────────────────────────

#[test]
fn help_and_version_print_like_runcs() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        for flag in ["--help", "-h"] {
            let out = bare(&rt, &[flag]);
            assert!(out.status.success(), "{name} {flag}: {}", output_text(&out));
            let text = stdout_of(&out);
            for section in ["NAME:", "USAGE:", "COMMANDS:", "GLOBAL OPTIONS:", "--root value"] {
                assert!(text.contains(section), "{name} {flag} lacks {section:?}: {text}");
            }
        }
        for cmd in [
            "kill", "exec", "update", "list", "ps", "spec", "run", "create", "delete", "state",
        ] {
            let out = bare(&rt, &[cmd, "--help"]);
            assert!(out.status.success(), "{name} {cmd} --help: {}", output_text(&out));
            let text = stdout_of(&out);
            assert!(text.starts_with(&format!("NAME:\n   {name} {cmd} - ")), "{text}");
            // The same text through `help CMD`.
            assert_eq!(stdout_of(&bare(&rt, &["help", cmd])), text, "{name} help {cmd}");
        }
        let out = bare(&rt, &["help", "foo"]);
        assert_eq!(out.status.code(), Some(3), "{name} help foo: {}", output_text(&out));
        assert!(
            stderr_of(&out).contains("No help topic for 'foo'"),
            "{}",
            output_text(&out)
        );

        let out = bare(&rt, &["--version"]);
        assert!(out.status.success());
        let version = stdout_of(&out);
        let lines: Vec<&str> = version.lines().collect();
        assert!(lines[0].starts_with(&format!("{name} version ")), "{version}");
        for prefix in ["commit: ", "spec: ", "libseccomp: "] {
            assert!(
                lines.iter().any(|l| l.starts_with(prefix)),
                "{name}: no {prefix:?} in {version}"
            );
        }
    }
}

/// Every flag runc's help lists for a command, husk's lists too (checkpoint/restore aside).
#[test]
fn every_runc_flag_is_in_husks_help() {
    let (husk, runc) = (Runtime::husk(), Runtime::runc());
    let flags = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.trim_end_matches(',').to_string())
            .collect()
    };
    let global_runc = stdout_of(&bare(&runc, &["--help"]));
    let global_husk = stdout_of(&bare(&husk, &["--help"]));
    for flag in flags(global_runc.split("GLOBAL OPTIONS:").nth(1).unwrap()) {
        assert!(global_husk.contains(&flag), "husk --help lacks {flag}");
    }
    let commands = [
        "create", "delete", "events", "exec", "kill", "list", "pause", "ps", "resume", "run", "spec", "start", "state",
        "update", "features",
    ];
    for cmd in commands {
        let runc_help = stdout_of(&bare(&runc, &[cmd, "--help"]));
        let out = bare(&husk, &[cmd, "--help"]);
        assert!(out.status.success(), "husk {cmd} --help: {}", output_text(&out));
        let husk_help = stdout_of(&out);
        let Some(options) = runc_help.split("OPTIONS:").nth(1) else {
            continue;
        };
        for flag in flags(options) {
            assert!(husk_help.contains(&flag), "husk {cmd} --help lacks {flag}: {husk_help}");
        }
    }
}

/// urfave/cli v1's forms: one dash for long flags, `--flag=value`, flags after the id.
#[test]
fn runcs_flag_spellings_are_accepted() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let root = TempDir::new("cli-root");
        let root = root.path().to_str().unwrap();
        for args in [
            vec!["-root", root, "list", "-q"],
            vec![&format!("--root={root}"), "list", "--format=json"],
            vec!["--root", root, "list", "-format", "json"],
        ] {
            let out = bare(&rt, &args);
            assert!(out.status.success(), "{name} {args:?}: {}", output_text(&out));
        }
        // A flag after the id, and the help flag after it too.
        let out = bare(&rt, &["--root", root, "kill", "nope", "KILL", "--all"]);
        assert!(stderr_of(&out).contains("not exist"), "{name}: {}", output_text(&out));
        let out = bare(&rt, &["--root", root, "kill", "nope", "--help"]);
        assert!(out.status.success(), "{name}: {}", output_text(&out));
    }
}

// ── 6. --log, --log-format, --debug, --trace ───────────────────────────────

#[test]
fn log_file_is_created_and_gets_each_commands_lines() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let dir = TempDir::new("cli-log");
        let log = |file: &str| dir.path().join(file);
        let text_log = log("text.log");
        rt.run_ok(&["--log", text_log.to_str().unwrap(), "list"]);
        assert!(text_log.is_file(), "{name} --log did not create {}", text_log.display());

        let json_log = log("json.log");
        let out = rt.run(&[
            "--log",
            json_log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ]);
        assert!(!out.status.success());
        let lines = std::fs::read_to_string(&json_log).unwrap();
        let entry: Value = serde_json::from_str(lines.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: not a json line: {e}: {lines:?}"));
        assert_eq!(entry["level"], "error", "{name}: {lines}");
        assert!(
            entry["msg"].as_str().unwrap().contains("does not exist"),
            "{name}: {lines}"
        );
        assert!(entry["time"].is_string(), "{name}: {lines}");

        let debug_log = log("debug.log");
        let bundle = Bundle::new(&["true"]);
        let path = bundle.path().to_str().unwrap();
        let out = rt.run(&[
            "--debug",
            "--log",
            debug_log.to_str().unwrap(),
            "run",
            "--bundle",
            path,
            bundle.id(),
        ]);
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        let debug = std::fs::read_to_string(&debug_log).unwrap();
        assert!(
            debug.lines().filter(|l| l.contains("level=debug")).count() >= 3,
            "{name}: {debug}"
        );
        // Nothing of it on stderr when --log names a file.
        assert!(
            !stderr_of(&out).contains("level=debug"),
            "{name}: {}",
            output_text(&out)
        );
    }
}

/// husk's own --trace (runc has none): with a json log the timeline is a line of it too.
#[test]
fn trace_goes_into_the_json_log() {
    let rt = Runtime::husk();
    let dir = TempDir::new("cli-trace");
    let log = dir.path().join("trace.log");
    let bundle = Bundle::new(&["true"]);
    let path = bundle.path().to_str().unwrap();
    let log_arg = log.to_str().unwrap();
    rt.run_ok(&[
        "--trace",
        "--log",
        log_arg,
        "--log-format",
        "json",
        "run",
        "--bundle",
        path,
        bundle.id(),
    ]);
    let text = std::fs::read_to_string(&log).unwrap();
    let trace = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["msg"].as_str().is_some_and(|m| m.starts_with("husk trace ")))
        .unwrap_or_else(|| panic!("no trace line in {text}"));
    assert_eq!(trace["level"], "info");
    assert!(trace["msg"].as_str().unwrap().contains("clone3"), "{trace}");
}

// ── 7. JSON key order ──────────────────────────────────────────────────────

#[test]
fn state_list_and_events_keep_runcs_key_order() {
    for rt in Runtime::husk_and_runc() {
        let bundle = sleeper(&rt);
        let id = bundle.id();
        let fields = [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ];
        assert_key_order(&rt.run_ok(&["state", id]), &fields);
        assert_key_order(&rt.run_ok(&["list", "--format", "json"]), &fields);
        let stats = rt.run_ok(&["events", "--stats", id]);
        assert!(
            stats.starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{id}\",\"data\":{{")),
            "{}: {stats}",
            rt.name()
        );
        rt.run_ok(&["delete", "--force", id]);
    }
}

// ── 8. ps ──────────────────────────────────────────────────────────────────

#[test]
fn ps_runs_ps_ef_and_passes_extra_arguments() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sleeper(&rt);
        let id = bundle.id();
        let table = rt.run_ok(&["ps", id]);
        let lines: Vec<&str> = table.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "{name}: {table}"
        );
        assert_eq!(lines.len(), 2, "{name}: only the container's process: {table}");
        assert!(
            lines[1].starts_with("root ") && lines[1].ends_with("sleep 1000"),
            "{name}: {table}"
        );

        let table = rt.run_ok(&["ps", id, "-e", "-x"]);
        let header = table.lines().next().unwrap();
        assert!(header.contains("STAT") && !header.contains("PPID"), "{name}: {table}");
        assert_eq!(table.lines().count(), 2, "{name}: {table}");

        let pids: Vec<i64> = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", id])).unwrap();
        assert_eq!(pids, [i64::from(init_pid(&rt, id))], "{name}");
        rt.run_ok(&["delete", "--force", id]);
    }
}

// ── 9. update ──────────────────────────────────────────────────────────────

#[test]
fn update_takes_every_runc_flag_spelling() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sleeper(&rt);
        let id = bundle.id();
        rt.run_ok(&[
            "update",
            "--cpu-share",
            "512",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--pids-limit",
            "50",
            "--kernel-memory-tcp",
            "1m",
            id,
        ]);
        assert_eq!(
            read_trimmed(cgroup_dir("cpu", &bundle).join("cpu.shares")),
            "512",
            "{name}"
        );
        assert_eq!(
            read_trimmed(cgroup_dir("cpu", &bundle).join("cpu.cfs_quota_us")),
            "50000",
            "{name}"
        );
        assert_eq!(
            read_trimmed(cgroup_dir("cpuset", &bundle).join("cpuset.cpus")),
            "0",
            "{name}"
        );
        let memory = cgroup_dir("memory", &bundle);
        assert_eq!(
            read_trimmed(memory.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string(),
            "{name}"
        );
        assert_eq!(
            read_trimmed(memory.join("memory.soft_limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            read_trimmed(cgroup_dir("pids", &bundle).join("pids.max")),
            "50",
            "{name}"
        );

        // -r - reads the resources from stdin.
        let out = run_with_input(
            &mut rt.command(&["update", "-r", "-", id]),
            Some(br#"{"cpu":{"shares":256}}"#),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{name} update -r -: {}", output_text(&out));
        assert_eq!(
            read_trimmed(cgroup_dir("cpu", &bundle).join("cpu.shares")),
            "256",
            "{name}"
        );

        // No Intel RDT on this host: runc's words.
        let out = rt.run(&["update", "--l3-cache-schema", "L3:0=f", id]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("l3 cache schema is not enabled"),
            "{name}: {}",
            output_text(&out)
        );
        rt.run_ok(&["delete", "--force", id]);
    }
}

// ── 10. kill, exec, run and list ───────────────────────────────────────────

#[test]
fn kill_signal_zero_only_checks_the_process() {
    for rt in Runtime::husk_and_runc() {
        let bundle = sleeper(&rt);
        rt.run_ok(&["kill", bundle.id(), "0"]);
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"));
        rt.run_ok(&["delete", "--force", bundle.id()]);
    }
}

/// Without a pid namespace, what the init left behind outlives it: the container is stopped
/// but its cgroup still has a process, which `kill --all` reaches.
#[test]
fn kill_all_on_a_stopped_container_kills_whats_left_in_its_cgroup() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let mut bundle = sh_bundle("sleep 1000 & sleep 0.2; exit 0");
        let namespaces = bundle.config_mut()["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "pid");
        bundle.save();
        run_detached(&rt, &bundle);
        wait_status(&rt, bundle.id(), "stopped");
        let procs = cgroup_dir("pids", &bundle).join("cgroup.procs");
        assert!(!read_trimmed(&procs).is_empty(), "{name}: the sleep should be left");
        let out = rt.run(&["kill", bundle.id(), "KILL"]);
        assert!(
            !out.status.success(),
            "{name}: a plain kill of a stopped container fails"
        );
        rt.run_ok(&["kill", "--all", bundle.id(), "KILL"]);
        let emptied = wait_until(Duration::from_secs(20), || read_trimmed(&procs).is_empty());
        assert!(emptied, "{name}: left {}", read_trimmed(&procs));
        rt.run_ok(&["delete", bundle.id()]);
    }
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sleeper(&rt);
        let id = bundle.id();
        rt.run_ok(&["pause", id]);
        let out = rt.run(&["exec", id, "true"]);
        assert!(!out.status.success(), "{name}");
        assert!(stderr_of(&out).contains("paused"), "{name}: {}", output_text(&out));
        // The process waits, frozen, until resume.
        let mut exec = rt.command(&["exec", "--ignore-paused", id, "echo", "thawed"]);
        let exec = exec.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = exec.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        rt.run_ok(&["resume", id]);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        assert_eq!(stdout_of(&out).trim(), "thawed", "{name}");
        rt.run_ok(&["delete", "--force", id]);
    }
}

#[test]
fn exec_cgroup_joins_a_sub_cgroup_and_refuses_to_leave() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sleeper(&rt);
        let id = bundle.id();
        let out = rt.run(&["exec", "--cgroup", "..", id, "true"]);
        assert!(!out.status.success(), "{name}");
        assert!(
            stderr_of(&out).contains(" .. is not a sub cgroup path"),
            "{name}: {}",
            output_text(&out)
        );

        let sub = cgroup_dir("pids", &bundle).join("sub");
        std::fs::create_dir(&sub).unwrap();
        let out = rt.run(&["exec", "--cgroup", "pids:sub", id, "cat", "/proc/self/cgroup"]);
        let _ = wait_until(Duration::from_secs(20), || std::fs::remove_dir(&sub).is_ok());
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        let want = format!("pids:{}/sub", bundle.cgroups_path());
        assert!(
            stdout_of(&out).lines().any(|l| l.ends_with(&want)),
            "{name}: {}",
            stdout_of(&out)
        );
        rt.run_ok(&["delete", "--force", id]);
    }
}

#[test]
fn run_keep_leaves_the_stopped_container() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["true"]);
        let path = bundle.path().to_str().unwrap();
        rt.run_ok(&["run", "--keep", "--bundle", path, bundle.id()]);
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("stopped"), "{}", rt.name());
        rt.run_ok(&["delete", bundle.id()]);
    }
}

#[test]
fn list_with_a_bad_root_is_an_error() {
    let dir = TempDir::new("cli-list");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    for rt in Runtime::husk_and_runc() {
        let out = bare(&rt, &["--root", file.to_str().unwrap(), "list"]);
        assert_eq!(out.status.code(), Some(1), "{}: {}", rt.name(), output_text(&out));
    }
    // husk differs from runc here: runc creates a missing --root while loading its factory and
    // lists nothing, so a typo shows an empty table; husk says the root is missing.
    let missing = dir.path().join("missing");
    let out = bare(&Runtime::husk(), &["--root", missing.to_str().unwrap(), "list"]);
    assert_one_line_error(&out, "no such file or directory");
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists());
}

// ── 11. spec ───────────────────────────────────────────────────────────────

#[test]
fn spec_is_runcs_default_and_rootless_works() {
    let mut specs = Vec::new();
    for rt in Runtime::husk_and_runc() {
        let mut pair = Vec::new();
        for rootless in [false, true] {
            let dir = TempDir::new("cli-spec");
            let mut args = vec!["spec", "--bundle", dir.path().to_str().unwrap()];
            if rootless {
                args.push("--rootless");
            }
            rt.run_ok(&args);
            let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
            let mut spec: Value = serde_json::from_str(&text).unwrap();
            // Each names itself; the OCI version is the one each runtime implements.
            spec["hostname"] = Value::Null;
            spec["ociVersion"] = Value::Null;
            // Capability sets are sets: husk's serializer does not keep runc's order.
            if let Some(caps) = spec["process"]["capabilities"].as_object_mut() {
                for set in caps.values_mut() {
                    set.as_array_mut()
                        .unwrap()
                        .sort_by_key(|c| c.as_str().unwrap_or_default().to_string());
                }
            }
            pair.push(spec);
        }
        specs.push(pair);
    }
    assert_eq!(specs[0], specs[1], "husk spec differs from runc spec");
    let spec = &specs[0][0];
    let namespaces = spec["linux"]["namespaces"].as_array().unwrap();
    assert!(!namespaces.iter().any(|ns| ns["type"] == "cgroup"));
    assert!(spec["process"]["capabilities"].get("inheritable").is_none());
    assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], false);
}
