//! A minimal CRI (Kubernetes runtime.v1) client for tests: gRPC over HTTP/2 cleartext on the
//! unix socket, carried by Debian's curl (built with nghttp2), with the few protobuf messages
//! a test needs encoded by hand ([`Proto`]). crictl is not packaged in Debian 12, and a
//! tonic/prost client would cost minutes of compiling on every clean build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{output_text, run_with_timeout};

/// A protobuf message being encoded: fields are appended in the order written.
#[derive(Debug, Clone, Default)]
pub struct Proto(Vec<u8>);

impl Proto {
    pub fn new() -> Proto {
        Proto::default()
    }

    /// A varint field (uint32/uint64/int32 >= 0/bool/enum).
    pub fn varint(mut self, field: u32, value: u64) -> Proto {
        put_varint(&mut self.0, u64::from(field) << 3);
        put_varint(&mut self.0, value);
        self
    }

    pub fn string(self, field: u32, value: &str) -> Proto {
        self.bytes(field, value.as_bytes())
    }

    pub fn message(self, field: u32, value: Proto) -> Proto {
        self.bytes(field, &value.0)
    }

    /// One entry of a `map<string, string>` field.
    pub fn map_entry(self, field: u32, key: &str, value: &str) -> Proto {
        self.message(field, Proto::new().string(1, key).string(2, value))
    }

    fn bytes(mut self, field: u32, value: &[u8]) -> Proto {
        put_varint(&mut self.0, (u64::from(field) << 3) | 2);
        put_varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A decoded protobuf field value (fixed-width fields are not used by the messages read here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Varint(u64),
    Bytes(Vec<u8>),
}

/// The top-level fields of a message, in wire order; panics on malformed input.
pub fn decode(mut bytes: &[u8]) -> Vec<(u32, Field)> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = take_varint(&mut bytes);
        let value = match key & 7 {
            0 => Field::Varint(take_varint(&mut bytes)),
            2 => {
                let len = take_varint(&mut bytes) as usize;
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                Field::Bytes(value.to_vec())
            }
            1 => {
                bytes = &bytes[8..];
                continue;
            }
            5 => {
                bytes = &bytes[4..];
                continue;
            }
            other => panic!("unsupported protobuf wire type {other}"),
        };
        fields.push(((key >> 3) as u32, value));
    }
    fields
}

