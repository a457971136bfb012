//! One line of the runtime's `--log-format json` log, as runc writes it:
//! `{"level":"error","msg":"...","time":"2024-01-01T00:00:00Z"}`. containerd's shims read the
//! last `error` line of this file and return its `msg` as the RPC error.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: String,
    pub msg: String,
    pub time: String,
}

impl LogLine {
    /// The last error message in a json log, if any; non-json lines are skipped.
    pub fn last_error(log: &str) -> Option<String> {
        log.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<LogLine>(line).ok())
            .find(|line| line.level == "error" || line.level == "fatal")
            .map(|line| line.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_picks_the_newest_error_and_skips_noise() {
        let log = concat!(
            "{\"level\":\"error\",\"msg\":\"old\",\"time\":\"t\"}\n",
            "not json\n",
            "{\"level\":\"error\",\"msg\":\"new\",\"time\":\"t\"}\n",
            "{\"level\":\"info\",\"msg\":\"later info\",\"time\":\"t\"}\n",
        );
        assert_eq!(LogLine::last_error(log).as_deref(), Some("new"));
        assert_eq!(LogLine::last_error("plain text"), None);
    }
}
