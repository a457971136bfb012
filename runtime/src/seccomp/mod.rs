//! seccomp: the OCI profile compiled with libseccomp and loaded last before execve.
//!
//! The runtime drives it in four steps:
//! ```text
//!   husk create, before touching the system   parse_profile(&json) / validate(&profile)
//!   husk create, before cloning the init      program = prepare_cached(&profile, cache_dir)
//!   container init, last thing before exec    program.load() -> Option<notify fd>, fd -> parent
//!   parent, where listenerPath resolves       send_notify_fd(listenerPath, fd, process_state_json(..))
//! ```
//! The init runs inside the container's mount namespace when it loads the filter, so it cannot
//! always reach `listenerPath`; it hands the notify fd to the parent over its sync socket and the
//! parent sends it to the agent. See docs/seccomp.md for the kernel facts behind the order.

mod compile;
#[cfg(test)]
mod compile_tests;
mod enosys;
mod features;
mod notify;
mod program;
mod validate;

use std::os::fd::OwnedFd;

pub use compile::{compile, Filter};
pub use features::{
    features, known_flags, libseccomp_version, supported_actions, supported_archs, supported_flags, supported_operators,
};
pub use notify::{process_state_json, send_notify_fd};
pub use program::{prepare, prepare_cached, Program};
pub use validate::{parse_profile, validate};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

/// Everything that can go wrong from validating a profile to handing its notify fd to an agent.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("invalid seccomp profile: {field}: unknown {kind} {value:?}")]
    UnknownName {
        field: String,
        kind: &'static str,
        value: String,
    },
    #[error("invalid seccomp profile: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("invalid seccomp profile: SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyAsDefault,
    #[error("invalid seccomp profile: {field}: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")]
    NotifyWithoutListener { field: String },
    #[error("invalid seccomp profile: {field}: SCMP_ACT_NOTIFY cannot be used for {syscall} (the runtime needs it after the filter is loaded)")]
    NotifyOnRuntimeSyscall { field: String, syscall: String },
    #[error("invalid seccomp profile: listenerMetadata is set without listenerPath")]
    MetadataWithoutListener,
    #[error("invalid seccomp profile: {field}: errnoRet is not supported for {action}")]
    ErrnoRetNotSupported { field: String, action: LinuxSeccompAction },
    #[error("invalid seccomp profile: {field}: errnoRet {value} is out of range (0..=65535)")]
    ErrnoRetOutOfRange { field: String, value: u32 },
    #[error("invalid seccomp profile: {field}: names must contain at least one syscall")]
    EmptyNames { field: String },
    #[error("invalid seccomp profile: {field}: argument index {index} is out of range (0..6)")]
    ArgIndexOutOfRange { field: String, index: usize },
    #[error("failed to add architecture {arch} to the seccomp filter: its byte order differs from the host's")]
    ForeignArch { arch: oci_spec::runtime::Arch },
    #[error("unsupported seccomp flag {flag}: {why}")]
    UnsupportedFlag { flag: LinuxSeccompFilterFlag, why: String },
    #[error("failed to {op}: {}", describe_libseccomp(source))]
    Libseccomp {
        op: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("failed to load seccomp filter (seccomp(2) flags {flags:#x}): {}", crate::sys::errno_text(*errno))]
    Load { flags: u32, errno: nix::errno::Errno },
    #[error("failed to load seccomp filter: thread {tid} could not be synchronized (TSYNC)")]
    TsyncFailed { tid: i32 },
    #[error("failed to load seccomp filter: {instructions} BPF instructions exceed the kernel's limit")]
    ProgramTooLong { instructions: usize },
    #[error("failed to export seccomp filter: {}", crate::sys::io_error_text(source))]
    Export {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to connect to seccomp listener: {path}: {}",
        crate::sys::io_error_text(source)
    )]
    ListenerConnect {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to send seccomp notify fd to listener: {path}: {}",
        crate::sys::io_error_text(source)
    )]
    ListenerSend {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to serialize container process state: {0}")]
    ProcessState(#[source] serde_json::Error),
}

impl SeccompError {
    /// The errno behind a kernel-side failure, so the child can report `Error { context, errno }`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Libseccomp { source, .. } => source.sysrawrc().map(|rc| -rc),
            Self::Load { errno, .. } => Some(*errno as i32),
            Self::ProgramTooLong { .. } => Some(libc::EINVAL),
            Self::ListenerConnect { source, .. } | Self::ListenerSend { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// libseccomp describes kernel errnos in its own words ("the library doesn't permit..."); the
/// operator needs the errno itself, e.g. EACCES when no_new_privs and CAP_SYS_ADMIN are both missing.
fn describe_libseccomp(err: &libseccomp::error::SeccompError) -> String {
    match err.sysrawrc() {
        Some(rc) => crate::sys::errno_text(nix::errno::Errno::from_raw(-rc)),
        None => err.to_string(),
    }
}

fn libseccomp_error(op: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let op = op.into();
    move |source| SeccompError::Libseccomp { op, source }
}

/// Compiles and loads the profile into the calling thread (and, with TSYNC, its siblings).
///
/// Returns the seccomp notify fd (O_CLOEXEC, owned by the caller) when the loaded filter contains
/// an SCMP_ACT_NOTIFY rule; the caller passes it on with [`send_notify_fd`]. Without
/// no_new_privs this needs CAP_SYS_ADMIN in the caller's user namespace. The runtime's init
/// should rather receive a [`Program`] prepared by its parent and call [`Program::load`].
pub fn load(profile: &LinuxSeccomp) -> Result<Option<OwnedFd>, SeccompError> {
    prepare(profile)?.load()
}
