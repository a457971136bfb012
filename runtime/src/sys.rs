//! The error every thin kernel-call wrapper returns: which operation, on what, and the errno.
//! Kept in one place so that every syscall failure reads the same way:
//! `failed to mount proc on /proc: EPERM: Operation not permitted`.

use nix::errno::Errno;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// What was being done, as a verb phrase: "mount proc on", "open", "setns into".
    pub op: String,
    /// What it was done to: a path, a pid, a namespace.
    pub object: String,
    pub errno: Errno,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to {} {}: {}", self.op, self.object, self.errno)
    }
}

impl std::error::Error for SysError {}

impl SysError {
    pub fn new(op: impl Into<String>, object: impl fmt::Display, errno: Errno) -> Self {
        SysError {
            op: op.into(),
            object: object.to_string(),
            errno,
        }
    }

    pub fn from_io(op: impl Into<String>, object: impl fmt::Display, err: &std::io::Error) -> Self {
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO));
        SysError::new(op, object, errno)
    }
}

/// Attach context to a failed kernel call.
pub trait Context<T> {
    fn ctx(self, op: &str, object: impl fmt::Display) -> Result<T, SysError>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, op: &str, object: impl fmt::Display) -> Result<T, SysError> {
        self.map_err(|errno| SysError::new(op, object, errno))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, op: &str, object: impl fmt::Display) -> Result<T, SysError> {
        self.map_err(|err| SysError::from_io(op, object, &err))
    }
}
