//! clone3(2) without a new stack: fork semantics plus new namespaces and a pidfd in one call.
//! husk is single-threaded when it clones, so the child may run ordinary Rust code.

use crate::sys::SysError;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::os::fd::{FromRawFd, OwnedFd};

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
    nix::sys::prctl::set_dumpable(false).map_err(|errno| SysError::new("set", "PR_SET_DUMPABLE", errno))?;
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: namespaces.bits() as u64 | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the kernel wants 0 and reuses the caller's own exit signal.
        exit_signal: if namespaces.contains(CloneFlags::CLONE_PARENT) {
            0
        } else {
            libc::SIGCHLD as u64
        },
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
            format!("with flags {namespaces:?}"),
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
