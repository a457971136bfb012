//! containerd-shim-husk-v2 (`--runtime io.containerd.husk.v2`) driving husk: the whole path
//! ctr → containerd → husk shim → husk. The same scenarios run with the Go shim in
//! go_shim_interop.rs: when one fails here and passes there, the bug is in the shim.

mod scenarios;

use scenarios::Via;

scenario_tests!(husk_shim, Via::HuskShim);
parity_tests!(husk_shim_parity, Via::HuskShim);

#[test]
fn runtime_error_reaches_containerd_log() {
    scenarios::runtime_error_reaches_containerd_log(&Via::HuskShim);
}

/// `ctr tasks metrics` names the same metrics from both shims for the same busybox workload,
/// and both still answer once the task has stopped (issue 11: husk gave 25 values, the Go shim 74).
#[test]
fn metrics_name_what_the_go_shim_names() {
    let ctrd = scenarios::containerd_with_busybox();
    let go = scenarios::metrics_of(
        &ctrd,
        &Via::GoShim("/usr/sbin/runc".into()),
        &husk_e2e::unique_id("mgo"),
    );
    let husk = scenarios::metrics_of(&ctrd, &Via::HuskShim, &husk_e2e::unique_id("mhusk"));
    eprintln!("metric names: go shim {}, husk shim {}", go.len(), husk.len());
    eprintln!("husk only: {:?}", husk.difference(&go).collect::<Vec<_>>());
    eprintln!("go only: {:?}", go.difference(&husk).collect::<Vec<_>>());
    // The json drops zeros: a counter that a short workload can leave at 0 in one container
    // and not the other is compared only when both report it. Every other name must match.
    let missing: Vec<&String> = go.difference(&husk).filter(|name| !may_be_zero(name)).collect();
    assert!(
        missing.is_empty(),
        "husk shim lacks {} of the go shim's {} metrics: {missing:?}",
        missing.len(),
        go.len()
    );
}

/// LRU lists, dirty and writeback pages, major faults and the cpu time split: 0 or not by
/// timing (seen: active_anon, cpu.usage.kernel and user, dirty), whichever shim reports them.
fn may_be_zero(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let leaf = leaf.strip_prefix("total_").unwrap_or(leaf);
    matches!(
        leaf,
        "active_anon"
            | "inactive_anon"
            | "active_file"
            | "inactive_file"
            | "dirty"
            | "writeback"
            | "pgmajfault"
            | "mapped_file"
            | "unevictable"
            | "kernel"
            | "user"
    )
}

/// The husk shim is found on containerd's PATH: make sure the binary exists before the
/// scenarios blame containerd for not finding it.
#[test]
fn husk_shim_binary_is_built() {
    let shim = husk_e2e::shim_bin();
    assert!(shim.is_file());
}

/// Runs `<shim> -id c1 -bundle <bundle> delete` the way containerd 1.6 does whenever its
/// connection to a shim closes (cleanupAfterDeadShim, after every normal Delete and Shutdown
/// too), with a runtime that only logs its arguments; returns what the runtime was asked.
fn shim_delete_calls(shim: &std::path::Path, dir: &std::path::Path, bundle: &std::path::Path) -> String {
    let calls = dir.join("calls");
    let _ = std::fs::remove_file(&calls);
    let out = husk_e2e::run_with_timeout(
        std::process::Command::new(shim)
            .args([
                "-namespace",
                "ns1",
                "-address",
                "/run/husk-e2e-none.sock",
                "-publish-binary",
                "/bin/true",
            ])
            .args(["-id", "c1", "-bundle"])
            .arg(bundle)
            .arg("delete")
            .current_dir(bundle),
        std::time::Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", husk_e2e::output_text(&out));
    std::fs::read_to_string(calls).unwrap_or_default()
}

/// With the container's state dir already gone, the husk shim's `delete` action runs no
/// runtime process: `delete --force` of an unknown id does nothing (husk, runc and crun agree),
/// and containerd 1.6 calls this action once per container removal. Where husk differs: the Go
/// shim (the control) runs `runc delete --force` every time, one process more per removal.
#[test]
fn shim_delete_runs_the_runtime_only_when_its_state_is_left() {
    let dir = husk_e2e::TempDir::new("shim-delete");
    let runtime = dir.join("runtime");
    let script = format!("#!/bin/sh\necho \"$*\" >> {}\n", dir.join("calls").display());
    std::fs::write(&runtime, script).unwrap();
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let root = dir.join("root");
    // The bundle dir is named after the id: the Go shim finds its files through it.
    let bundle = dir.join("c1");
    std::fs::create_dir_all(&bundle).unwrap();
    let options = serde_json::json!({
        "binary_name": runtime, "root": root, "systemd_cgroup": false, "no_pivot_root": false,
        "no_new_keyring": false, "io_uid": 0, "io_gid": 0, "shim_cgroup": ""
    });
    std::fs::write(bundle.join("husk-options.json"), options.to_string()).unwrap();
    std::fs::write(
        bundle.join("options.json"),
        serde_json::json!({ "binary_name": runtime, "root": root }).to_string(),
    )
    .unwrap();
    std::fs::write(bundle.join("runtime"), runtime.display().to_string()).unwrap();

    let husk = husk_e2e::shim_bin();
    assert_eq!(
        shim_delete_calls(&husk, dir.path(), &bundle),
        "",
        "no state dir: no runtime call"
    );
    std::fs::create_dir_all(root.join("ns1/c1")).unwrap();
    let calls = shim_delete_calls(&husk, dir.path(), &bundle);
    assert!(calls.contains("delete --force c1"), "state dir left: {calls:?}");

    std::fs::remove_dir_all(root.join("ns1/c1")).unwrap();
    let go = shim_delete_calls(
        std::path::Path::new("/usr/bin/containerd-shim-runc-v2"),
        dir.path(),
        &bundle,
    );
    assert!(go.contains("delete --force c1"), "the Go shim: {go:?}");
}
