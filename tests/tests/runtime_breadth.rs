//! The remaining config.json features of `husk`: the hooks that run inside the container,
//! time namespace offsets, personality, scheduler, I/O priority, LSM labels, seccomp notify.
//! runc 1.1.5 is the control wherever it has the feature; the husk-only tests say why.

mod runtime_support;
mod seccomp_agent;

use std::path::Path;
use std::process::Output;

use husk_e2e::{Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::{json, Value};

/// A hook that appends its kind to `<dir>/order`, saves its stdin to `<dir>/<kind>.json` and
/// its mount namespace to `<dir>/<kind>.mnt`; `dir` as the hook sees it.
fn recording_hook(dir: &str, kind: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "echo {kind} >> {dir}/order; cat > {dir}/{kind}.json; readlink /proc/self/ns/mnt > {dir}/{kind}.mnt")],
        "timeout": 10
    })
}

fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn saved_state(dir: &Path, kind: &str) -> Value {
    let text = read(dir, &format!("{kind}.json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind} got no JSON ({e}): {text:?}"))
}

/// `out` bind-mounted at /hookout, so hooks inside the container's root can write to it.
fn bundle_with_hookout(args: &[&str], out: &TempDir) -> Bundle {
    let mut bundle = Bundle::new(args);
    let mounts = bundle.config_mut()["mounts"].as_array_mut().unwrap();
    mounts.push(json!({ "destination": "/hookout", "type": "bind",
        "source": out.path(), "options": ["rbind", "rw"] }));
    bundle
}

fn create(rt: &Runtime, bundle: &Bundle) -> Output {
    rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), bundle.id()])
}

#[test]
fn all_six_hook_kinds_run_in_order_and_container_hooks_run_inside() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let husk = name == "husk";
        let out = TempDir::new("breadth-hooks");
        let host = out.path().to_str().unwrap();
        let mut bundle = bundle_with_hookout(&["sleep", "100"], &out);
        bundle.config_mut()["hooks"] = json!({
            "prestart": [recording_hook(host, "prestart")],
            "createRuntime": [recording_hook(host, "createRuntime")],
            // Before pivot_root: the container's mount namespace still shows the host's tree.
            "createContainer": [recording_hook(host, "createContainer")],
            // After pivot_root: only the container's root, hence /hookout.
            "startContainer": [recording_hook("/hookout", "startContainer")],
            "poststart": [recording_hook(host, "poststart")],
            "poststop": [recording_hook(host, "poststop")],
        });
        bundle.save();

        // husk differs deliberately: runc 1.1.5 runs poststart at the end of create
        // (libcontainer/container_linux.go start()), before the process starts, against the
        // spec's order; husk runs it after start. The other five kinds agree.
        let (after_create, after_start) = if husk {
            (
                "prestart\ncreateRuntime\ncreateContainer\n",
                "startContainer\npoststart\n",
            )
        } else {
            (
                "prestart\ncreateRuntime\ncreateContainer\npoststart\n",
                "startContainer\n",
            )
        };
        let pid = create_ok(&rt, &bundle);
        assert_eq!(read(out.path(), "order"), after_create, "{name}");
        rt.run_ok(&["start", bundle.id()]);
        assert_eq!(
            read(out.path(), "order"),
            format!("{after_create}{after_start}"),
            "{name}"
        );
        let container_mnt = ns_link(&pid.to_string(), "mnt");
        let host_mnt = ns_link("self", "mnt");
        assert_ne!(container_mnt, host_mnt, "{name}");
        for (kind, status, mnt) in [
            ("prestart", "creating", &host_mnt),
            ("createRuntime", "creating", &host_mnt),
            ("createContainer", "creating", &container_mnt),
            ("startContainer", "created", &container_mnt),
            ("poststart", "running", &host_mnt),
        ] {
            let state = saved_state(out.path(), kind);
            // husk differs deliberately: the spec's pid is the init's "as seen by the host";
            // runc 1.1.5 fills it for the hooks the init runs with its getpid(), 1 in the new
            // pid namespace, which names the host's init in createContainer's host /proc.
            let in_container = kind == "createContainer" || kind == "startContainer";
            let want_pid = if husk || !in_container { pid } else { 1 };
            assert_eq!(state["pid"], want_pid, "{name} {kind}: {state}");
            assert_eq!(state["id"], bundle.id(), "{name} {kind}: {state}");
            if husk || kind != "poststart" {
                assert_eq!(state["status"], status, "{name} {kind}: {state}");
            }
            assert_eq!(
                state["bundle"],
                bundle.path().to_str().unwrap(),
                "{name} {kind}: {state}"
            );
            assert_eq!(
                read(out.path(), &format!("{kind}.mnt")).trim(),
                mnt.as_str(),
                "{name}: {kind} ran in the wrong mount namespace"
            );
        }
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_eq!(saved_state(out.path(), "poststop")["status"], "stopped", "{name}");
        assert!(read(out.path(), "order").ends_with("poststop\n"), "{name}");
    }
}

