//! One thread per process moves all of its stdio: output pipes (or the pty master) to their
//! fifo or file, and the stdin fifo to the process. Every fd is non-blocking and the thread
//! sleeps in poll(2): a pump with bytes pending waits for its destination to take them
//! (POLLOUT), otherwise for its source (POLLIN), so a process that does not read its stdin, or a
//! client that does not read its output, stalls only that stream.
//!
//! CloseIO arrives on a wake pipe: the stdin pump then drains what the client already wrote
//! into the fifo and ends, which closes the process's stdin. The output latch opens when every
//! output pump has reached EOF (the exit path waits on it before TaskExit).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::stdio::Latch;

const BUF: usize = 32 * 1024;
const PUMP_STACK: usize = 64 * 1024;

pub struct Pump {
    from: File,
    to: File,
    pending: Vec<u8>,
    written: usize,
    output: bool,
    closing: bool,
}

fn nonblocking(f: &File) {
    if let Ok(flags) = fcntl(f, FcntlArg::F_GETFL) {
        let _ = fcntl(
            f,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

impl Pump {
    pub fn output(from: File, to: File) -> Pump {
        Pump::new(from, to, true)
    }

    pub fn stdin(from: File, to: File) -> Pump {
        Pump::new(from, to, false)
    }

    fn new(from: File, to: File, output: bool) -> Pump {
        nonblocking(&from);
        nonblocking(&to);
        Pump {
            from,
            to,
            pending: Vec::new(),
            written: 0,
            output,
            closing: false,
        }
    }

    fn has_pending(&self) -> bool {
        self.written < self.pending.len()
    }

    /// Moves bytes until it would block; false when this pump is finished.
    fn step(&mut self) -> bool {
        loop {
            if self.has_pending() {
                match self.to.write(&self.pending[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
                continue;
            }
            self.pending.resize(BUF, 0);
            self.written = 0;
            match self.from.read(&mut self.pending) {
                Ok(0) => return false,
                Ok(n) => self.pending.truncate(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => self.pending.clear(),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Idle: give the buffer back (a running container's streams mostly are).
                    self.pending = Vec::new();
                    // CloseIO: what the client wrote is through.
                    return !self.closing;
                }
                // EIO: the last pty slave closed.
                Err(_) => return false,
            }
        }
    }
}

pub fn spawn(pumps: Vec<Pump>, wake: Option<File>, latch: Arc<Latch>) {
    let outputs = pumps.iter().filter(|p| p.output).count();
    latch.add();
    // The copy buffers are on the heap; poll and read/write need little stack.
    let spawned = std::thread::Builder::new()
        .name("stdio".into())
        .stack_size(PUMP_STACK)
        .spawn({
            let latch = Arc::clone(&latch);
            move || run(pumps, wake, outputs, &latch)
        });
    if let Err(err) = spawned {
        log::error!("failed to start a stdio thread: {err}");
        latch.count_down();
    }
}

fn run(mut pumps: Vec<Pump>, mut wake: Option<File>, mut outputs: usize, latch: &Latch) {
    if let Some(w) = &wake {
        nonblocking(w);
    }
    let mut latch_open = false;
    while !pumps.is_empty() {
        if outputs == 0 && !latch_open {
            latch.count_down();
            latch_open = true;
        }
        let (ready, woken) = {
            let mut fds: Vec<PollFd> = pumps
                .iter()
                .map(|p| {
                    if p.has_pending() {
                        PollFd::new(p.to.as_fd(), PollFlags::POLLOUT)
                    } else {
                        PollFd::new(p.from.as_fd(), PollFlags::POLLIN)
                    }
                })
                .collect();
            if let Some(w) = &wake {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
            let woken = wake.is_some() && ready.last().copied().unwrap_or(false);
            (ready, woken)
        };
        if woken {
            wake = None;
            for p in pumps.iter_mut().filter(|p| !p.output) {
                p.closing = true;
            }
        }
        let mut i = 0;
        pumps.retain_mut(|p| {
            let go = ready.get(i).copied().unwrap_or(false) || p.closing;
            i += 1;
            if !go || p.step() {
                return true;
            }
            outputs -= usize::from(p.output);
            false
        });
    }
    if !latch_open {
        latch.count_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::pipe2;

    fn pipe() -> (File, File) {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn stdin_keeps_flowing_while_an_output_reader_is_stalled() {
        let (out_r, mut out_w) = pipe();
        let (sink_r, sink_w) = pipe();
        let (in_r, mut in_w) = pipe();
        let (proc_r, proc_w) = pipe();
        let latch = Arc::new(Latch::default());
        spawn(
            vec![Pump::output(out_r, sink_w), Pump::stdin(in_r, proc_w)],
            None,
            Arc::clone(&latch),
        );
        // Fill the sink (nobody reads it) beyond a pipe buffer: the output pump blocks on it.
        std::thread::spawn(move || {
            let _ = out_w.write_all(&vec![b'o'; 256 * 1024]);
        });
        in_w.write_all(b"hello").unwrap();
        drop(in_w);
        let mut got = String::new();
        let mut proc_r = proc_r;
        proc_r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
        let mut all = Vec::new();
        let mut sink_r = sink_r;
        sink_r.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 256 * 1024);
        latch.wait(std::time::Duration::from_secs(5));
    }
}
