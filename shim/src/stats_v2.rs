//! cgroup v2 metrics (`io.containerd.cgroups.v2.Metrics`) as containerd's cgroup2 manager fills
//! them: pids, cpu.stat, all of memory.stat with usage/limits, memory.events, io.stat, rdma,
//! hugetlb per page size.

use std::fs;
use std::path::Path;

use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::MessageField;

use crate::stats::{hugepage_sizes, read_keyed, read_u64};

pub fn metrics(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = MessageField::some(v2::PidsStat {
        current: read_u64(&dir.join("pids.current")),
        limit: read_u64(&dir.join("pids.max")),
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
        nr_bursts: get("nr_bursts"),
        burst_usec: get("burst_usec"),
        ..Default::default()
    });
    m.memory = MessageField::some(memory(dir));
    let events = read_keyed(&dir.join("memory.events"));
    let get = |k: &str| events.get(k).copied().unwrap_or(0);
    m.memory_events = MessageField::some(v2::MemoryEvents {
        low: get("low"),
        high: get("high"),
        max: get("max"),
        oom: get("oom"),
        oom_kill: get("oom_kill"),
        oom_group_kill: get("oom_group_kill"),
        ..Default::default()
    });
    m.io = MessageField::some(v2::IOStat {
        usage: parse_io_stat(&fs::read_to_string(dir.join("io.stat")).unwrap_or_default()),
        ..Default::default()
    });
    m.rdma = MessageField::some(v2::RdmaStat {
        current: parse_rdma(&fs::read_to_string(dir.join("rdma.current")).unwrap_or_default()),
        limit: parse_rdma(&fs::read_to_string(dir.join("rdma.max")).unwrap_or_default()),
        ..Default::default()
    });
    m.hugetlb = hugepage_sizes()
        .into_iter()
        .map(|size| v2::HugeTlbStat {
            current: read_u64(&dir.join(format!("hugetlb.{size}.current"))),
            max: read_u64(&dir.join(format!("hugetlb.{size}.max"))),
            failcnt: read_keyed(&dir.join(format!("hugetlb.{size}.events")))
                .get("max")
                .copied()
                .unwrap_or(0),
            pagesize: size,
            ..Default::default()
        })
        .collect();
    m
}

fn memory(dir: &Path) -> v2::MemoryStat {
    let s = read_keyed(&dir.join("memory.stat"));
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    v2::MemoryStat {
        anon: get("anon"),
        file: get("file"),
        kernel_stack: get("kernel_stack"),
        slab: get("slab"),
        sock: get("sock"),
        shmem: get("shmem"),
        file_mapped: get("file_mapped"),
        file_dirty: get("file_dirty"),
        file_writeback: get("file_writeback"),
        anon_thp: get("anon_thp"),
        inactive_anon: get("inactive_anon"),
        active_anon: get("active_anon"),
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
        unevictable: get("unevictable"),
        slab_reclaimable: get("slab_reclaimable"),
        slab_unreclaimable: get("slab_unreclaimable"),
        pgfault: get("pgfault"),
        pgmajfault: get("pgmajfault"),
        workingset_refault: get("workingset_refault_anon") + get("workingset_refault_file") + get("workingset_refault"),
        workingset_activate: get("workingset_activate_anon")
            + get("workingset_activate_file")
            + get("workingset_activate"),
        workingset_nodereclaim: get("workingset_nodereclaim"),
        pgrefill: get("pgrefill"),
        pgscan: get("pgscan"),
        pgsteal: get("pgsteal"),
        pgactivate: get("pgactivate"),
        pgdeactivate: get("pgdeactivate"),
        pglazyfree: get("pglazyfree"),
        pglazyfreed: get("pglazyfreed"),
        thp_fault_alloc: get("thp_fault_alloc"),
        thp_collapse_alloc: get("thp_collapse_alloc"),
        usage: read_u64(&dir.join("memory.current")),
        usage_limit: read_u64(&dir.join("memory.max")),
        max_usage: read_u64(&dir.join("memory.peak")),
        swap_usage: read_u64(&dir.join("memory.swap.current")),
        swap_limit: read_u64(&dir.join("memory.swap.max")),
        swap_max_usage: read_u64(&dir.join("memory.swap.peak")),
        ..Default::default()
    }
}

/// `MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...` lines.
pub fn parse_io_stat(text: &str) -> Vec<v2::IOEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let mut entry = v2::IOEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for (key, value) in fields.filter_map(|f| f.split_once('=')) {
                let value = value.parse().unwrap_or(0);
                match key {
                    "rbytes" => entry.rbytes = value,
                    "wbytes" => entry.wbytes = value,
                    "rios" => entry.rios = value,
                    "wios" => entry.wios = value,
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}

/// `DEVICE hca_handle=N hca_object=N` lines ("max" counts as the u32 maximum).
pub fn parse_rdma(text: &str) -> Vec<v2::RdmaEntry> {
    let number = |v: &str| if v == "max" { u32::MAX } else { v.parse().unwrap_or(0) };
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut entry = v2::RdmaEntry {
                device: fields.next()?.to_string(),
                ..Default::default()
            };
            for (key, value) in fields.filter_map(|f| f.split_once('=')) {
                match key {
                    "hca_handle" => entry.hca_handles = number(value),
                    "hca_object" => entry.hca_objects = number(value),
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_and_rdma_lines_parse() {
        let io = parse_io_stat("8:0 rbytes=4096 wbytes=512 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!((io[0].major, io[0].rbytes, io[0].wios), (8, 4096, 2));
        let rdma = parse_rdma("mlx4_0 hca_handle=2 hca_object=max\n");
        assert_eq!((rdma[0].hca_handles, rdma[0].hca_objects), (2, u32::MAX));
    }
}
