//! On-disk container state: `<root>/<id>/state.json`, written atomically, read by every later
//! command. The status is derived from the live process and the freezer, never trusted from disk.

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::sys::{Context, SysError};
use husk_protocol::{ContainerState, Status};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The cgroup a create is making, written before the cgroup exists, so that `delete -f` can
/// remove it when that create was killed before state.json (SIGKILL cannot be caught).
pub const CREATING_CGROUP_FILE: &str = "cgroup.json";
pub const OCI_VERSION: &str = "1.2.0";

/// What husk remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The init's start time (field 22 of /proc/PID/stat): a recycled pid has another.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Cgroup,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Set once the init is known to be gone, so `state` does not depend on a recycled pid.
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub owner: String,
}

/// A container's state directory, locked for the lifetime of this value: commands on one id
/// are serialized, commands on different ids run in parallel.
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
    lock: Flock<File>,
}

/// runc's rules for ids: non-empty, no path separators or dot-dot, at most 1024 bytes.
pub fn validate_id(id: &str) -> Result<()> {
    let why = if id.is_empty() {
        "must not be empty"
    } else if id.len() > 1024 {
        "must be at most 1024 bytes"
    } else if id == "." || id == ".." || id.contains('/') || id.contains("..") {
        "must not contain '/' or '..'"
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c)) {
        "may contain only letters, digits, '_', '+', '-' and '.'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId {
        id: id.to_string(),
        why,
    })
}

impl StateDir {
    /// Make the directory for a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        std::fs::create_dir_all(root).ctx("create state root", root.display())?;
        let path = root.join(id);
        match nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o711)) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => return Err(Error::AlreadyExists(id.to_string())),
            Err(errno) => return Err(SysError::new("create state dir", path.display(), errno).into()),
        }
        let lock = lock_dir(&path)?;
        Ok(StateDir {
            id: id.to_string(),
            path,
            lock,
        })
    }

    /// Open and lock an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match lock_dir(&path) {
            Ok(lock) => lock,
            Err(Error::Sys(e)) if e.errno == nix::errno::Errno::ENOENT => return Err(Error::NotFound(id.to_string())),
            Err(e) => return Err(e),
        };
        // A failed create removes the directory while we waited for its lock.
        if !path.join(STATE_FILE).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(StateDir {
            id: id.to_string(),
            path,
            lock,
        })
    }

    /// Remove the directory a killed create left without state.json (runc's `delete` does the
    /// same), after `release` has freed what the create had made (its cgroup). A create still
    /// holding the lock, or one that has since written state.json, is left alone. Returns
    /// whether something was removed.
    pub fn remove_abandoned(root: &Path, id: &str, release: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
        validate_id(id)?;
        let path = root.join(id);
        let fd: OwnedFd = match nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(errno) => return Err(SysError::new("open state dir", path.display(), errno).into()),
        };
        let Ok(_lock) = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) else {
            return Ok(false); // a create is still running
        };
        if path.join(STATE_FILE).exists() {
            return Ok(false);
        }
        release(&path)?;
        std::fs::remove_dir_all(&path).ctx("remove", path.display())?;
        Ok(true)
    }

    pub fn load(&self) -> Result<SavedState> {
        let file = self.path.join(STATE_FILE);
        let text = std::fs::read_to_string(&file).ctx("read", file.display())?;
        serde_json::from_str(&text).map_err(|e| Error::CorruptState {
            path: file.display().to_string(),
            why: e.to_string(),
        })
    }

    /// Write state.json through a temp file and rename, so a reader never sees half a file.
    pub fn save(&self, state: &SavedState) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let text = serde_json::to_vec(state).map_err(|e| Error::CorruptState {
            path: tmp.display().to_string(),
            why: e.to_string(),
        })?;
        std::fs::write(&tmp, text).ctx("write", tmp.display())?;
        let dest = self.path.join(STATE_FILE);
        std::fs::rename(&tmp, &dest).ctx("rename state file to", dest.display())?;
        Ok(())
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Remove the directory and everything in it; the lock goes with the last fd.
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SysError::from_io("remove state dir", self.path.display(), &e).into()),
        }
    }

    /// The raw fd of the lock, which the container's init must close at once: an flock is held
    /// by every copy of its open file, and the init lives on long after create returns.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.lock.as_raw_fd()
    }
}

fn lock_dir(path: &Path) -> Result<Flock<File>> {
    let fd: OwnedFd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open state dir", path.display())?;
    Flock::lock(File::from(fd), FlockArg::LockExclusive)
        .map_err(|(_, errno)| SysError::new("lock state dir", path.display(), errno).into())
}

/// The start time of a process (clock ticks after boot), or None when it is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let state = rest.split(' ').next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.split(' ').nth(19)?.parse().ok()
}

impl SavedState {
    /// Is the init we started still alive (and not a recycled pid)?
    pub fn init_alive(&self) -> bool {
        !self.stopped && self.pid > 0 && process_start_time(self.pid) == Some(self.pid_start_time)
    }

    pub fn status(&self, state_dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        if state_dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    pub fn to_oci(&self, status: Status) -> ContainerState {
        ContainerState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            bundle: self.bundle.display().to_string(),
            rootfs: self.rootfs.display().to_string(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: self.owner.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for good in ["a", "abc-123_x.y+z", &"x".repeat(1024)] {
            validate_id(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a..b", "../x", &"x".repeat(1025), "a b"] {
            assert!(validate_id(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn start_time_of_self_is_known_and_of_nonsense_pid_is_not() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