#[test]
fn a_failing_create_container_hook_fails_create_and_leaves_nothing() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "createContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo no-gpu >&2; exit 4"] }]
        });
        bundle.save();
        let out = create(&rt, &bundle);
        assert_failed(&rt, &out, &["createContainer", "no-gpu"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn a_create_container_hook_path_missing_fails_create() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({ "createContainer": [{ "path": "/nonexistent/hook" }] });
        bundle.save();
        let out = create(&rt, &bundle);
        assert_failed(&rt, &out, &["/nonexistent/hook"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn a_failing_start_container_hook_fails_start_and_stops_the_container() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo refused-start >&2; exit 5"] }]
        });
        bundle.save();
        create_ok(&rt, &bundle);
        let out = rt.run(&["start", bundle.id()]);
        // husk differs deliberately: the spec says a failing startContainer hook MUST generate
        // an error; runc 1.1.5's `start` only releases the init and exits 0 while the init
        // fails after it. Both stop the container.
        if rt.name() == "husk" {
            assert_failed(&rt, &out, &["startContainer", "refused-start"]);
        }
        wait_status(&rt, bundle.id(), "stopped");
    }
}

#[test]
fn a_start_container_hook_past_its_timeout_is_killed_and_fails_start() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1 }]
        });
        bundle.save();
        create_ok(&rt, &bundle);
        let started = std::time::Instant::now();
        let out = rt.run(&["start", bundle.id()]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{}: the hook outlived its timeout",
            rt.name()
        );
        // husk differs deliberately: the spec says a failing startContainer hook MUST generate
        // an error (one past its timeout too); runc 1.1.5's `start` only releases the init and exits 0 while the init
        // fails after it. Both stop the container.
        if rt.name() == "husk" {
            assert_failed(&rt, &out, &["timed out"]);
        }
        wait_status(&rt, bundle.id(), "stopped");
    }
}

/// Time since boot in hundredths of a second, exactly as /proc/uptime prints it ("123.45").
/// Integers, not floats: the kernel truncates every reading to 10 ms, so a reading taken
/// between two others lies between them exactly, while `33227.24 + 86400.0` as a float may
/// land just below the parsed `119627.24` (CI failed once on that).
fn uptime_centis(text: &str) -> i64 {
    let field = text.split_whitespace().next().unwrap_or("");
    let (secs, hundredths) = field.split_once('.').unwrap_or_else(|| panic!("uptime {text:?}"));
    match (secs.parse::<i64>(), hundredths.parse::<i64>()) {
        (Ok(secs), Ok(centis)) if hundredths.len() == 2 => secs * 100 + centis,
        _ => panic!("uptime {text:?}"),
    }
}

