//! cgroup v2 specifics: delegating controllers down the tree, cgroup.freeze, memory.events,
//! cgroup.kill, and the cgroup fd for clone3's CLONE_INTO_CGROUP.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::CgroupError;
use super::{fs, Cgroup, Layout};

/// Set to `0` to make `create` attach the init with a cgroup.procs write instead of clone3's
/// CLONE_INTO_CGROUP (to measure the difference, or to step around a kernel that misbehaves).
pub const CLONE_INTO_CGROUP_ENV: &str = "HUSK_CLONE_INTO_CGROUP";

impl Cgroup {
    /// The container's cgroup as an fd for clone3's CLONE_INTO_CGROUP (kernel 5.7+), so that
    /// the init is born in its cgroup and `create` skips the cgroup.procs write. Not under
    /// systemd, which makes the cgroup only after the clone; see `clone_target_in`.
    pub fn clone_target(&self) -> Option<OwnedFd> {
        if self.systemd.is_some() {
            return None;
        }
        self.clone_target_in(&self.unified_hierarchy()?.dir())
    }

    /// `dir` (the container's cgroup or one below it) opened for CLONE_INTO_CGROUP. Only on a
    /// pure v2 host: on v1 and hybrid hosts the unified hierarchy is not the only one to join.
    /// `None` when it does not apply, is turned off, or the directory cannot be opened: the
    /// caller then attaches the child with cgroup.procs writes.
    pub fn clone_target_in(&self, dir: &Path) -> Option<OwnedFd> {
        if self.layout != Layout::V2 || std::env::var_os(CLONE_INTO_CGROUP_ENV).is_some_and(|v| v == "0") {
            return None;
        }
        File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| log::debug!("not cloning into {}: {e}", dir.display()))
            .ok()
            .map(OwnedFd::from)
    }

    /// SIGKILLs every process in the container's cgroup and its descendants with one write to
    /// cgroup.kill (v2, kernel 5.14+): the kernel also stops new children from escaping it, so
    /// no freeze is needed. False where there is no usable cgroup.kill (v1, hybrid, an older
    /// kernel, a threaded cgroup): the caller walks the pids instead.
    pub fn kill_all(&self) -> bool {
        let Some(h) = self.unified_hierarchy().filter(|_| self.layout == Layout::V2) else {
            return false;
        };
        match fs::write(&h.dir().join("cgroup.kill"), "1") {
            Ok(()) => true,
            Err(CgroupError::Write { source, .. }) if source.kind() == ErrorKind::NotFound => false,
            Err(e) => {
                log::debug!("cgroup.kill not usable, walking the pids: {e}");
                false
            }
        }
    }
}

/// How long `set_frozen` waits for cgroup.events to confirm.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Enables in `parent`'s cgroup.subtree_control every controller it has and has not enabled, one
/// at a time: a controller the kernel refuses (EBUSY: the parent has processes of its own, the
/// "no internal processes" rule; EINVAL: cpu with realtime tasks) must not keep the others out.
/// `apply` later fails clearly if a controller it needs did not make it.
pub fn enable_controllers(parent: &Path) -> Result<(), CgroupError> {
    let available = fs::read_optional(&parent.join("cgroup.controllers"), "cgroup.controllers")?.unwrap_or_default();
    let enabled =
        fs::read_optional(&parent.join("cgroup.subtree_control"), "cgroup.subtree_control")?.unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    for controller in available.split_whitespace().filter(|c| !enabled.contains(c)) {
        if let Err(e) = fs::write(&parent.join("cgroup.subtree_control"), &format!("+{controller}")) {
            log::debug!("not delegating {controller}: {e}");
        }
    }
    Ok(())
}

/// Reads a flat-keyed value from an open cgroup.events-like file, from the start.
fn read_key(file: &mut File, path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|source| CgroupError::Read {
            what: "cgroup events",
            path: path.to_path_buf(),
            source,
        })?;
    Ok(fs::flat_keyed_value(&text, key))
}

/// Writes cgroup.freeze and waits until cgroup.events says `frozen` matches. The kernel wakes
/// pollers of cgroup.events (POLLPRI) when it changes, so this sleeps in poll(2), not in a loop.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    fs::write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let events = dir.join("cgroup.events");
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&events)
        .map_err(|source| CgroupError::Read {
            what: "cgroup.events",
            path: events.clone(),
            source,
        })?;
    let want = u64::from(frozen);
    let start = Instant::now();
    loop {
        // Absent "frozen" key: a fake tree or a kernel before 5.2, nothing to wait for.
        match read_key(&mut file, &events, "frozen")? {
            None => return Ok(()),
            Some(v) if v == want => return Ok(()),
            Some(_) => {}
        }
        let left = FREEZE_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() {
            let state = if frozen { "freezing" } else { "thawing" };
            return Err(CgroupError::FreezeTimeout {
                path: events,
                state: state.into(),
                millis: start.elapsed().as_millis(),
            });
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // Bounded slices: a missed wakeup costs at most 100 ms.
        let slice = left.min(Duration::from_millis(100)).as_millis() as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, slice) };
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let text = fs::read(&dir.join("cgroup.events"), "cgroup.events")?;
    Ok(fs::flat_keyed_value(&text, "frozen") == Some(1))
}

/// The `oom_kill` counter of a v2 memory.events file: the number of processes the OOM killer
/// killed in the cgroup and its descendants (memory.events is hierarchical).
pub fn read_oom_kill_count(memory_events: &Path) -> Result<u64, CgroupError> {
    let text = fs::read(memory_events, "memory.events")?;
    Ok(fs::flat_keyed_value(&text, "oom_kill").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::super::tests::FakeTree;
    use super::*;

    fn tree(layout: Layout, leaf: &str, kill_file: bool) -> (FakeTree, Cgroup) {
        let t = FakeTree::new();
        let unified = if layout == Layout::V2 {
            ""
        } else {
            t.dir("freezer", &[]);
            "unified"
        };
        t.dir(unified, &[("cgroup.controllers", ""), ("cgroup.subtree_control", "")]);
        let cg = Cgroup::with_root(&t.0, layout, Some("/ctr"), "c1").unwrap();
        cg.create().unwrap();
        let files: &[(&str, &str)] = if kill_file { &[("cgroup.kill", "")] } else { &[] };
        t.dir(leaf, files);
        (t, cg)
    }

    #[test]
    fn kill_all_writes_cgroup_kill_only_on_a_pure_v2_host_that_has_it() {
        let (t, cg) = tree(Layout::V2, "ctr", true);
        assert!(cg.kill_all());
        assert_eq!(t.read("ctr/cgroup.kill"), "1");
        // A kernel before 5.14: no cgroup.kill, the caller walks the pids.
        let (_t, cg) = tree(Layout::V2, "ctr", false);
        assert!(!cg.kill_all());
        // Hybrid: the unified cgroup is not the one every process is listed and frozen in.
        let (t, cg) = tree(Layout::Hybrid, "unified/ctr", true);
        assert!(!cg.kill_all());
        assert_eq!(t.read("unified/ctr/cgroup.kill"), "");
    }

    #[test]
    fn clone_target_only_on_a_pure_v2_host() {
        let (_t, cg) = tree(Layout::V2, "ctr", true);
        assert!(cg.clone_target().is_some());
        let (_t, cg) = tree(Layout::Hybrid, "unified/ctr", true);
        assert!(cg.clone_target().is_none());
    }
}
