//! Usage figures read from the container's cgroup, shaped like runc's `events --stats` JSON
//! (types/events.go) so `husk events` can print them and the shim can turn them into metrics.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::CgroupError;
use super::fs::{self, flat_keyed_value, parse_flat_keyed};
use super::Cgroup;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub cpuset: CpusetStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Per page size ("2MB").
    pub hugetlb: BTreeMap<String, HugetlbStats>,
    /// runc prints `{}` without Intel RDT, which husk does not manage.
    #[serde(default)]
    pub intel_rdt: BTreeMap<String, u64>,
    /// runc prints null: it reads no network figures in `events`.
    #[serde(default)]
    pub network_interfaces: Option<Vec<u64>>,
}

/// runc's `omitempty` on a number (types/events.go): a zero is left out.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Times in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Bytes; an unlimited limit is u64::MAX on v2 and the kernel's huge page-aligned number on v1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// memory+swap, as v1's memsw (on v2: memory.current + memory.swap.current).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// The whole memory.stat.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// Processes the OOM killer killed in the cgroup: `oom_kill` of memory.oom_control (v1,
    /// kernel 4.13+) or memory.events (v2). A poller reports an OOM when it grows.
    #[serde(rename = "oom_kill")]
    pub oom_kill: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited, as runc reports it (and then leaves out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// The v1 cpuset hierarchy's settings, as runc 1.1's v1 manager reports them (fs/cpuset.go
/// GetStats, types/events.go CPUSet): the lists expanded ("0-2,4" is [0, 1, 2, 4]), the flags
/// as numbers. All zero without a v1 cpuset hierarchy, as runc prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpusetStats {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

pub fn collect(cg: &Cgroup) -> Result<Stats, CgroupError> {
    let mut stats = Stats::default();
    // v1 splits usage (cpuacct) from bandwidth (cpu); v2 has both in cpu.stat, whose usage
    // lines exist even where the cpu controller is not enabled.
    let unified = cg.unified_hierarchy().map(|u| u.dir());
    match (cg.v1_hierarchy("cpuacct"), &unified) {
        (Some(h), _) => stats.cpu.usage = cpuacct_usage(&h.dir())?,
        (None, Some(dir)) => stats.cpu.usage = v2_cpu_usage(dir)?,
        (None, None) => {}
    }
    let cpu_stat = match (cg.v1_hierarchy("cpu"), &unified) {
        (Some(h), _) => Some((h.dir(), false)),
        (None, Some(dir)) => Some((dir.clone(), true)),
        _ => None,
    };
    if let Some((dir, v2)) = cpu_stat {
        stats.cpu.throttling = throttling(&dir, v2)?;
    }
    if let Some(h) = cg.v1_hierarchy("cpuset") {
        stats.cpuset = v1_cpuset(&h.dir())?;
    }
    match cg.controller_dir("memory", "memory")? {
        Some((dir, false)) => stats.memory = v1_memory(&dir)?,
        Some((dir, true)) => stats.memory = v2_memory(&dir)?,
        None => {}
    }
    if let Some((dir, _)) = cg.controller_dir("pids", "pids")? {
        let limit = fs::read_u64(&dir.join("pids.max"), "pids.max")?;
        stats.pids = PidsStats {
            current: fs::read_u64(&dir.join("pids.current"), "pids.current")?,
            limit: if limit == u64::MAX { 0 } else { limit },
        };
    }
    match cg.controller_dir("blkio", "io")? {
        Some((dir, false)) => stats.blkio = v1_blkio(&dir)?,
        Some((dir, true)) => stats.blkio = v2_io(&dir)?,
        None => {}
    }
    if let Some((dir, v2)) = cg.controller_dir("hugetlb", "hugetlb")? {
        stats.hugetlb = hugetlb(&dir, v2)?;
    }
    Ok(stats)
}

/// A cpuset list ("0-2,4") expanded, or None if it is not one.
pub fn parse_cpuset_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        let (from, to): (u16, u16) = (from.parse().ok()?, to.parse().ok()?);
        if from > to {
            return None;
        }
        out.extend(from..=to);
    }
    Some(out)
}

