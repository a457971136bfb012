//! The child of `husk exec`: joins every namespace of a running container, then becomes the
//! requested process with the same credential steps as the init (no exec.fifo: it runs at once).
//! Same handshake as create: Proceed after the parent put it in the cgroup, then Ready.

use super::{expect, prepare_credentials, InitError};
use crate::sync::{Channel, FromChild, ToChild};
use crate::sys::Context;
use oci_spec::runtime::{LinuxNamespace, Process};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub struct ExecPlan {
    pub id: String,
    pub process: Process,
    /// The container's namespaces as paths under /proc/<init>/ns.
    pub namespaces: Vec<LinuxNamespace>,
    pub seccomp: Option<crate::seccomp::Program>,
    pub console_socket: Option<OwnedFd>,
    pub lock_fd: RawFd,
    pub preserve_fds: i32,
    pub in_userns: bool,
    pub exec_labels: crate::lsm::ExecLabels,
    /// linux.personality of the container: an exec'd process gets it too (as in runc).
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
}

pub fn run(plan: ExecPlan, mut chan: Channel) -> ! {
    let err = match setup(&plan, &mut chan) {
        Ok(program) => finish(&plan, chan, program),
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

fn setup(plan: &ExecPlan, chan: &mut Channel) -> Result<std::path::PathBuf, InitError> {
    // SAFETY: closing our copy of the parent's lock fd, as the init does.
    unsafe { libc::close(plan.lock_fd) };
    nix::sys::prctl::set_dumpable(false).ctx("set", "PR_SET_DUMPABLE")?;
    expect(chan, ToChild::Proceed)?;
    super::join_namespaces(&plan.namespaces)?;
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
    )
}

fn finish(plan: &ExecPlan, mut chan: Channel, program: std::path::PathBuf) -> InitError {
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
    let env = plan.process.env().clone().unwrap_or_default();
    super::exec::execve(&program, &args, &env).into()
}
