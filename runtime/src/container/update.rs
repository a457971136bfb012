//! `husk update ID [--resources FILE|-] [--memory ...]`: new cgroup limits for a live container.

use super::Global;
use crate::error::{Error, Result};
use crate::state::StateDir;
use husk_protocol::Status;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

/// How an update flag's text becomes a LinuxResources value (runc's parsing of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// docker's RAMInBytes ("512m", "1g") or -1.
    Bytes,
    Unsigned,
    Signed,
    /// Parsed as a number; 0, runc's default, leaves the value unchanged.
    NonZero,
    Text,
}

pub struct UpdateFlag {
    pub name: &'static str,
    /// Where the value goes, as a JSON pointer into LinuxResources.
    pub pointer: &'static str,
    pub kind: FlagKind,
}

const fn flag(name: &'static str, pointer: &'static str, kind: FlagKind) -> UpdateFlag {
    UpdateFlag { name, pointer, kind }
}

/// runc 1.1's single-value update flags (`--resources`, the obsolete `--kernel-memory*` and the
/// Intel RDT schemas are handled apart).
pub const FLAGS: &[UpdateFlag] = &[
    flag("blkio-weight", "/blockIO/weight", FlagKind::NonZero),
    flag("cpu-period", "/cpu/period", FlagKind::Unsigned),
    flag("cpu-quota", "/cpu/quota", FlagKind::Signed),
    flag("cpu-share", "/cpu/shares", FlagKind::Unsigned),
    flag("cpu-rt-period", "/cpu/realtimePeriod", FlagKind::Unsigned),
    flag("cpu-rt-runtime", "/cpu/realtimeRuntime", FlagKind::Signed),
    flag("cpuset-cpus", "/cpu/cpus", FlagKind::Text),
    flag("cpuset-mems", "/cpu/mems", FlagKind::Text),
    flag("memory", "/memory/limit", FlagKind::Bytes),
    flag("memory-reservation", "/memory/reservation", FlagKind::Bytes),
    flag("memory-swap", "/memory/swap", FlagKind::Bytes),
    flag("pids-limit", "/pids/limit", FlagKind::NonZero),
];

/// husk cannot set Intel RDT schemas; runc's words when the host lacks resctrl.
pub fn check_rdt_flags(l3_cache_schema: Option<&str>, mem_bw_schema: Option<&str>) -> Result<()> {
    let resctrl = std::path::Path::new("/sys/fs/resctrl/schemata").exists();
    match (l3_cache_schema, mem_bw_schema) {
        (None, None) => Ok(()),
        _ if resctrl => Err(Error::Unsupported("update --l3-cache-schema / --mem-bw-schema")),
        (Some(_), _) => Err(Error::Usage("Intel RDT/CAT: l3 cache schema is not enabled".into())),
        (None, Some(_)) => Err(Error::Usage(
            "Intel RDT/MBA: memory bandwidth schema is not enabled".into(),
        )),
    }
}

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
    // runc's update takes no device rules: containerd's CRI sends the container's own list with
    // every UpdateContainerResources, and re-applying it would open a window with every device
    // denied (v1 writes deny-all first); a caller could also allow every device to a running
    // container. The rules given at create stay, as in runc.
    let mut resources = resources.clone();
    resources.set_devices(None);
    saved.cgroup.apply(&resources)?;
    Ok(())
}

/// `--resources FILE|-`: LinuxResources as JSON (runc ignores every other flag then).
pub fn resources_from_json(text: &str) -> Result<LinuxResources> {
    serde_json::from_str(text).map_err(|e| Error::Usage(format!("--resources: invalid JSON: {e}")))
}

/// The single-value flags, as (flag name, text), into LinuxResources.
pub fn resources_from_flags(flags: &[(&str, &str)]) -> Result<LinuxResources> {
    let mut doc = json!({});
    for (name, text) in flags {
        let Some(flag) = FLAGS.iter().find(|f| f.name == *name) else {
            continue;
        };
        let invalid = |e: &dyn std::fmt::Display| Error::Usage(format!("invalid value for {name}: {e}"));
        let value = match flag.kind {
            FlagKind::Text => Value::String(text.to_string()),
            FlagKind::Bytes => json!(parse_bytes(text).ok_or_else(|| invalid(&format!("invalid size: '{text}'")))?),
            FlagKind::Unsigned => json!(text.parse::<u64>().map_err(|e| invalid(&e))?),
            FlagKind::Signed => json!(text.parse::<i64>().map_err(|e| invalid(&e))?),
            FlagKind::NonZero => match text.parse::<i64>().map_err(|e| invalid(&e))? {
                0 => continue,
                n => json!(n),
            },
        };
        set_pointer(&mut doc, flag.pointer, value);
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
    fn every_runc_flag_maps_into_the_resources() {
        let r = resources_from_flags(&[
            ("memory", "64m"),
            ("memory-swap", "-1"),
            ("cpuset-cpus", "0"),
            ("cpu-share", "512"),
            ("cpu-quota", "-1"),
            ("cpu-rt-runtime", "950"),
            ("pids-limit", "0"),
            ("blkio-weight", "300"),
        ])
        .unwrap();
        let memory = r.memory().as_ref().unwrap();
        assert_eq!((memory.limit(), memory.swap()), (Some(64 << 20), Some(-1)));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.realtime_runtime()),
            (Some(512), Some(-1), Some(950))
        );
        assert!(r.pids().is_none(), "pids-limit 0 is runc's 'unchanged'");
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));
        assert!(resources_from_flags(&[("cpu-share", "-5")]).is_err());
    }

    #[test]
    fn a_resources_file_is_read_as_linux_resources() {
        let r = resources_from_json(r#"{"memory":{"limit":1000},"pids":{"limit":5}}"#).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(1000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
    }
}
