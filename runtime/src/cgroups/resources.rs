//! What the two dialects share: the controllers a `LinuxResources` asks for, the (file, value)
//! writes they turn into, and the validation that does not depend on the cgroup version.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::error::CgroupError;

/// A controller that `apply` may have to write to, in the order runc applies them (cpuset first:
/// the others do not depend on it, but a task must never sit in a cpuset without cpus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Cpuset,
    Devices,
    Memory,
    Cpu,
    Pids,
    Blkio,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
}

impl Controller {
    pub const APPLY_ORDER: [Controller; 10] = [
        Self::Cpuset,
        Self::Devices,
        Self::Memory,
        Self::Cpu,
        Self::Pids,
        Self::Blkio,
        Self::Hugetlb,
        Self::NetCls,
        Self::NetPrio,
        Self::Rdma,
    ];

    /// The controller's name in a v1 mount and in /proc/self/cgroup.
    pub fn v1_name(self) -> &'static str {
        match self {
            Self::Cpuset => "cpuset",
            Self::Devices => "devices",
            Self::Memory => "memory",
            Self::Cpu => "cpu",
            Self::Pids => "pids",
            Self::Blkio => "blkio",
            Self::Hugetlb => "hugetlb",
            Self::NetCls => "net_cls",
            Self::NetPrio => "net_prio",
            Self::Rdma => "rdma",
        }
    }

    /// The name in cgroup.controllers; `None` where v2 has no such controller (devices is eBPF,
    /// net_cls/net_prio were dropped in favour of eBPF socket filters).
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Self::Devices | Self::NetCls | Self::NetPrio => None,
            Self::Blkio => Some("io"),
            other => Some(other.v1_name()),
        }
    }
}

/// One write to a control file of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub value: String,
    /// Written instead when `file` does not exist (BFQ exposes weights under other names).
    pub fallback: Option<(String, String)>,
    /// An EINVAL may only mean a later write of the same batch must go first (cfs_period_us is
    /// checked against the current quota): retry once after the rest.
    pub retry_later: bool,
    /// A missing file is not an error (a value runc writes only to keep v1 semantics).
    pub optional: bool,
}

impl Write {
    pub fn new(file: impl Into<String>, value: impl ToString) -> Self {
        Write {
            file: file.into(),
            value: value.to_string(),
            fallback: None,
            retry_later: false,
            optional: false,
        }
    }

    pub fn with_fallback(mut self, file: impl Into<String>, value: impl ToString) -> Self {
        self.fallback = Some((file.into(), value.to_string()));
        self
    }

    pub fn retry_later(mut self) -> Self {
        self.retry_later = true;
        self
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// Why a control file may be missing, for the error a user reads.
pub fn missing_file_hint(file: &str) -> &'static str {
    if file.contains("memsw") || file.contains("swap") {
        "swap accounting is disabled in this kernel (boot with swapaccount=1)"
    } else if file.starts_with("hugetlb.") {
        "this huge page size is not supported by the kernel"
    } else if file.contains("weight") {
        "the block I/O scheduler has no proportional weight support (CFQ or BFQ)"
    } else if file.starts_with("cpu.rt_") {
        "the kernel is built without CONFIG_RT_GROUP_SCHED"
    } else {
        "the kernel does not support this setting"
    }
}

fn has_items<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// runc's rule for every numeric resource: 0 means "not set" (Docker, podman and the CRI plugin
/// fill in zeros for what the user did not ask for, e.g. `blockIO.weight: 0` on every container).
pub fn set_nonzero<T: Default + PartialEq + Copy>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

/// memory.swappiness as runc reads it: absent, or -1 (Docker's "unset", which arrives as
/// u64::MAX once the Go int64 is cast to the spec's uint64), leaves the kernel's value.
pub fn swappiness(m: &LinuxMemory) -> Option<u64> {
    m.swappiness().filter(|s| *s as i64 != -1)
}

/// memory.kernelTCP, the one kernel memory limit still written (v1 only, where the kernel has it).
#[allow(deprecated)]
pub fn kernel_tcp(m: &LinuxMemory) -> Option<i64> {
    set_nonzero(m.kernel_tcp())
}

fn memory_requested(m: &LinuxMemory) -> bool {
    set_nonzero(m.limit()).is_some()
        || set_nonzero(m.reservation()).is_some()
        || set_nonzero(m.swap()).is_some()
        || swappiness(m).is_some()
        || m.disable_oom_killer() == Some(true)
        || kernel_tcp(m).is_some()
}

fn cpu_requested(c: &LinuxCpu) -> bool {
    set_nonzero(c.shares()).is_some()
        || set_nonzero(c.quota()).is_some()
        || set_nonzero(c.period()).is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || set_nonzero(c.realtime_runtime()).is_some()
        || set_nonzero(c.realtime_period()).is_some()
}

fn blkio_requested(b: &LinuxBlockIo) -> bool {
    set_nonzero(b.weight()).is_some()
        || set_nonzero(b.leaf_weight()).is_some()
        || has_items(b.weight_device())
        || has_items(b.throttle_read_bps_device())
        || has_items(b.throttle_write_bps_device())
        || has_items(b.throttle_read_iops_device())
        || has_items(b.throttle_write_iops_device())
}

fn cpuset_requested(c: &LinuxCpu) -> bool {
    let set = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.trim().is_empty());
    set(c.cpus()) || set(c.mems())
}