// husk only: runc 1.1 has no time namespace (added in 1.2); 1.1.5 refuses `{"type": "time"}`
// with `namespace {"time" ""} does not exist`.
#[test]
fn time_namespace_offsets_shift_the_containers_clocks() {
    const DAY_CENTIS: i64 = 86400 * 100;
    let rt = Runtime::husk();
    let mut bundle = sh_bundle("cat /proc/uptime; readlink /proc/self/ns/time");
    let config = bundle.config_mut();
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "time" }));
    config["linux"]["timeOffsets"] = json!({
        "boottime": { "secs": 86400, "nanosecs": 0 },
        "monotonic": { "secs": 3600 }
    });
    bundle.save();
    let host_before = uptime_centis(&std::fs::read_to_string("/proc/uptime").unwrap());
    let out = run_ok(&rt, &bundle);
    let host_after = uptime_centis(&std::fs::read_to_string("/proc/uptime").unwrap());
    let mut lines = out.lines();
    let inside = uptime_centis(lines.next().unwrap());
    assert!(
        inside >= host_before + DAY_CENTIS && inside <= host_after + DAY_CENTIS,
        "container uptime {inside} is not the host's ({host_before}..{host_after}) plus a day"
    );
    assert_ne!(lines.next().unwrap(), ns_link("self", "time"), "no new time namespace");
}

