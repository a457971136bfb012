//! cgroup v1 specifics: cpuset inheritance at create, the freezer, the OOM eventfd.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::error::CgroupError;
use super::fs;

/// A new v1 cpuset starts with empty cpus and mems and refuses tasks (ENOSPC) until both are set:
/// copy the parent's, which `create` has already filled level by level from the top.
pub fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        // Absent only on a fake tree that did not model cpuset files.
        let Some(own) = fs::read_optional(&dir.join(file), "cpuset")? else {
            continue;
        };
        if !own.trim().is_empty() {
            continue;
        }
        let inherited = fs::read(&parent.join(file), "parent cpuset")?;
        if !inherited.trim().is_empty() {
            fs::write(&dir.join(file), inherited.trim())?;
        }
    }
    Ok(())
}

fn state(dir: &Path) -> Result<String, CgroupError> {
    Ok(fs::read(&dir.join("freezer.state"), "freezer state")?
        .trim()
        .to_string())
}

/// Writes FROZEN until the kernel reports FROZEN. Freezing can stall in FREEZING while tasks keep
/// forking; as runc does, thaw for a moment now and then so the newcomers settle, then try again.
pub fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("freezer.state");
    let start = Instant::now();
    for attempt in 0..1000u32 {
        if attempt % 50 == 49 {
            fs::write(&file, "THAWED")?;
            sleep(Duration::from_millis(10));
        }
        fs::write(&file, "FROZEN")?;
        if state(dir)? == "FROZEN" {
            return Ok(());
        }
        sleep(Duration::from_micros(if attempt < 10 { 100 } else { 1000 }));
    }
    let stuck = state(dir)?;
    // Leave the container running rather than half frozen.
    fs::write(&file, "THAWED")?;
    Err(CgroupError::FreezeTimeout {
        path: file,
        state: stuck,
        millis: start.elapsed().as_millis(),
    })
}

pub fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(&dir.join("freezer.state"), "THAWED")
}

/// FREEZING (part of the tasks still running) is not frozen.
pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(state(dir)? == "FROZEN")
}

/// What to watch for OOM kills.
#[derive(Debug)]
pub enum OomEventSource {
    /// cgroup v1: an eventfd registered through cgroup.event_control on memory.oom_control. An
    /// 8-byte read(2) blocks until OOMs happen and returns how many since the last read. The
    /// kernel also signals it when the cgroup is removed: after a wakeup, check that the cgroup
    /// directory still exists before reporting an OOM.
    EventFd(OwnedFd),
    /// cgroup v2: the memory.events file of the container. The kernel sends IN_MODIFY (inotify)
    /// when a counter changes; re-read it with `read_oom_kill_count` and report when `oom_kill`
    /// grew since the last read.
    MemoryEvents(PathBuf),
}

/// Registers a fresh eventfd for OOM notifications of the memory cgroup `dir`.
pub fn register_oom_eventfd(dir: &Path) -> Result<OomEventSource, CgroupError> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd owned by nobody else.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(CgroupError::Sys {
            action: "create an oom eventfd for",
            path: dir.to_path_buf(),
            source: nix::Error::last(),
        });
    }
    // SAFETY: `raw` was just returned by eventfd and is not owned elsewhere.
    let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let control = dir.join("memory.oom_control");
    let oom_control = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&control)
        .map_err(|source| CgroupError::Read {
            what: "memory.oom_control",
            path: control,
            source,
        })?;
    // The kernel takes its own references at registration: oom_control may be closed after.
    let line = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
    fs::write(&dir.join("cgroup.event_control"), &line)?;
    Ok(OomEventSource::EventFd(eventfd))
}
