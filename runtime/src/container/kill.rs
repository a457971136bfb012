//! `husk kill ID [SIGNAL] [--all]`. Signal 0 only checks that the process exists, as kill(2).

use super::Global;
use crate::error::{Error, Result};
use crate::state::StateDir;
use crate::sys::SysError;
use husk_protocol::Status;

pub fn kill(global: &Global, id: &str, signal: &str, all: bool) -> Result<()> {
    let signo = crate::signals::parse(signal)?;
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
    if status == Status::Stopped {
        if all {
            // As runc: the init is gone, but what it left in the cgroup (a shared pid namespace,
            // daemons that escaped the init's reaping) still gets the signal.
            if !saved.cgroup.exists() {
                return Ok(());
            }
            return signal_all(&saved.cgroup, signo);
        }
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "kill",
            status,
        });
    }
    if all {
        return signal_all(&saved.cgroup, signo);
    }
    send(saved.pid, signo)?;
    if status == Status::Paused && signo == libc::SIGKILL {
        // A SIGKILL to a task in a frozen v1 cgroup waits for the thaw: thaw it, or the
        // container stays paused for good. runc 1.1 does the same and ignores a failed thaw
        // (libcontainer/container_linux.go, Signal).
        let _ = saved.cgroup.thaw();
    }
    Ok(())
}

/// Signal every process in the container's cgroup. SIGKILL on a v2 host is one write to
/// cgroup.kill (runc 1.1 walks the pids; the outcome is the same: every process dies).
/// Elsewhere, for SIGKILL the cgroup is frozen first so that nothing forks between listing and
/// killing (as runc does), then thawed.
pub fn signal_all(cgroup: &crate::cgroups::Cgroup, signo: i32) -> Result<()> {
    if signo == libc::SIGKILL && cgroup.kill_all() {
        return Ok(());
    }
    // An empty cgroup (the usual case at delete, once the init has exited) has nobody left to
    // fork: skip the freeze/thaw, which flips the kernel's freezer static key on every CPU.
    if cgroup.pids().is_ok_and(|pids| pids.is_empty()) {
        return Ok(());
    }
    let freeze = signo == libc::SIGKILL && cgroup.freeze().is_ok();
    let result = cgroup.pids().map_err(Error::from).and_then(|pids| {
        for pid in pids {
            match send(pid, signo) {
                Err(Error::Sys(e)) if e.errno == nix::errno::Errno::ESRCH => {}
                other => other?,
            }
        }
        Ok(())
    });
    if freeze {
        cgroup.thaw()?;
    }
    result
}

pub fn send(pid: i32, signo: i32) -> Result<()> {
    // SAFETY: kill(2) with a pid and a validated signal number.
    if unsafe { libc::kill(pid, signo) } != 0 {
        return Err(SysError::new(
            format!("send signal {signo} to"),
            format!("pid {pid}"),
            nix::errno::Errno::last(),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::{Cgroup, Layout};

    /// On a v2 host `kill --all KILL` (and delete -f) is one write to cgroup.kill: the kernel
    /// kills what the pid walk would list, including a process forked meanwhile.
    #[test]
    fn sigkill_to_all_uses_cgroup_kill_on_v2() {
        let root = std::env::temp_dir().join(format!("husk-kill-all-{}", std::process::id()));
        std::fs::create_dir_all(root.join("ctr")).unwrap();
        for (file, content) in [("cgroup.controllers", ""), ("cgroup.subtree_control", "")] {
            std::fs::write(root.join(file), content).unwrap();
        }
        for file in ["cgroup.procs", "cgroup.kill"] {
            std::fs::write(root.join("ctr").join(file), "").unwrap();
        }
        let cgroup = Cgroup::with_root(&root, Layout::V2, Some("/ctr"), "c1").unwrap();
        let result = signal_all(&cgroup, libc::SIGKILL);
        let written = std::fs::read_to_string(root.join("ctr/cgroup.kill")).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        result.unwrap();
        assert_eq!(written, "1");
    }
}
