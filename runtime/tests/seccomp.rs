//! Root tests of husk's seccomp module against the real kernel: every test forks a child that
//! loads a profile and probes syscalls. A filter is irreversible, so it must never be loaded in
//! the test process itself. Children report through a pipe and their exit status only, and a
//! guard kills a child that hangs (e.g. blocked on an unanswered notification).

use std::fs;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use husk::seccomp::{self, SeccompError};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

fn profile(value: Value) -> LinuxSeccomp {
    seccomp::parse_profile(&value).expect("valid profile")
}

/// A temporary directory removed on drop, even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir()
            .join(format!("husk-seccomp-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A forked child; killed and reaped on drop unless `wait` already reaped it.
struct Child {
    pid: Pid,
    report: OwnedFd,
    reaped: bool,
}

impl Child {
    /// Runs `body` in a forked child. `Err(msg)` (or a panic) exits 1 with the message on the
    /// report pipe; nothing unwinds past the fork.
    fn spawn(body: impl FnOnce() -> Result<(), String>) -> Child {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(read_end);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                    .unwrap_or_else(|_| Err("child panicked".to_string()));
                let code = match outcome {
                    Ok(()) => 0,
                    Err(msg) => {
                        let _ = nix::unistd::write(&write_end, msg.as_bytes());
                        1
                    }
                };
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => Child { pid: child, report: read_end, reaped: false },
        }
    }

    /// Waits for the child (bounded by CHILD_TIMEOUT) and returns its status and report.
    fn wait(mut self) -> (WaitStatus, String) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let status = loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                WaitStatus::StillAlive => panic!("child {} timed out", self.pid),
                status => break status,
            }
        };
        self.reaped = true;
        let mut report = String::new();
        let _ = fs::File::from(self.report.try_clone().expect("dup")).read_to_string(&mut report);
        (status, report)
    }

    fn expect_success(self) {
        let pid = self.pid;
        let (status, report) = self.wait();
        assert_eq!(status, WaitStatus::Exited(pid, 0), "child failed: {report}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// `Ok` when `result` is -1 with `errno`, a description otherwise.
fn expect_errno(what: &str, result: nix::Result<impl std::fmt::Debug>, errno: Errno) -> Result<(), String> {
    match result {
        Err(e) if e == errno => Ok(()),
        other => Err(format!("{what}: expected {errno:?}, got {other:?}")),
    }
}

fn load_in_child(profile: &LinuxSeccomp) -> Result<Option<OwnedFd>, String> {
    seccomp::load(profile).map_err(|e| format!("load: {e}"))
}

fn raw_syscall(nr: libc::c_long, arg0: u64) -> nix::Result<i64> {
    let rc = unsafe { libc::syscall(nr, arg0) };
    Errno::result(rc)
}

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
        expect_errno("mkdir", nix::unistd::mkdir(&target, nix::sys::stat::Mode::S_IRWXU), Errno::EPERM)?;
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
        expect_errno("personality(query)", raw_syscall(libc::SYS_personality, QUERY), Errno::EXDEV)?;
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
        expect_errno("personality(query)", raw_syscall(libc::SYS_personality, 0xffff_ffff), Errno::EXDEV)?;
        expect_errno("personality(ADDR_NO_RANDOMIZE)", raw_syscall(libc::SYS_personality, 0x0040_0000), Errno::EXDEV)?;
        raw_syscall(libc::SYS_personality, 0).map(|_| ()).map_err(|e| format!("personality(0): {e}"))
    })
    .expect_success();
}

/// Enough for the child's own code between the load and _exit; everything else hits the default.
const ALLOW_LIST: &[&str] = &[
    "read", "write", "close", "exit", "exit_group", "brk", "mmap", "munmap", "mremap", "madvise",
    "mprotect", "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "sigaltstack", "futex",
    "getpid", "gettid", "clock_gettime", "sched_yield", "rseq", "set_robust_list",
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
        raw_syscall(libc::SYS_getpid, 0).map(|_| ()).map_err(|e| format!("getpid is allowed: {e}"))
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

/// What the agent got on its socket: the container process state and the notify fd.
struct Handoff {
    state: Value,
    fd: OwnedFd,
}

/// Accepts one connection on `listener` and reads the state JSON and the SCM_RIGHTS fd.
fn accept_handoff(listener: &UnixListener) -> Handoff {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).expect("poll listener");
    assert_eq!(ready, 1, "the child never connected to the listener");
    let (stream, _) = listener.accept().expect("accept");
    let mut payload = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (len, fd) = {
        let mut iov = [IoSliceMut::new(&mut payload)];
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .expect("recvmsg");
        let fd = msg.cmsgs().expect("cmsgs").find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        });
        (msg.bytes, fd.expect("no fd in SCM_RIGHTS"))
    };
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    payload.truncate(len);
    // The runtime may split the JSON over several sends; it closes the connection at the end.
    (&stream).read_to_end(&mut payload).expect("read the rest of the state");
    Handoff { state: serde_json::from_slice(&payload).expect("state JSON"), fd }
}

