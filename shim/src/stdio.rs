//! A process's stdio as containerd names it (fifo paths, `file://`, `binary://`, or a tty): the
//! pipes or pty the container gets, the destinations the shim opens, and the latch that lets the
//! exit of a process be published only after its output has been copied. The copying itself is
//! one poll(2) thread per process (pump.rs) — no async file APIs on FIFOs (rust-extensions #337).

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::{fchown, pipe2, Gid, Uid};

use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::logbinary;
use crate::pump::Pump;
use crate::runtime::ChildStdio;
use crate::stdin::{stdin_pump, StdinCloser};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    None,
    Fifo(PathBuf),
    File(PathBuf),
    Binary(String),
}

impl Destination {
    pub fn parse(uri: &str) -> Destination {
        if uri.is_empty() {
            Destination::None
        } else if let Some(path) = uri.strip_prefix("file://") {
            Destination::File(PathBuf::from(path))
        } else if uri.starts_with("binary://") {
            Destination::Binary(uri.to_string())
        } else {
            Destination::Fifo(PathBuf::from(uri.strip_prefix("fifo://").unwrap_or(uri)))
        }
    }
}

/// Counts the output copiers still running; the exit path waits on it.
#[derive(Default)]
pub struct Latch {
    pending: Mutex<usize>,
    done: Condvar,
}

impl Latch {
    pub(crate) fn add(&self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    pub(crate) fn count_down(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending = pending.saturating_sub(1);
        self.done.notify_all();
    }

    /// Waits for the copiers, but never longer than `limit`: a daemon an exec left behind may
    /// hold the pipe open forever, and the exit must still be reported.
    pub fn wait(&self, limit: Duration) {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.done.wait_timeout_while(pending, limit, |n| *n > 0);
    }
}

/// The shim's side of a running process's stdio.
pub struct ProcessIo {
    stdin: Option<StdinCloser>,
    pub console: Option<File>,
    pub output: Arc<Latch>,
}

/// Stdio made before the runtime runs; `start` is called once it has succeeded.
pub struct PreparedIo {
    pub child: ChildStdio,
    pub console_socket: Option<ConsoleSocket>,
    paths: StdioPaths,
    stdin_writer: Option<File>,
    outputs: Vec<(File, Destination)>,
}

fn pipe() -> Result<(File, OwnedFd)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("create stdio pipe"))?;
    Ok((File::from(r), w))
}

fn chown_io(fd: &OwnedFd, uid: u32, gid: u32) -> Result<()> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(Error::sys("chown stdio pipe"))
}

impl PreparedIo {
    pub fn new(paths: &StdioPaths, io_uid: u32, io_gid: u32, id: &str, namespace: &str) -> Result<PreparedIo> {
        let mut prepared = PreparedIo {
            child: ChildStdio::default(),
            console_socket: None,
            paths: paths.clone(),
            stdin_writer: None,
            outputs: Vec::new(),
        };
        if paths.terminal {
            prepared.console_socket = Some(ConsoleSocket::new()?);
            return Ok(prepared);
        }
        if !paths.stdin.is_empty() {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("create stdin pipe"))?;
            chown_io(&r, io_uid, io_gid)?;
            prepared.child.stdin = Some(r);
            prepared.stdin_writer = Some(File::from(w));
        }
        let stdout = Destination::parse(&paths.stdout);
        if let Destination::Binary(uri) = &stdout {
            let (out, err) = logbinary::spawn(uri, id, namespace)?;
            prepared.child.stdout = Some(out);
            prepared.child.stderr = Some(err);
            return Ok(prepared);
        }
        let stderr = Destination::parse(&paths.stderr);
        for (dest, slot) in [
            (stdout, &mut prepared.child.stdout),
            (stderr, &mut prepared.child.stderr),
        ] {
            if dest == Destination::None {
                continue;
            }
            let (reader, w) = pipe()?;
            chown_io(&w, io_uid, io_gid)?;
            *slot = Some(w);
            prepared.outputs.push((reader, dest));
        }
        Ok(prepared)
    }

    /// Starts the process's pump thread; for a tty, receives the pty master first.
    pub fn start(self) -> Result<ProcessIo> {
        let output = Arc::new(Latch::default());
        let stdin_fifo = (!self.paths.stdin.is_empty()).then(|| PathBuf::from(&self.paths.stdin));
        let mut io = ProcessIo {
            stdin: None,
            console: None,
            output,
        };
        let mut stdin_writer = self.stdin_writer;
        let mut pumps = Vec::new();
        if let Some(socket) = &self.console_socket {
            let master = socket.receive_master()?;
            let dup = || master.try_clone().map_err(Error::io("dup pty master", "ptmx"));
            if let Some(dest) = open_output(&Destination::parse(&self.paths.stdout))? {
                pumps.push(Pump::output(dup()?, dest));
            }
            if stdin_fifo.is_some() {
                stdin_writer = Some(dup()?);
            }
            io.console = Some(master);
        }
        for (reader, dest) in self.outputs {
            if let Some(sink) = open_output(&dest)? {
                pumps.push(Pump::output(reader, sink));
            }
        }
        let mut wake = None;
        if let (Some(fifo), Some(writer)) = (stdin_fifo, stdin_writer) {
            let (pump, closer, wake_fd) = stdin_pump(&fifo, writer)?;
            pumps.push(pump);
            io.stdin = Some(closer);
            wake = Some(wake_fd);
        }
        if !pumps.is_empty() {
            crate::pump::spawn(pumps, wake, Arc::clone(&io.output));
        }
        Ok(io)
    }
}

