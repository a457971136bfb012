//! A process's stdin fifo and CloseIO.
//!
//! containerd's client writes its input, closes its end of the fifo and then calls CloseIO.
//! CloseIO must not cut off input still sitting in the fifo: it wakes the process's pump
//! (pump.rs), which drains what is buffered, then closes the process's stdin.
//!
//! The fifo is opened O_NONBLOCK, so nothing waits in open(2) for a client that never comes
//! (`ctr run -d` never opens it, and removes it): poll(2) on a fifo reports nothing until a
//! writer has come and written or gone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::error::{Error, Result};
use crate::pump::Pump;

pub struct StdinCloser {
    wake: Mutex<Option<File>>,
}

impl StdinCloser {
    /// CloseIO (and delete): the process reads EOF once buffered input is through.
    pub fn close(&self) {
        if let Some(mut wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = wake.write_all(b"x");
        }
    }
}

/// The pump from `fifo` into `writer`, its closer, and the wake fd the pump thread polls.
pub fn stdin_pump(fifo: &Path, writer: File) -> Result<(Pump, StdinCloser, File)> {
    let from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map_err(Error::io("open stdin fifo", fifo))?;
    let (wake_r, wake_w) = pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("create stdin wake pipe"))?;
    let closer = StdinCloser {
        wake: Mutex::new(Some(File::from(wake_w))),
    };
    Ok((Pump::stdin(from, writer), closer, File::from(wake_r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdio::Latch;
    use std::io::Read;
    use std::sync::Arc;

    fn fifo_in(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("husk-stdin-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        fifo
    }

    fn started(fifo: &Path) -> (StdinCloser, File) {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        let (pump, closer, wake) = stdin_pump(fifo, File::from(w)).unwrap();
        crate::pump::spawn(vec![pump], Some(wake), Arc::new(Latch::default()));
        (closer, File::from(r))
    }

    #[test]
    fn close_io_after_the_client_wrote_keeps_its_input() {
        let fifo = fifo_in("kept");
        let (closer, mut process_stdin) = started(&fifo);
        {
            let mut client = OpenOptions::new().write(true).open(&fifo).unwrap();
            client.write_all(b"piped\n").unwrap();
        }
        closer.close();
        let mut got = String::new();
        process_stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "piped\n");
        std::fs::remove_dir_all(fifo.parent().unwrap()).unwrap();
    }

    #[test]
    fn close_io_without_a_client_closes_stdin_at_once() {
        let fifo = fifo_in("none");
        let (closer, mut process_stdin) = started(&fifo);
        closer.close();
        let mut got = String::new();
        process_stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "");
        std::fs::remove_dir_all(fifo.parent().unwrap()).unwrap();
    }
}