#[test]
fn notify_fd_reaches_the_listener_and_the_agent_answers_mkdir() {
    let dir = TempDir::new("notify");
    let socket = dir.0.join("agent.sock");
    let listener = UnixListener::bind(&socket).expect("bind listener");
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "husk-test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let target = dir.0.join("intercepted");
    let child = Child::spawn(|| notifying_child(&profile, &socket, &target));

    let handoff = accept_handoff(&listener);
    assert_eq!(handoff.state["fds"], json!(["seccompFd"]));
    assert_eq!(handoff.state["pid"], child.pid.as_raw());
    assert_eq!(handoff.state["metadata"], "husk-test-metadata");
    assert_eq!(handoff.state["state"]["id"], "seccomp-test");
    assert_eq!(handoff.state["state"]["status"], "creating");
    answer_one_notification(&handoff.fd, child.pid, -libc::ETXTBSY);
    child.expect_success();
    assert!(!target.exists(), "the agent refused mkdir, the directory must not exist");
}

/// The container side: load, send the fd as the runtime's parent would, then mkdir.
fn notifying_child(profile: &LinuxSeccomp, socket: &Path, target: &Path) -> Result<(), String> {
    let fd = load_in_child(profile)?.ok_or("NOTIFY rule loaded, yet no notify fd")?;
    let pid = nix::unistd::getpid().as_raw();
    let state = json!({"ociVersion": "1.2.0", "id": "seccomp-test", "status": "creating",
                       "pid": pid, "bundle": "/nonexistent"});
    let json = seccomp::process_state_json(profile, pid, &state).map_err(|e| e.to_string())?;
    seccomp::send_notify_fd(socket, fd.as_fd(), &json).map_err(|e| format!("send: {e}"))?;
    drop(fd);
    expect_errno("mkdir", nix::unistd::mkdir(target, nix::sys::stat::Mode::S_IRWXU), Errno::ETXTBSY)
}

/// The agent side: one notification from `pid` for mkdir/mkdirat, answered with `error`.
fn answer_one_notification(fd: &OwnedFd, pid: Pid, error: i32) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).expect("poll notify fd");
    assert_eq!(ready, 1, "no seccomp notification arrived");
    let req = ScmpNotifReq::receive(fd.as_raw_fd()).expect("receive notification");
    assert_eq!(req.pid, pid.as_raw() as u32);
    let name = req.data.syscall.get_name().expect("syscall name");
    assert!(name == "mkdir" || name == "mkdirat", "unexpected syscall {name}");
    ScmpNotifResp::new_error(req.id, error, ScmpNotifRespFlags::empty())
        .respond(fd.as_raw_fd())
        .expect("respond");
}

#[test]
fn notify_rule_of_unknown_syscalls_only_yields_no_fd() {
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/nonexistent/agent.sock",
        "syscalls": [{"names": ["no_such_syscall_husk"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    Child::spawn(|| match load_in_child(&profile)? {
        None => Ok(()),
        Some(_) => Err("a filter without NOTIFY rules produced a notify fd".into()),
    })
    .expect_success();
}

/// A profile the size of Docker's default: every x86_64 syscall libseccomp knows allowed but a
/// handful, default ERRNO, three architectures and argument rules for personality and clone.
fn docker_sized_profile() -> LinuxSeccomp {
    let denied = ["mount", "umount2", "reboot", "kexec_load", "init_module", "personality", "clone"];
    let names: Vec<String> = (0..500)
        .filter_map(|nr| {
            let syscall = libseccomp::ScmpSyscall::from_raw_syscall(nr);
            syscall.get_name_by_arch(libseccomp::ScmpArch::native()).ok()
        })
        .filter(|name| !denied.contains(&name.as_str()))
        .collect();
    let personas: Vec<Value> = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
        .iter()
        .map(|v| json!({"index": 0, "value": v, "op": "SCMP_CMP_EQ"}))
        .collect();
    profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": personas},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }))
}

#[test]
fn docker_sized_profile_prepared_in_the_parent_loads_in_one_syscall() {
    let profile = docker_sized_profile();
    let dir = TempDir::new("timing");
    let cache = dir.0.join("cache");
    let start = Instant::now();
    let program = seccomp::prepare_cached(&profile, &cache).expect("prepare (cache miss)");
    let miss = start.elapsed();
    let start = Instant::now();
    let cached = seccomp::prepare_cached(&profile, &cache).expect("prepare (cache hit)");
    let hit = start.elapsed();
    assert_eq!(cached, program);
    let report = dir.0.join("load-micros");
    Child::spawn(|| {
        let start = Instant::now();
        program.load().map_err(|e| format!("load: {e}"))?;
        let micros = start.elapsed().as_micros().to_string();
        expect_errno("umount2", nix::mount::umount("/nonexistent-husk"), Errno::EPERM)?;
        expect_errno("personality(1)", raw_syscall(libc::SYS_personality, 1), Errno::EPERM)?;
        raw_syscall(libc::SYS_getppid, 0).map_err(|e| format!("getppid is allowed: {e}"))?;
        fs::write(&report, micros).map_err(|e| format!("write timing: {e}"))
    })
    .expect_success();
    let load_micros: u128 = fs::read_to_string(&report).expect("timing").parse().expect("number");
    println!(
        "docker-sized profile, {} BPF instructions: prepare {} us (cache miss), {} us (cache hit), load {} us",
        program.instructions(),
        miss.as_micros(),
        hit.as_micros(),
        load_micros
    );
    assert!(hit < miss, "a cache hit must be cheaper than compiling");
}
