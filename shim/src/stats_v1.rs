//! cgroup v1 metrics (`io.containerd.cgroups.v1.Metrics`), read from the same files and filled the
//! same way as containerd's cgroups library does for the runc shim: hugetlb per page size, pids,
//! cpu (cpuacct + cpu throttling), memory (memory.stat, four counters, oom_control), blkio.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::protobuf::MessageField;

use crate::stats::{hugepage_sizes, read_keyed, read_u64, CgroupPaths};

/// cpuacct.stat counts USER_HZ ticks (100 a second); containerd reports nanoseconds.
const NANOS_PER_TICK: u64 = 10_000_000;

pub fn metrics(paths: &CgroupPaths) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(dir) = paths.v1("hugetlb") {
        m.hugetlb = hugetlb(&dir);
    }
    if let Some(dir) = paths.v1("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: read_u64(&dir.join("pids.current")),
            // "max" (no limit) is 0 in v1 metrics, u64::MAX in v2's.
            limit: fs::read_to_string(dir.join("pids.max"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            ..Default::default()
        });
    }
    if let Some(dir) = paths.v1("cpuacct") {
        m.cpu = MessageField::some(cpu(&dir, paths.v1("cpu").as_deref()));
    }
    if let Some(dir) = paths.v1("memory") {
        m.memory = MessageField::some(memory(&dir));
        let oom = read_keyed(&dir.join("memory.oom_control"));
        let get = |k: &str| oom.get(k).copied().unwrap_or(0);
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: get("oom_kill_disable"),
            under_oom: get("under_oom"),
            oom_kill: get("oom_kill"),
            ..Default::default()
        });
    }
    if let Some(dir) = paths.v1("blkio") {
        m.blkio = MessageField::some(blkio(&dir));
    }
    m
}

fn hugetlb(dir: &Path) -> Vec<v1::HugetlbStat> {
    hugepage_sizes()
        .into_iter()
        .map(|size| {
            let file = |what: &str| dir.join(format!("hugetlb.{size}.{what}"));
            v1::HugetlbStat {
                usage: read_u64(&file("usage_in_bytes")),
                max: read_u64(&file("max_usage_in_bytes")),
                failcnt: read_u64(&file("failcnt")),
                pagesize: size,
                ..Default::default()
            }
        })
        .collect()
}

fn cpu(cpuacct: &Path, cpu: Option<&Path>) -> v1::CPUStat {
    let stat = read_keyed(&cpuacct.join("cpuacct.stat"));
    let ticks = |k: &str| stat.get(k).copied().unwrap_or(0) * NANOS_PER_TICK;
    let per_cpu = fs::read_to_string(cpuacct.join("cpuacct.usage_percpu")).unwrap_or_default();
    let usage = v1::CPUUsage {
        total: read_u64(&cpuacct.join("cpuacct.usage")),
        user: ticks("user"),
        kernel: ticks("system"),
        per_cpu: per_cpu.split_whitespace().filter_map(|v| v.parse().ok()).collect(),
        ..Default::default()
    };
    let mut stat = v1::CPUStat {
        usage: MessageField::some(usage),
        ..Default::default()
    };
    if let Some(dir) = cpu {
        let t = read_keyed(&dir.join("cpu.stat"));
        let get = |k: &str| t.get(k).copied().unwrap_or(0);
        stat.throttling = MessageField::some(v1::Throttle {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_time"),
            ..Default::default()
        });
    }
    stat
}

fn memory(dir: &Path) -> v1::MemoryStat {
    let s = read_keyed(&dir.join("memory.stat"));
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    let entry = |prefix: &str| {
        MessageField::some(v1::MemoryEntry {
            usage: read_u64(&dir.join(format!("{prefix}.usage_in_bytes"))),
            max: read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes"))),
            limit: read_u64(&dir.join(format!("{prefix}.limit_in_bytes"))),
            failcnt: read_u64(&dir.join(format!("{prefix}.failcnt"))),
            ..Default::default()
        })
    };
    v1::MemoryStat {
        cache: get("cache"),
        rss: get("rss"),
        rss_huge: get("rss_huge"),
        mapped_file: get("mapped_file"),
        dirty: get("dirty"),
        writeback: get("writeback"),
        pg_pg_in: get("pgpgin"),
        pg_pg_out: get("pgpgout"),
        pg_fault: get("pgfault"),
        pg_maj_fault: get("pgmajfault"),
        inactive_anon: get("inactive_anon"),
        active_anon: get("active_anon"),
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
        unevictable: get("unevictable"),
        hierarchical_memory_limit: get("hierarchical_memory_limit"),
        hierarchical_swap_limit: get("hierarchical_memsw_limit"),
        total_cache: get("total_cache"),
        total_rss: get("total_rss"),
        total_rss_huge: get("total_rss_huge"),
        total_mapped_file: get("total_mapped_file"),
        total_dirty: get("total_dirty"),
        total_writeback: get("total_writeback"),
        total_pg_pg_in: get("total_pgpgin"),
        total_pg_pg_out: get("total_pgpgout"),
        total_pg_fault: get("total_pgfault"),
        total_pg_maj_fault: get("total_pgmajfault"),
        total_inactive_anon: get("total_inactive_anon"),
        total_active_anon: get("total_active_anon"),
        total_inactive_file: get("total_inactive_file"),
        total_active_file: get("total_active_file"),
        total_unevictable: get("total_unevictable"),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        kernel: entry("memory.kmem"),
        kernel_tcp: entry("memory.kmem.tcp"),
        ..Default::default()
    }
}

