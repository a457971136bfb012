//! Contracts that both `husk` and `containerd-shim-husk-v2` read: the OCI state JSON that
//! `husk state` prints, the json log line format (as runc writes it, read by containerd's
//! shims to build RPC errors) and the console-socket convention. No logic lives here.

pub mod log_line;
pub mod state;

pub use log_line::LogLine;
pub use state::{ContainerState, Status};
