//! Copying a process's stdin fifo into its stdin pipe (or pty master), and CloseIO.
//!
//! containerd's client writes its input, closes its end of the fifo and then calls CloseIO.
//! CloseIO must not cut off input still sitting in the fifo: it wakes the copier, which drains
//! what is buffered, then closes the process's stdin.
//!
//! The fifo is opened O_NONBLOCK at once, so no thread ever sits in open(2) waiting for a
//! client that never comes (`ctr run -d` never opens it, and removes it): poll(2) on a fifo
//! reports nothing until a writer has come and written or gone.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;

use crate::error::{Error, Result};

pub struct StdinCopier {
    wake: Mutex<Option<File>>,
}

impl StdinCopier {
    pub fn start(fifo: PathBuf, writer: File) -> Result<StdinCopier> {
        let from = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(Error::io("open stdin fifo", &fifo))?;
        let (wake_r, wake_w) =
            pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("create stdin wake pipe"))?;
        std::thread::spawn(move || copy(from, writer, File::from(wake_r)));
        Ok(StdinCopier {
            wake: Mutex::new(Some(File::from(wake_w))),
        })
    }

    /// CloseIO (and delete): wake the copier to drain what is buffered and close.
    pub fn close(&self) {
        if let Some(mut wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = wake.write_all(b"x");
        }
    }
}

/// Copies until EOF, or until woken by CloseIO and the fifo is empty; dropping `to` then
/// gives the process EOF.
fn copy(mut from: File, mut to: File, wake: File) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let closing = {
            let mut fds = [
                PollFd::new(from.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            fds[1].revents().is_some_and(|r| !r.is_empty())
        };
        // Drain what is buffered now; stop at EOF (every writer gone).
        loop {
            match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_io_after_the_client_wrote_keeps_its_input() {
        let dir = std::env::temp_dir().join(format!("husk-stdin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        let copier = StdinCopier::start(fifo.clone(), File::from(w)).unwrap();
        {
            let mut client = OpenOptions::new().write(true).open(&fifo).unwrap();
            client.write_all(b"piped\n").unwrap();
        }
        copier.close();
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "piped\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn close_io_without_a_client_closes_stdin_at_once() {
        let dir = std::env::temp_dir().join(format!("husk-stdin-test2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        let copier = StdinCopier::start(fifo.clone(), File::from(w)).unwrap();
        copier.close();
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
