//! How `husk create` forks the container's init: one clone3 into the new namespaces, or two
//! stages when the config joins a user or pid namespace by path (see
//! [`namespaces::joins_before_clone`] and init/stage1.rs).

use crate::clone::{clone_into, clone_into_cgroup, Forked};
use crate::error::{Error, Result};
use crate::init::{self, InitPlan};
use crate::namespaces;
use crate::sync::{self, FromChild};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::os::fd::{AsFd, OwnedFd};

/// The init's pid and pidfd, and whether it was born in `cgroup` (a cgroup v2 directory fd for
/// CLONE_INTO_CGROUP; then it needs no attach). The child never returns from here.
pub fn spawn_init(
    linux: &Linux,
    plan: InitPlan,
    parent_chan: &mut sync::Channel,
    child_chan: sync::Channel,
    cgroup: Option<OwnedFd>,
) -> Result<(i32, OwnedFd, bool)> {
    let ns_list = linux.namespaces().clone().unwrap_or_default();
    if namespaces::joins_before_clone(&ns_list) {
        // Stage 1 clones the init; the parent attaches it as usual.
        let (pid, pidfd) = in_two_stages(linux, plan, parent_chan, child_chan)?;
        Ok((pid, pidfd, false))
    } else {
        directly(linux, plan, parent_chan, child_chan, cgroup)
    }
}

/// clone3 into the new namespaces (and the cgroup, when given and the kernel takes it),
/// entering joined pid/time namespaces and a new time namespace around the call; the init
/// joins the other listed namespaces itself.
fn directly(
    linux: &Linux,
    plan: InitPlan,
    parent_chan: &sync::Channel,
    child_chan: sync::Channel,
    cgroup: Option<OwnedFd>,
) -> Result<(i32, OwnedFd, bool)> {
    let ns_list = linux.namespaces().clone().unwrap_or_default();
    let mut for_children = namespaces::ForChildren::enter(&ns_list)?;
    if namespaces::creates(&ns_list, LinuxNamespaceType::Time) {
        for_children.new_time(linux.time_offsets().as_ref())?;
    }
    let flags = namespaces::clone_flags(&ns_list);
    let cloned = match &cgroup {
        Some(fd) => clone_into_cgroup(flags, fd.as_fd()),
        None => clone_into(flags).map(|forked| (forked, false)),
    };
    match cloned {
        Ok((Forked::Child, _)) => {
            drop(cgroup);
            // Only the parent goes back: the child is already inside (and could not leave).
            drop(for_children);
            // SAFETY: the child's copy of the parent's end; that Channel is never used or
            // dropped here, since init::run does not return.
            unsafe { libc::close(parent_chan.raw_fd()) };
            init::run(plan, child_chan)
        }
        Ok((Forked::Parent { pid, pidfd }, born_in_cgroup)) => {
            for_children.leave()?;
            Ok((pid, pidfd, born_in_cgroup))
        }
        Err(e) => {
            for_children.leave()?;
            Err(e.into())
        }
    }
}

/// Stage 1 is born in the host's namespaces (a new time namespace excepted: its offsets are
/// written here, before anyone enters it), joins every listed namespace and clones the init
/// with CLONE_PARENT, so the init is our child; stage 1 sends its pid and pidfd and exits.
fn in_two_stages(
    linux: &Linux,
    plan: InitPlan,
    parent_chan: &mut sync::Channel,
    child_chan: sync::Channel,
) -> Result<(i32, OwnedFd)> {
    let ns_list = linux.namespaces().clone().unwrap_or_default();
    let mut for_children = namespaces::ForChildren::none();
    if namespaces::creates(&ns_list, LinuxNamespaceType::Time) {
        for_children.new_time(linux.time_offsets().as_ref())?;
    }
    let stage1 = match clone_into(CloneFlags::empty()) {
        Ok(Forked::Child) => {
            drop(for_children);
            // SAFETY: as in `directly`.
            unsafe { libc::close(parent_chan.raw_fd()) };
            init::stage1::run(plan, child_chan)
        }
        Ok(Forked::Parent { pid, .. }) => {
            for_children.leave()?;
            pid
        }
        Err(e) => {
            for_children.leave()?;
            return Err(e.into());
        }
    };
    // Our copies of the child's end and of the plan's fds: a dead stage 1 must read as EOF.
    drop(child_chan);
    drop(plan);
    let spawned = match parent_chan.recv_with_fd::<FromChild>() {
        Ok(Some((FromChild::Spawned { pid }, Some(pidfd)))) => Ok((pid, pidfd)),
        Ok(Some((FromChild::Failed { msg }, _))) => Err(Error::Init(msg)),
        Ok(Some((other, _))) => Err(Error::Init(format!("unexpected message {other:?}"))),
        Ok(None) => Err(Error::Init("stage 1 exited before it spawned the init".into())),
        Err(e) => Err(e.into()),
    };
    let stage1 = nix::unistd::Pid::from_raw(stage1);
    if spawned.is_err() {
        let _ = nix::sys::signal::kill(stage1, nix::sys::signal::Signal::SIGKILL);
    }
    // Stage 1 exits right after Spawned; reap it so no zombie outlives create.
    let _ = nix::sys::wait::waitpid(stage1, None);
    spawned
}
