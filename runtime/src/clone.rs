//! clone3(2) without a new stack: fork semantics plus new namespaces and a pidfd in one call.
//! husk is single-threaded when it clones, so the child may run ordinary Rust code.

use crate::sys::SysError;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// clone3 flag: `CloneArgs::cgroup` names the cgroup to start the child in (linux/sched.h; the
/// libc crate does not define it).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// Fork into `namespaces` (or with CLONE_PARENT); the parent also gets a pidfd of the child,
/// which later polls and signals without pid-reuse races.
/// The caller becomes non-dumpable first and the child inherits it, so no child of husk is ever
/// dumpable (its /proc/PID files root-owned, no ptrace without CAP_SYS_PTRACE) from birth to execve,
/// which resets it (CVE-2019-5736).
pub fn clone_into(namespaces: CloneFlags) -> Result<Forked, SysError> {
    clone3(namespaces, None)
}

/// `clone_into`, with the child born in the cgroup v2 directory `cgroup` (CLONE_INTO_CGROUP,
/// kernel 5.7+). Returns whether it was: where the kernel refuses (older kernel, a cgroup it
/// will not place the child in), it clones the usual way and the caller attaches the child.
pub fn clone_into_cgroup(namespaces: CloneFlags, cgroup: BorrowedFd) -> Result<(Forked, bool), SysError> {
    match clone3(namespaces, Some(cgroup)) {
        Ok(forked) => Ok((forked, true)),
        Err(e) => {
            log::debug!("CLONE_INTO_CGROUP refused, cloning without: {e}");
            clone3(namespaces, None).map(|forked| (forked, false))
        }
    }
}

fn clone3(namespaces: CloneFlags, cgroup: Option<BorrowedFd>) -> Result<Forked, SysError> {
    nix::sys::prctl::set_dumpable(false).map_err(|errno| SysError::new("set", "PR_SET_DUMPABLE", errno))?;
    let mut pidfd: libc::c_int = -1;
    let into_cgroup = if cgroup.is_some() { CLONE_INTO_CGROUP } else { 0 };
    let mut args = CloneArgs {
        flags: namespaces.bits() as u64 | libc::CLONE_PIDFD as u64 | into_cgroup,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the kernel wants 0 and reuses the caller's own exit signal.
        exit_signal: if namespaces.contains(CloneFlags::CLONE_PARENT) {
            0
        } else {
            libc::SIGCHLD as u64
        },
        cgroup: cgroup.map_or(0, |fd| fd.as_raw_fd() as u64),
        ..Default::default()
    };
    // SAFETY: clone3 with no stack behaves like fork; args is a valid CloneArgs of that size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(SysError::new(
            "clone3",
            format!(
                "with flags {namespaces:?}{}",
                if cgroup.is_some() { " into a cgroup" } else { "" }
            ),
            Errno::last(),
        )),
        0 => Ok(Forked::Child),
        // SAFETY: CLONE_PIDFD stored a new fd that we now own.
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}