fn v1_cpuset(dir: &Path) -> Result<CpusetStats, CgroupError> {
    let list = |name: &str| -> Result<Vec<u16>, CgroupError> {
        let path = dir.join(name);
        let text = fs::read(&path, "cpuset stats")?;
        parse_cpuset_list(&text).ok_or_else(|| CgroupError::Parse {
            what: "cpuset list",
            path,
            content: text.trim().to_string(),
        })
    };
    let flag = |name: &str| fs::read_u64(&dir.join(name), "cpuset stats");
    let level_path = dir.join("cpuset.sched_relax_domain_level");
    let level = fs::read(&level_path, "cpuset stats")?;
    Ok(CpusetStats {
        cpus: list("cpuset.cpus")?,
        cpu_exclusive: flag("cpuset.cpu_exclusive")?,
        mems: list("cpuset.mems")?,
        mem_hardwall: flag("cpuset.mem_hardwall")?,
        mem_exclusive: flag("cpuset.mem_exclusive")?,
        memory_migrate: flag("cpuset.memory_migrate")?,
        memory_spread_page: flag("cpuset.memory_spread_page")?,
        memory_spread_slab: flag("cpuset.memory_spread_slab")?,
        memory_pressure: flag("cpuset.memory_pressure")?,
        sched_load_balance: flag("cpuset.sched_load_balance")?,
        sched_relax_domain_level: level.trim().parse().map_err(|_| CgroupError::Parse {
            what: "cpuset.sched_relax_domain_level",
            path: level_path.clone(),
            content: level.trim().to_string(),
        })?,
    })
}

fn numbers(text: &str) -> Vec<u64> {
    text.split_whitespace().filter_map(|n| n.parse().ok()).collect()
}

/// cpuacct.stat counts USER_HZ ticks.
fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    ticks.saturating_mul(1_000_000_000 / hz)
}

fn cpuacct_usage(dir: &Path) -> Result<CpuUsage, CgroupError> {
    let mut usage = CpuUsage {
        total: fs::read_u64(&dir.join("cpuacct.usage"), "cpuacct.usage")?,
        percpu: numbers(&fs::read(&dir.join("cpuacct.usage_percpu"), "cpuacct.usage_percpu")?),
        ..CpuUsage::default()
    };
    // Nanosecond user/system split where the kernel has it, else the coarse tick counts.
    let user = fs::read_u64_optional(&dir.join("cpuacct.usage_user"), "cpuacct.usage_user")?;
    let sys = fs::read_u64_optional(&dir.join("cpuacct.usage_sys"), "cpuacct.usage_sys")?;
    if let (Some(user), Some(sys)) = (user, sys) {
        (usage.user, usage.kernel) = (user, sys);
    } else {
        let stat = fs::read(&dir.join("cpuacct.stat"), "cpuacct.stat")?;
        usage.user = ticks_to_ns(flat_keyed_value(&stat, "user").unwrap_or(0));
        usage.kernel = ticks_to_ns(flat_keyed_value(&stat, "system").unwrap_or(0));
    }
    // "cpu user system" header, then one line per cpu.
    if let Some(all) = fs::read_optional(&dir.join("cpuacct.usage_all"), "cpuacct.usage_all")? {
        for line in all.lines().skip(1) {
            if let [_, user, sys] = numbers(line)[..] {
                usage.percpu_user.push(user);
                usage.percpu_kernel.push(sys);
            }
        }
    }
    Ok(usage)
}

fn v2_cpu_usage(dir: &Path) -> Result<CpuUsage, CgroupError> {
    let stat = fs::read_optional(&dir.join("cpu.stat"), "cpu.stat")?.unwrap_or_default();
    let us = |key| flat_keyed_value(&stat, key).unwrap_or(0).saturating_mul(1000);
    Ok(CpuUsage {
        total: us("usage_usec"),
        user: us("user_usec"),
        kernel: us("system_usec"),
        ..CpuUsage::default()
    })
}

fn throttling(dir: &Path, v2: bool) -> Result<Throttling, CgroupError> {
    let Some(stat) = fs::read_optional(&dir.join("cpu.stat"), "cpu.stat")? else {
        return Ok(Throttling::default());
    };
    let get = |key| flat_keyed_value(&stat, key).unwrap_or(0);
    Ok(Throttling {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: if v2 {
            get("throttled_usec").saturating_mul(1000)
        } else {
            get("throttled_time")
        },
    })
}

