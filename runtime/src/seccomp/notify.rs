//! Handing the seccomp notify fd to the agent at `listenerPath` (runtime-spec config-linux.md,
//! "The Container Process State"): one AF_UNIX SOCK_STREAM connection per container process,
//! the JSON as payload, the fd in SCM_RIGHTS with the first bytes, then the connection is closed.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{LinuxSeccomp, SECCOMP_FD_NAME};
use serde::Serialize;
use serde_json::{json, Value};

use super::SeccompError;

/// The runtime-spec version husk writes when the state carries none.
const OCI_VERSION: &str = "1.2.0";

/// The container process state JSON that accompanies the notify fd.
///
/// `pid` is the container process as the runtime sees it; `state` is the container's OCI state
/// (ociVersion, id, status, pid, bundle, annotations), e.g. husk_protocol's `ContainerState`.
/// `metadata` comes from the profile's `listenerMetadata`.
pub fn process_state_json<S: Serialize>(profile: &LinuxSeccomp, pid: i32, state: &S) -> Result<Vec<u8>, SeccompError> {
    let state = serde_json::to_value(state).map_err(SeccompError::ProcessState)?;
    let oci_version = state
        .get("ociVersion")
        .and_then(Value::as_str)
        .unwrap_or(OCI_VERSION)
        .to_string();
    let mut doc = json!({
        "ociVersion": oci_version,
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if let Some(metadata) = profile.listener_metadata() {
        doc["metadata"] = Value::String(metadata.clone());
    }
    serde_json::to_vec(&doc).map_err(SeccompError::ProcessState)
}

/// Connects to the agent at `listener_path` and sends `process_state` with `fd` attached.
///
/// Call it where `listener_path` resolves to the agent's socket: from the container's parent,
/// not from an init already inside the container's mount namespace.
pub fn send_notify_fd(listener_path: &Path, fd: BorrowedFd<'_>, process_state: &[u8]) -> Result<(), SeccompError> {
    let send_error = |source: std::io::Error| SeccompError::ListenerSend {
        path: listener_path.to_path_buf(),
        source,
    };
    if process_state.is_empty() {
        // A stream socket carries SCM_RIGHTS only together with at least one byte of data.
        return Err(send_error(std::io::Error::from(std::io::ErrorKind::InvalidInput)));
    }
    let stream = UnixStream::connect(listener_path).map_err(|source| SeccompError::ListenerConnect {
        path: listener_path.to_path_buf(),
        source,
    })?;
    let socket = stream.as_raw_fd();
    let fds = [fd.as_raw_fd()];
    let sent = retry_eintr(|| {
        sendmsg::<()>(
            socket,
            &[IoSlice::new(process_state)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
    })
    .map_err(|errno| send_error(errno.into()))?;
    // The spec allows several sendmsg calls as long as the fds travel with the first one.
    let mut rest = &process_state[sent..];
    while !rest.is_empty() {
        let n = retry_eintr(|| send(socket, rest, MsgFlags::MSG_NOSIGNAL)).map_err(|errno| send_error(errno.into()))?;
        rest = &rest[n..];
    }
    // Dropping the stream closes the connection: the spec forbids reusing it.
    Ok(())
}

fn retry_eintr<T>(mut op: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match op() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompBuilder;

    #[test]
    fn process_state_carries_fd_name_pid_metadata_and_state() {
        let profile = LinuxSeccompBuilder::default()
            .listener_path("/run/agent.sock")
            .listener_metadata("MKNOD=/dev/null")
            .build()
            .expect("profile");
        let state = json!({"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 4422,
                           "bundle": "/b", "annotations": {"k": "v"}});
        let bytes = process_state_json(&profile, 4422, &state).expect("json");
        let doc: Value = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(doc["ociVersion"], "1.0.2");
        assert_eq!(doc["fds"], json!(["seccompFd"]));
        assert_eq!(doc["pid"], 4422);
        assert_eq!(doc["metadata"], "MKNOD=/dev/null");
        assert_eq!(doc["state"], state);
        // The agent side of the contract: oci-spec's own type must read it back.
        let parsed: oci_spec::runtime::ContainerProcessState =
            serde_json::from_slice(&bytes).expect("ContainerProcessState");
        assert_eq!(parsed.pid(), &4422);
    }

    #[test]
    fn process_state_without_metadata_omits_it() {
        let profile = LinuxSeccompBuilder::default().build().expect("profile");
        let bytes = process_state_json(&profile, 1, &json!({"id": "c"})).expect("json");
        let doc: Value = serde_json::from_slice(&bytes).expect("parse");
        assert!(doc.get("metadata").is_none());
        assert_eq!(doc["ociVersion"], OCI_VERSION);
    }

    #[test]
    fn unreachable_listener_is_a_connect_error_naming_the_path() {
        let dir = std::env::temp_dir().join(format!("husk-seccomp-nolistener-{}", std::process::id()));
        let path = dir.join("absent.sock");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        use std::os::fd::AsFd;
        let err = send_notify_fd(&path, null.as_fd(), b"{}").unwrap_err();
        assert!(matches!(err, SeccompError::ListenerConnect { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.sock"), "{err}");
        assert_eq!(err.errno(), Some(libc::ENOENT));
    }
}
