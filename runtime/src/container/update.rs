//! `husk update ID [--resources FILE|-] [--memory ...]`: new cgroup limits for a live container.

use super::Global;
use crate::error::{Error, Result};
use crate::state::StateDir;
use husk_protocol::Status;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

/// runc's update flags, as (flag, JSON pointer into LinuxResources, is a byte size).
pub const FLAG_PATHS: &[(&str, &str, bool)] = &[
    ("memory", "/memory/limit", true),
    ("memory-reservation", "/memory/reservation", true),
    ("memory-swap", "/memory/swap", true),
    ("cpu-shares", "/cpu/shares", false),
    ("cpu-period", "/cpu/period", false),
    ("cpu-quota", "/cpu/quota", false),
    ("cpu-rt-period", "/cpu/realtimePeriod", false),
    ("cpu-rt-runtime", "/cpu/realtimeRuntime", false),
    ("cpuset-cpus", "/cpu/cpus", false),
    ("cpuset-mems", "/cpu/mems", false),
    ("pids-limit", "/pids/limit", false),
    ("blkio-weight", "/blockIO/weight", false),
];

pub fn update(global: &Global, id: &str, resources: &LinuxResources) -> Result<()> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
    if status == Status::Stopped {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "update",
            status,
        });
    }
    // As in create: the new rule set replaces the old one from deny-all, and /dev/null & co. stay.
    let mut resources = resources.clone();
    if let Some(rules) = resources.devices().clone() {
        for rule in &rules {
            crate::rootfs::devices::check_cgroup_rule(rule)
                .map_err(|why| Error::Usage(format!("invalid resources: {why}")))?;
        }
        resources.set_devices(Some(crate::rootfs::devices::cgroup_rules(&rules)));
    }
    saved.cgroup.apply(&resources)?;
    Ok(())
}

/// The resources named by --resources (a file, or "-" for stdin) and the single-value flags,
/// the flags winning.
pub fn resources_from(file_text: Option<&str>, flags: &[(&str, &str)]) -> Result<LinuxResources> {
    let mut doc: Value = match file_text {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Error::Usage(format!("--resources: invalid JSON: {e}")))?
        }
        None => json!({}),
    };
    for (flag, text) in flags {
        let Some(&(_, pointer, bytes)) = FLAG_PATHS.iter().find(|(name, _, _)| name == flag) else {
            continue;
        };
        let value = if pointer.ends_with("cpus") || pointer.ends_with("mems") {
            Value::String(text.to_string())
        } else if bytes {
            json!(parse_bytes(text).ok_or_else(|| Error::Usage(format!("--{flag}: invalid size {text:?}")))?)
        } else {
            json!(text
                .parse::<i64>()
                .map_err(|_| Error::Usage(format!("--{flag}: {text:?} is not a number")))?)
        };
        set_pointer(&mut doc, pointer, value);
    }
    serde_json::from_value(doc).map_err(|e| Error::Usage(format!("invalid resources: {e}")))
}

fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(obj) = cur.as_object_mut() else { return };
        if i + 1 == parts.len() {
            obj.insert(part.to_string(), value);
            return;
        }
        cur = obj.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// "512m", "1g", "1024", "-1" (unlimited) as docker's RAMInBytes reads them.
pub fn parse_bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Some(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<i64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn flags_override_the_resources_file() {
        let r = resources_from(
            Some(r#"{"memory":{"limit":1000},"pids":{"limit":5}}"#),
            &[("memory", "64m"), ("cpuset-cpus", "0")],
        )
        .unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
        assert_eq!(r.cpu().as_ref().unwrap().cpus().as_deref(), Some("0"));
    }
}
