//! The runtime's top-level error: what `husk` prints on one line and writes to its json log.

use crate::cgroups::CgroupError;
use crate::config::ConfigError;
use crate::hooks::HookError;
use crate::sys::SysError;
use husk_protocol::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("container {id}: cannot {op} a container that is {status}")]
    WrongStatus {
        id: String,
        op: &'static str,
        status: Status,
    },
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("{0}")]
    Usage(String),
    #[error("invalid config.json: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sys(#[from] SysError),
    /// Boxed, like Seccomp: CgroupError carries paths and a controller name, and every Result
    /// of husk carries this enum.
    #[error(transparent)]
    Cgroup(Box<CgroupError>),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    /// Boxed: SeccompError is large, and every Result of husk carries this enum.
    #[error(transparent)]
    Seccomp(Box<crate::seccomp::SeccompError>),
    #[error("container init: {0}")]
    Init(String),
    #[error("exec in container {id}: {msg}")]
    Exec { id: String, msg: String },
    /// Any failure of `husk exec` itself, as runc's exec.go words it; it exits 255, so that a
    /// caller can tell it from the exit status of the process (see [`Error::exit_code`]).
    #[error("exec failed: {0}")]
    ExecFailed(Box<Error>),
    #[error("corrupt state file {path}: {why}")]
    CorruptState { path: String, why: String },
    #[error(transparent)]
    Log(#[from] crate::logging::LogError),
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
}

impl From<crate::seccomp::SeccompError> for Error {
    fn from(e: crate::seccomp::SeccompError) -> Self {
        Error::Seccomp(Box::new(e))
    }
}

impl From<CgroupError> for Error {
    fn from(e: CgroupError) -> Self {
        Error::Cgroup(Box::new(e))
    }
}

impl Error {
    /// husk's exit status for this error: 255 for a failed exec (runc's fatalWithCode), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ExecFailed(_) => 255,
            _ => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
