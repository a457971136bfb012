//! Stage 1 of `husk create` when the config joins a user or pid namespace by path, as runc's
//! nsexec does it: join every listed namespace (user first, mount last; pid and time for our
//! children), then clone the init with CLONE_PARENT into the new ones.
//! - The new namespaces then belong to the joined user namespace. Made before the join (by the
//!   parent's clone3) they would belong to the host's, and the init, root only in the joined
//!   one, could not use them: `sethostname: EPERM`, mounts refused.
//! - Stage 1 lives in the host's pid namespace, so nothing of husk appears in a joined pid
//!   namespace before it has joined the others (a process there with CAP_SYS_PTRACE could
//!   otherwise reach the host through /proc/<init>/root while the init is still outside).

use super::{join_every_namespace, InitError, InitPlan};
use crate::clone::{clone_into, Forked};
use crate::namespaces;
use crate::sync::{Channel, FromChild};
use nix::sched::CloneFlags;
use std::os::fd::AsFd;

/// Never returns: the init goes on in [`super::run`]; stage 1 reports and exits.
pub fn run(mut plan: InitPlan, mut chan: Channel) -> ! {
    // SAFETY: our copy of the parent's state-dir lock; -1 tells the init it is gone.
    unsafe { libc::close(plan.lock_fd) };
    plan.lock_fd = -1;
    match join_then_clone(&plan) {
        Ok(Forked::Child) => super::run(plan, chan),
        Ok(Forked::Parent { pid, pidfd }) => {
            let sent = chan.send_with_fd(&FromChild::Spawned { pid }, pidfd.as_fd());
            // SAFETY: _exit skips destructors that belong to the parent's state.
            unsafe { libc::_exit(if sent.is_ok() { 0 } else { 1 }) }
        }
        Err(err) => {
            // The parent prints it.
            let _ = chan.send(&FromChild::Failed { msg: err.to_string() });
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

fn join_then_clone(plan: &InitPlan) -> Result<Forked, InitError> {
    let ns_list = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    join_every_namespace(&ns_list)?;
    Ok(clone_into(
        namespaces::clone_flags(&ns_list) | CloneFlags::CLONE_PARENT,
    )?)
}