/// Fifos are opened read-write: the open never blocks, and writes never fail with EPIPE
/// while containerd is away (restarting); containerd sees EOF once the copier closes it.
fn open_output(dest: &Destination) -> Result<Option<File>> {
    let file = match dest {
        Destination::None | Destination::Binary(_) => return Ok(None),
        Destination::Fifo(path) => OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("open stdio fifo", path))?,
        Destination::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(Error::io("create log directory", dir))?;
            }
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(Error::io("open log file", path))?
        }
    };
    Ok(Some(file))
}

impl ProcessIo {
    /// CloseIO: the process reads EOF on stdin once buffered input is copied.
    pub fn close_stdin(&self) {
        if let Some(stdin) = &self.stdin {
            stdin.close();
        }
    }

    /// Ends the stdin copier, even one still waiting for a client.
    pub fn release(&self) {
        self.close_stdin();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn destinations_follow_containerd_uri_schemes() {
        assert_eq!(Destination::parse(""), Destination::None);
        assert_eq!(
            Destination::parse("/run/x/stdout"),
            Destination::Fifo("/run/x/stdout".into())
        );
        assert_eq!(
            Destination::parse("file:///var/log/c.log"),
            Destination::File("/var/log/c.log".into())
        );
        assert_eq!(
            Destination::parse("binary:///bin/logger?a=b"),
            Destination::Binary("binary:///bin/logger?a=b".into())
        );
    }

    #[test]
    fn latch_wait_is_bounded_and_returns_when_copiers_finish() {
        let latch = Arc::new(Latch::default());
        latch.add();
        let start = std::time::Instant::now();
        latch.wait(Duration::from_millis(50));
        assert!(start.elapsed() >= Duration::from_millis(50));
        let l2 = Arc::clone(&latch);
        std::thread::spawn(move || l2.count_down());
        latch.wait(Duration::from_secs(10));
        assert_eq!(*latch.pending.lock().unwrap(), 0);
    }

    #[test]
    fn output_is_copied_whole_to_a_file_before_the_latch_opens() {
        let dir = std::env::temp_dir().join(format!("husk-stdio-test-{}", std::process::id()));
        let path = dir.join("out.log");
        let paths = StdioPaths {
            stdout: format!("file://{}", path.display()),
            ..Default::default()
        };
        let mut prepared = PreparedIo::new(&paths, 0, 0, "c", "ns").unwrap();
        let mut w = File::from(prepared.child.stdout.take().unwrap());
        let io = prepared.start().unwrap();
        let data = vec![b'x'; 1 << 20];
        w.write_all(&data).unwrap();
        drop(w);
        io.output.wait(Duration::from_secs(10));
        assert_eq!(std::fs::read(&path).unwrap().len(), 1 << 20);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
