//! `husk run` of a terminal process without --console-socket: husk receives the pty master
//! itself and proxies it to its own stdio (raw mode while it runs, window size passed on).

use crate::sys::{Context, SysError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Receive the master the init sends (see init/console.rs) over our end of the socketpair.
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd, SysError> {
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx("receive pty master from", "container init")?;
    for cmsg in msg
        .cmsgs()
        .map_err(|e| SysError::new("read control message from", "container init", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS gave us a new fd that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(SysError::new(
        "receive pty master from",
        "container init",
        nix::errno::Errno::EBADMSG,
    ))
}

/// Puts the terminal back as it was, even on an early return.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// A foreground `run` proxies its own terminal: the init must size the pty before the process
/// can run, or a fast process (`stty size`) sees 0x0. Setting it on the master after receiving
/// it races with the exec. A consoleSize in the config wins, as with --console-socket.
pub fn size_pty_like_our_terminal(spec: &mut oci_spec::runtime::Spec) {
    if let Some(process) = spec.process_mut() {
        size_process_pty_like_our_terminal(process);
    }
}

/// The same for one process: a foreground `exec -t` sizes its pty before the process runs.
pub fn size_process_pty_like_our_terminal(process: &mut oci_spec::runtime::Process) {
    if !process.terminal().unwrap_or(false) || process.console_size().is_some() {
        return;
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into ws.
    if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return;
    }
    let size = oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(ws.ws_row))
        .width(u64::from(ws.ws_col))
        .build();
    if let Ok(size) = size {
        process.set_console_size(Some(size));
    }
}

/// A socketpair for a terminal process whose runtime proxies the pty itself: the child sends
/// the master on `theirs` (as on a --console-socket), husk receives it on `ours`.
pub struct ConsolePair {
    pub ours: OwnedFd,
    pub theirs: OwnedFd,
}

pub fn console_pair() -> Result<ConsolePair, SysError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .ctx("create", "console socketpair")?;
    Ok(ConsolePair { ours, theirs })
}

pub fn copy_window_size(from: BorrowedFd, to: BorrowedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize; TIOCSWINSZ reads one.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Move whatever is ready from `from` to `to`; false at EOF or error (EIO once the pty's last
/// slave is closed).
pub fn pump(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, &buf[..n]),
    }
}

fn write_all(to: BorrowedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(to, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// After the process exited: copy what is still buffered in the master.
pub fn drain(master: BorrowedFd, out: BorrowedFd) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(1) if pump(master, out) => {}
            _ => return,
        }
    }
}
