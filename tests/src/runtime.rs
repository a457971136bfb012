//! A runc-compatible runtime binary (husk, runc, crun) with its own private state root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::{husk_bin, output_text, run_with_timeout, TempDir};

/// A runtime binary and a temp `--root` for its state, so tests never see each other's
/// containers. Drop force-deletes every container still in the root, then removes it.
#[derive(Debug)]
pub struct Runtime {
    bin: PathBuf,
    root: TempDir,
    timeout: Duration,
    /// Set on every command (e.g. husk's `HUSK_EXESEAL`), the cleanup's included.
    envs: Vec<(String, String)>,
}

impl Runtime {
    /// `bin` with a fresh state root; each command gets 30 s.
    pub fn new(bin: impl Into<PathBuf>) -> Runtime {
        Runtime {
            bin: bin.into(),
            root: TempDir::new("root"),
            timeout: Duration::from_secs(30),
            envs: Vec::new(),
        }
    }

    /// The husk binary from the target dir.
    pub fn husk() -> Runtime {
        Runtime::new(husk_bin())
    }

    /// Debian's runc, the reference the husk tests compare against.
    pub fn runc() -> Runtime {
        Runtime::new("/usr/sbin/runc")
    }

    /// husk and its control, runc, for a behaviour test that runs the same steps on both
    /// and asserts the same result.
    pub fn husk_and_runc() -> [Runtime; 2] {
        [Runtime::husk(), Runtime::runc()]
    }

    /// The binary's file name ("husk", "runc"), for assertion messages.
    pub fn name(&self) -> String {
        self.bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Runtime {
        self.timeout = timeout;
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Runtime {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `--root` state directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `<bin> --root <root> <args>`, to add stdio or env before running.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.root.path()).args(args);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Run with the time limit; stdout and stderr captured.
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.command(args), self.timeout)
    }

    /// [`Runtime::run`] that must succeed; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.bin.display(),
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `state <id>` parsed, or None when the command fails (no such container).
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.run(&["state", id]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Ids of the containers in the state root (its subdirectories).
    pub fn container_ids(&self) -> Vec<String> {
        crate::leftovers::subdir_names(self.root.path())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let quick = Duration::from_secs(10);
        for id in self.container_ids() {
            let out = run_with_timeout(&mut self.command(&["delete", "--force", &id]), quick);
            if !out.status.success() {
                eprintln!(
                    "husk-e2e: {} delete --force {id}: {}",
                    self.bin.display(),
                    output_text(&out)
                );
            }
        }
    }
}
