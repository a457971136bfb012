//! `husk start`: open exec.fifo for reading, which releases the waiting init into execve.

use super::Global;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{SavedState, StateDir};
use crate::sys::{Context, SysError};
use husk_protocol::Status;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

pub fn start(global: &Global, id: &str) -> Result<()> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "start",
            status,
        });
    }
    release_init(&dir, saved.pid)?;
    run_poststart(&saved)
}

/// The poststart hooks, once the process runs. A failing one is an error and stops the
/// container, which `delete` then removes: runc kills the init when one fails
/// (libcontainer/container_linux.go start(), parent.terminate()), and the runtime-spec
/// lifecycle now says the same (runtime-spec#1262; it used to say "log a warning").
pub fn run_poststart(saved: &SavedState) -> Result<()> {
    let state = saved.to_oci(Status::Running);
    let poststart = saved.hooks.as_ref().and_then(|h| h.poststart().as_ref());
    if let Err(e) = hooks::run_all("poststart", poststart, &state) {
        let _ = super::delete::kill_and_wait(saved);
        return Err(e.into());
    }
    Ok(())
}

/// Read the init's byte from exec.fifo. Waits on the fifo and on a pidfd of the init together,
/// so an init that died meanwhile gives an error, not a hang.
fn release_init(dir: &StateDir, pid: i32) -> Result<()> {
    let fifo_path = dir.exec_fifo();
    // The pidfd first: opening the fifo releases the init, whose process may then exit and
    // be reaped (e.g. by conmon) before a later pidfd_open, which would fail with ESRCH.
    let pidfd = pidfd_open(pid)?;
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", fifo_path.display())?;
    let mut fds = [
        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(SysError::new("poll", fifo_path.display(), errno).into()),
        }
    }
    // "0", or "1<error>" when a startContainer hook failed (the init then exits).
    let mut answer = [0u8; 4096];
    let n = nix::unistd::read(&fifo, &mut answer).unwrap_or(0);
    match answer[..n].split_first() {
        Some((b'0', _)) => {}
        Some((_, why)) => return Err(Error::Init(String::from_utf8_lossy(why).into_owned())),
        None => {
            return Err(Error::Init(format!(
                "container {} exited before it was started",
                dir.id
            )))
        }
    }
    std::fs::remove_file(&fifo_path).ctx("remove", fifo_path.display())?;
    Ok(())
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(SysError::new("pidfd_open", pid, nix::errno::Errno::last()).into());
    }
    // SAFETY: a fresh fd that we own (pidfds are close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
