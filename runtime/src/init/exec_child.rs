//! The children of `husk exec`, in two stages, so that nothing of husk is ever visible in the
//! container before it is fully inside (a container with CAP_SYS_PTRACE could otherwise ptrace
//! it, or open its /proc/PID/root and /proc/PID/exe while it still sees the host):
//! - stage 1 is born in the host's pid namespace, where the container cannot see it. After
//!   Proceed (the parent put it in the cgroup) it closes every fd the process must not have,
//!   joins every namespace (user first, mount last; pid and time for its children), forks
//!   stage 2 with CLONE_PARENT, hands the parent its pid and pidfd (`Spawned`), and exits.
//! - stage 2 is born inside every namespace, non-dumpable, a child of `husk exec`; after
//!   `SpawnedSeen` it takes the process's creds, sends Ready and execs.

use super::{expect, prepare_credentials, InitError, Launch};
use crate::clone::{clone_into, Forked};
use crate::sync::{Channel, FromChild, ToChild};
use crate::sys::{Context, SysError};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, Process};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

pub struct ExecPlan {
    pub id: String,
    pub process: Process,
    /// The container's namespaces as paths under /proc/<init>/ns.
    pub namespaces: Vec<LinuxNamespace>,
    pub seccomp: Option<crate::seccomp::Program>,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub in_userns: bool,
    pub exec_labels: crate::lsm::ExecLabels,
    /// linux.personality of the container: an exec'd process gets it too (as in runc).
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
}

pub fn run(plan: ExecPlan, mut chan: Channel) -> ! {
    let err = match spawn_inside(&plan, &mut chan).and_then(|()| setup(&plan, &mut chan)) {
        Ok(launch) => finish(&plan, chan, launch),
        Err(err) => {
            // The parent prints it; a second line from here would repeat it.
            let _ = chan.send(&FromChild::Failed { msg: err.to_string() });
            // SAFETY: as below.
            unsafe { libc::_exit(127) }
        }
    };
    eprintln!("husk: exec in container {}: {err}", plan.id);
    // SAFETY: _exit skips destructors that belong to the parent's state.
    unsafe { libc::_exit(127) }
}

/// Stage 1: returns only in stage 2, which is born inside every namespace of the container.
fn spawn_inside(plan: &ExecPlan, chan: &mut Channel) -> Result<(), InitError> {
    let mut keep: Vec<RawFd> = (3..3 + plan.preserve_fds).collect();
    keep.push(chan.raw_fd());
    keep.extend(plan.console_socket.as_ref().map(|s| s.as_raw_fd()));
    close_all_but(&keep)?;
    // Also set by clone_into before we were born; stage 2 inherits it.
    nix::sys::prctl::set_dumpable(false).ctx("set", "PR_SET_DUMPABLE")?;
    expect(chan, ToChild::Proceed)?;
    super::join_every_namespace(&plan.namespaces)?;
    match clone_into(CloneFlags::CLONE_PARENT)? {
        Forked::Child => expect(chan, ToChild::SpawnedSeen),
        Forked::Parent { pid, pidfd } => {
            let sent = chan.send_with_fd(&FromChild::Spawned { pid }, pidfd.as_fd());
            // SAFETY: stage 1 is done; _exit skips destructors that belong to the parent's state.
            unsafe { libc::_exit(if sent.is_ok() { 0 } else { 127 }) }
        }
    }
}

/// Close (not just mark close-on-exec) every fd from 3 up but `keep`: stage 2 is visible in the
/// container before it execs, and a ptracer there must find no host fd in it (the state dir's
/// lock, a log file).
fn close_all_but(keep: &[RawFd]) -> Result<(), SysError> {
    let mut keep: Vec<u32> = keep.iter().filter(|fd| **fd >= 3).map(|fd| *fd as u32).collect();
    keep.sort_unstable();
    let mut start = 3u32;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > start {
            // SAFETY: closes fds this process does not use after this point.
            if unsafe { libc::syscall(libc::SYS_close_range, start, fd - 1, 0) } != 0 {
                return Err(SysError::new(
                    "close_range",
                    format!("{start}..{}", fd - 1),
                    nix::errno::Errno::last(),
                ));
            }
        }
        start = fd.saturating_add(1);
    }
    Ok(())
}

/// Stage 2, already inside every namespace.
fn setup(plan: &ExecPlan, chan: &mut Channel) -> Result<Launch, InitError> {
    if plan.process.terminal().unwrap_or(false) {
        nix::unistd::setsid().ctx("setsid", "exec process")?;
    }
    if let Some(personality) = &plan.personality {
        super::sched::set_personality(personality)?;
    }
    // Before prepare_credentials, which may load a seccomp filter that refuses close_range.
    let keep: Vec<i32> = (3..3 + plan.preserve_fds).chain([chan.raw_fd()]).collect();
    super::exec::cloexec_from(3, &keep)?;
    let console = plan.console_socket.as_ref().map(|s| s.as_raw_fd());
    prepare_credentials(
        &plan.process,
        console,
        None,
        plan.in_userns,
        plan.seccomp.as_ref(),
        chan,
        false,
    )
}

fn finish(plan: &ExecPlan, mut chan: Channel, launch: Launch) -> InitError {
    if let Err(e) = chan.send(&FromChild::Ready) {
        return e.into();
    }
    drop(chan);
    if let Err(e) = crate::lsm::apply_exec_labels(&plan.exec_labels) {
        return e.into();
    }
    let late = super::loads_late(&plan.process, plan.seccomp.as_ref());
    if let (true, Some(seccomp)) = (late, &plan.seccomp) {
        if let Err(e) = seccomp.load() {
            return InitError::Seccomp(e.to_string());
        }
    }
    let args = plan.process.args().clone().unwrap_or_default();
    super::exec::execve(&launch.program, &args, &launch.env).into()
}