fn take_varint(bytes: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().expect("truncated varint");
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

/// The first `field` of a message as bytes (a string or a nested message); empty if absent.
pub fn bytes_field(msg: &[u8], field: u32) -> Vec<u8> {
    decode(msg)
        .into_iter()
        .find_map(|(f, v)| match v {
            Field::Bytes(b) if f == field => Some(b),
            _ => None,
        })
        .unwrap_or_default()
}

/// The first varint `field` of a message; 0 (proto3's default) if absent.
pub fn varint_field(msg: &[u8], field: u32) -> u64 {
    decode(msg)
        .into_iter()
        .find_map(|(f, v)| match v {
            Field::Varint(n) if f == field => Some(n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The value of a `UInt64Value` wrapper `field` of `msg` (CRI's stats use them so that 0 and
/// "not reported" differ); None if the field is absent.
pub fn uint64_value(msg: &[u8], field: u32) -> Option<u64> {
    decode(msg).into_iter().find_map(|(f, v)| match v {
        Field::Bytes(b) if f == field => Some(varint_field(&b, 1)),
        _ => None,
    })
}

/// What RuntimeService/ExecSync returned (ExecSyncResponse: stdout 1, stderr 2, exit_code 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// A CRI endpoint: containerd's grpc socket with the CRI plugin enabled.
#[derive(Debug, Clone)]
pub struct CriClient {
    socket: PathBuf,
    timeout: Duration,
}

impl CriClient {
    pub fn new(socket: &Path) -> CriClient {
        CriClient {
            socket: socket.to_path_buf(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Call `runtime.v1.<service>/<method>` with `request`; the response message or
    /// "grpc-status N: message".
    pub fn call(&self, service: &str, method: &str, request: Proto) -> Result<Vec<u8>, String> {
        let body = request.into_bytes();
        let mut framed = Vec::with_capacity(body.len() + 5);
        framed.push(0); // not compressed
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        let dir = crate::TempDir::new("cri-call");
        let req = dir.join("req");
        std::fs::write(&req, framed).map_err(|e| format!("failed to write request: {e}"))?;
        let out = run_with_timeout(
            Command::new("curl")
                .args(["-sS", "--http2-prior-knowledge", "--unix-socket"])
                .arg(&self.socket)
                .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
                .args(["-D", "-", "-o"])
                .arg(dir.join("resp"))
                .arg("--data-binary")
                .arg(format!("@{}", req.display()))
                .arg(format!("http://localhost/runtime.v1.{service}/{method}")),
            self.timeout,
        );
        if !out.status.success() {
            return Err(format!("curl failed: {}", output_text(&out)));
        }
        let headers = String::from_utf8_lossy(&out.stdout);
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let status = header("grpc-status").unwrap_or_default();
        if status != "0" {
            let message = header("grpc-message").unwrap_or_default();
            return Err(format!("{method}: grpc-status {status}: {message}"));
        }
        let resp = std::fs::read(dir.join("resp")).unwrap_or_default();
        // One length-prefixed message; an empty body is an empty message.
        Ok(resp.get(5..).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// ExecSync of `cmd` in `container` (ExecSyncRequest: container_id 1, cmd 2, timeout 3
    /// seconds), as the kubelet runs exec probes; panics if the call itself fails.
    pub fn exec_sync(&self, container: &str, cmd: &[&str], timeout_secs: u64) -> ExecOutput {
        let request = cmd
            .iter()
            .fold(Proto::new().string(1, container), |req, arg| req.string(2, arg))
            .varint(3, timeout_secs);
        let resp = self.runtime("ExecSync", request);
        ExecOutput {
            stdout: String::from_utf8_lossy(&bytes_field(&resp, 1)).into_owned(),
            stderr: String::from_utf8_lossy(&bytes_field(&resp, 2)).into_owned(),
            // int32 on the wire is a sign-extended varint: the low 32 bits are the value.
            exit_code: varint_field(&resp, 3) as u32 as i32,
        }
    }

    /// [`CriClient::call`] on RuntimeService that must succeed.
    pub fn runtime(&self, method: &str, request: Proto) -> Vec<u8> {
        self.call("RuntimeService", method, request)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// runtime.v1.NamespaceMode NODE: the pod shares the host's namespace (no CNI needed).
pub const NAMESPACE_MODE_NODE: u64 = 2;
/// runtime.v1.ContainerState CONTAINER_EXITED.
pub const CONTAINER_EXITED: u64 = 2;

impl CriClient {
    /// Wait until CRI knows `image` (ImageStatus has an image): after `ctr images import` it
    /// learns of it from containerd's events, and an unknown image would make it try a pull.
    pub fn wait_for_image(&self, image: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || {
            let spec = Proto::new().message(1, Proto::new().string(1, image));
            self.call("ImageService", "ImageStatus", spec)
                .is_ok_and(|resp| !bytes_field(&resp, 1).is_empty())
        })
    }

    /// The ContainerStatus message of `container` (id 1, state 3, exit_code 7, reason 10).
    pub fn container_status(&self, container: &str) -> Result<Vec<u8>, String> {
        let resp = self.call("RuntimeService", "ContainerStatus", Proto::new().string(1, container))?;
        Ok(bytes_field(&resp, 1))
    }

    /// RunPodSandbox of `config` (a PodSandboxConfig) with runtime handler `handler`; the pod id.
    pub fn run_pod_sandbox(&self, config: &Proto, handler: &str) -> Result<String, String> {
        let request = Proto::new().message(1, config.clone()).string(2, handler);
        let resp = self.call("RuntimeService", "RunPodSandbox", request)?;
        Ok(String::from_utf8_lossy(&bytes_field(&resp, 1)).into_owned())
    }

    /// CreateContainer (`config`: a ContainerConfig) in `pod`, then StartContainer; the id.
    pub fn start_container(&self, pod: &str, sandbox: &Proto, config: Proto) -> Result<String, String> {
        let request = Proto::new()
            .string(1, pod)
            .message(2, config)
            .message(3, sandbox.clone());
        let resp = self.call("RuntimeService", "CreateContainer", request)?;
        let id = String::from_utf8_lossy(&bytes_field(&resp, 1)).into_owned();
        self.call("RuntimeService", "StartContainer", Proto::new().string(1, &id))?;
        Ok(id)
    }

    /// StopPodSandbox then RemovePodSandbox, as the kubelet ends a pod.
    pub fn stop_and_remove_pod(&self, pod: &str) -> Result<(), String> {
        self.call("RuntimeService", "StopPodSandbox", Proto::new().string(1, pod))?;
        self.call("RuntimeService", "RemovePodSandbox", Proto::new().string(1, pod))?;
        Ok(())
    }
}

/// The init pid of task `id` in the output of `ctr tasks ls` (columns TASK PID STATUS): CRI's
/// ContainerStatus has no pid.
pub fn task_pid_in(ctr_tasks_ls: &str, id: &str) -> Option<u32> {
    ctr_tasks_ls.lines().skip(1).find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == id).then(|| words.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_messages_decode_back() {
        let msg = Proto::new()
            .string(1, "pod")
            .varint(4, 300)
            .message(8, Proto::new().varint(1, 2))
            .into_bytes();
        assert_eq!(bytes_field(&msg, 1), b"pod");
        assert_eq!(varint_field(&msg, 4), 300);
        assert_eq!(varint_field(&bytes_field(&msg, 8), 1), 2);
        assert_eq!(varint_field(&msg, 9), 0);
    }
}
