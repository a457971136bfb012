//! OCI hooks: each gets the container's state JSON on stdin; a failing prestart hook makes
//! create fail and leaves nothing behind.

mod runtime_support;

use std::path::Path;

use husk_e2e::{output_text, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::{json, Value};

/// A hook that saves its stdin to `<dir>/<name>.json` (and its args and env next to it).
fn saving_hook(dir: &Path, name: &str) -> Value {
    let file = dir.join(format!("{name}.json"));
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {0}; echo \"$0 $1 $HOOK_ENV\" > {0}.args", file.display()), "first", "second"],
        "env": ["HOOK_ENV=set"],
        "timeout": 10
    })
}

fn saved(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("hook {name} did not run ({}: {e})", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} got no JSON ({e}): {text:?}"))
}

#[test]
fn every_host_hook_receives_the_state_json() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let out_dir = TempDir::new("hooks");
        let mut bundle = Bundle::new(&["sleep", "100"]);
        let kinds = ["prestart", "createRuntime", "poststart", "poststop"];
        let hooks: serde_json::Map<String, Value> = kinds
            .iter()
            .map(|k| (k.to_string(), json!([saving_hook(out_dir.path(), k)])))
            .collect();
        bundle.config_mut()["hooks"] = Value::Object(hooks);
        bundle.config_mut()["annotations"] = json!({ "org.example/key": "value" });
        bundle.save();

        let pid = create_ok(&rt, &bundle);
        for kind in ["prestart", "createRuntime"] {
            let state = saved(out_dir.path(), kind);
            assert_eq!(state["id"], bundle.id(), "{name} {kind}: {state}");
            assert_eq!(state["pid"], pid, "{name} {kind}: {state}");
            assert_eq!(state["status"], "creating", "{name} {kind}: {state}");
            assert_eq!(
                state["bundle"],
                bundle.path().to_str().unwrap(),
                "{name} {kind}: {state}"
            );
            assert_eq!(
                state["annotations"]["org.example/key"], "value",
                "{name} {kind}: {state}"
            );
            assert!(state["ociVersion"].is_string(), "{name} {kind}: {state}");
        }
        let args = std::fs::read_to_string(out_dir.join("prestart.json.args")).unwrap();
        assert_eq!(args, "first second set\n", "{name}: hook args and env");
        // husk differs deliberately: the spec runs poststart after the process started; runc
        // 1.1.5 runs it at the end of create (libcontainer/container_linux.go start()), status
        // "created" (fixed upstream by runc#5186).
        let ran_in_create = out_dir.join("poststart.json").exists();
        assert_eq!(ran_in_create, name != "husk", "{name}: poststart ran in create");

        rt.run_ok(&["start", bundle.id()]);
        let state = saved(out_dir.path(), "poststart");
        if name == "husk" {
            assert_eq!(state["status"], "running", "{name}: {state}");
        }
        assert_eq!(state["pid"], pid, "{name}: {state}");
        assert!(
            !out_dir.join("poststop.json").exists(),
            "{name}: poststop ran before delete"
        );

        rt.run_ok(&["delete", "--force", bundle.id()]);
        let state = saved(out_dir.path(), "poststop");
        assert_eq!(state["id"], bundle.id(), "{name}: {state}");
        assert_eq!(state["status"], "stopped", "{name}: {state}");
    }
}