/// Whether `resources` sets anything for `controller`. An empty section (`"blockIO": {}`) asks for
/// nothing, so it must not fail on a host without that controller.
pub fn requests(resources: &LinuxResources, controller: Controller) -> bool {
    match controller {
        Controller::Cpuset => resources.cpu().as_ref().is_some_and(cpuset_requested),
        Controller::Devices => has_items(resources.devices()),
        Controller::Memory => resources.memory().as_ref().is_some_and(memory_requested),
        Controller::Cpu => resources.cpu().as_ref().is_some_and(cpu_requested),
        Controller::Pids => resources.pids().as_ref().is_some_and(|p| p.limit() != 0),
        Controller::Blkio => resources.block_io().as_ref().is_some_and(blkio_requested),
        Controller::Hugetlb => has_items(resources.hugepage_limits()),
        Controller::NetCls => resources.network().as_ref().is_some_and(|n| n.class_id().is_some()),
        Controller::NetPrio => resources.network().as_ref().is_some_and(|n| has_items(n.priorities())),
        Controller::Rdma => resources.rdma().as_ref().is_some_and(|r| !r.is_empty()),
    }
}

/// cpuset.cpus and cpuset.mems have the same names and syntax in v1 and v2; cpus goes first.
pub fn cpuset_writes(c: &LinuxCpu) -> Vec<Write> {
    let mut out = Vec::new();
    for (file, value) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            out.push(Write::new(file, v));
        }
    }
    out
}

fn invalid(resource: &'static str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidValue {
        resource,
        reason: reason.into(),
    }
}

/// Memory values the runtime-spec allows: -1 (unlimited), 0 (unset) or a positive byte count;
/// swap is memory+swap, so it cannot be below the memory limit.
pub fn validate_memory(m: &LinuxMemory) -> Result<(), CgroupError> {
    for (name, value) in [
        ("memory.limit", m.limit()),
        ("memory.swap", m.swap()),
        ("memory.reservation", m.reservation()),
    ] {
        if let Some(v) = value.filter(|v| *v < -1) {
            return Err(invalid(name, format!("{v} is below -1")));
        }
    }
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(invalid(
                "memory.swap",
                format!("memory+swap {swap} is below the memory limit {limit}"),
            ));
        }
    }
    if let Some(s) = swappiness(m).filter(|s| *s > 100) {
        return Err(invalid("memory.swappiness", format!("{s} is above 100")));
    }
    Ok(())
}

