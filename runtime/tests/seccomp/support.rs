//! Forked children that report through a pipe, temporary directories, syscall probes.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use husk::seccomp::{self};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;

const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

pub fn profile(value: Value) -> LinuxSeccomp {
    seccomp::parse_profile(&value).expect("valid profile")
}

/// A temporary directory removed on drop, even when the test fails.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("husk-seccomp-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A forked child; killed and reaped on drop unless `wait` already reaped it.
pub struct Child {
    pub pid: Pid,
    report: OwnedFd,
    reaped: bool,
}

impl Child {
    /// Runs `body` in a forked child. `Err(msg)` (or a panic) exits 1 with the message on the
    /// report pipe; nothing unwinds past the fork.
    pub fn spawn(body: impl FnOnce() -> Result<(), String>) -> Child {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(read_end);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                    .unwrap_or_else(|_| Err("child panicked".to_string()));
                let code = match outcome {
                    Ok(()) => 0,
                    Err(msg) => {
                        let _ = nix::unistd::write(&write_end, msg.as_bytes());
                        1
                    }
                };
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => Child {
                pid: child,
                report: read_end,
                reaped: false,
            },
        }
    }

    /// Waits for the child (bounded by CHILD_TIMEOUT) and returns its status and report.
    pub fn wait(mut self) -> (WaitStatus, String) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let status = loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                WaitStatus::StillAlive => panic!("child {} timed out", self.pid),
                status => break status,
            }
        };
        self.reaped = true;
        let mut report = String::new();
        let _ = fs::File::from(self.report.try_clone().expect("dup")).read_to_string(&mut report);
        (status, report)
    }

    pub fn expect_success(self) {
        let pid = self.pid;
        let (status, report) = self.wait();
        assert_eq!(status, WaitStatus::Exited(pid, 0), "child failed: {report}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// `Ok` when `result` is -1 with `errno`, a description otherwise.
pub fn expect_errno(what: &str, result: nix::Result<impl std::fmt::Debug>, errno: Errno) -> Result<(), String> {
    match result {
        Err(e) if e == errno => Ok(()),
        other => Err(format!("{what}: expected {errno:?}, got {other:?}")),
    }
}

pub fn load_in_child(profile: &LinuxSeccomp) -> Result<Option<OwnedFd>, String> {
    seccomp::load(profile).map_err(|e| format!("load: {e}"))
}

pub fn raw_syscall(nr: libc::c_long, arg0: u64) -> nix::Result<i64> {
    let rc = unsafe { libc::syscall(nr, arg0) };
    Errno::result(rc)
}
