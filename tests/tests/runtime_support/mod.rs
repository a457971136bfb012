//! Shared by the `runtime_*` test files: driving `husk` on a busybox bundle and checking
//! that a failed command leaves nothing behind. Each test file uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use husk_e2e::{
    assert_no_cgroup, assert_no_mounts_under, assert_no_processes_mentioning, output_text, wait_until, Bundle, Runtime,
};
use serde_json::Value;

/// A bundle whose process runs `sh -c script`.
pub fn sh_bundle(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

/// uid/gid mappings of the container's ids 0..65536 to the host's 100000..; the bundle dir made
/// traversable (mkdtemp's 0700 would keep the mapped root out of its own rootfs). Call
/// [`Bundle::save`] afterwards.
pub fn map_root_to_100000(bundle: &mut Bundle) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bundle.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = bundle.config_mut();
    config["linux"]["uidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    config["linux"]["gidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
}

/// A new user namespace, mapped by [`map_root_to_100000`].
pub fn add_user_namespace(bundle: &mut Bundle) {
    map_root_to_100000(bundle);
    bundle.config_mut()["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces is an array")
        .push(serde_json::json!({ "type": "user" }));
}

/// `husk run --bundle <bundle> <id>` in the foreground: the container's stdout and stderr are
/// the command's, its exit code is husk's.
pub fn run_fg(rt: &Runtime, bundle: &Bundle) -> Output {
    let path = bundle.path().to_str().expect("bundle path is UTF-8");
    rt.run(&["run", "--bundle", path, bundle.id()])
}

/// [`run_fg`] that must exit 0; returns the container's stdout.
pub fn run_ok(rt: &Runtime, bundle: &Bundle) -> String {
    let out = run_fg(rt, bundle);
    assert!(out.status.success(), "{} run failed: {}", rt.name(), output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `script` on husk in a container built from the default spec changed by `edit`; its stdout.
pub fn run_script(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    run_script_on(&Runtime::husk(), script, edit)
}

/// [`run_script`] on `rt`.
pub fn run_script_on(rt: &Runtime, script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut bundle = sh_bundle(script);
    edit(bundle.config_mut());
    bundle.save();
    run_ok(rt, &bundle)
}

/// [`run_script`] on husk and on runc, the control: both must print the same; husk's stdout.
pub fn run_script_on_both(script: &str, edit: impl Fn(&mut Value)) -> String {
    let [husk, runc] = Runtime::husk_and_runc();
    let ours = run_script_on(&husk, script, &edit);
    let control = run_script_on(&runc, script, &edit);
    assert_eq!(ours, control, "husk and runc print different things for {script:?}");
    ours
}

/// `husk create` that must succeed; returns the init's pid from `state`.
pub fn create_ok(rt: &Runtime, bundle: &Bundle) -> i32 {
    let path = bundle.path().to_str().expect("bundle path is UTF-8");
    rt.run_ok(&["create", "--bundle", path, bundle.id()]);
    init_pid(rt, bundle.id())
}

pub fn init_pid(rt: &Runtime, id: &str) -> i32 {
    let state = rt.state(id).unwrap_or_else(|| panic!("husk state {id} failed"));
    let pid = state["pid"].as_i64().expect("state has a pid") as i32;
    assert!(pid > 0, "pid of {id} in {state}");
    pid
}

pub fn status_of(rt: &Runtime, id: &str) -> Option<String> {
    rt.state(id).and_then(|s| s["status"].as_str().map(String::from))
}

/// Wait (up to 10 s) until `state` reports `status`.
pub fn wait_status(rt: &Runtime, id: &str, status: &str) {
    let reached = wait_until(Duration::from_secs(10), || status_of(rt, id).as_deref() == Some(status));
    assert!(reached, "{id} never became {status:?}; state: {:?}", rt.state(id));
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed with exactly one line on stderr, `husk: ...`, which contains `want`
/// (case-insensitive).
pub fn assert_one_line_error(out: &Output, want: &str) {
    assert!(!out.status.success(), "expected a failure: {}", output_text(out));
    let stderr = stderr_of(out);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr: {}", output_text(out));
    assert!(
        lines[0].starts_with("husk: "),
        "error line lacks the husk: prefix: {lines:?}"
    );
    assert!(
        lines[0].to_lowercase().contains(&want.to_lowercase()),
        "error {:?} does not mention {want:?}",
        lines[0]
    );
}

/// Nothing of container `id` is left: no state dir, no process, no mount below the bundle,
/// no cgroup in any hierarchy.
pub fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    assert!(
        !rt.root().join(id).exists(),
        "state dir {} is left",
        rt.root().join(id).display()
    );
    assert_no_processes_mentioning(id);
    assert_no_mounts_under(bundle.path());
    let cgroup = bundle.cgroups_path();
    if !cgroup.is_empty() {
        assert_no_cgroup(&cgroup);
    }
}

/// The inode of a namespace (or any) file, following symlinks.
pub fn inode(path: impl AsRef<Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let path = path.as_ref();
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("failed to stat {}: {e}", path.display()))
        .ino()
}

/// `readlink /proc/<pid>/ns/<kind>`, e.g. "net:[4026531840]".
pub fn ns_link(pid: &str, kind: &str) -> String {
    let path = format!("/proc/{pid}/ns/{kind}");
    std::fs::read_link(&path)
        .unwrap_or_else(|e| panic!("failed to readlink {path}: {e}"))
        .display()
        .to_string()
}

/// The command failed on `rt` (husk or runc, the control). On husk also with one `husk: ...`
/// line naming each of `wants`: runc's wording and logrus framing are no contract, its
/// failure is.
pub fn assert_failed(rt: &Runtime, out: &Output, wants: &[&str]) {
    assert!(
        !out.status.success(),
        "{}: expected a failure: {}",
        rt.name(),
        output_text(out)
    );
    if rt.name() == "husk" {
        for want in wants {
            assert_one_line_error(out, want);
        }
    }
}

/// [`assert_failed`], where both runtimes' stderr mention `word` (case-insensitive).
pub fn assert_refused(rt: &Runtime, out: &Output, word: &str) {
    assert_failed(rt, out, &[word]);
    let stderr = stderr_of(out).to_lowercase();
    assert!(
        stderr.contains(&word.to_lowercase()),
        "{}: {word:?} not in {stderr}",
        rt.name()
    );
}
