//! process.terminal: a pty made inside the container (its own devpts), the master sent over
//! --console-socket with SCM_RIGHTS exactly as runc sends it, the slave as stdio and ctty.

use crate::sys::{Context, SysError};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub struct ConsoleSize {
    pub rows: u16,
    pub cols: u16,
}

/// Make the pty, hand its master to the socket, and make the slave our stdio and controlling
/// terminal (the init has already called setsid).
pub fn setup(socket: RawFd, size: Option<ConsoleSize>) -> Result<(), SysError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).ctx("open", "/dev/ptmx")?;
    grantpt(&master).ctx("grantpt", "/dev/ptmx")?;
    unlockpt(&master).ctx("unlockpt", "/dev/ptmx")?;
    let slave_name = ptsname_r(&master).ctx("ptsname", "/dev/ptmx")?;
    let slave: OwnedFd = nix::fcntl::open(
        slave_name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", &slave_name)?;
    if let Some(size) = size {
        let ws = libc::winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    send_master(socket, master.as_raw_fd(), &slave_name)?;
    drop(master);
    for target in 0..3 {
        // SAFETY: dup2 onto the stdio numbers, which we mean to replace.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(SysError::new("dup2 pty slave to", target, nix::errno::Errno::last()));
        }
    }
    // SAFETY: TIOCSCTTY on our own fd 0 with arg 0.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(SysError::new(
            "set controlling terminal",
            &slave_name,
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// One message: the pty's name as data, the master fd as SCM_RIGHTS (what go-runc's
/// console.ReceiveMaster and podman's conmon expect).
fn send_master(socket: RawFd, master: RawFd, name: &str) -> Result<(), SysError> {
    let fds = [master];
    let iov = [IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None).ctx("send pty master to", "console socket")?;
    Ok(())
}
