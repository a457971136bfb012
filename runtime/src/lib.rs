//! husk: a runc-compatible OCI runtime. The `husk` binary parses its command line and calls
//! into this library; every lifecycle verb and kernel concern has its own module.

pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod clone;
pub mod cloned_binary;
pub mod config;
pub mod container;
pub mod doctor;
pub mod error;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod lsm;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod signals;
pub mod state;
pub mod sync;
pub mod sys;
pub mod trace;
