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
    let missing: Vec<&String> = go.difference(&husk).collect();
    eprintln!("metric names: go shim {}, husk shim {}", go.len(), husk.len());
    eprintln!("husk only: {:?}", husk.difference(&go).collect::<Vec<_>>());
    eprintln!("go only: {:?}", go.difference(&husk).collect::<Vec<_>>());
    // A counter that happened to be 0 for one workload and not the other is omitted from
    // one json only: allow a few such, but not whole groups.
    assert!(
        missing.len() <= 3,
        "husk shim lacks {} of the go shim's {} metrics: {missing:?}",
        missing.len(),
        go.len()
    );
}

/// The husk shim is found on containerd's PATH: make sure the binary exists before the
/// scenarios blame containerd for not finding it.
#[test]
fn husk_shim_binary_is_built() {
    let shim = husk_e2e::shim_bin();
    assert!(shim.is_file());
}
