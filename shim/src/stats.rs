//! `Stats` and `Pids` payloads. Metrics are read straight from the init's cgroup files (found in
//! /proc/<pid>/cgroup) as containerd's `io.containerd.cgroups.v1.Metrics` (or v2 on a unified
//! host): a handful of reads, no runtime call.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::types::task::ProcessInfo;

/// Any type URLs, named here so that no protobuf reflection tables are built (the crate's
/// `convert_to_any` asks the descriptor, ~200 KiB of heap for the shim's life; CRI polls Stats).
const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";
const METRICS_V2: &str = "io.containerd.cgroups.v2.Metrics";
const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";

fn to_any(type_url: &str, m: &impl Message) -> containerd_shim::protos::protobuf::Result<Any> {
    Ok(Any {
        type_url: type_url.to_string(),
        value: m.write_to_bytes()?,
        ..Default::default()
    })
}

use crate::error::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Controller (or "" for the unified hierarchy) → path, from /proc/<pid>/cgroup.
pub fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut paths = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if controllers.is_empty() {
            paths.insert(String::new(), path.to_string());
        }
        for c in controllers.split(',').filter(|c| !c.is_empty()) {
            paths.insert(c.to_string(), format!("{controllers}\0{path}"));
        }
    }
    paths
}

fn v1_dir(paths: &HashMap<String, String>, controller: &str) -> Option<PathBuf> {
    let (mount, path) = paths.get(controller)?.split_once('\0')?;
    Some(Path::new(CGROUP_ROOT).join(mount).join(path.trim_start_matches('/')))
}

fn read_u64(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k, v.trim().parse().ok()?)))
        .collect()
}

