//! containerd's own Go shim (containerd-shim-runc-v2) driving a runc-compatible binary:
//! the runc CLI contract husk must honour. Every scenario runs twice: with husk
//! (`husk_under_go_shim::*`) and with Debian's runc (`runc_control::*`), the control that
//! proves the test itself is right.

mod scenarios;

use scenarios::Via;

scenario_tests!(runc_control, Via::GoShim("/usr/sbin/runc".into()));
scenario_tests!(husk_under_go_shim, Via::GoShim(husk_e2e::husk_bin()));
parity_tests!(runc_control_parity, Via::GoShim("/usr/sbin/runc".into()));
