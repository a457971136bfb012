//! cgroup v2: `LinuxResources` to (file, value) writes, with runc's conversions from the v1-shaped
//! runtime-spec values (shares to weight, memory+swap to swap, blkio weight to io.weight).

use std::collections::HashMap;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::error::CgroupError;
use super::resources::{
    cpuset_writes, hugepage_limits, set_nonzero, swappiness, validate_cpu, validate_memory, validate_word, Controller,
    Write,
};

fn unsupported(resource: &'static str, reason: &'static str) -> CgroupError {
    CgroupError::Unsupported {
        resource,
        version: "v2",
        reason,
    }
}

/// The writes for one controller in the unified hierarchy.
pub fn writes(controller: Controller, res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    match controller {
        Controller::Cpuset => Ok(res.cpu().as_ref().map(cpuset_writes).unwrap_or_default()),
        // v2 has no devices files: the rules become an eBPF program that apply attaches
        // (devices_bpf).
        Controller::Devices => Ok(Vec::new()),
        Controller::Memory => res.memory().as_ref().map_or(Ok(Vec::new()), memory),
        Controller::Cpu => res.cpu().as_ref().map_or(Ok(Vec::new()), cpu),
        Controller::Pids => Ok(res
            .pids()
            .as_ref()
            .and_then(|p| super::resources_v1::pids_max(p.limit()))
            .into_iter()
            .collect()),
        Controller::Blkio => res.block_io().as_ref().map_or(Ok(Vec::new()), io),
        Controller::Hugetlb => hugetlb(res),
        Controller::NetCls => Err(unsupported("network.classID", "net_cls has no cgroup v2 controller")),
        Controller::NetPrio => Err(unsupported(
            "network.priorities",
            "net_prio has no cgroup v2 controller",
        )),
        Controller::Rdma => rdma(res),
    }
}

/// cpu.shares (2..=262144, default 1024) onto cpu.weight (1..=10000, default 100), as runc maps it.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (10..=1000) onto io.weight (1..=10000), as runc maps it.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// The spec's swap is memory+swap; memory.swap.max is swap alone. `Ok(None)` leaves it unset,
/// `Some(-1)` is "max". Mirrors runc's ConvertMemorySwapToCgroupV2Value.
pub fn swap_to_v2(limit: i64, swap: i64) -> Result<Option<i64>, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidValue {
        resource: "memory.swap",
        reason: reason.into(),
    };
    match (limit, swap) {
        (-1, 0) => Ok(Some(-1)),
        (_, 0) => Ok(None),
        (_, -1) => Ok(Some(-1)),
        (0 | -1, _) => Err(invalid("a swap limit needs a memory limit")),
        (l, s) if s < l => Err(invalid("memory+swap must be at least the memory limit")),
        (l, s) => Ok(Some(s - l)),
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cpu.max is "$QUOTA $PERIOD" with "max" for no quota; the period may be left out.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let q = if quota > 0 { quota.to_string() } else { "max".into() };
    Some(if period != 0 { format!("{q} {period}") } else { q })
}

fn memory(m: &LinuxMemory) -> Result<Vec<Write>, CgroupError> {
    validate_memory(m)?;
    if swappiness(m).is_some() {
        return Err(unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    let mut out = Vec::new();
    // Swap before memory, as runc: the two are independent in v2, but a failing swap write
    // should not leave a half-applied memory limit behind.
    if let Some(s) = swap_to_v2(limit, swap)? {
        let w = Write::new("memory.swap.max", max_or(s));
        // Only an explicit swap limit needs swap accounting; the implied "max" does not.
        out.push(if swap == 0 { w.optional() } else { w });
    }
    if limit != 0 {
        out.push(Write::new("memory.max", max_or(limit)));
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        out.push(Write::new("memory.low", max_or(r)));
    }
    Ok(out)
}

fn cpu(c: &LinuxCpu) -> Result<Vec<Write>, CgroupError> {
    validate_cpu(c)?;
    if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
        return Err(unsupported(
            "cpu.realtimeRuntime",
            "cgroup v2 has no real-time bandwidth control",
        ));
    }
    let mut out = Vec::new();
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        out.push(Write::new("cpu.weight", shares_to_weight(s)));
    }
    if let Some(max) = cpu_max(c.quota(), c.period()) {
        out.push(Write::new("cpu.max", max));
    }
    if let Some(b) = c.burst() {
        out.push(Write::new("cpu.max.burst", b));
    }
    if let Some(i) = c.idle() {
        out.push(Write::new("cpu.idle", i));
    }
    Ok(out)
}

