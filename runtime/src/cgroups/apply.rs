//! Applying resources: pick the hierarchy for each controller, compute its writes with the
//! matching dialect, write them in order.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::devices_bpf::{self, DeviceFilter};
use super::error::CgroupError;
use super::fs;
use super::resources::{missing_file_hint, requests, Controller, Write};
use super::resources_v1::{self, V1Context};
use super::resources_v2;
use super::Cgroup;

/// The spec field a controller serves, for error messages.
fn spec_field(c: Controller) -> &'static str {
    match c {
        Controller::Cpuset => "cpu.cpus/cpu.mems",
        Controller::Devices => "devices",
        Controller::Memory => "memory",
        Controller::Cpu => "cpu",
        Controller::Pids => "pids",
        Controller::Blkio => "blockIO",
        Controller::Hugetlb => "hugepageLimits",
        Controller::NetCls => "network.classID",
        Controller::NetPrio => "network.priorities",
        Controller::Rdma => "rdma",
    }
}

/// memory.kernel is obsolete (kernel 5.4 stopped enforcing kmem limits, v2 never had them):
/// runc ignores it with a warning, and so do we. A 0 is what Docker's `update` sends for
/// "not set" and earns no warning. (memory.kernelTCP is still written on v1, see resources_v1.)
#[allow(deprecated)]
fn warn_ignored(res: &LinuxResources) {
    if let Some(m) = res.memory() {
        if m.kernel().is_some_and(|k| k != 0) {
            log::warn!("memory.kernel is obsolete and ignored");
        }
    }
}

/// The writes for one cgroup directory, checked and ready.
struct Batch {
    dir: PathBuf,
    resource: &'static str,
    writes: Vec<Write>,
}

/// Validates everything and plans every write before the first one: a bad value or a missing
/// controller leaves the cgroup as it was.
pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    warn_ignored(res);
    let device_program = plan_device_program(cg, res)?;
    check_unified(cg, res)?;
    let unified_controllers = cg.unified_controllers()?;
    let mut plan = Vec::new();
    let by_program = |c: &Controller| *c == Controller::Devices && device_program.is_some();
    for c in Controller::APPLY_ORDER
        .into_iter()
        .filter(|c| requests(res, *c) && !by_program(c))
    {
        plan.push(plan_controller(cg, res, c, &unified_controllers)?);
    }
    if let Some(map) = res.unified().as_ref().filter(|m| !m.is_empty()) {
        let Some(u) = cg.unified_hierarchy() else {
            return Err(CgroupError::Unsupported {
                resource: "unified",
                version: "v1",
                reason: "linux.resources.unified needs a cgroup v2 hierarchy",
            });
        };
        let mut writes = Vec::new();
        for (controller, write) in resources_v2::unified(map)? {
            if controller != "cgroup" && !unified_controllers.contains(&controller) {
                return Err(CgroupError::UnifiedControllerMissing {
                    key: write.file,
                    controller,
                });
            }
            writes.push(write);
        }
        plan.push(Batch {
            dir: u.dir(),
            resource: "unified",
            writes,
        });
    }
    plan.iter().try_for_each(check_files)?;
    plan.iter().try_for_each(|b| write_all(&b.dir, b.resource, &b.writes))?;
    match device_program {
        Some((dir, filter)) => attach_device_program(&dir, &filter),
        None => Ok(()),
    }
}

/// `linux.resources.unified`, checked before anything is made: a key whose controller is
/// mounted as a v1 hierarchy here (memory.high on a hybrid host) can never be written, so the
/// config is refused up front, naming the key.
pub fn check_unified(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    let Some(map) = res.unified().as_ref().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for (controller, write) in resources_v2::unified(map)? {
        let v1_name = if controller == "io" {
            "blkio"
        } else {
            controller.as_str()
        };
        if controller != "cgroup" && cg.v1_hierarchy(v1_name).is_some() {
            return Err(CgroupError::UnifiedKeyForV1Controller {
                key: write.file,
                controller,
            });
        }
    }
    Ok(())
}

