//! `binary://PATH?k=v` stdio: containerd's logging-binary contract. The binary gets the
//! process's stdout and stderr pipes as fds 3 and 4 and a "ready" pipe as fd 5 that it closes
//! (or writes to) once it is ready; its env is exactly CONTAINER_ID and CONTAINER_NAMESPACE, and
//! each query pair becomes two arguments. The shim's reaper reaps it when it exits.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::error::{Error, Result};

/// Path and arguments of a `binary://` uri.
pub fn parse_uri(uri: &str) -> Result<(String, Vec<String>)> {
    let rest = uri
        .strip_prefix("binary://")
        .ok_or_else(|| Error::InvalidArgument(format!("not a binary uri: {uri}")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::InvalidArgument(format!("binary uri without a path: {uri}")));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // As Go's url.Query: a key without "=" has an empty value, and both are passed.
        args.push(unescape(k));
        args.push(unescape(v));
    }
    Ok((unescape(path), args))
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the logging binary and returns the write ends the container gets as stdout/stderr.
pub fn spawn(uri: &str, id: &str, namespace: &str) -> Result<(OwnedFd, OwnedFd)> {
    let (path, args) = parse_uri(uri)?;
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("create logging pipe"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(&path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only dup2, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (target, fd) in (3..).zip(fds) {
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(Error::io("start logging binary", &path))?;
    drop((out_r, err_r, ready_w));
    let mut byte = [0u8; 1];
    File::from(ready_r)
        .read(&mut byte)
        .map_err(Error::io("wait for logging binary", &path))?;
    Ok((out_w, err_w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_become_arguments() {
        let (path, args) = parse_uri("binary:///usr/bin/log%20ger?--dir=%2Fvar%2Flog&-v").unwrap();
        assert_eq!(path, "/usr/bin/log ger");
        assert_eq!(args, ["--dir", "/var/log", "-v", ""]);
        assert!(parse_uri("binary://").is_err());
    }
}