/// The CFQ files when the kernel has them and they hold entries, else the throttle files (all
/// a modern kernel without CFQ keeps), as containerd's cgroups library chooses.
fn blkio(dir: &Path) -> v1::BlkIOStat {
    let devices = block_devices(&fs::read_to_string("/proc/partitions").unwrap_or_default());
    let read = |name: &str| blkio_entries(&dir.join(format!("blkio.{name}")), &devices);
    let mut stat = v1::BlkIOStat::new();
    if dir.join("blkio.io_serviced_recursive").exists() {
        stat.sectors_recursive = read("sectors_recursive");
        stat.io_service_bytes_recursive = read("io_service_bytes_recursive");
        stat.io_serviced_recursive = read("io_serviced_recursive");
        stat.io_queued_recursive = read("io_queued_recursive");
        stat.io_service_time_recursive = read("io_service_time_recursive");
        stat.io_wait_time_recursive = read("io_wait_time_recursive");
        stat.io_merged_recursive = read("io_merged_recursive");
        stat.io_time_recursive = read("time_recursive");
        let found = [
            &stat.sectors_recursive,
            &stat.io_service_bytes_recursive,
            &stat.io_serviced_recursive,
            &stat.io_queued_recursive,
            &stat.io_service_time_recursive,
            &stat.io_wait_time_recursive,
            &stat.io_merged_recursive,
            &stat.io_time_recursive,
        ];
        if found.iter().any(|entries| !entries.is_empty()) {
            return stat;
        }
    }
    stat.io_serviced_recursive = read("throttle.io_serviced");
    stat.io_service_bytes_recursive = read("throttle.io_service_bytes");
    stat
}

/// major:minor → /dev/<name>, the first name /proc/partitions gives each pair.
pub fn block_devices(partitions: &str) -> HashMap<(u64, u64), String> {
    let mut devices = HashMap::new();
    for line in partitions.lines().skip(2) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(major), Some(minor), Some(name)) = (fields.first(), fields.get(1), fields.get(3)) else {
            continue;
        };
        if let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) {
            devices.entry((major, minor)).or_insert_with(|| format!("/dev/{name}"));
        }
    }
    devices
}

/// `MAJ:MIN [Op] value` lines; the `Total` line is skipped.
pub fn parse_blkio(text: &str, devices: &HashMap<(u64, u64), String>) -> Vec<v1::BlkIOEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split([' ', ':']).filter(|f| !f.is_empty()).collect();
            let (major, minor) = (fields.first()?.parse().ok()?, fields.get(1)?.parse().ok()?);
            let (op, value) = match fields.len() {
                4 => (fields[2].to_string(), fields[3]),
                3 => (String::new(), fields[2]),
                _ => return None,
            };
            Some(v1::BlkIOEntry {
                op,
                device: devices.get(&(major, minor)).cloned().unwrap_or_default(),
                major,
                minor,
                value: value.parse().ok()?,
                ..Default::default()
            })
        })
        .collect()
}

fn blkio_entries(path: &PathBuf, devices: &HashMap<(u64, u64), String>) -> Vec<v1::BlkIOEntry> {
    parse_blkio(&fs::read_to_string(path).unwrap_or_default(), devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_carry_device_names_and_skip_the_total() {
        let devices = block_devices("major minor  #blocks  name\n\n 254        0   20971520 vda\n");
        let entries = parse_blkio("254:0 Read 4096\n254:0 Write 0\nTotal 4096\n", &devices);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].device, "/dev/vda");
        assert_eq!(
            (entries[0].major, entries[0].op.as_str(), entries[0].value),
            (254, "Read", 4096)
        );
    }
}