/// One v1 memory counter family ("memory", "memory.memsw", "memory.kmem", "memory.kmem.tcp").
fn v1_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let get = |name: &str| fs::read_u64_optional(&dir.join(format!("{prefix}.{name}")), "memory counter");
    Ok(MemoryEntry {
        usage: get("usage_in_bytes")?.unwrap_or(0),
        max: get("max_usage_in_bytes")?.unwrap_or(0),
        limit: get("limit_in_bytes")?.unwrap_or(0),
        failcnt: get("failcnt")?.unwrap_or(0),
    })
}

fn raw_stat(dir: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    let text = fs::read(&dir.join("memory.stat"), "memory.stat")?;
    Ok(parse_flat_keyed(&text)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

fn v1_memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw = raw_stat(dir)?;
    let oom_control = fs::read_optional(&dir.join("memory.oom_control"), "memory.oom_control")?.unwrap_or_default();
    Ok(MemoryStats {
        oom_kill: flat_keyed_value(&oom_control, "oom_kill").unwrap_or(0),
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: v1_entry(dir, "memory")?,
        swap: v1_entry(dir, "memory.memsw")?,
        kernel: v1_entry(dir, "memory.kmem")?,
        kernel_tcp: v1_entry(dir, "memory.kmem.tcp")?,
        raw,
    })
}

fn v2_memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw = raw_stat(dir)?;
    let get = |name: &str| fs::read_u64_optional(&dir.join(name), "memory counter");
    let events = fs::read_optional(&dir.join("memory.events"), "memory.events")?.unwrap_or_default();
    let usage = MemoryEntry {
        usage: get("memory.current")?.unwrap_or(0),
        max: get("memory.peak")?.unwrap_or(0),
        limit: get("memory.max")?.unwrap_or(u64::MAX),
        failcnt: flat_keyed_value(&events, "max").unwrap_or(0),
    };
    // v1's memsw counts memory and swap together; mimic it so consumers see one meaning.
    let swap = match get("memory.swap.current")? {
        Some(swap_now) => MemoryEntry {
            usage: swap_now.saturating_add(usage.usage),
            limit: get("memory.swap.max")?.unwrap_or(u64::MAX).saturating_add(usage.limit),
            ..MemoryEntry::default()
        },
        None => MemoryEntry::default(),
    };
    let oom_kill = flat_keyed_value(&events, "oom_kill").unwrap_or(0);
    Ok(MemoryStats {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        raw,
        oom_kill,
        ..MemoryStats::default()
    })
}

/// "8:0 Read 4096" lines; the "Total N" line is dropped.
pub fn parse_blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?.parse().ok()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

/// CFQ's counters, else BFQ's, else the throttle layer's (which sees all I/O): the first family
/// that has entries, as runc picks them.
fn v1_blkio(dir: &Path) -> Result<BlkioStats, CgroupError> {
    for family in ["blkio", "blkio.bfq", "blkio.throttle"] {
        let read = |name: &str| fs::read_optional(&dir.join(format!("{family}.{name}")), "blkio stats");
        let bytes = parse_blkio_entries(&read("io_service_bytes_recursive")?.unwrap_or_default());
        let ios = parse_blkio_entries(&read("io_serviced_recursive")?.unwrap_or_default());
        if !bytes.is_empty() || !ios.is_empty() {
            return Ok(BlkioStats {
                io_service_bytes_recursive: bytes,
                io_serviced_recursive: ios,
            });
        }
    }
    Ok(BlkioStats::default())
}

/// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device.
pub fn parse_io_stat(text: &str) -> BlkioStats {
    let mut stats = BlkioStats::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else { continue };
            let (list, op) = match key {
                "rbytes" => (&mut stats.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut stats.io_service_bytes_recursive, "Write"),
                "rios" => (&mut stats.io_serviced_recursive, "Read"),
                "wios" => (&mut stats.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    stats
}

fn v2_io(dir: &Path) -> Result<BlkioStats, CgroupError> {
    Ok(parse_io_stat(
        &fs::read_optional(&dir.join("io.stat"), "io.stat")?.unwrap_or_default(),
    ))
}

/// Page sizes are found from the control files themselves ("hugetlb.2MB.limit_in_bytes").
fn hugetlb(dir: &Path, v2: bool) -> Result<BTreeMap<String, HugetlbStats>, CgroupError> {
    let err = |source| CgroupError::Read {
        what: "hugetlb files",
        path: dir.to_path_buf(),
        source,
    };
    let suffix = if v2 { ".max" } else { ".limit_in_bytes" };
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some(name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?.to_string()))
        .filter(|size| !size.contains('.'))
        .collect();
    sizes.sort();
    let mut out = BTreeMap::new();
    for size in sizes {
        let get = |name: &str| fs::read_u64_optional(&dir.join(format!("hugetlb.{size}.{name}")), "hugetlb counter");
        let stats = if v2 {
            let events =
                fs::read_optional(&dir.join(format!("hugetlb.{size}.events")), "hugetlb events")?.unwrap_or_default();
            HugetlbStats {
                usage: get("current")?.unwrap_or(0),
                max: 0,
                failcnt: flat_keyed_value(&events, "max").unwrap_or(0),
            }
        } else {
            HugetlbStats {
                usage: get("usage_in_bytes")?.unwrap_or(0),
                max: get("max_usage_in_bytes")?.unwrap_or(0),
                failcnt: get("failcnt")?.unwrap_or(0),
            }
        };
        out.insert(size, stats);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_skip_total() {
        let e = parse_blkio_entries("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].major, e[0].minor, e[0].op.as_str(), e[0].value),
            (8, 0, "Read", 4096)
        );
    }

    #[test]
    fn io_stat_splits_bytes_and_ios() {
        let s = parse_io_stat("8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        let values: Vec<_> = s
            .io_service_bytes_recursive
            .iter()
            .map(|e| (e.op.as_str(), e.value))
            .collect();
        assert_eq!(values, vec![("Read", 10), ("Write", 20)]);
        assert_eq!(s.io_serviced_recursive[1].value, 2);
        assert_eq!(s.io_serviced_recursive[1].minor, 16);
    }

    #[test]
    fn cpuset_lists_are_expanded() {
        assert_eq!(parse_cpuset_list("0-2,4\n"), Some(vec![0, 1, 2, 4]));
        assert_eq!(parse_cpuset_list("0"), Some(vec![0]));
        assert_eq!(parse_cpuset_list(""), Some(vec![]));
        assert_eq!(parse_cpuset_list("3-1"), None);
        assert_eq!(parse_cpuset_list("a"), None);
    }

    #[test]
    fn stats_json_uses_runc_field_names() {
        let mut stats = Stats::default();
        stats.cpu.throttling.throttled_periods = 1;
        stats.blkio.io_service_bytes_recursive.push(BlkioEntry::default());
        let json = serde_json::to_value(stats).unwrap();
        assert!(json["cpu"]["throttling"].get("throttledPeriods").is_some());
        assert!(json["memory"].get("kernelTCP").is_some());
        assert!(json["cpuset"].get("sched_relax_domain_level").is_some());
        assert!(json["memory"].get("oom_kill").is_some());
        assert!(json["blkio"].get("ioServiceBytesRecursive").is_some());
    }

    /// runc's omitempty numbers (types/events.go) are left out at zero, the others kept, and
    /// the output reads back (the shim parses it).
    #[test]
    fn zero_figures_are_left_out_where_runc_leaves_them_out() {
        let json = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(json["cpu"]["throttling"], serde_json::json!({}));
        assert_eq!(
            json["memory"]["kernelTCP"],
            serde_json::json!({ "limit": 0, "failcnt": 0 })
        );
        assert_eq!(json["pids"], serde_json::json!({}));
        assert_eq!(json["blkio"], serde_json::json!({}));
        assert_eq!(json["cpu"]["usage"], serde_json::json!({ "kernel": 0, "user": 0 }));
        assert_eq!(json["intel_rdt"], serde_json::json!({}));
        assert!(json["network_interfaces"].is_null());
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back, Stats::default());
    }
}