fn read_keyed(path: &Path) -> HashMap<String, u64> {
    let text = fs::read_to_string(path).unwrap_or_default();
    parse_flat_keyed(&text)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

pub fn metrics(pid: u32) -> Result<Any> {
    let proc_path = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = fs::read_to_string(&proc_path).map_err(Error::io("read cgroup of init", &proc_path))?;
    let paths = parse_proc_cgroup(&text);
    let any = if paths.contains_key("memory") {
        to_any(METRICS_V1, &metrics_v1(&paths))
    } else {
        to_any(METRICS_V2, &metrics_v2(&paths))
    };
    any.map_err(|e| Error::InvalidArgument(format!("encode metrics: {e}")))
}

fn metrics_v1(paths: &HashMap<String, String>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(dir) = v1_dir(paths, "pids") {
        let limit = fs::read_to_string(dir.join("pids.max"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        m.pids = MessageField::some(v1::PidsStat {
            current: read_u64(&dir.join("pids.current")),
            limit,
            ..Default::default()
        });
    }
    if let Some(dir) = v1_dir(paths, "cpuacct") {
        let stat = read_keyed(&dir.join("cpuacct.stat"));
        // cpuacct.stat is in USER_HZ ticks (100/s); containerd reports nanoseconds.
        let ticks = |k: &str| stat.get(k).copied().unwrap_or(0) * 10_000_000;
        let per_cpu = fs::read_to_string(dir.join("cpuacct.usage_percpu")).unwrap_or_default();
        let usage = v1::CPUUsage {
            total: read_u64(&dir.join("cpuacct.usage")),
            user: ticks("user"),
            kernel: ticks("system"),
            per_cpu: per_cpu.split_whitespace().filter_map(|v| v.parse().ok()).collect(),
            ..Default::default()
        };
        let mut cpu = v1::CPUStat {
            usage: MessageField::some(usage),
            ..Default::default()
        };
        if let Some(cpu_dir) = v1_dir(paths, "cpu") {
            let t = read_keyed(&cpu_dir.join("cpu.stat"));
            let get = |k: &str| t.get(k).copied().unwrap_or(0);
            let throttle = v1::Throttle {
                periods: get("nr_periods"),
                throttled_periods: get("nr_throttled"),
                throttled_time: get("throttled_time"),
                ..Default::default()
            };
            cpu.throttling = MessageField::some(throttle);
        }
        m.cpu = MessageField::some(cpu);
    }
    if let Some(dir) = v1_dir(paths, "memory") {
        m.memory = MessageField::some(memory_v1(&dir));
    }
    m
}

fn memory_v1(dir: &Path) -> v1::MemoryStat {
    let s = read_keyed(&dir.join("memory.stat"));
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    let entry = |prefix: &str| v1::MemoryEntry {
        usage: read_u64(&dir.join(format!("{prefix}.usage_in_bytes"))),
        max: read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes"))),
        limit: read_u64(&dir.join(format!("{prefix}.limit_in_bytes"))),
        failcnt: read_u64(&dir.join(format!("{prefix}.failcnt"))),
        ..Default::default()
    };
    v1::MemoryStat {
        cache: get("cache"),
        rss: get("rss"),
        rss_huge: get("rss_huge"),
        mapped_file: get("mapped_file"),
        dirty: get("dirty"),
        writeback: get("writeback"),
        pg_fault: get("pgfault"),
        pg_maj_fault: get("pgmajfault"),
        inactive_anon: get("inactive_anon"),
        active_anon: get("active_anon"),
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
        unevictable: get("unevictable"),
        hierarchical_memory_limit: get("hierarchical_memory_limit"),
        total_cache: get("total_cache"),
        total_rss: get("total_rss"),
        usage: MessageField::some(entry("memory")),
        swap: MessageField::some(entry("memory.memsw")),
        kernel: MessageField::some(entry("memory.kmem")),
        ..Default::default()
    }
}

fn metrics_v2(paths: &HashMap<String, String>) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let Some(rel) = paths.get("") else { return m };
    let dir = Path::new(CGROUP_ROOT).join(rel.trim_start_matches('/'));
    let max = |f: &str| {
        fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    m.pids = MessageField::some(v2::PidsStat {
        current: read_u64(&dir.join("pids.current")),
        limit: max("pids.max"),
        ..Default::default()
    });
    let cpu = read_keyed(&dir.join("cpu.stat"));
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: get("usage_usec"),
        user_usec: get("user_usec"),
        system_usec: get("system_usec"),
        nr_periods: get("nr_periods"),
        nr_throttled: get("nr_throttled"),
        throttled_usec: get("throttled_usec"),
        ..Default::default()
    });
    let mem = read_keyed(&dir.join("memory.stat"));
    let get = |k: &str| mem.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(v2::MemoryStat {
        anon: get("anon"),
        file: get("file"),
        usage: read_u64(&dir.join("memory.current")),
        usage_limit: max("memory.max"),
        ..Default::default()
    });
    m
}

/// One `ctr task ps` row; exec processes carry their exec id as containerd's runc shim does.
pub fn process_info(pid: u32, exec_id: Option<&String>) -> ProcessInfo {
    let info = exec_id.and_then(|id| {
        let details = ProcessDetails {
            exec_id: id.clone(),
            ..Default::default()
        };
        to_any(PROCESS_DETAILS, &details).ok()
    });
    ProcessInfo {
        pid,
        info: info.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_type_urls_match_the_descriptors_full_names() {
        use containerd_shim::protos::protobuf::MessageFull;
        assert_eq!(METRICS_V1, v1::Metrics::descriptor().full_name());
        assert_eq!(METRICS_V2, v2::Metrics::descriptor().full_name());
        assert_eq!(PROCESS_DETAILS, ProcessDetails::descriptor().full_name());
    }

    #[test]
    fn hybrid_proc_cgroup_maps_each_controller_to_its_hierarchy() {
        let paths = parse_proc_cgroup("5:cpu,cpuacct:/c1\n4:memory:/c1\n0::/c1\n");
        assert_eq!(
            v1_dir(&paths, "cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"))
        );
        assert_eq!(
            v1_dir(&paths, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/c1"))
        );
        assert_eq!(paths.get("").map(String::as_str), Some("/c1"));
    }

    #[test]
    fn flat_keyed_files_parse() {
        let m = parse_flat_keyed("cache 4096\nrss 8192\nbad\n");
        assert_eq!(m.get("rss"), Some(&8192));
        assert_eq!(m.len(), 2);
    }
}
