//! The daemon's log: the `log` fifo containerd creates in the bundle and copies to its own
//! output. Opened read-write and non-blocking: a write never blocks and never fails with EPIPE,
//! so when containerd stops reading (it does once the bundle the shim started in is deleted,
//! while the shim still serves the rest of its pod) lines are dropped instead of stalling
//! every thread that logs — the containerd-shim crate's blocking logger deadlocked there.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct FifoLog {
    file: File,
    level: Level,
}

impl Log for FifoLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        let level = record.level().as_str().to_lowercase();
        let line = format!(
            "time=\"{}\" level={level} msg=\"{msg}\" runtime=io.containerd.husk.v2\n",
            now_rfc3339()
        );
        // One write(2) per line: a fifo keeps lines up to PIPE_BUF whole.
        let _ = (&self.file).write(line.as_bytes());
    }

    fn flush(&self) {}
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: gmtime_r only writes the tm we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::gmtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_nanos()
    )
}

/// Logs to `./log` (the bundle is the daemon's cwd); without it, logging stays off.
pub fn init(debug: bool) {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log")
    else {
        return;
    };
    let level = if debug { Level::Debug } else { Level::Info };
    if log::set_boxed_logger(Box::new(FifoLog { file, level })).is_ok() {
        log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
    }
}
