//! `Stats` and `Pids` payloads. Metrics are read straight from the init's cgroup files (found in
//! /proc/<pid>/cgroup at create and kept, so a stopped task still reports its cgroup until it is
//! deleted) as containerd's `io.containerd.cgroups.v1.Metrics` (stats_v1.rs) or v2 on a unified
//! host (stats_v2.rs): a few dozen reads, no runtime call.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
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
const HUGEPAGES: &str = "/sys/kernel/mm/hugepages";

/// A process's cgroups, from /proc/<pid>/cgroup: controller (or "" for the unified hierarchy)
/// → "<hierarchy>\0<path>" (v1) or the path (unified).
#[derive(Debug, Clone, Default)]
pub struct CgroupPaths(HashMap<String, String>);

impl CgroupPaths {
    /// The init's cgroups; a process that is gone gives NotFound (its task has stopped).
    pub fn of_pid(pid: u32, id: &str) -> Result<CgroupPaths> {
        let proc_path = PathBuf::from(format!("/proc/{pid}/cgroup"));
        match fs::read_to_string(&proc_path) {
            Ok(text) => Ok(parse_proc_cgroup(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::ProcessFinished(id.to_string())),
            Err(e) => Err(Error::io("read cgroup of init", &proc_path)(e)),
        }
    }

    pub fn v1(&self, controller: &str) -> Option<PathBuf> {
        let (mount, path) = self.0.get(controller)?.split_once('\0')?;
        Some(Path::new(CGROUP_ROOT).join(mount).join(path.trim_start_matches('/')))
    }

    pub fn unified(&self) -> Option<PathBuf> {
        let rel = self.0.get("")?;
        Some(Path::new(CGROUP_ROOT).join(rel.trim_start_matches('/')))
    }

    fn is_v1(&self) -> bool {
        self.0.contains_key("memory")
    }
}

pub fn parse_proc_cgroup(text: &str) -> CgroupPaths {
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
    CgroupPaths(paths)
}

/// A counter file; "max" (v2's "no limit") reads as u64::MAX as containerd reports it, and a
/// missing file as 0.
pub fn read_u64(path: &Path) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    match text.trim() {
        "max" => u64::MAX,
        t => t.parse().unwrap_or(0),
    }
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k, v.trim().parse().ok()?)))
        .collect()
}

pub fn read_keyed(path: &Path) -> HashMap<String, u64> {
    let text = fs::read_to_string(path).unwrap_or_default();
    parse_flat_keyed(&text)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The kernel's huge page sizes in the cgroup files' spelling ("2MB", "1GB").
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = fs::read_dir(HUGEPAGES) else {
        return Vec::new();
    };
    let mut sizes: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()
        })
        .collect();
    sizes.sort_unstable();
    sizes.into_iter().map(hugepage_name).collect()
}

pub fn hugepage_name(kib: u64) -> String {
    let units = ["KB", "MB", "GB", "TB"];
    let (mut size, mut unit) = (kib, 0);
    while size >= 1024 && size % 1024 == 0 && unit + 1 < units.len() {
        size /= 1024;
        unit += 1;
    }
    format!("{size}{}", units[unit])
}

/// The metrics of the cgroups in `paths`: NotFound once they are gone (the task was deleted).
pub fn metrics(paths: &CgroupPaths, id: &str) -> Result<Any> {
    let any = if paths.is_v1() {
        let memory = paths.v1("memory").filter(|d| d.is_dir());
        memory.ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        to_any(METRICS_V1, &crate::stats_v1::metrics(paths))
    } else {
        let dir = paths.unified().filter(|d| d.is_dir());
        let dir = dir.ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        to_any(METRICS_V2, &crate::stats_v2::metrics(&dir))
    };
    any.map_err(|e| Error::InvalidArgument(format!("encode metrics: {e}")))
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
        use containerd_shim::protos::cgroups::metrics as v1;
        use containerd_shim::protos::cgroups_v2::metrics as v2;
        use containerd_shim::protos::protobuf::MessageFull;
        assert_eq!(METRICS_V1, v1::Metrics::descriptor().full_name());
        assert_eq!(METRICS_V2, v2::Metrics::descriptor().full_name());
        assert_eq!(PROCESS_DETAILS, ProcessDetails::descriptor().full_name());
    }

    #[test]
    fn hybrid_proc_cgroup_maps_each_controller_to_its_hierarchy() {
        let paths = parse_proc_cgroup("5:cpu,cpuacct:/c1\n4:memory:/c1\n0::/c1\n");
        assert_eq!(
            paths.v1("cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"))
        );
        assert_eq!(paths.v1("memory"), Some(PathBuf::from("/sys/fs/cgroup/memory/c1")));
        assert_eq!(paths.unified(), Some(PathBuf::from("/sys/fs/cgroup/c1")));
    }

    #[test]
    fn hugepage_sizes_are_spelled_as_in_cgroup_file_names() {
        assert_eq!(hugepage_name(2048), "2MB");
        assert_eq!(hugepage_name(1048576), "1GB");
        assert_eq!(hugepage_name(64), "64KB");
    }

    #[test]
    fn flat_keyed_files_parse() {
        let m = parse_flat_keyed("cache 4096\nrss 8192\nbad\n");
        assert_eq!(m.get("rss"), Some(&8192));
        assert_eq!(m.len(), 2);
    }
}
