//! SCMP_ACT_NOTIFY: the notify fd travels to an agent listening at listenerPath, with the
//! container process state, and the agent answers the container's syscalls.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use husk::seccomp::{self};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

use crate::support::*;

/// What the agent got on its socket: the container process state and the notify fd.
struct Handoff {
    state: Value,
    fd: OwnedFd,
}

/// One recvmsg of at most `max` bytes that must carry exactly one fd in SCM_RIGHTS.
fn recv_with_fd(socket: std::os::fd::RawFd, max: usize) -> (Vec<u8>, OwnedFd) {
    let mut payload = vec![0u8; max];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut payload)];
    let msg = recvmsg::<()>(socket, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).expect("recvmsg");
    let raw = msg.cmsgs().expect("cmsgs").find_map(|c| match c {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    let len = msg.bytes;
    // SAFETY: SCM_RIGHTS installed a fresh fd in this process that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw.expect("no fd in SCM_RIGHTS")) };
    payload.truncate(len);
    (payload, fd)
}

/// Accepts one connection on `listener` and reads the state JSON and the SCM_RIGHTS fd.
fn accept_handoff(listener: &UnixListener) -> Handoff {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).expect("poll listener");
    assert_eq!(ready, 1, "the child never connected to the listener");
    let (stream, _) = listener.accept().expect("accept");
    let (mut payload, fd) = recv_with_fd(stream.as_raw_fd(), 64 * 1024);
    // The runtime may split the JSON over several sends; it closes the connection at the end.
    (&stream).read_to_end(&mut payload).expect("read the rest of the state");
    Handoff {
        state: serde_json::from_slice(&payload).expect("state JSON"),
        fd,
    }
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
    assert!(
        !target.exists(),
        "the agent refused mkdir, the directory must not exist"
    );
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
    expect_errno(
        "mkdir",
        nix::unistd::mkdir(target, nix::sys::stat::Mode::S_IRWXU),
        Errno::ETXTBSY,
    )
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

/// The runtime's real path: the init loads a program its parent prepared and passes the notify
/// fd back over their socketpair; the parent, which can reach listenerPath, sends it on.
#[test]
fn notify_fd_relayed_by_the_parent_reaches_the_agent() {
    use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, SockFlag, SockType};
    let dir = TempDir::new("relay");
    let socket = dir.0.join("agent.sock");
    let listener = UnixListener::bind(&socket).expect("bind listener");
    let profile = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let program = seccomp::prepare(&profile).expect("prepare");
    assert!(program.uses_notify());
    let (parent_end, child_end) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).expect("socketpair");
    let target = dir.0.join("relayed");
    let child = Child::spawn(|| {
        let fd = program
            .load()
            .map_err(|e| format!("load: {e}"))?
            .ok_or("no notify fd")?;
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            child_end.as_raw_fd(),
            &[std::io::IoSlice::new(b"fd")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| format!("send fd to parent: {e}"))?;
        drop(fd);
        expect_errno(
            "mkdir",
            nix::unistd::mkdir(&target, nix::sys::stat::Mode::S_IRWXU),
            Errno::EROFS,
        )
    });
    drop(child_end);

    let (_, notify_fd) = recv_with_fd(parent_end.as_raw_fd(), 8);
    let state = json!({"ociVersion": "1.2.0", "id": "relay", "status": "creating",
                       "pid": child.pid.as_raw(), "bundle": "/nonexistent"});
    let json = seccomp::process_state_json(&profile, child.pid.as_raw(), &state).expect("state json");
    seccomp::send_notify_fd(&socket, notify_fd.as_fd(), &json).expect("send to agent");
    drop(notify_fd);

    let handoff = accept_handoff(&listener);
    assert_eq!(handoff.state["state"]["id"], "relay");
    answer_one_notification(&handoff.fd, child.pid, -libc::EROFS);
    child.expect_success();
    assert!(!target.exists());
}
