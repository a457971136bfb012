//! The parent/child handshake of `husk create`, one typed message per step, over a
//! SOCK_SEQPACKET socketpair (one message, one packet: no framing to get wrong).
//!
//! ```text
//!   parent (husk create)                         child (container init)
//!   clone3(CLONE_NEW*) ───────────────────────▶  born in its new namespaces
//!   [write uid_map/gid_map]                      blocks in recv()
//!   Proceed ──────────────────────────────────▶  join namespaces by path, hostname,
//!   [add child to cgroup]                        mounts, devices (meanwhile)
//!   CgroupJoined ─────────────────────────────▶  awaited before unshare(cgroupns) when
//!                                                there is one, else after the mounts
//!                                    ◀──────────  RunHooks          (only when hooks exist)
//!   [prestart + createRuntime hooks]
//!   HooksDone { state } ──────────────────────▶  [createContainer hooks], pivot_root,
//!                                                masked/readonly paths, sysctl,
//!                                                rlimits, seccomp load (NOTIFY: here, while
//!                                                the channel is open)
//!                                    ◀──────────  SeccompNotifyFd   + the fd (SCM_RIGHTS)
//!   [send fd + state to listenerPath]            (only when the profile has NOTIFY rules)
//!   SeccompNotifyFdSent ──────────────────────▶  creds, caps (other profiles load here)
//!                                    ◀──────────  Ready             (binary found, fds closed)
//!   write pid file, state.json; exit             open(exec.fifo, O_WRONLY) blocks until
//!                                                `husk start` reads it, [startContainer
//!                                                hooks], writes "0" (or "1<error>"), execve
//!
//!   any failure in the child:        ◀──────────  Failed { msg }    then _exit(1)
//! ```
//! `husk exec` forks twice, so that its process is born inside every namespace of the
//! container (see init/exec_child.rs), and the same channel serves both stages:
//!
//! ```text
//!   parent (husk exec)             stage 1 (host pid ns)              stage 2 (exec process)
//!   clone3 ──────────────────────▶ born invisible to the container,
//!                                  closes all fds but stdio,
//!                                  preserved fds, channel, console
//!   [add stage 1 to cgroup]
//!   Proceed ─────────────────────▶ setns user, ipc, uts, net, pid,
//!                                  time, cgroup, mnt
//!                                  clone3(CLONE_PARENT) ───────────▶ born inside every
//!                                                                     namespace, non-dumpable
//!                  ◀───────────── Spawned { pid } + pidfd; _exit(0)  blocks in recv()
//!   [reap stage 1]
//!   SpawnedSeen ─────────────────────────────────────────────────▶  setsid, personality,
//!                                                                     creds, caps, seccomp
//!                  ◀─────────────────────────────────────────────── (SeccompNotifyFd ...)
//!                  ◀─────────────────────────────────────────────── Ready; execve
//! ```
//! `husk create` takes the same two stages when the config joins a user or pid namespace by
//! path (init/stage1.rs): stage 1 joins, clones the init with CLONE_PARENT, sends Spawned and
//! exits; the parent then goes on with the init as in the first diagram (maps, cgroup, Proceed).
//!
//! The parent closes its copy of the child's end right after clone, so a dead child reads as
//! EOF rather than a hang.

