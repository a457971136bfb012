//! cgroup v1: `LinuxResources` to (file, value) writes, one controller at a time. Pure: the little
//! it must know about the live cgroup comes in `V1Context`.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources};

use super::error::CgroupError;
use super::resources::{
    cpuset_writes, hugepage_limits, kernel_tcp, set_nonzero, swappiness, validate_cpu, validate_memory, validate_word,
    Controller, Write,
};

/// What the memory writes depend on in the live cgroup.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Context {
    /// memory.limit_in_bytes now: decides whether memsw must be written before or after it.
    pub memory_limit_now: Option<u64>,
    /// memory.memsw.limit_in_bytes exists (swap accounting on).
    pub memsw_available: bool,
}

/// The writes for one v1 controller, in the order the kernel accepts them.
pub fn writes(controller: Controller, res: &LinuxResources, ctx: &V1Context) -> Result<Vec<Write>, CgroupError> {
    match controller {
        Controller::Cpuset => Ok(res.cpu().as_ref().map(cpuset_writes).unwrap_or_default()),
        Controller::Devices => devices(res.devices().as_deref().unwrap_or_default()),
        Controller::Memory => res.memory().as_ref().map_or(Ok(Vec::new()), |m| memory(m, ctx)),
        Controller::Cpu => res.cpu().as_ref().map_or(Ok(Vec::new()), cpu),
        Controller::Pids => Ok(res
            .pids()
            .as_ref()
            .and_then(|p| pids_max(p.limit()))
            .into_iter()
            .collect()),
        Controller::Blkio => Ok(res.block_io().as_ref().map(blkio).unwrap_or_default()),
        Controller::Hugetlb => hugetlb(res),
        Controller::NetCls => Ok(res
            .network()
            .as_ref()
            .and_then(|n| n.class_id())
            .map(|id| vec![Write::new("net_cls.classid", id)])
            .unwrap_or_default()),
        Controller::NetPrio => net_prio(res),
        Controller::Rdma => super::resources_v2::rdma(res),
    }
}

/// pids.max takes "max" for no limit, which the spec says with a negative limit; 0 leaves the
/// limit as it is (runc: Docker's `update` sends 0 for "not changed").
pub fn pids_max(limit: i64) -> Option<Write> {
    match limit {
        0 => None,
        l if l > 0 => Some(Write::new("pids.max", l)),
        _ => Some(Write::new("pids.max", "max")),
    }
}

fn memory(m: &LinuxMemory, ctx: &V1Context) -> Result<Vec<Write>, CgroupError> {
    validate_memory(m)?;
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    if swap != 0 && !ctx.memsw_available {
        return Err(CgroupError::MissingFile {
            resource: "memory.swap",
            path: PathBuf::from("memory.memsw.limit_in_bytes"),
            hint: super::resources::missing_file_hint("memsw"),
        });
    }
    // Unlimited memory with swap unset means unlimited memory+swap too, as in runc: otherwise the
    // old memsw limit would stay and cap the now unlimited memory.
    if limit == -1 && swap == 0 && ctx.memsw_available {
        swap = -1;
    }
    let mut out = Vec::new();
    let mem = Write::new("memory.limit_in_bytes", limit);
    let memsw = Write::new("memory.memsw.limit_in_bytes", swap);
    match (limit != 0, swap != 0) {
        (true, true) => {
            // The kernel keeps memsw >= memory at every step: raise memsw first when it grows
            // past the current memory limit, lower memory first otherwise.
            let now = ctx.memory_limit_now.unwrap_or(u64::MAX);
            if swap == -1 || now < swap as u64 {
                out.extend([memsw, mem]);
            } else {
                out.extend([mem, memsw]);
            }
        }
        (true, false) => out.push(mem),
        (false, true) => out.push(memsw),
        (false, false) => {}
    }
    if let Some(r) = set_nonzero(m.reservation()) {
        out.push(Write::new("memory.soft_limit_in_bytes", r));
    }
    // Kernels from 6.1 (or built without CONFIG_MEMCG_KMEM) have no kmem files: skip it there.
    if let Some(tcp) = kernel_tcp(m) {
        out.push(Write::new("memory.kmem.tcp.limit_in_bytes", tcp).optional());
    }
    if let Some(s) = swappiness(m) {
        out.push(Write::new("memory.swappiness", s));
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(Write::new("memory.oom_control", 1));
    }
    Ok(out)
}

