//! The parent/child handshake of `husk create`, one typed message per step, over a
//! SOCK_SEQPACKET socketpair (one message, one packet: no framing to get wrong).
//!
//! ```text
//!   parent (husk create)                         child (container init)
//!   clone3(CLONE_NEW*) ───────────────────────▶  born in its new namespaces
//!   [write uid_map/gid_map]                      blocks in recv()
//!   [add child to cgroup]
//!   Proceed ──────────────────────────────────▶  join namespaces by path, unshare cgroupns,
//!                                                hostname, mounts, devices
//!                                    ◀──────────  RunHooks          (only when hooks exist)
//!   [prestart + createRuntime hooks]
//!   HooksDone { state } ──────────────────────▶  [createContainer hooks], pivot_root,
//!                                                masked/readonly paths, sysctl,
//!                                                rlimits, creds, caps, seccomp
//!                                    ◀──────────  Ready             (binary found, fds closed)
//!   write pid file, state.json; exit             open(exec.fifo, O_WRONLY) blocks until
//!                                                `husk start` reads it, [startContainer
//!                                                hooks], writes "0" (or "1<error>"), execve
//!
//!   any failure in the child:        ◀──────────  Failed { msg }    then _exit(1)
//! ```
//! The parent closes its copy of the child's end right after clone, so a dead child reads as
//! EOF rather than a hang.

use crate::sys::{Context, SysError};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToChild {
    Proceed,
    /// `state`: the OCI state JSON (status creating, the init's pid as the host sees it) for
    /// the hooks the init runs itself: createContainer and startContainer.
    HooksDone { state: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromChild {
    RunHooks,
    Ready,
    Failed { msg: String },
}

/// One end of the handshake.
pub struct Channel {
    stream: UnixStream,
}

/// A socketpair for the handshake; both ends close on exec.
pub fn pair() -> Result<(Channel, Channel), SysError> {
    let (a, b): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx("create", "sync socketpair")?;
    Ok((Channel { stream: UnixStream::from(a) }, Channel { stream: UnixStream::from(b) }))
}

const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    pub fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), SysError> {
        let bytes = serde_json::to_vec(msg).map_err(|_| SysError::new("encode", "sync message", nix::errno::Errno::EINVAL))?;
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

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.stream.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_and_eof_reads_as_none() {
        let (mut parent, mut child) = pair().unwrap();
        child.send(&FromChild::Failed { msg: "failed to mount proc: EPERM".into() }).unwrap();
        child.send(&FromChild::Ready).unwrap();
        assert_eq!(parent.recv::<FromChild>().unwrap(), Some(FromChild::Failed { msg: "failed to mount proc: EPERM".into() }));
        assert_eq!(parent.recv::<FromChild>().unwrap(), Some(FromChild::Ready));
        drop(child);
        assert_eq!(parent.recv::<FromChild>().unwrap(), None);
    }
}
