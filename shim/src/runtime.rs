//! Drives a runc-compatible runtime binary through its CLI, with exactly the arguments
//! containerd's go-runc passes (`--root R --log L --log-format json <command> ...`).
//! Every run subscribes to the reaper's exits before it spawns, because the shim is the
//! subreaper and one thread reaps everything (the daemon's main loop, or the crate's reaper in
//! `shim delete`): `Child::wait` would race it. Runtime commands run on worker threads in the
//! daemon, so the loop keeps reaping (and notifying the crate's monitor) while they wait.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim::monitor::{monitor_subscribe, wait_pid, Topic};
use husk_protocol::LogLine;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub systemd_cgroup: bool,
}

/// The container's stdio for `create` and `exec`: the child ends of the shim's pipes or the
/// pty slave's absence (`None` means /dev/null).
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

pub struct CreateArgs<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

pub struct ExecArgs<'a> {
    pub process_file: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl Runtime {
    /// Global flags, in go-runc's order.
    fn global_args(&self) -> Vec<OsString> {
        let mut args = vec!["--root".into(), self.root.clone().into_os_string()];
        args.extend(["--log".into(), self.log.clone().into_os_string()]);
        args.extend(os(&["--log-format", "json"]));
        if self.systemd_cgroup {
            args.push("--systemd-cgroup".into());
        }
        args
    }

    pub fn create_args(&self, id: &str, a: &CreateArgs) -> Vec<OsString> {
        let mut args = os(&["create", "--bundle"]);
        args.push(a.bundle.into());
        args.extend(["--pid-file".into(), a.pid_file.into()]);
        if let Some(sock) = a.console_socket {
            args.extend(["--console-socket".into(), sock.into()]);
        }
        if a.no_pivot {
            args.push("--no-pivot".into());
        }
        if a.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        args.push(id.into());
        args
    }

    pub fn exec_args(&self, id: &str, a: &ExecArgs) -> Vec<OsString> {
        let mut args = os(&["exec", "--process"]);
        args.push(a.process_file.into());
        if let Some(sock) = a.console_socket {
            args.extend(["--console-socket".into(), sock.into()]);
        }
        args.push("--detach".into());
        args.extend(["--pid-file".into(), a.pid_file.into()]);
        args.push(id.into());
        args
    }

    pub fn kill_args(id: &str, signal: u32, all: bool) -> Vec<OsString> {
        let mut args = os(&["kill"]);
        if all {
            args.push("--all".into());
        }
        args.extend([id.into(), signal.to_string().into()]);
        args
    }

    pub fn delete_args(id: &str, force: bool) -> Vec<OsString> {
        let mut args = os(&["delete"]);
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        args
    }

    pub fn create(&self, id: &str, a: &CreateArgs, stdio: ChildStdio) -> Result<()> {
        self.run("create", self.create_args(id, a), stdio, None).map(drop)
    }

    pub fn exec(&self, id: &str, a: &ExecArgs, stdio: ChildStdio) -> Result<()> {
        self.run("exec", self.exec_args(id, a), stdio, None).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run_simple("start", os(&["start", id]))
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        self.run_simple("kill", Self::kill_args(id, signal, all))
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        self.run_simple("delete", Self::delete_args(id, force))
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run_simple("pause", os(&["pause", id]))
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run_simple("resume", os(&["resume", id]))
    }

    /// `update --resources - ID` with the LinuxResources json on stdin.
    pub fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        let args = os(&["update", "--resources", "-", id]);
        self.run("update", args, ChildStdio::default(), Some(resources_json))
            .map(drop)
    }

    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run("ps", os(&["ps", "--format", "json", id]), ChildStdio::default(), None)?;
        serde_json::from_slice::<Option<Vec<u32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|source| self.output_error("ps", source))
    }

    fn output_error(&self, command: &'static str, source: serde_json::Error) -> Error {
        Error::RuntimeOutput {
            binary: self.binary.clone(),
            command,
            source,
        }
    }

    fn run_simple(&self, command: &'static str, args: Vec<OsString>) -> Result<()> {
        self.run(command, args, ChildStdio::default(), None).map(drop)
    }

    /// Runs one runtime command to completion and returns its stdout. On failure the error is
    /// the newest error line the command added to the json log, else its stderr.
    fn run(
        &self,
        command: &'static str,
        args: Vec<OsString>,
        stdio: ChildStdio,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        // create and exec leave children holding their stdio: never wait for EOF on those.
        let capture = !matches!(command, "create" | "exec");
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.global_args()).args(&args);
        cmd.stdin(match (stdio.stdin, input) {
            (Some(fd), _) => Stdio::from(fd),
            (None, Some(_)) => Stdio::piped(),
            (None, None) => Stdio::null(),
        });
        let output = |fd: Option<OwnedFd>| match (fd, capture) {
            (Some(fd), _) => Stdio::from(fd),
            (None, true) => Stdio::piped(),
            (None, false) => Stdio::null(),
        };
        cmd.stdout(output(stdio.stdout));
        cmd.stderr(output(stdio.stderr));
        let spawn_err = |source| Error::RuntimeSpawn {
            binary: self.binary.clone(),
            source,
        };
        let subscription =
            monitor_subscribe(Topic::Pid).map_err(|_| spawn_err(std::io::Error::other("exit monitor unavailable")))?;
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            // A runtime that exits early closes its stdin; its exit status tells the story.
            let _ = stdin.write_all(input);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut out);
        }
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_end(&mut err);
        }
        let code = wait_pid(child.id() as i32, subscription);
        if code == 0 {
            return Ok(out);
        }
        let msg = self.failure_message(command, code, log_start, &err);
        // The RPC error carries it to the client; containerd's log gets it through ours.
        log::error!("{} {command} failed: {msg}", self.binary.display());
        Err(Error::Runtime { msg })
    }

    fn failure_message(&self, command: &str, code: i32, log_start: u64, stderr: &[u8]) -> String {
        let log = fs::read(&self.log).unwrap_or_default();
        let fresh = log.get(log_start as usize..).unwrap_or_default();
        if let Some(msg) = LogLine::last_error(&String::from_utf8_lossy(fresh)) {
            return msg;
        }
        let stderr = String::from_utf8_lossy(stderr);
        let stderr = stderr.trim();
        if !stderr.is_empty() {
            return stderr.to_string();
        }
        format!("{} {command} exited with status {code}", self.binary.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        Runtime {
            binary: "runc".into(),
            root: "/run/r".into(),
            log: "/b/log.json".into(),
            systemd_cgroup: false,
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn create_arguments_follow_go_runc() {
        let a = CreateArgs {
            bundle: Path::new("/b"),
            pid_file: Path::new("/b/init.pid"),
            console_socket: Some(Path::new("/tmp/pty.sock")),
            no_pivot: true,
            no_new_keyring: false,
        };
        let rt = runtime();
        let mut all = rt.global_args();
        all.extend(rt.create_args("c1", &a));
        assert_eq!(
            strings(all).join(" "),
            "--root /run/r --log /b/log.json --log-format json create --bundle /b \
             --pid-file /b/init.pid --console-socket /tmp/pty.sock --no-pivot c1"
        );
    }

    #[test]
    fn exec_kill_delete_arguments_follow_go_runc() {
        let a = ExecArgs {
            process_file: Path::new("/b/p.json"),
            pid_file: Path::new("/b/e.pid"),
            console_socket: None,
        };
        assert_eq!(
            strings(runtime().exec_args("c1", &a)).join(" "),
            "exec --process /b/p.json --detach --pid-file /b/e.pid c1"
        );
        assert_eq!(strings(Runtime::kill_args("c1", 9, true)).join(" "), "kill --all c1 9");
        assert_eq!(strings(Runtime::delete_args("c1", true)).join(" "), "delete --force c1");
    }
}
