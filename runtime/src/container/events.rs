//! `husk events ID [--stats] [--interval D]`: json lines like runc's — `{"type":"stats",
//! "id":..., "data":{...}}` every interval (once with --stats), and `{"type":"oom"}` events.

use super::Global;
use crate::error::Result;
use crate::state::StateDir;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

pub fn stats_event(global: &Global, id: &str) -> Result<serde_json::Value> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let stats = saved.cgroup.stats()?;
    Ok(json!({ "type": "stats", "id": id, "data": stats }))
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
        let oom = event.pointer("/data/memory/oom_kill").and_then(|v| v.as_u64());
        let mut out = std::io::stdout().lock();
        if let (Some(prev), Some(now)) = (last_oom, oom) {
            if now > prev {
                let _ = writeln!(out, "{}", json!({ "type": "oom", "id": id }));
            }
        }
        last_oom = oom;
        let _ = writeln!(out, "{event}");
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