fn cpu(c: &LinuxCpu) -> Result<Vec<Write>, CgroupError> {
    validate_cpu(c)?;
    let mut out = Vec::new();
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        out.push(Write::new("cpu.shares", s));
    }
    if let Some(p) = c.period().filter(|p| *p != 0) {
        out.push(Write::new("cpu.cfs_period_us", p).retry_later());
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        out.push(Write::new("cpu.cfs_quota_us", if q < 0 { -1 } else { q }));
    }
    if let Some(b) = c.burst() {
        out.push(Write::new("cpu.cfs_burst_us", b));
    }
    // rt_runtime must fit in rt_period: set the period first.
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        out.push(Write::new("cpu.rt_period_us", p));
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        out.push(Write::new("cpu.rt_runtime_us", r));
    }
    if let Some(i) = c.idle() {
        out.push(Write::new("cpu.idle", i));
    }
    Ok(out)
}

fn blkio(b: &LinuxBlockIo) -> Vec<Write> {
    let mut out = Vec::new();
    // CFQ names its files blkio.weight*, BFQ blkio.bfq.weight*: same values, other names.
    if let Some(w) = set_nonzero(b.weight()) {
        out.push(Write::new("blkio.weight", w).with_fallback("blkio.bfq.weight", w));
    }
    if let Some(w) = set_nonzero(b.leaf_weight()) {
        out.push(Write::new("blkio.leaf_weight", w));
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(w) = set_nonzero(d.weight()) {
            out.push(
                Write::new("blkio.weight_device", format!("{dev} {w}"))
                    .with_fallback("blkio.bfq.weight_device", format!("{dev} {w}")),
            );
        }
        if let Some(w) = set_nonzero(d.leaf_weight()) {
            out.push(Write::new("blkio.leaf_weight_device", format!("{dev} {w}")));
        }
    }
    let throttles = [
        ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
        ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
        ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
        ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
    ];
    for (file, devices) in throttles {
        for d in devices.as_deref().unwrap_or_default() {
            out.push(Write::new(file, format!("{}:{} {}", d.major(), d.minor(), d.rate())));
        }
    }
    out
}

/// The reservation limit (kernel 5.7+) fails mmap instead of faulting later: set it too where
/// the kernel has it.
fn hugetlb(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    for (size, limit) in hugepage_limits(res)? {
        out.push(Write::new(format!("hugetlb.{size}.limit_in_bytes"), limit));
        out.push(Write::new(format!("hugetlb.{size}.rsvd.limit_in_bytes"), limit).optional());
    }
    Ok(out)
}

fn net_prio(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    let priorities = res
        .network()
        .as_ref()
        .and_then(|n| n.priorities().clone())
        .unwrap_or_default();
    for p in priorities {
        validate_word("network.priorities.name", p.name())?;
        out.push(Write::new(
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        ));
    }
    Ok(out)
}

/// One devices.allow / devices.deny line per rule, in the spec's order: the kernel applies each
/// as it comes, so a leading "deny all" followed by allows yields an allow-list.
fn devices(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Write>, CgroupError> {
    rules.iter().map(device_rule).collect()
}

/// The devices.allow/deny line of one rule ("c 1:3 rwm", "a *:* rwm").
pub fn device_line(rule: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let invalid = |reason: String| CgroupError::InvalidValue {
        resource: "devices",
        reason,
    };
    let typ = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        // 'u' (unbuffered character device) is a character device to the kernel.
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Err(invalid("type p (fifo) cannot be used in a device cgroup rule".into())),
    };
    let number = |n: Option<i64>| -> Result<String, CgroupError> {
        match n {
            None | Some(-1) => Ok("*".into()),
            Some(n) if n >= 0 => Ok(n.to_string()),
            Some(n) => Err(invalid(format!("device number {n} is below -1"))),
        }
    };
    let access = rule.access().as_deref().unwrap_or("rwm");
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid(format!("access {access:?} must be made of r, w and m")));
    }
    let access = crate::rootfs::devices::canonical_access(access);
    Ok(format!(
        "{typ} {}:{} {access}",
        number(rule.major())?,
        number(rule.minor())?
    ))
}

