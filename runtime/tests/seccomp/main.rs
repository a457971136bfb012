//! Root tests of husk's seccomp module against the real kernel: every test forks a child that
//! loads a profile and probes syscalls. A filter is irreversible, so it must never be loaded in
//! the test process itself. Children report through a pipe and their exit status only, and a
//! guard kills a child that hangs (e.g. blocked on an unanswered notification).

mod notify;
mod support;
mod timing;

use std::fs;

use husk::seccomp::{self, SeccompError};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use serde_json::json;

use support::*;

#[test]
fn mkdir_fails_with_eperm_while_other_syscalls_work() {
    let dir = TempDir::new("mkdir");
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let target = dir.0.join("denied");
    let file = dir.0.join("allowed-file");
    Child::spawn(|| {
        if load_in_child(&profile)?.is_some() {
            return Err("no NOTIFY rule, yet load returned a notify fd".into());
        }
        expect_errno(
            "mkdir",
            nix::unistd::mkdir(&target, nix::sys::stat::Mode::S_IRWXU),
            Errno::EPERM,
        )?;
        fs::write(&file, b"ok").map_err(|e| format!("write a file: {e}"))?;
        let back = fs::read(&file).map_err(|e| format!("read it back: {e}"))?;
        if back != b"ok" || nix::unistd::getpid().as_raw() <= 0 {
            return Err("plain syscalls misbehave under the filter".into());
        }
        Ok(())
    })
    .expect_success();
    assert!(!target.exists(), "mkdir went through the filter");
    assert!(file.exists());
}

#[test]
fn argument_filter_denies_only_the_matching_value() {
    const QUERY: u64 = 0xffff_ffff;
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                      "args": [{"index": 0, "value": QUERY, "op": "SCMP_CMP_EQ"}]}]
    }));
    Child::spawn(|| {
        let current = raw_syscall(libc::SYS_personality, QUERY).map_err(|e| format!("query before load: {e}"))?;
        load_in_child(&profile)?;
        expect_errno(
            "personality(query)",
            raw_syscall(libc::SYS_personality, QUERY),
            Errno::EXDEV,
        )?;
        // Setting the same persona again does not match the condition and goes through.
        raw_syscall(libc::SYS_personality, current as u64)
            .map(|_| ())
            .map_err(|e| format!("personality(set) should pass the filter: {e}"))
    })
    .expect_success();
}

#[test]
fn repeated_argument_index_rules_are_ored_like_runc() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                      "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"},
                               {"index": 0, "value": 0x0040_0000u64, "op": "SCMP_CMP_EQ"}]}]
    }));
    Child::spawn(|| {
        load_in_child(&profile)?;
        expect_errno(
            "personality(query)",
            raw_syscall(libc::SYS_personality, 0xffff_ffff),
            Errno::EXDEV,
        )?;
        expect_errno(
            "personality(ADDR_NO_RANDOMIZE)",
            raw_syscall(libc::SYS_personality, 0x0040_0000),
            Errno::EXDEV,
        )?;
        raw_syscall(libc::SYS_personality, 0)
            .map(|_| ())
            .map_err(|e| format!("personality(0): {e}"))
    })
    .expect_success();
}

/// Enough for the child's own code between the load and _exit; everything else hits the default.
const ALLOW_LIST: &[&str] = &[
    "read",
    "write",
    "close",
    "exit",
    "exit_group",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "mprotect",
    "rt_sigprocmask",
    "rt_sigaction",
    "rt_sigreturn",
    "sigaltstack",
    "futex",
    "getpid",
    "gettid",
    "clock_gettime",
    "sched_yield",
    "rseq",
    "set_robust_list",
];

#[test]
fn default_errno_ret_is_returned_for_unlisted_syscalls() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EBADFD,
        "syscalls": [{"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"}]
    }));
    Child::spawn(|| {
        load_in_child(&profile)?;
        expect_errno("getppid", raw_syscall(libc::SYS_getppid, 0), Errno::EBADFD)?;
        expect_errno("getuid", raw_syscall(libc::SYS_getuid, 0), Errno::EBADFD)?;
        raw_syscall(libc::SYS_getpid, 0)
            .map(|_| ())
            .map_err(|e| format!("getpid is allowed: {e}"))
    })
    .expect_success();
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let child = Child::spawn(|| {
        load_in_child(&profile)?;
        let _ = raw_syscall(libc::SYS_getppid, 0);
        Err("getppid returned under SCMP_ACT_KILL_PROCESS".into())
    });
    let pid = child.pid;
    let (status, report) = child.wait();
    assert!(
        matches!(status, WaitStatus::Signaled(p, Signal::SIGSYS, _) if p == pid),
        "expected SIGSYS, got {status:?} ({report})"
    );
}

#[test]
fn architectures_from_the_profile_load_on_this_kernel() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getppid", "no_such_syscall_husk"], "action": "SCMP_ACT_ERRNO"}]
    }));
    Child::spawn(|| {
        load_in_child(&profile)?;
        expect_errno("getppid", raw_syscall(libc::SYS_getppid, 0), Errno::EPERM)
    })
    .expect_success();
}

/// The kernel fact behind the init's ordering: without no_new_privs the load needs CAP_SYS_ADMIN.
#[test]
fn load_needs_no_new_privs_once_cap_sys_admin_is_gone() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    Child::spawn(|| {
        caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_ADMIN)
            .map_err(|e| format!("drop CAP_SYS_ADMIN: {e}"))?;
        match seccomp::load(&profile) {
            Err(err @ SeccompError::Load { .. }) if err.errno() == Some(libc::EACCES) => {}
            other => return Err(format!("expected EACCES without no_new_privs, got {other:?}")),
        }
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("set no_new_privs: {e}"))?;
        load_in_child(&profile)?;
        expect_errno("getppid", raw_syscall(libc::SYS_getppid, 0), Errno::EPERM)
    })
    .expect_success();
}

/// runc's ENOSYS stub: a syscall newer than any the profile names (here clone3, above rseq)
/// returns ENOSYS, so libc falls back to the old call; older unnamed ones get the default.
#[test]
fn syscalls_newer_than_the_profile_get_enosys_so_libc_falls_back() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"}]
    }));
    Child::spawn(|| {
        load_in_child(&profile)?;
        expect_errno("clone3", raw_syscall(libc::SYS_clone3, 0), Errno::ENOSYS)?;
        expect_errno("getuid", raw_syscall(libc::SYS_getuid, 0), Errno::EPERM)
    })
    .expect_success();
}
