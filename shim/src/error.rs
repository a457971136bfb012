//! The shim's one error type and its single mapping onto ttrpc status codes, so every handler
//! returns `Result<_, Error>` and containerd sees NOT_FOUND / FAILED_PRECONDITION / ... the same
//! way it does from containerd's own shims.

use std::io;
use std::path::PathBuf;

use containerd_shim::protos::ttrpc::{self, Code};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0}: not found")]
    ContainerNotFound(String),
    #[error("process {exec_id} of container {id}: not found")]
    ProcessNotFound { id: String, exec_id: String },
    #[error("process {0}: process already finished")]
    ProcessFinished(String),
    #[error("container {0}: already exists")]
    ContainerExists(String),
    #[error("exec {exec_id} of container {id}: already exists")]
    ExecExists { id: String, exec_id: String },
    #[error("process {id}: cannot {action} a {state} process")]
    InvalidTransition {
        id: String,
        action: &'static str,
        state: &'static str,
    },
    #[error("container {0}: init process has exited, no new exec can start")]
    InitExited(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}: not implemented by containerd-shim-husk-v2")]
    Unimplemented(&'static str),
    /// The runtime binary failed; `msg` is the last error line of its json log, verbatim.
    #[error("{msg}")]
    Runtime { msg: String },
    #[error("failed to run {binary}: {source}")]
    RuntimeSpawn { binary: PathBuf, source: io::Error },
    #[error("failed to parse output of `{binary} {command}`: {source}")]
    RuntimeOutput {
        binary: PathBuf,
        command: &'static str,
        source: serde_json::Error,
    },
    #[error("failed to {action}: {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to {action}: {source}")]
    Sys { action: &'static str, source: nix::Error },
    #[error("failed to decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: containerd_shim::protos::protobuf::Error,
    },
    #[error("failed to encode {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("failed to mount rootfs {target}: {source}")]
    Mount {
        target: PathBuf,
        source: containerd_shim::Error,
    },
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    pub fn sys(action: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |source| Error::Sys { action, source }
    }

    /// A runtime error that says the container or its process is gone (runc's and husk's
    /// wording, as containerd's runc shim matches them in checkKillError).
    pub fn is_gone(&self) -> bool {
        let Error::Runtime { msg } = self else {
            return false;
        };
        let msg = msg.to_lowercase();
        [
            "does not exist",
            "not running",
            "that is stopped",
            "no such process",
            "process already finished",
        ]
        .iter()
        .any(|gone| msg.contains(gone))
    }

    /// [`Error::is_gone`] errors become NOT_FOUND ("process already finished"); others stay.
    pub fn process_gone(self, id: &str) -> Error {
        if self.is_gone() {
            log::debug!("{id}: {self}");
            return Error::ProcessFinished(id.to_string());
        }
        self
    }

    fn code(&self) -> Code {
        match self {
            Error::ContainerNotFound(_) | Error::ProcessNotFound { .. } | Error::ProcessFinished(_) => Code::NOT_FOUND,
            Error::ContainerExists(_) | Error::ExecExists { .. } => Code::ALREADY_EXISTS,
            Error::InvalidTransition { .. } | Error::InitExited(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) | Error::Decode { .. } => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            _ => Code::UNKNOWN,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(err: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(err.code(), err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(err: Error) -> i32 {
        match ttrpc::Error::from(err) {
            ttrpc::Error::RpcStatus(status) => status.code.value(),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn error_kinds_map_to_the_codes_containerd_checks() {
        assert_eq!(code_of(Error::ContainerNotFound("c".into())), Code::NOT_FOUND as i32);
        assert_eq!(code_of(Error::ContainerExists("c".into())), Code::ALREADY_EXISTS as i32);
        let bad = Error::InvalidTransition {
            id: "c".into(),
            action: "start",
            state: "stopped",
        };
        assert_eq!(code_of(bad), Code::FAILED_PRECONDITION as i32);
        assert_eq!(code_of(Error::Unimplemented("checkpoint")), Code::UNIMPLEMENTED as i32);
    }

    #[test]
    fn runtime_errors_about_a_vanished_container_map_to_not_found() {
        let gone = Error::Runtime {
            msg: "container \"c1\" does not exist".into(),
        };
        assert_eq!(code_of(gone.process_gone("c1")), Code::NOT_FOUND as i32);
        let stopped = Error::Runtime {
            msg: "container c1: cannot kill a container that is stopped".into(),
        };
        assert_eq!(code_of(stopped.process_gone("c1")), Code::NOT_FOUND as i32);
        let other = Error::Runtime {
            msg: "permission denied".into(),
        };
        assert_eq!(code_of(other.process_gone("c1")), Code::UNKNOWN as i32);
    }

    #[test]
    fn runtime_errors_carry_the_runtime_message_verbatim() {
        let msg = "container_linux.go:380: starting container process caused: exec: \"nope\"";
        assert_eq!(Error::Runtime { msg: msg.into() }.to_string(), msg);
    }
}