use crate::sys::{Context, SysError};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToChild {
    Proceed,
    /// `husk create`: the init is in every cgroup. Sent after Proceed, so the init mounts
    /// while the parent waits out the cgroup attach (an RCU grace period on a busy host).
    CgroupJoined,
    /// `state`: the OCI state JSON (status creating, the init's pid as the host sees it) for
    /// the hooks the init runs itself: createContainer and startContainer.
    HooksDone {
        state: String,
    },
    /// The agent at listenerPath has the notify fd: notified syscalls can be answered now.
    SeccompNotifyFdSent,
    /// `husk exec`: the parent has stage 2's pid and pidfd and reaped stage 1.
    SpawnedSeen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromChild {
    RunHooks,
    /// Carries the seccomp notify fd in SCM_RIGHTS ([`Channel::send_with_fd`]).
    SeccompNotifyFd,
    Ready,
    /// `husk exec`'s stage 1 forked the exec process, `pid` as the host sees it; its pidfd
    /// comes in SCM_RIGHTS.
    Spawned {
        pid: i32,
    },
    /// `husk --trace`: the init's own phases, (name, microseconds), sent just before Ready.
    Timings {
        phases: Vec<(String, u64)>,
    },
    Failed {
        msg: String,
    },
}

/// One end of the handshake.
pub struct Channel {
    stream: UnixStream,
}

/// A socketpair for the handshake; both ends close on exec.
pub fn pair() -> Result<(Channel, Channel), SysError> {
    let (a, b): (OwnedFd, OwnedFd) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .ctx("create", "sync socketpair")?;
    Ok((
        Channel {
            stream: UnixStream::from(a),
        },
        Channel {
            stream: UnixStream::from(b),
        },
    ))
}

const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    pub fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), SysError> {
        let bytes =
            serde_json::to_vec(msg).map_err(|_| SysError::new("encode", "sync message", nix::errno::Errno::EINVAL))?;
        self.stream.write_all(&bytes).ctx("send", "sync message")
    }

    /// The next message, or None when the other end is gone.
    pub fn recv<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, SysError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match self.stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SysError::from_io("receive", "sync message", &e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|_| SysError::new("decode", "sync message", nix::errno::Errno::EBADMSG))
    }

    /// One message with `fd` attached in SCM_RIGHTS, in the same packet.
    pub fn send_with_fd<M: Serialize>(&mut self, msg: &M, fd: BorrowedFd) -> Result<(), SysError> {
        let bytes =
            serde_json::to_vec(msg).map_err(|_| SysError::new("encode", "sync message", nix::errno::Errno::EINVAL))?;
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            self.stream.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .ctx("send", "sync message with fd")?;
        Ok(())
    }

    /// Like [`Channel::recv`], also returning an fd that came with the message (close-on-exec).
    pub fn recv_with_fd<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<(M, Option<OwnedFd>)>, SysError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs().ctx("read control message of", "sync message")? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            // SAFETY: SCM_RIGHTS installed these fds in our table; we own them.
                            let mut owned = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) });
                            fd = owned.next();
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(SysError::new("receive", "sync message", errno)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|_| SysError::new("decode", "sync message", nix::errno::Errno::EBADMSG))?;
        Ok(Some((msg, fd)))
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_and_eof_reads_as_none() {
        let (mut parent, mut child) = pair().unwrap();
        child
            .send(&FromChild::Failed {
                msg: "failed to mount proc: EPERM".into(),
            })
            .unwrap();
        child.send(&FromChild::Ready).unwrap();
        assert_eq!(
            parent.recv::<FromChild>().unwrap(),
            Some(FromChild::Failed {
                msg: "failed to mount proc: EPERM".into()
            })
        );
        assert_eq!(parent.recv::<FromChild>().unwrap(), Some(FromChild::Ready));
        drop(child);
        assert_eq!(parent.recv::<FromChild>().unwrap(), None);
    }

    #[test]
    fn an_fd_travels_with_its_message() {
        let (mut parent, mut child) = pair().unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        use std::os::fd::AsFd;
        child.send_with_fd(&FromChild::SeccompNotifyFd, file.as_fd()).unwrap();
        child.send(&FromChild::Ready).unwrap();
        let (msg, fd) = parent.recv_with_fd::<FromChild>().unwrap().unwrap();
        assert_eq!(msg, FromChild::SeccompNotifyFd);
        let fd = fd.expect("an fd came along");
        let ours = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(ours.ends_with("stat"), "{ours:?}");
        let (msg, fd) = parent.recv_with_fd::<FromChild>().unwrap().unwrap();
        assert_eq!((msg, fd.is_none()), (FromChild::Ready, true));
    }
}
