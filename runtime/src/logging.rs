//! Where husk reports, as runc does: with `--log FILE` every command opens (creates) the file and
//! writes its lines there, as text (`time="…" level=… msg="…"`) or, with `--log-format json`, as
//! json lines (`{"level","msg","time"}`, the format containerd's shims read). Without --log,
//! lines go to stderr, but only with --debug: husk's own one-line error is printed apart.
//!
//! The logger belongs to the husk process that set it up. The container init and exec children
//! are clones of husk that close the log fd (and may reuse its number): they never write.

use husk_protocol::LogLine;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug)]
struct Logger {
    file: Option<File>,
    json: bool,
    owner_pid: u32,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("failed to open log file: {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("invalid --log-format {0:?}: expected text or json")]
    Format(String),
}

/// Set up the global logger from the global flags; call once, before any command runs.
pub fn init(path: Option<&Path>, format: Option<&str>, debug: bool) -> Result<(), LogError> {
    let json = match format.unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => return Err(LogError::Format(other.to_string())),
    };
    let file = path
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| LogError::Open {
                    path: p.display().to_string(),
                    source,
                })
        })
        .transpose()?;
    let level = match (debug, file.is_some()) {
        (true, _) => LevelFilter::Debug,
        (false, true) => LevelFilter::Info,
        (false, false) => LevelFilter::Off,
    };
    let logger = LOGGER.get_or_init(|| Logger {
        file,
        json,
        owner_pid: std::process::id(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}

/// The command's failure: one line `husk: MSG` on stderr, and an `error` line in the log file.
pub fn error(msg: &str) {
    eprintln!("husk: {msg}");
    if let Some(logger) = LOGGER.get().filter(|l| l.file.is_some()) {
        logger.write(Level::Error, msg);
    }
}

/// A line for the log file only (the --trace timeline, already printed on stderr).
pub fn info_in_log_file(msg: &str) {
    if let Some(logger) = LOGGER.get().filter(|l| l.file.is_some()) {
        logger.write(Level::Info, msg);
    }
}

/// logrus's level names, which runc's log readers expect ("warning", not "warn").
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

pub fn format_line(json: bool, level: Level, msg: &str, time: String) -> String {
    let level = level_name(level);
    if json {
        let entry = LogLine {
            level: level.to_string(),
            msg: msg.to_string(),
            time,
        };
        serde_json::to_string(&entry).unwrap_or_default()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    }
}

impl Logger {
    fn write(&self, level: Level, msg: &str) {
        if std::process::id() != self.owner_pid {
            return;
        }
        let mut line = format_line(self.json, level, msg, crate::container::now_rfc3339());
        line.push('\n');
        // One write per line: lines from husk processes sharing the file do not interleave.
        let _ = match &self.file {
            Some(file) => (&*file).write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            self.write(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_logrus() {
        let t = "2024-01-01T00:00:00Z".to_string();
        assert_eq!(
            format_line(false, Level::Debug, "a \"b\"", t.clone()),
            r#"time="2024-01-01T00:00:00Z" level=debug msg="a \"b\"""#
        );
        assert_eq!(
            format_line(true, Level::Warn, "x", t),
            r#"{"level":"warning","msg":"x","time":"2024-01-01T00:00:00Z"}"#
        );
    }
}
