//! containerd-shim-husk-v2 (`--runtime io.containerd.husk.v2`) driving husk: the whole path
//! ctr → containerd → husk shim → husk. The same scenarios run with the Go shim in
//! go_shim_interop.rs: when one fails here and passes there, the bug is in the shim.

mod scenarios;

use scenarios::Via;

scenario_tests!(husk_shim, Via::HuskShim);

/// The husk shim is found on containerd's PATH: make sure the binary exists before the
/// scenarios blame containerd for not finding it.
#[test]
fn husk_shim_binary_is_built() {
    let shim = husk_e2e::shim_bin();
    assert!(shim.is_file());
}
