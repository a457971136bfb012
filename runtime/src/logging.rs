//! Where husk reports: one line on stderr, and with --log a line in the log file, json
//! (`{"level","msg","time"}`, runc's format that containerd's shims read) or text.

use husk_protocol::LogLine;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct LogTarget {
    pub file: Option<PathBuf>,
    pub json: bool,
}

impl LogTarget {
    pub fn error(&self, msg: &str) {
        eprintln!("husk: {msg}");
        self.write("error", msg);
    }

    pub fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = if self.json {
            let entry = LogLine {
                level: level.to_string(),
                msg: msg.to_string(),
                time: crate::container::now_rfc3339(),
            };
            serde_json::to_string(&entry).unwrap_or_default()
        } else {
            format!("{} level={level} msg={msg:?}", crate::container::now_rfc3339())
        };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{line}");
        }
    }
}
