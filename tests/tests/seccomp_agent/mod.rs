//! A seccomp notify agent for the runtime tests: takes the notify fd from `listenerPath`
//! (runtime-spec config-linux.md "The Container Process State") and answers every notification
//! with an errno.

use serde_json::Value;

/// The kernel's `struct seccomp_notif` and `struct seccomp_notif_resp` (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;

/// Which of `fds` are ready (their revents), waiting at most `millis`.
fn poll_all(fds: &[i32], millis: i32) -> Vec<i16> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of pollfds of the stated length.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, millis) };
    pfds.iter().map(|p| p.revents).collect()
}

/// The process state and the fd of the agent protocol: the fd comes with the first sendmsg,
/// the JSON may go on in plain writes (husk's, for a long state). Reading stops once the JSON is
/// whole, not at EOF: runc 1.1 sends it all at once and never closes its end of the connection
/// (libcontainer/process_linux.go sendContainerProcessState closes only a dup of it).
fn recv_state_and_fd(stream: &std::os::unix::net::UnixStream) -> (Value, i32) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 65536];
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr points at live buffers of the stated sizes.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg from the runtime: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel filled msg_control; CMSG_* walk it within msg_controllen.
    let fd = unsafe {
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !hdr.is_null() && (*hdr).cmsg_type == libc::SCM_RIGHTS,
            "no SCM_RIGHTS from the runtime"
        );
        std::ptr::read_unaligned(libc::CMSG_DATA(hdr) as *const i32)
    };
    let mut payload = buf[..n as usize].to_vec();
    let mut reader = stream;
    loop {
        if let Ok(state) = serde_json::from_slice(&payload) {
            return (state, fd);
        }
        let read = reader.read(&mut buf).expect("read the rest of the process state");
        assert!(
            read > 0,
            "the process state ended early: {:?}",
            String::from_utf8_lossy(&payload)
        );
        payload.extend_from_slice(&buf[..read]);
    }
}

/// A seccomp agent on `listener`: takes the notify fds of `connections` container processes
/// (accepted as they come), answers every notification with `-errno` until each filter has no
/// users left (or 20 s passed). Returns the process states and the number of answers.
pub fn spawn(
    listener: std::os::unix::net::UnixListener,
    errno: i32,
    connections: usize,
) -> std::thread::JoinHandle<(Vec<Value>, usize)> {
    use std::os::fd::AsRawFd;
    std::thread::spawn(move || {
        let (mut states, mut fds, mut done) = (Vec::new(), Vec::new(), 0);
        let mut answered = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while done < connections && std::time::Instant::now() < deadline {
            let mut watched = vec![listener.as_raw_fd()];
            watched.extend(&fds);
            let revents = poll_all(&watched, 100);
            if revents[0] & libc::POLLIN != 0 {
                let (stream, _) = listener.accept().expect("accept");
                let (state, fd) = recv_state_and_fd(&stream);
                states.push(state);
                fds.push(fd);
            }
            for (i, &fd) in watched[1..].iter().enumerate() {
                if fd < 0 {
                    continue;
                }
                let ev = revents[i + 1];
                if ev & libc::POLLIN != 0 {
                    answered += answer(fd, errno) as usize;
                } else if ev & libc::POLLHUP != 0 {
                    // SAFETY: the fd came to us by SCM_RIGHTS and is ours to close.
                    unsafe { libc::close(fd) };
                    fds[i] = -1;
                    done += 1;
                }
            }
        }
        (states, answered)
    })
}

/// Receive one notification and answer it with `-errno`; false if it vanished meanwhile.
fn answer(fd: i32, errno: i32) -> bool {
    let mut req = SeccompNotif::default();
    // SAFETY: RECV fills a zeroed seccomp_notif of the right size.
    if unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
        return false;
    }
    let resp = SeccompNotifResp {
        id: req.id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: SEND reads one seccomp_notif_resp.
    unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 }
}