fn io(b: &LinuxBlockIo) -> Result<Vec<Write>, CgroupError> {
    let leaf = |w: Option<u16>| set_nonzero(w).is_some();
    if leaf(b.leaf_weight()) || b.weight_device().iter().flatten().any(|d| leaf(d.leaf_weight())) {
        return Err(unsupported("blockIO.leafWeight", "cgroup v2 has no leaf weights"));
    }
    let mut out = Vec::new();
    // io.weight is the cost model's; BFQ keeps the v1 scale in io.bfq.weight.
    if let Some(w) = set_nonzero(b.weight()) {
        out.push(Write::new("io.weight", blkio_weight_to_io_weight(w)).with_fallback("io.bfq.weight", w));
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        if let Some(w) = set_nonzero(d.weight()) {
            let dev = format!("{}:{}", d.major(), d.minor());
            out.push(
                Write::new("io.weight", format!("{dev} {}", blkio_weight_to_io_weight(w)))
                    .with_fallback("io.bfq.weight", format!("{dev} {w}")),
            );
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, devices) in throttles {
        for d in devices.as_deref().unwrap_or_default() {
            // v1 takes a rate of 0 as "no limit"; v2 spells that "max".
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            out.push(Write::new(
                "io.max",
                format!("{}:{} {key}={rate}", d.major(), d.minor()),
            ));
        }
    }
    Ok(out)
}

/// As on v1, the reservation limit too where the kernel has it.
fn hugetlb(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    for (size, limit) in hugepage_limits(res)? {
        out.push(Write::new(format!("hugetlb.{size}.max"), max_or(limit)));
        out.push(Write::new(format!("hugetlb.{size}.rsvd.max"), max_or(limit)).optional());
    }
    Ok(out)
}

/// rdma.max lines ("mlx4_0 hca_handle=2 hca_object=max"); the same in v1 and v2.
pub fn rdma(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let empty = HashMap::new();
    let map = res.rdma().as_ref().unwrap_or(&empty);
    let mut devices: Vec<_> = map.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (dev, limit) in devices {
        validate_word("rdma device", dev)?;
        let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
        out.push(Write::new(
            "rdma.max",
            format!(
                "{dev} hca_handle={} hca_object={}",
                n(limit.hca_handles()),
                n(limit.hca_objects())
            ),
        ));
    }
    Ok(out)
}

/// `linux.resources.unified`: each key is a file of the container's cgroup, written verbatim.
/// Returns (controller the file belongs to, write), sorted by file for a stable order.
pub fn unified(map: &HashMap<String, String>) -> Result<Vec<(String, Write)>, CgroupError> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let Some((controller, _)) = key
            .split_once('.')
            .filter(|_| !key.contains('/') && !key.contains(".."))
        else {
            return Err(CgroupError::InvalidValue {
                resource: "unified",
                reason: format!("{key:?} must be a file name like memory.high, without '/' or '..'"),
            });
        };
        out.push((controller.to_string(), Write::new(key.as_str(), &map[key])));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder,
        LinuxThrottleDeviceBuilder,
    };

    fn pairs(w: &[Write]) -> Vec<(&str, &str)> {
        w.iter().map(|w| (w.file.as_str(), w.value.as_str())).collect()
    }

    #[test]
    fn shares_and_blkio_weight_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn cpu_max_spells_quota_and_period() {
        assert_eq!(cpu_max(Some(50_000), Some(100_000)).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max(Some(-1), Some(100_000)).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max(Some(20_000), None).as_deref(), Some("20000"));
        assert_eq!(cpu_max(None, None), None);
    }

    #[test]
    fn swap_is_converted_from_memory_plus_swap() {
        assert_eq!(swap_to_v2(100, 300).unwrap(), Some(200));
        assert_eq!(swap_to_v2(100, -1).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(-1, 0).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(100, 0).unwrap(), None);
        assert!(swap_to_v2(0, 300).is_err());
        assert!(swap_to_v2(300, 100).is_err());
    }

    #[test]
    fn memory_writes_swap_then_max_then_low() {
        let m = LinuxMemoryBuilder::default()
            .limit(100i64)
            .swap(300i64)
            .reservation(50i64)
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default().memory(m).build().unwrap();
        let w = writes(Controller::Memory, &res).unwrap();
        assert_eq!(
            pairs(&w),
            vec![("memory.swap.max", "200"), ("memory.max", "100"), ("memory.low", "50")]
        );
        let m = LinuxMemoryBuilder::default().swappiness(10u64).build().unwrap();
        let res = LinuxResourcesBuilder::default().memory(m).build().unwrap();
        assert!(matches!(
            writes(Controller::Memory, &res),
            Err(CgroupError::Unsupported { .. })
        ));
    }

    #[test]
    fn cpu_io_hugetlb_pids_files() {
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000i64)
            .period(100_000u64)
            .build()
            .unwrap();
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(0)
                .rate(0u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let h = LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(-1i64)
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default()
            .cpu(c)
            .block_io(b)
            .hugepage_limits(vec![h])
            .build()
            .unwrap();
        assert_eq!(
            pairs(&writes(Controller::Cpu, &res).unwrap()),
            vec![("cpu.weight", "39"), ("cpu.max", "50000 100000")]
        );
        assert_eq!(
            pairs(&writes(Controller::Blkio, &res).unwrap()),
            vec![("io.weight", "4950"), ("io.max", "8:0 wiops=max")]
        );
        assert_eq!(
            pairs(&writes(Controller::Hugetlb, &res).unwrap()),
            vec![("hugetlb.2MB.max", "max"), ("hugetlb.2MB.rsvd.max", "max")]
        );
    }

    #[test]
    fn unified_keys_are_verbatim_but_never_paths() {
        let ok: HashMap<String, String> = [("memory.high".to_string(), "1G".to_string())].into();
        let w = unified(&ok).unwrap();
        assert_eq!(w[0].0, "memory");
        assert_eq!((w[0].1.file.as_str(), w[0].1.value.as_str()), ("memory.high", "1G"));
        for bad in ["../memory.max", "a/b.c", "nodot", "x..y"] {
            let m: HashMap<String, String> = [(bad.to_string(), "1".to_string())].into();
            assert!(unified(&m).is_err(), "{bad}");
        }
    }
}
