//! `husk doctor` against real set-ups: a private containerd with husk registered and CRI
//! loaded; the same with the shim missing from containerd's PATH; a containerd whose CRI
//! plugin failed to load (the old drop-in's failure); a capability dropped from the bounding
//! set. runc has no such command: these tests check husk's verdicts against the real state.

use std::process::Command;

use husk_e2e::{husk_bin, output_text, target_dir, Containerd};
use serde_json::Value;

/// Runs `husk doctor --json` with `args`; returns (exit code, report).
fn doctor(wrapper: &[&str], args: &[&str]) -> (i32, Value) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(husk_bin());
            c
        }
        None => Command::new(husk_bin()),
    };
    let out = cmd
        .arg("doctor")
        .arg("--json")
        .args(args)
        .output()
        .expect("run husk doctor");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no json ({e}): {}", output_text(&out)));
    (out.status.code().unwrap_or(-1), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

fn containerd_args(ctrd: &Containerd, shim_path: &str) -> Vec<String> {
    vec![
        "--containerd-config".into(),
        ctrd.dir().join("config.toml").display().to_string(),
        "--containerd-address".into(),
        ctrd.address().display().to_string(),
        "--containerd-path".into(),
        shim_path.into(),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_registered_husk_with_cri_loaded_has_no_blockers() {
    let ctrd = Containerd::builder().cri(true).start();
    let path = format!("{}:/usr/bin:/bin", target_dir().display());
    let (code, report) = doctor(&[], &as_strs(&containerd_args(&ctrd, &path)));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(check(&report, "husk runtime")["verdict"], "ok", "{report:#}");
    assert_eq!(check(&report, "shim")["verdict"], "ok", "{report:#}");
    assert_eq!(check(&report, "CRI plugin")["verdict"], "ok", "{report:#}");
    assert_eq!(check(&report, "clone3")["verdict"], "ok");
}

#[test]
fn a_shim_missing_from_containerds_path_is_a_blocker() {
    let ctrd = Containerd::builder().cri(true).start();
    let (code, report) = doctor(&[], &as_strs(&containerd_args(&ctrd, "/nonexistent")));
    assert_eq!(code, 1, "{report:#}");
    let shim = check(&report, "shim");
    assert_eq!(shim["verdict"], "blocker", "{report:#}");
    assert!(shim["advice"]
        .as_str()
        .is_some_and(|a| a.contains("containerd-shim-husk-v2")));
}

/// The failure the old imports drop-in caused: a CRI table that declares husk but no runc,
/// so default_runtime_name "runc" names nothing and the CRI plugin does not load.
#[test]
fn a_cri_plugin_that_failed_to_load_is_a_blocker() {
    let config = r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
temp = "{dir}/tmp"
[grpc]
  address = "{dir}/c.sock"
[ttrpc]
  address = "{dir}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
  runtime_type = "io.containerd.husk.v2"
"#;
    let ctrd = Containerd::builder().own_config(config).start();
    let path = format!("{}:/usr/bin:/bin", target_dir().display());
    let (code, report) = doctor(&[], &as_strs(&containerd_args(&ctrd, &path)));
    assert_eq!(code, 1, "{report:#}");
    let cri = check(&report, "CRI plugin");
    assert_eq!(cri["verdict"], "blocker", "{report:#}");
    assert!(
        cri["detail"].as_str().is_some_and(|d| d.contains("not loaded")),
        "{cri}"
    );
}

#[test]
fn a_capability_missing_from_the_bounding_set_is_named() {
    let (_, report) = doctor(
        &["setpriv", "--bounding-set", "-net_admin", "--"],
        &["--containerd-path", "/x"],
    );
    let caps = check(&report, "capabilities");
    assert_eq!(caps["verdict"], "warn", "{report:#}");
    assert!(
        caps["detail"].as_str().is_some_and(|d| d.contains("cap_net_admin")),
        "{caps}"
    );
}

#[test]
fn doctor_refuses_arguments_with_one_line_and_exit_1() {
    let out = Command::new(husk_bin())
        .args(["doctor", "extra"])
        .output()
        .expect("run husk doctor");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("doctor takes no arguments"), "{err}");
}
