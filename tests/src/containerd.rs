//! A private containerd per test: Debian's containerd with its own socket, root and state
//! in a temp dir, so it never touches a system containerd that may be running.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{output_text, run_with_input, run_with_timeout, target_dir, unique_id, TempDir};

/// The runtime name that makes containerd run `containerd-shim-husk-v2` from its PATH.
pub const HUSK_RUNTIME: &str = "io.containerd.husk.v2";
/// What [`Containerd::import_busybox`] names the image.
pub const BUSYBOX_REF: &str = "docker.io/library/busybox:latest";

const CONTAINERD: &str = "/usr/bin/containerd";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options for [`Containerd`]; `Containerd::builder().cri(true).start()`.
#[derive(Debug, Clone)]
pub struct ContainerdBuilder {
    pub(crate) cri: bool,
    pub(crate) cri_options: Vec<String>,
    pub(crate) extra_config: String,
    extra_path: Vec<PathBuf>,
    namespace: Option<String>,
    ctr_timeout: Duration,
    own_config: Option<String>,
    prepare_config: Option<fn(&Path)>,
}

impl ContainerdBuilder {
    /// Enable the CRI plugin (off by default: it is slow to start and needs CNI). It gets
    /// `restrict_oom_score_adj = true` (no CAP_SYS_RESOURCE here) and a runtime handler
    /// `husk` of type `io.containerd.husk.v2`.
    pub fn cri(mut self, enable: bool) -> Self {
        self.cri = enable;
        self
    }

    /// A `key = value` line for the `[plugins."io.containerd.grpc.v1.cri"]` table (a TOML
    /// table cannot be reopened by `extra_config`), e.g. `sandbox_image = "..."`.
    pub fn cri_option(mut self, line: &str) -> Self {
        self.cri_options.push(line.to_string());
        self
    }

    /// TOML appended to the generated config.toml (must not repeat a table it already has:
    /// the top-level keys, [grpc], [ttrpc], [debug], and with CRI the cri tables).
    pub fn extra_config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self
    }

    /// A directory put on containerd's PATH after target_dir() (where shims are found).
    pub fn extra_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.extra_path.push(dir.into());
        self
    }

    /// The namespace `ctr()` uses unless its args say `-n` (default: a unique one).
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    /// The time limit for each `ctr` command (default 60 s).
    pub fn ctr_timeout(mut self, timeout: Duration) -> Self {
        self.ctr_timeout = timeout;
        self
    }

    /// Use this config.toml instead of the generated one, `{dir}` replaced by the temp dir
    /// (it must put root, state, temp, the grpc/ttrpc sockets and the opt path under it).
    pub fn own_config(mut self, toml: &str) -> Self {
        self.own_config = Some(toml.to_string());
        self
    }

    /// Called with the config file's path after it is written, before containerd starts:
    /// e.g. an installer step that edits it.
    pub fn prepare_config(mut self, prepare: fn(&Path)) -> Self {
        self.prepare_config = Some(prepare);
        self
    }

    /// Write the config, start containerd and wait until it answers.
    pub fn start(self) -> Containerd {
        let dir = TempDir::new("ctrd");
        let config = match &self.own_config {
            Some(toml) => toml.replace("{dir}", &dir.path().display().to_string()),
            None => crate::containerd_config::render(dir.path(), &self),
        };
        let _ = std::fs::create_dir_all(dir.join("tmp"));
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("failed to write {}: {e}", config_path.display()));
        if let Some(prepare) = self.prepare_config {
            prepare(&config_path);
        }
        let path = std::iter::once(target_dir())
            .chain(self.extra_path.iter().cloned())
            .map(|p| p.display().to_string())
            .chain(std::iter::once(SYSTEM_PATH.to_string()))
            .collect::<Vec<_>>()
            .join(":");
        let log_path = dir.join("containerd.log");
        let child = spawn_containerd(&config_path, &log_path, &path);
        let mut ctrd = Containerd {
            address: dir.join("c.sock"),
            namespace: self.namespace.unwrap_or_else(|| unique_id("ns")),
            ctr_timeout: self.ctr_timeout,
            child: Some(child),
            log_path,
            image_archive: None,
            namespaces_seen: Vec::new(),
            dir,
        };
        ctrd.wait_ready();
        ctrd
    }
}