#[test]
fn hooks_of_a_foreground_run_run_too() {
    for rt in Runtime::husk_and_runc() {
        let out_dir = TempDir::new("hooksrun");
        let mut bundle = sh_bundle("exit 3");
        bundle.config_mut()["hooks"] = json!({
            "prestart": [saving_hook(out_dir.path(), "prestart")],
            "poststart": [saving_hook(out_dir.path(), "poststart")],
            "poststop": [saving_hook(out_dir.path(), "poststop")]
        });
        bundle.save();
        let out = run_fg(&rt, &bundle);
        assert_eq!(out.status.code(), Some(3), "{}: {}", rt.name(), output_text(&out));
        for kind in ["prestart", "poststart", "poststop"] {
            assert_eq!(saved(out_dir.path(), kind)["id"], bundle.id(), "{}: {kind}", rt.name());
        }
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    for rt in Runtime::husk_and_runc() {
        let out_dir = TempDir::new("hookfail");
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "prestart": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo refused >&2; exit 3"] }],
            "poststart": [saving_hook(out_dir.path(), "poststart")]
        });
        bundle.save();
        let path = bundle.path().to_str().unwrap();
        let out = rt.run(&["create", "--bundle", path, bundle.id()]);
        assert_failed(&rt, &out, &["prestart", "refused"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
        assert!(!out_dir.join("poststart.json").exists(), "{}: poststart ran", rt.name());
    }
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_create() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "createRuntime": [{ "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1 }]
        });
        bundle.save();
        let started = std::time::Instant::now();
        let out = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), bundle.id()]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{}: the hook outlived its timeout",
            rt.name()
        );
        assert_failed(&rt, &out, &["timed out"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// A failing poststart hook is an error and stops the container: runc has always killed the
/// init then (libcontainer/container_linux.go start(), parent.terminate()), and the spec now
/// agrees (runtime-spec#1262). `run`, detached or not, fails and leaves nothing on both.
#[test]
fn a_failing_poststart_hook_fails_run_and_leaves_nothing() {
    for (detach, rt) in [true, false]
        .into_iter()
        .flat_map(|d| Runtime::husk_and_runc().map(|rt| (d, rt)))
    {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["hooks"] = json!({
            "poststart": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo no-poststart >&2; exit 6"] }]
        });
        bundle.save();
        let path = bundle.path().to_str().unwrap();
        let mut args = vec!["run", "--bundle", path];
        if detach {
            args.push("--detach");
        }
        args.push(bundle.id());
        let out = rt.run(&args);
        assert_failed(&rt, &out, &["poststart", "no-poststart"]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// husk only for the step that fails: runc 1.1.5 runs poststart inside `create` (see
/// every_host_hook_receives_the_state_json), so with runc it is create that fails.
#[test]
fn a_failing_poststart_hook_fails_start_and_stops_the_container() {
    let rt = Runtime::husk();
    let mut bundle = Bundle::new(&["sleep", "100"]);
    bundle.config_mut()["hooks"] = json!({
        "poststart": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo no-poststart >&2; exit 6"] }]
    });
    bundle.save();
    create_ok(&rt, &bundle);
    let out = rt.run(&["start", bundle.id()]);
    assert_failed(&rt, &out, &["poststart", "no-poststart"]);
    assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("stopped"), "{}", rt.name());
    rt.run_ok(&["delete", bundle.id()]);
    assert_nothing_left(&rt, bundle.id(), &bundle);
}

#[test]
fn create_container_hook_runs_in_the_container_mount_namespace() {
    for rt in Runtime::husk_and_runc() {
        let out_dir = TempDir::new("hookcc");
        let mut bundle = Bundle::new(&["sleep", "100"]);
        let file = out_dir.join("cc");
        bundle.config_mut()["hooks"] = json!({
            "createContainer": [{ "path": "/bin/sh",
                "args": ["sh", "-c", format!("readlink /proc/self/ns/mnt > {}", file.display())] }]
        });
        bundle.save();
        let pid = create_ok(&rt, &bundle);
        let seen =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: createContainer hook: {e}", rt.name()));
        assert_eq!(seen.trim(), ns_link(&pid.to_string(), "mnt"), "{}", rt.name());
    }
}

#[test]
fn start_container_hook_runs_before_the_process() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("cat /tmp/marker");
        bundle.config_mut()["root"]["readonly"] = false.into();
        bundle.config_mut()["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo started > /tmp/marker"] }]
        });
        bundle.save();
        assert_eq!(run_ok(&rt, &bundle), "started\n", "{}", rt.name());
    }
}