fn device_rule(rule: &LinuxDeviceCgroup) -> Result<Write, CgroupError> {
    let file = if rule.allow() { "devices.allow" } else { "devices.deny" };
    Ok(Write::new(file, device_line(rule)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder,
        LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn pairs(w: &[Write]) -> Vec<(&str, &str)> {
        w.iter().map(|w| (w.file.as_str(), w.value.as_str())).collect()
    }

    fn mem_res(limit: i64, swap: i64) -> LinuxResources {
        let m = LinuxMemoryBuilder::default().limit(limit).swap(swap).build().unwrap();
        LinuxResourcesBuilder::default().memory(m).build().unwrap()
    }

    #[test]
    fn memory_and_swap_raised_past_current_limit_write_memsw_first() {
        let ctx = V1Context {
            memory_limit_now: Some(100),
            memsw_available: true,
        };
        let w = writes(Controller::Memory, &mem_res(200, 400), &ctx).unwrap();
        assert_eq!(
            pairs(&w),
            vec![("memory.memsw.limit_in_bytes", "400"), ("memory.limit_in_bytes", "200")]
        );
    }

    #[test]
    fn memory_and_swap_lowered_write_memory_first() {
        let ctx = V1Context {
            memory_limit_now: Some(1 << 30),
            memsw_available: true,
        };
        let w = writes(Controller::Memory, &mem_res(100, 200), &ctx).unwrap();
        assert_eq!(
            pairs(&w),
            vec![("memory.limit_in_bytes", "100"), ("memory.memsw.limit_in_bytes", "200")]
        );
    }

    #[test]
    fn unlimited_memory_also_unlimits_memsw_when_accounted() {
        let m = LinuxMemoryBuilder::default().limit(-1i64).build().unwrap();
        let res = LinuxResourcesBuilder::default().memory(m).build().unwrap();
        let ctx = V1Context {
            memory_limit_now: Some(100),
            memsw_available: true,
        };
        let w = writes(Controller::Memory, &res, &ctx).unwrap();
        assert_eq!(
            pairs(&w),
            vec![("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]
        );
        let w = writes(Controller::Memory, &res, &V1Context::default()).unwrap();
        assert_eq!(pairs(&w), vec![("memory.limit_in_bytes", "-1")]);
    }

    #[test]
    fn swap_without_swap_accounting_is_a_clear_error() {
        let err = writes(Controller::Memory, &mem_res(100, 200), &V1Context::default()).unwrap_err();
        assert!(err.to_string().contains("memory.memsw.limit_in_bytes"), "{err}");
    }

    #[test]
    fn memory_extras_map_to_their_files() {
        let m = LinuxMemoryBuilder::default()
            .reservation(50i64)
            .swappiness(10u64)
            .disable_oom_killer(true)
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default().memory(m).build().unwrap();
        let w = writes(Controller::Memory, &res, &V1Context::default()).unwrap();
        assert_eq!(
            pairs(&w),
            vec![
                ("memory.soft_limit_in_bytes", "50"),
                ("memory.swappiness", "10"),
                ("memory.oom_control", "1")
            ]
        );
    }

    #[test]
    fn cpu_writes_period_before_quota_and_marks_it_retryable() {
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(-5i64)
            .period(50_000u64)
            .realtime_period(1000u64)
            .realtime_runtime(500i64)
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default().cpu(c).build().unwrap();
        let w = writes(Controller::Cpu, &res, &V1Context::default()).unwrap();
        assert_eq!(
            pairs(&w),
            vec![
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "50000"),
                ("cpu.cfs_quota_us", "-1"),
                ("cpu.rt_period_us", "1000"),
                ("cpu.rt_runtime_us", "500")
            ]
        );
        assert!(w[1].retry_later && !w[2].retry_later);
    }

    #[test]
    fn blkio_weights_fall_back_to_bfq_and_throttles_name_devices() {
        let b = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(200u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8)
                .minor(16)
                .rate(1024u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default().block_io(b).build().unwrap();
        let w = writes(Controller::Blkio, &res, &V1Context::default()).unwrap();
        assert_eq!(
            pairs(&w),
            vec![
                ("blkio.weight", "300"),
                ("blkio.weight_device", "8:0 200"),
                ("blkio.throttle.read_bps_device", "8:16 1024")
            ]
        );
        assert_eq!(w[0].fallback, Some(("blkio.bfq.weight".into(), "300".into())));
    }

    #[test]
    fn device_rules_become_allow_and_deny_lines_in_order() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .unwrap();
        let any_block = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(8)
            .access("r")
            .build()
            .unwrap();
        let res = LinuxResourcesBuilder::default()
            .devices(vec![deny_all, null, any_block])
            .build()
            .unwrap();
        let w = writes(Controller::Devices, &res, &V1Context::default()).unwrap();
        assert_eq!(
            pairs(&w),
            vec![
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "b 8:* r")
            ]
        );
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwx")
            .build()
            .unwrap();
        assert!(device_line(&bad).is_err());
    }

    #[test]
    fn pids_zero_is_unset_and_negative_means_max() {
        assert_eq!(pids_max(0), None);
        assert_eq!(pids_max(-1).unwrap().value, "max");
        assert_eq!(pids_max(32).unwrap().value, "32");
    }
}