/// A running private containerd; everything it made is torn down on drop (see
/// `containerd_cleanup.rs`). Its log is printed when the test is panicking.
#[derive(Debug)]
pub struct Containerd {
    pub(crate) dir: TempDir,
    pub(crate) address: PathBuf,
    pub(crate) namespace: String,
    pub(crate) ctr_timeout: Duration,
    pub(crate) child: Option<Child>,
    pub(crate) namespaces_seen: Vec<String>,
    log_path: PathBuf,
    image_archive: Option<PathBuf>,
}

impl Containerd {
    pub fn builder() -> ContainerdBuilder {
        ContainerdBuilder {
            cri: false,
            cri_options: Vec::new(),
            extra_config: String::new(),
            extra_path: Vec::new(),
            namespace: None,
            ctr_timeout: Duration::from_secs(60),
            own_config: None,
            prepare_config: None,
        }
    }

    /// Start one with the defaults: no CRI, a unique namespace.
    pub fn start() -> Containerd {
        Containerd::builder().start()
    }

    /// The grpc socket (pass as `--address`).
    pub fn address(&self) -> &Path {
        &self.address
    }

    /// containerd's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("containerd is running")
    }

    /// The namespace `ctr()` uses by default.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's root, state and config live below this.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `ctr --address <sock> <args>` in [`Containerd::namespace`] (via CONTAINERD_NAMESPACE,
    /// so `-n other` in args wins), killed after the ctr timeout.
    pub fn ctr(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.ctr_command(args), self.ctr_timeout)
    }

    /// [`Containerd::ctr`] with `input` on ctr's stdin (what `ctr run` passes to the task).
    pub fn ctr_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(&mut self.ctr_command(args), Some(input), self.ctr_timeout)
    }

    /// The `ctr --address <sock> <args>` command, not yet run (to wrap it, e.g. in `script`
    /// for a tty).
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.address)
            .args(args)
            .env("CONTAINERD_NAMESPACE", &self.namespace)
            .env_remove("CONTAINERD_ADDRESS");
        cmd
    }

    /// [`Containerd::ctr`] that must succeed; returns stdout. On failure it panics with
    /// the command's output and the tail of containerd's log.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        if !out.status.success() {
            panic!(
                "ctr {args:?} failed: {}\n--- containerd log (tail) ---\n{}",
                output_text(&out),
                self.log_tail(60)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Import the busybox image as [`BUSYBOX_REF`] into `namespace` (the archive is built
    /// once per instance).
    pub fn import_busybox(&mut self, namespace: &str) {
        let archive = match &self.image_archive {
            Some(p) => p.clone(),
            None => {
                let p = self.dir.join("busybox.oci.tar");
                crate::busybox_image_archive(&p, BUSYBOX_REF)
                    .unwrap_or_else(|e| panic!("failed to write {}: {e}", p.display()));
                self.image_archive = Some(p.clone());
                p
            }
        };
        let archive = archive.to_string_lossy().into_owned();
        self.ctr_ok(&["-n", namespace, "images", "import", &archive]);
    }

    /// Everything containerd logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("containerd exited during start ({status}):\n{}", self.log());
                }
            }
            if std::os::unix::net::UnixStream::connect(&self.address).is_ok() {
                let out = self.ctr(&["version"]);
                if out.status.success() {
                    return;
                }
                last = output_text(&out);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("containerd did not answer within 30s: {last}\n{}", self.log());
    }
}

fn spawn_containerd(config: &Path, log: &Path, path: &str) -> Child {
    let log_file = File::create(log).unwrap_or_else(|e| panic!("failed to create {}: {e}", log.display()));
    let log_err = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("failed to dup log fd: {e}"));
    let mut cmd = Command::new(CONTAINERD);
    cmd.arg("--config")
        .arg(config)
        .arg("--log-level")
        .arg("debug")
        .env("PATH", path)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    // SAFETY: prctl is async-signal-safe. If the test process dies without running Drop
    // (SIGKILL, abort), the private containerd goes with it instead of lingering.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("failed to start {CONTAINERD}: {e}"))
}
