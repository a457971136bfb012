//! husk: a runc-compatible OCI runtime. The `husk` binary parses its command line and calls
//! into this library; every lifecycle verb and kernel concern has its own module.

pub mod cgroups;
pub mod seccomp;
