//! OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and an
//! optional timeout after which it is killed.

use husk_protocol::ContainerState;
use oci_spec::runtime::Hook;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: failed to start: {why}")]
    Spawn {
        kind: &'static str,
        path: String,
        why: String,
    },
    #[error("{kind} hook {path}: exited with {status}{stderr}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook {path}: timed out after {secs}s and was killed")]
    TimedOut {
        kind: &'static str,
        path: String,
        secs: i64,
    },
    #[error("{kind} hooks: the container init got no state from the runtime")]
    NoState { kind: &'static str },
}

pub fn run_all(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &ContainerState) -> Result<(), HookError> {
    for hook in hooks.into_iter().flatten() {
        run_one(kind, hook, state)?;
    }
    Ok(())
}

/// For the kinds whose failure the spec says only warns (poststart, poststop).
pub fn run_all_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &ContainerState) {
    if let Err(e) = run_all(kind, hooks, state) {
        log::warn!("{e}");
        eprintln!("husk: warning: {e}");
    }
}

fn run_one(kind: &'static str, hook: &Hook, state: &ContainerState) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let mut cmd = Command::new(program_path(hook.path()));
    if let Some(args) = hook.args().as_deref() {
        if let Some((argv0, rest)) = args.split_first() {
            use std::os::unix::process::CommandExt;
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| HookError::Spawn {
        kind,
        path: path.clone(),
        why: crate::sys::io_error_text(&e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error (EPIPE).
        let _ = stdin.write_all(&serde_json::to_vec(state).unwrap_or_default());
    }
    let status = match hook.timeout() {
        Some(secs) if secs > 0 => wait_with_timeout(&mut child, secs).ok_or(HookError::TimedOut {
            kind,
            path: path.clone(),
            secs,
        })?,
        _ => child.wait().map_err(|e| HookError::Spawn {
            kind,
            path: path.clone(),
            why: crate::sys::io_error_text(&e),
        })?,
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    Err(HookError::Failed {
        kind,
        path,
        status: status.to_string(),
        stderr: stderr_suffix(&stderr),
    })
}

/// runc execs a hook's path as it is (Go's exec.Cmd with Path set, no PATH lookup): a bare
/// name is a file in the working directory, which Command would look up in PATH instead.
fn program_path(path: &Path) -> PathBuf {
    if path.is_relative() && path.components().count() == 1 {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

/// The hook's stderr as one line (the error is one line on husk's stderr and in the json log).
fn stderr_suffix(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

/// Wait on a pidfd of the hook with the timeout: no polling loop, no thread. Where pidfd_open
/// is missing (kernels before 5.3, or a seccomp filter refusing it) the hook is polled instead,
/// rather than killed at once. None when the hook overran and was killed.
fn wait_with_timeout(child: &mut std::process::Child, secs: i64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs as u64);
    match crate::container::start::pidfd_open(child.id() as i32) {
        Ok(pidfd) => wait_on_pidfd(&pidfd, deadline),
        Err(_) => wait_by_polling(child, deadline),
    }
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Block until the process behind `pidfd` exits or `deadline` passes.
fn wait_on_pidfd(pidfd: &std::os::fd::OwnedFd, deadline: Instant) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The fallback without a pidfd: check every 10 ms until the child exits or `deadline` passes.
fn wait_by_polling(child: &mut std::process::Child, deadline: Instant) {
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn polling_fallback_waits_for_a_hook_that_ends_in_time() {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        wait_by_polling(&mut child, Instant::now() + Duration::from_secs(10));
        assert!(child.try_wait().unwrap().is_some(), "returned before the hook exited");
    }

    #[test]
    fn polling_fallback_returns_at_the_deadline() {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let started = Instant::now();
        wait_by_polling(&mut child, started + Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