/// Without the privilege to load BPF (CAP_BPF/CAP_SYS_ADMIN, e.g. in a user namespace) a
/// filter that allows every device changes nothing and is skipped, as runc and crun do.
fn attach_device_program(dir: &Path, filter: &DeviceFilter) -> Result<(), CgroupError> {
    match devices_bpf::attach_device_filter(dir, &filter.program()) {
        Err(e) if e.errno() == Some(nix::errno::Errno::EPERM) && filter.allows_everything() => {
            log::warn!("device rules allow every device; not enforcing them: {e}");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Without a v1 devices hierarchy (a v2 host, or a hybrid one that left devices unmounted),
/// device rules are a BPF program on the unified cgroup; it is built (and the rules checked)
/// before anything is written. `None` where v1 takes them or none are given.
fn plan_device_program(cg: &Cgroup, res: &LinuxResources) -> Result<Option<(PathBuf, DeviceFilter)>, CgroupError> {
    if cg.v1_hierarchy(Controller::Devices.v1_name()).is_some() || !requests(res, Controller::Devices) {
        return Ok(None);
    }
    let Some(u) = cg.unified_hierarchy() else {
        return Ok(None);
    };
    Ok(Some((
        u.dir(),
        DeviceFilter::from_spec(res.devices().as_deref().unwrap_or_default())?,
    )))
}

/// Every file a batch needs exists (or its fallback does), so that an unsupported setting fails
/// before anything is written rather than halfway.
fn check_files(b: &Batch) -> Result<(), CgroupError> {
    if !b.dir.is_dir() {
        return Ok(()); // the writes will fail with the real error
    }
    for w in b.writes.iter().filter(|w| !w.optional) {
        let present = b.dir.join(&w.file).exists() || w.fallback.as_ref().is_some_and(|(f, _)| b.dir.join(f).exists());
        if !present {
            return Err(CgroupError::MissingFile {
                resource: b.resource,
                path: b.dir.join(&w.file),
                hint: missing_file_hint(&w.file),
            });
        }
    }
    Ok(())
}

/// Where and what to write for one controller: its v1 hierarchy if it has one, else the
/// unified hierarchy if the controller is enabled there, else an error.
fn plan_controller(
    cg: &Cgroup,
    res: &LinuxResources,
    c: Controller,
    unified_controllers: &[String],
) -> Result<Batch, CgroupError> {
    let resource = spec_field(c);
    if let Some(h) = cg.v1_hierarchy(c.v1_name()) {
        let dir = h.dir();
        let writes = resources_v1::writes(c, res, &v1_context(&dir, c)?)?;
        return Ok(Batch { dir, resource, writes });
    }
    // A controller v2 does not have (devices, net_cls) goes to the v2 dialect on a v2 host,
    // which says why it cannot be done there (devices never get here without a v1
    // mount: they are a BPF program, see plan_device_program).
    // On a hybrid host the v1 mount is simply missing: say so rather than "not on v2".
    let in_unified = match c.v2_name() {
        Some(n) => unified_controllers.iter().any(|u| u == n),
        None => cg.layout() == super::Layout::V2,
    };
    match cg.unified_hierarchy() {
        Some(u) if in_unified => {
            let writes = resources_v2::writes(c, res)?;
            if c == Controller::Memory {
                check_memory_before_update(&u.dir(), res)?;
            }
            Ok(Batch {
                dir: u.dir(),
                resource,
                writes,
            })
        }
        _ => Err(CgroupError::MissingController {
            resource,
            controller: c.v1_name(),
        }),
    }
}

/// `memory.checkBeforeUpdate` (v2, as runc): refuse a memory.max below the current usage rather
/// than let the kernel OOM-kill its way down to it. v1 needs no check: the kernel itself
/// answers EBUSY when reclaim cannot get under the new limit.
fn check_memory_before_update(dir: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    let Some(m) = res.memory() else { return Ok(()) };
    let limit = m.limit().unwrap_or(0);
    if m.check_before_update() != Some(true) || limit <= 0 {
        return Ok(());
    }
    let usage = fs::read_u64(&dir.join("memory.current"), "memory usage")?;
    if usage > limit as u64 {
        return Err(CgroupError::InvalidValue {
            resource: "memory.limit",
            reason: format!("{limit} is below the current usage of {usage} bytes (checkBeforeUpdate)"),
        });
    }
    Ok(())
}

/// What the v1 memory writes need to know about the live cgroup.
fn v1_context(dir: &Path, c: Controller) -> Result<V1Context, CgroupError> {
    if c != Controller::Memory {
        return Ok(V1Context::default());
    }
    Ok(V1Context {
        memory_limit_now: fs::read_u64_optional(&dir.join("memory.limit_in_bytes"), "memory limit")?,
        memsw_available: dir.join("memory.memsw.limit_in_bytes").exists(),
    })
}

/// Writes in order; a write marked `retry_later` that fails with EINVAL is tried again at the end.
pub fn write_all(dir: &Path, resource: &'static str, writes: &[Write]) -> Result<(), CgroupError> {
    let mut deferred = Vec::new();
    for w in writes {
        match write_one(dir, resource, w) {
            Err(e) if w.retry_later && e.raw_os_error() == Some(libc::EINVAL) => deferred.push(w),
            other => other?,
        }
    }
    for w in deferred {
        write_one(dir, resource, w)?;
    }
    Ok(())
}

fn write_one(dir: &Path, resource: &'static str, w: &Write) -> Result<(), CgroupError> {
    let path = dir.join(&w.file);
    let err = match fs::write(&path, &w.value) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && dir.is_dir() => e,
        other => return other,
    };
    if let Some((file, value)) = &w.fallback {
        let alt = dir.join(file);
        if alt.exists() {
            return fs::write(&alt, value);
        }
    }
    if w.optional {
        log::debug!("skipping {}: {err}", path.display());
        return Ok(());
    }
    Err(CgroupError::MissingFile {
        resource,
        path: PathBuf::from(&path),
        hint: missing_file_hint(&w.file),
    })
}
