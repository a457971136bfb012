//! The error every thin kernel-call wrapper returns: which operation, on what, and the errno.
//! Kept in one place so that every syscall failure reads the same way:
//! `failed to mount proc on /proc: operation not permitted`.
//! The errno reads as Go's syscall.Errno does (strerror, lower case): runc's messages look so,
//! and clients match them by substring (Docker: "no such file or directory" → exit 127,
//! "permission denied" → 126).

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
        write!(f, "failed to {} {}: {}", self.op, self.object, errno_text(self.errno))
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

/// An errno as runc and Go print it: "no such file or directory", "operation not permitted".
pub fn errno_text(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {}", errno as i32),
    }
}

/// An io::Error in the same words: without Rust's " (os error N)" suffix.
pub fn io_error_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(raw) => errno_text(Errno::from_raw(raw)),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_read_as_runc_prints_them() {
        assert_eq!(errno_text(Errno::ENOENT), "no such file or directory");
        assert_eq!(errno_text(Errno::EACCES), "permission denied");
        let err = SysError::new("close_range", "3..4", Errno::EPERM);
        assert_eq!(err.to_string(), "failed to close_range 3..4: operation not permitted");
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_error_text(&io), "no such file or directory");
    }
}