/// CFS bandwidth: the kernel takes periods of 1 ms to 1 s and quotas of at least 1 ms.
pub fn validate_cpu(c: &LinuxCpu) -> Result<(), CgroupError> {
    let quota = c.quota().unwrap_or(0);
    match c.period() {
        Some(0) if quota > 0 => return Err(invalid("cpu.period", "a cpu quota needs a period above 0")),
        Some(p) if p != 0 && !(1_000..=1_000_000).contains(&p) => {
            return Err(invalid("cpu.period", format!("{p} us is outside 1000..=1000000")))
        }
        _ => {}
    }
    if quota > 0 && quota < 1_000 {
        return Err(invalid(
            "cpu.quota",
            format!("{quota} us is below the kernel's minimum of 1000"),
        ));
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r < -1) {
        return Err(invalid("cpu.realtimeRuntime", format!("{r} is below -1")));
    }
    for (name, list) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
        let list = list.as_deref().unwrap_or("").trim();
        if !list.chars().all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-') {
            return Err(invalid(name, format!("{list:?} is not a list like 0-3,7")));
        }
    }
    Ok(())
}

/// Huge page sizes are named like the kernel's files: "2MB", "1GB", "64KB".
pub fn validate_page_size(size: &str) -> Result<(), CgroupError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || !["KB", "MB", "GB"].contains(&unit) {
        return Err(invalid(
            "hugepageLimits.pageSize",
            format!("{size:?} is not a size like 2MB or 1GB"),
        ));
    }
    Ok(())
}

/// The huge page limits, validated: (page size, limit in bytes, -1 for none).
pub fn hugepage_limits(res: &LinuxResources) -> Result<Vec<(&str, i64)>, CgroupError> {
    let mut out = Vec::new();
    for h in res.hugepage_limits().as_deref().unwrap_or_default() {
        validate_page_size(h.page_size())?;
        if h.limit() < -1 {
            return Err(invalid("hugepageLimits.limit", format!("{} is below -1", h.limit())));
        }
        out.push((h.page_size().as_str(), h.limit()));
    }
    Ok(out)
}

/// A name that becomes part of a control file line must be one word.
pub fn validate_word(resource: &'static str, word: &str) -> Result<(), CgroupError> {
    if word.is_empty() || word.chars().any(char::is_whitespace) {
        return Err(invalid(resource, format!("{word:?} must be one non-empty word")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};

    #[test]
    fn empty_sections_request_nothing() {
        let res = LinuxResourcesBuilder::default()
            .block_io(LinuxBlockIoBuilder::default().build().unwrap())
            .cpu(LinuxCpuBuilder::default().shares(2u64).build().unwrap())
            .build()
            .unwrap();
        let asked: Vec<_> = Controller::APPLY_ORDER
            .into_iter()
            .filter(|c| requests(&res, *c))
            .collect();
        assert_eq!(asked, vec![Controller::Cpu]);
    }

    #[test]
    fn cpu_validation_refuses_quota_with_zero_period_and_tiny_quota() {
        let cpu = |q: i64, p: u64| LinuxCpuBuilder::default().quota(q).period(p).build().unwrap();
        assert!(matches!(
            validate_cpu(&cpu(50_000, 0)),
            Err(CgroupError::InvalidValue { .. })
        ));
        assert!(validate_cpu(&cpu(500, 100_000)).is_err());
        assert!(validate_cpu(&cpu(50_000, 100)).is_err());
        assert!(validate_cpu(&cpu(-1, 100_000)).is_ok());
        assert!(validate_cpu(&LinuxCpuBuilder::default().cpus("0-1;rm").build().unwrap()).is_err());
    }

    #[test]
    fn memory_validation_refuses_swap_below_limit() {
        let m = LinuxMemoryBuilder::default().limit(100i64).swap(50i64).build().unwrap();
        assert!(validate_memory(&m).is_err());
        let m = LinuxMemoryBuilder::default().limit(-2i64).build().unwrap();
        assert!(validate_memory(&m).is_err());
        let m = LinuxMemoryBuilder::default().swappiness(101u64).build().unwrap();
        assert!(validate_memory(&m).is_err());
    }

    #[test]
    fn page_sizes_follow_kernel_file_names() {
        assert!(validate_page_size("2MB").is_ok());
        assert!(validate_page_size("1GB").is_ok());
        assert!(validate_page_size("2M").is_err());
        assert!(validate_page_size("../x").is_err());
        assert!(validate_page_size("MB").is_err());
    }
}
