//! `husk events ID [--stats] [--interval D]`: json lines like runc's — `{"type":"stats",
//! "id":..., "data":{...}}` every interval (once with --stats), and `{"type":"oom","id":...}`.
//! Structs, not `json!`: clients read these lines by key order, which `json!` would sort.

use super::Global;
use crate::cgroups::Stats;
use crate::error::Result;
use crate::state::StateDir;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// runc's `types.Event`: type, id, then data (absent for oom).
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

pub fn stats_event<'a>(global: &Global, id: &'a str) -> Result<Event<'a>> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let stats = saved.cgroup.stats()?;
    Ok(Event {
        kind: "stats",
        id,
        data: Some(stats),
    })
}

/// Print stats every `interval` until the container is gone; OOM kills show as the memory
/// failcnt/oom counters in each line and as a separate `oom` event when they grow.
pub fn events(global: &Global, id: &str, interval: Duration, once: bool) -> Result<()> {
    let mut last_oom = None;
    loop {
        let event = match stats_event(global, id) {
            Ok(event) => event,
            Err(crate::error::Error::NotFound(_)) if !once => return Ok(()),
            Err(e) => return Err(e),
        };
        let line = serde_json::to_value(&event).unwrap_or_default();
        let oom = line.pointer("/data/memory/oom_kill").and_then(|v| v.as_u64());
        let mut out = std::io::stdout().lock();
        if let (Some(prev), Some(now)) = (last_oom, oom) {
            if now > prev {
                let oom_event = Event {
                    kind: "oom",
                    id,
                    data: None,
                };
                let _ = writeln!(out, "{}", serde_json::to_string(&oom_event).unwrap_or_default());
            }
        }
        last_oom = oom;
        let _ = writeln!(out, "{}", serde_json::to_string(&event).unwrap_or_default());
        let _ = out.flush();
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// "5s", "100ms", "1m" or plain seconds.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_keep_runcs_key_order() {
        let oom = super::Event {
            kind: "oom",
            id: "c1",
            data: None,
        };
        assert_eq!(serde_json::to_string(&oom).unwrap(), r#"{"type":"oom","id":"c1"}"#);
    }
}