// husk only, deliberately: runc 1.1.5 silently ignores linux.timeOffsets (the container runs
// with the host's clocks); husk refuses offsets it could not apply.
#[test]
fn time_offsets_without_a_time_namespace_are_refused_before_anything_is_made() {
    let rt = Runtime::husk();
    let mut bundle = Bundle::new(&["true"]);
    bundle.config_mut()["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 10 } });
    bundle.save();
    let out = create(&rt, &bundle);
    assert_one_line_error(&out, "timeOffsets");
    assert_nothing_left(&rt, bundle.id(), &bundle);
    // The reason, checked: runc runs the same config, offsets ignored (uptime unchanged is not
    // testable exactly, but the run succeeds where husk refuses).
    run_script_on(&Runtime::runc(), "true", |c| {
        c["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 10 } })
    });
}

/// The reason a husk-only test gives, checked: runc 1.1.5 runs `script` with the field `edit`
/// sets as if it were absent, printing `unchanged`. If runc starts honouring the field, this
/// fails and the test should run on both.
fn assert_runc_ignores(script: &str, edit: impl FnOnce(&mut Value), unchanged: &str) {
    let out = run_script_on(&Runtime::runc(), script, edit);
    assert_eq!(out, unchanged, "runc now honours the field: run the test on both");
}

// husk only: runc 1.1.5 silently ignores linux.personality (added in 1.2): `uname -m` in its
// LINUX32 container still prints x86_64.
#[test]
fn linux32_personality_makes_uname_report_i686() {
    let linux32 = |c: &mut Value| c["linux"]["personality"] = json!({ "domain": "LINUX32" });
    assert_eq!(run_script("uname -m", linux32), "i686\n");
    assert_runc_ignores("uname -m", linux32, &format!("{}\n", std::env::consts::ARCH));
    let out = run_script("uname -m", |c| c["linux"]["personality"] = json!({ "domain": "LINUX" }));
    assert_eq!(out, format!("{}\n", std::env::consts::ARCH));
}

/// Fields of /proc/<pid>/stat after the command name (field 3 is index 0).
fn stat_fields(stat: &str) -> Vec<String> {
    let after_comm = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    after_comm.split_whitespace().map(String::from).collect()
}

// husk only: runc 1.1.5 silently ignores process.scheduler (added in 1.2): its process keeps
// SCHED_OTHER and nice 0.
#[test]
fn scheduler_policy_and_nice_reach_the_process() {
    // stat(5): field 19 is nice, field 41 is policy.
    let nice_and_policy = "cut -d' ' -f19,41 /proc/self/stat";
    let batch = |c: &mut Value| c["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 7 });
    assert_eq!(
        run_script(nice_and_policy, batch),
        "7 3\n",
        "nice 7, policy SCHED_BATCH"
    );
    // Ignored, the container keeps what runc inherited from this test.
    let ours = stat_fields(&std::fs::read_to_string("/proc/self/stat").unwrap());
    assert_runc_ignores(nice_and_policy, batch, &format!("{} {}\n", ours[19 - 3], ours[41 - 3]));
}

// husk only: runc 1.1.5 ignores process.scheduler (see above).
#[test]
fn idle_scheduler_and_negative_nice_are_applied_as_root() {
    let out = run_script("cat /proc/self/stat", |c| {
        c["process"]["scheduler"] = json!({ "policy": "SCHED_OTHER", "nice": -5 })
    });
    assert_eq!(stat_fields(&out)[19 - 3], "-5", "{out}");
    let out = run_script("cat /proc/self/stat", |c| {
        c["process"]["scheduler"] = json!({ "policy": "SCHED_IDLE" })
    });
    assert_eq!(stat_fields(&out)[41 - 3], "5", "policy SCHED_IDLE in {out}");
}

// husk only: runc 1.1.5 silently ignores process.ioPriority (added in 1.2): ionice prints
// "none: prio 0" in its container.
#[test]
fn io_priority_reaches_the_process() {
    let idle = |c: &mut Value| c["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 });
    // busybox prints no level for the idle class.
    assert_eq!(run_script("ionice -p $$", idle).trim(), "idle");
    // Ignored, the container keeps what runc inherited from this test.
    let ours = std::process::Command::new("/bin/busybox")
        .args(["ionice", "-p", &std::process::id().to_string()])
        .output()
        .expect("busybox ionice");
    assert_runc_ignores("ionice -p $$", idle, &stdout_of(&ours));
    let out = run_script("ionice -p $$", |c| {
        c["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 6 })
    });
    assert_eq!(out.trim(), "best-effort: prio 6");
}

// husk only, deliberately: runc 1.1.5 ignores these three fields, so it accepts any value;
// husk applies them and refuses what the kernel would reject before anything is made.
#[test]
fn invalid_scheduler_io_priority_and_personality_are_refused_before_anything_is_made() {
    let cases = [
        (
            "/process/scheduler",
            json!({ "policy": "SCHED_FIFO", "priority": 0 }),
            "priority",
        ),
        (
            "/process/scheduler",
            json!({ "policy": "SCHED_OTHER", "nice": 40 }),
            "nice",
        ),
        (
            "/process/ioPriority",
            json!({ "class": "IOPRIO_CLASS_BE", "priority": 9 }),
            "ioPriority",
        ),
        (
            "/linux/personality",
            json!({ "domain": "LINUX", "flags": ["X"] }),
            "personality",
        ),
    ];
    for (pointer, value, want) in cases {
        let rt = Runtime::husk();
        let mut bundle = Bundle::new(&["true"]);
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        bundle.config_mut().pointer_mut(parent).unwrap()[key] = value;
        bundle.save();
        let out = create(&rt, &bundle);
        assert_one_line_error(&out, want);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// This host runs neither AppArmor nor SELinux: a label fails create, nothing is made.
#[test]
fn lsm_labels_without_the_lsm_on_the_host_fail_create_and_leave_nothing() {
    assert!(
        !Path::new("/sys/fs/selinux/enforce").exists(),
        "this test expects a host without SELinux"
    );
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").unwrap_or_default();
    assert_ne!(apparmor.trim(), "Y", "this test expects a host without AppArmor");
    let cases = [
        ("/process/apparmorProfile", "husk-test-profile"),
        ("/process/selinuxLabel", "system_u:system_r:container_t:s0:c1,c2"),
        ("/linux/mountLabel", "system_u:object_r:container_file_t:s0:c1,c2"),
    ];
    // runc fails too, later and in the init (writing /proc/self/attr/exec, or mounting /dev
    // with context=); husk refuses before anything is made and names the label.
    for ((pointer, label), rt) in cases.iter().flat_map(|c| Runtime::husk_and_runc().map(|rt| (*c, rt))) {
        let mut bundle = Bundle::new(&["true"]);
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        bundle.config_mut().pointer_mut(parent).unwrap()[key] = label.into();
        bundle.save();
        let out = create(&rt, &bundle);
        assert_failed(&rt, &out, &[label, "not enabled on this host"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

fn features(rt: &Runtime) -> Value {
    let text = rt.run_ok(&["features"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: features is not JSON ({e}): {text}", rt.name()))
}

#[test]
fn features_list_every_hook_kind_and_the_lsms_built_in() {
    for rt in Runtime::husk_and_runc() {
        let features = features(&rt);
        let hooks: Vec<&str> = features["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        for kind in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ] {
            assert!(hooks.contains(&kind), "{}: {kind} missing from {hooks:?}", rt.name());
        }
        // runtime-spec features.md: "enabled" says the support is compiled in, unrelated to
        // whether the host runs the LSM (this host runs neither).
        assert_eq!(features["linux"]["apparmor"]["enabled"], true, "{}", rt.name());
        assert_eq!(features["linux"]["selinux"]["enabled"], true, "{}", rt.name());
    }
}

#[test]
fn features_report_seccomp_and_the_libseccomp_version() {
    // Debian's package names the same version in its file name (libseccomp.so.2.5.4).
    let lib = std::fs::read_dir("/usr/lib/x86_64-linux-gnu")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let so_versions: Vec<String> = lib
        .filter_map(|n| n.strip_prefix("libseccomp.so.").map(String::from))
        .collect();
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let features = features(&rt);
        let seccomp = &features["linux"]["seccomp"];
        assert_eq!(seccomp["enabled"], true, "{name}: {seccomp}");
        let names = |key: &str| -> Vec<String> {
            seccomp[key]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {key} in {seccomp}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let has = |key: &str, value: &str| names(key).iter().any(|v| v == value);
        assert!(has("actions", "SCMP_ACT_NOTIFY"), "{name}: {seccomp}");
        assert!(has("operators", "SCMP_CMP_MASKED_EQ"), "{name}: {seccomp}");
        assert!(has("archs", "SCMP_ARCH_X86_64"), "{name}: {seccomp}");
        // husk only: runc 1.1.5's features have no seccomp knownFlags (added in 1.2).
        if name == "husk" {
            assert!(has("knownFlags", "SECCOMP_FILTER_FLAG_LOG"), "{name}: {seccomp}");
        }
        let version = features["annotations"]["io.github.seccomp.libseccomp.version"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no libseccomp version in {features}"));
        assert!(
            so_versions.iter().any(|v| v == version),
            "{name}: {version} vs {so_versions:?}"
        );
    }
}

#[test]
fn seccomp_notify_fd_reaches_the_agent_which_answers_mkdir() {
    for (no_new_privs, rt) in [true, false]
        .into_iter()
        .flat_map(|nnp| Runtime::husk_and_runc().map(|rt| (nnp, rt)))
    {
        let name = rt.name();
        let dir = TempDir::new("breadth-agent");
        let socket = dir.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let agent = seccomp_agent::spawn(listener, libc::EDQUOT, 1);
        let mut bundle =
            sh_bundle("mkdir /dev/shm/made; echo rc=$?; test -d /dev/shm/made && echo exists || echo absent");
        let config = bundle.config_mut();
        config["process"]["noNewPrivileges"] = no_new_privs.into();
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "listenerMetadata": "agent-metadata",
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        });
        bundle.save();
        let out = run_fg(&rt, &bundle);
        let text = husk_e2e::output_text(&out);
        assert_eq!(stdout_of(&out), "rc=1\nabsent\n", "{name} nnp {no_new_privs}: {text}");
        assert!(
            stderr_of(&out).contains("Disk quota exceeded"),
            "{name} nnp {no_new_privs}: the agent's errno: {text}"
        );
        let (states, answered) = agent.join().expect("agent thread");
        let state = &states[0];
        assert!(answered >= 1, "{name}: the agent answered nothing");
        assert_eq!(state["fds"], json!(["seccompFd"]), "{name}: {state}");
        assert_eq!(state["metadata"], "agent-metadata", "{name}: {state}");
        assert_eq!(state["state"]["id"], bundle.id(), "{name}: {state}");
        assert_eq!(state["state"]["status"], "creating", "{name}: {state}");
        assert!(
            state["pid"].as_i64().unwrap() > 0 && state["pid"] == state["state"]["pid"],
            "{name}: {state}"
        );
    }
}

#[test]
fn an_unreachable_seccomp_listener_fails_create_and_leaves_nothing() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["true"]);
        bundle.config_mut()["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/nonexistent/agent.sock",
            "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }]
        });
        bundle.save();
        let out = create(&rt, &bundle);
        assert_failed(&rt, &out, &["/nonexistent/agent.sock"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn seccomp_notify_fd_of_an_exec_reaches_the_agent_too() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let dir = TempDir::new("breadth-agent-exec");
        let socket = dir.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let agent = seccomp_agent::spawn(listener, libc::ENOTUNIQ, 2);
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        });
        bundle.save();
        let pid = create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let out = rt.run(&["exec", bundle.id(), "sh", "-c", "mkdir /dev/shm/x 2>&1; echo rc=$?"]);
        assert_eq!(
            stdout_of(&out),
            "mkdir: can't create directory '/dev/shm/x': Name not unique on network\nrc=1\n",
            "{name}: {}",
            husk_e2e::output_text(&out)
        );
        rt.run_ok(&["delete", "--force", bundle.id()]);
        let (states, answered) = agent.join().expect("agent thread");
        assert_eq!(answered, 1, "{name}");
        assert_eq!(states.len(), 2, "{name}: {states:?}");
        assert_eq!(states[0]["pid"], pid, "{name}");
        assert_eq!(states[1]["state"]["status"], "running", "{name}");
        assert_ne!(states[1]["pid"], pid, "{name}: the exec'd process has its own pid");
    }
}

// husk only: runc 1.1.5 has no time namespace.
#[test]
fn time_offsets_work_with_a_new_user_namespace() {
    let rt = Runtime::husk();
    let mut bundle = sh_bundle("cut -d. -f1 /proc/uptime");
    // The mapped root must reach the rootfs through the bundle directory.
    std::fs::set_permissions(bundle.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = bundle.config_mut();
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.push(json!({ "type": "user" }));
    namespaces.push(json!({ "type": "time" }));
    config["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    config["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    config["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 1_000_000 } });
    bundle.save();
    let inside: f64 = run_ok(&rt, &bundle).trim().parse().unwrap();
    let host = uptime_centis(&std::fs::read_to_string("/proc/uptime").unwrap()) as f64 / 100.0;
    assert!(inside - host > 999_000.0, "uptime inside {inside}, host {host}");
}

#[test]
fn exec_with_an_apparmor_profile_on_a_host_without_apparmor_is_refused() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let mut process = bundle.config()["process"].clone();
        process["args"] = json!(["touch", "/dev/shm/ran"]);
        process["apparmorProfile"] = "husk-exec-profile".into();
        let file = bundle.path().join("process.json");
        std::fs::write(&file, process.to_string()).unwrap();
        let out = rt.run(&["exec", "--process", file.to_str().unwrap(), bundle.id()]);
        assert_failed(&rt, &out, &["husk-exec-profile"]);
        let check = rt.run(&["exec", bundle.id(), "test", "-e", "/dev/shm/ran"]);
        assert_eq!(check.status.code(), Some(1), "{}: the refused process ran", rt.name());
    }
}

// husk only: runc 1.1.5 ignores linux.personality.
#[test]
fn an_exec_gets_the_containers_personality_too() {
    let rt = Runtime::husk();
    let mut bundle = Bundle::new(&["sleep", "100"]);
    bundle.config_mut()["linux"]["personality"] = json!({ "domain": "LINUX32" });
    bundle.save();
    create_ok(&rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    assert_eq!(rt.run_ok(&["exec", bundle.id(), "uname", "-m"]), "i686\n");
}
