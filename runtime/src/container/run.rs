//! `husk run`: create and start in one go; in the foreground, wait for the container, pass on
//! the signals husk receives, delete it and exit with its status (128+signal when killed).

use super::create::{create, CreateOptions, Created};
use super::Global;
use crate::error::{Error, Result};
use crate::sys::{Context, SysError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::AsFd;

/// Signals a foreground `husk run` forwards to the container's init.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// `run`'s own flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunMode {
    /// Return once the process runs (create + start).
    pub detach: bool,
    /// In the foreground, leave the stopped container for `state` and `delete` (runc --keep).
    pub keep: bool,
}

/// Returns the exit code husk should exit with.
pub fn run(global: &Global, id: &str, opts: &CreateOptions, mode: RunMode) -> Result<i32> {
    if mode.detach {
        let saved = create(global, id, opts, true)?.saved;
        if let Err(e) = super::start::start(global, id) {
            // runc's run removes a container it could not start: nothing is left.
            if let Ok(state_dir) = crate::state::StateDir::open(&global.root, id) {
                let _ = super::delete::kill_and_wait(&saved);
                super::delete::destroy(state_dir, &saved)?;
            }
            return Err(e);
        }
        return Ok(0);
    }
    // The init execs at once: nobody needs exec.fifo when husk itself waits.
    let created = create(global, id, opts, false)?;
    // A failing poststart hook has stopped the container: wait, clean up, then fail.
    let poststart = super::start::run_poststart(&created.saved);
    // Unlock while waiting: `state`, `kill`, `ps` on this container must not block until it
    // exits. Relock to clean up; a `delete --force` meanwhile has already done it.
    let Created {
        pid,
        pidfd,
        state_dir,
        saved,
        console_rx,
        ..
    } = created;
    drop(state_dir);
    let code = match &console_rx {
        Some(rx) => super::tty_proxy::receive_master(rx)
            .map_err(Error::from)
            .and_then(|master| wait_proxying(pid, &pidfd, &master)),
        None => wait_forwarding(pid, &pidfd),
    };
    let code = poststart.and(code);
    if mode.keep {
        return code;
    }
    match crate::state::StateDir::open(&global.root, id) {
        Ok(state_dir) => super::delete::destroy(state_dir, &saved)?,
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    code
}

/// Signals are blocked only now, after clone3, so that the init does not inherit the mask.
pub fn wait_forwarding(pid: i32, pidfd: &std::os::fd::OwnedFd) -> Result<i32> {
    let mut mask = SigSet::empty();
    FORWARDED.iter().for_each(|s| mask.add(*s));
    mask.thread_block().ctx("block", "forwarded signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).ctx("create", "signalfd")?;
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(SysError::new("poll", "container init", errno).into()),
        }
        if fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            if let Ok(Some(info)) = sfd.read_signal() {
                let _ = super::kill::send(pid, info.ssi_signo as i32);
            }
        }
        if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            return exit_code(pid);
        }
    }
}

/// Like wait_forwarding, also moving bytes between our stdio and the container's pty.
pub fn wait_proxying(pid: i32, pidfd: &std::os::fd::OwnedFd, master: &std::os::fd::OwnedFd) -> Result<i32> {
    use super::tty_proxy::{copy_window_size, drain, pump, RawMode};
    let mut mask = SigSet::empty();
    FORWARDED.iter().for_each(|s| mask.add(*s));
    mask.thread_block().ctx("block", "forwarded signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).ctx("create", "signalfd")?;
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    copy_window_size(stdin.as_fd(), master.as_fd());
    let _raw = RawMode::enter();
    let mut stdin_open = true;
    loop {
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(SysError::new("poll", "container terminal", errno).into()),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        if ready(2) && !pump(master.as_fd(), stdout.as_fd()) && !ready(0) {
            // The pty closed: the process is exiting; its exit arrives on the pidfd.
        }
        if ready(3) && !pump(stdin.as_fd(), master.as_fd()) {
            stdin_open = false;
        }
        if ready(1) {
            if let Ok(Some(info)) = sfd.read_signal() {
                if info.ssi_signo as i32 == libc::SIGWINCH {
                    copy_window_size(stdin.as_fd(), master.as_fd());
                } else {
                    let _ = super::kill::send(pid, info.ssi_signo as i32);
                }
            }
        }
        if ready(0) {
            drain(master.as_fd(), stdout.as_fd());
            return exit_code(pid);
        }
    }
}

fn exit_code(pid: i32) -> Result<i32> {
    match waitpid(Pid::from_raw(pid), None).ctx("wait for", format!("container init {pid}"))? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        other => Err(Error::Init(format!("unexpected wait status {other:?}"))),
    }
}
