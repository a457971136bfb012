//! The runtime's console socket: `--console-socket PATH` makes runc (and husk) connect to PATH
//! and send the pty master with SCM_RIGHTS before `create`/`exec` returns. The connection waits
//! in the listen backlog with the fd queued on it, so the shim accepts only after the runtime
//! has exited successfully: no thread, and nothing to unblock when the runtime fails.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::pty::Winsize;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(0);

pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// A fresh socket under the temp dir: bundle paths can exceed sun_path's 108 bytes.
    pub fn new() -> Result<ConsoleSocket> {
        let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("husk-pty-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(Error::io("bind console socket", &path))?;
        Ok(ConsoleSocket { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent; call only after the runtime exited with success.
    pub fn receive_master(&self) -> Result<File> {
        self.listener
            .set_nonblocking(true)
            .map_err(Error::io("set console socket nonblocking", &self.path))?;
        let (stream, _) = self
            .listener
            .accept()
            .map_err(Error::io("accept console connection", &self.path))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(Error::sys("receive pty master"))?;
        for cmsg in msg.cmsgs().map_err(Error::sys("read pty master message"))? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    for &extra in &fds[1..] {
                        let _ = nix::unistd::close(extra);
                    }
                    // SAFETY: the kernel just installed this fd in our table and nothing else owns it.
                    return Ok(unsafe { File::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Sys {
            action: "receive pty master: no fd in message",
            source: nix::Error::EBADMSG,
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, Winsize);

pub fn resize(master: &File, width: u32, height: u32) -> Result<()> {
    let size = Winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one Winsize from the pointer; master is an open pty.
    unsafe { set_winsize(master.as_raw_fd(), &size) }.map_err(Error::sys("resize pty"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;

    #[test]
    fn master_sent_before_accept_is_received_after_the_sender_closed() {
        let sock = ConsoleSocket::new().unwrap();
        let (file_to_send, path) = {
            let path = std::env::temp_dir().join(format!("husk-console-test-{}", std::process::id()));
            std::fs::write(&path, b"x").unwrap();
            (File::open(&path).unwrap(), path)
        };
        {
            let stream = UnixStream::connect(sock.path()).unwrap();
            let fds = [file_to_send.as_raw_fd()];
            sendmsg::<()>(
                stream.as_raw_fd(),
                &[IoSlice::new(b"/dev/ptmx")],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )
            .unwrap();
        }
        let got = sock.receive_master().unwrap();
        assert_eq!(got.metadata().unwrap().len(), 1);
        std::fs::remove_file(path).unwrap();
    }
}
