//! A private Docker daemon per test binary: Debian's docker.io (20.10) with its own data root,
//! exec root, socket, pid file, managed containerd (whose root and state dockerd puts under the
//! data and exec roots) and cgroup parent; its default network is a bridge this helper makes
//! (and removes), with iptables, masquerading and ip forwarding off, so it never touches the
//! host's firewall, docker0 or a system dockerd. husk is registered as the runtime `husk`
//! (`--add-runtime`), beside Docker's default `runc`. The busybox image is built locally and
//! `docker load`ed: nothing is pulled.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{busybox_image_bytes, husk_bin, output_text, remove_cgroup, run_with_timeout, unique_id, TempDir};

const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's CLI, the daemon's own version (another `docker` may come first on PATH).
const DOCKER: &str = "/usr/bin/docker";
/// What [`Dockerd::start`] loads the busybox image as.
pub const DOCKER_BUSYBOX: &str = "busybox:latest";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running private dockerd; its containers, its containerd, its mounts and its cgroup
/// parent go on drop. The daemon log is printed when the test is panicking.
#[derive(Debug)]
pub struct Dockerd {
    dir: TempDir,
    socket: PathBuf,
    cgroup_parent: String,
    child: Option<Child>,
    log_path: PathBuf,
    /// Dropped after the daemon has stopped (fields drop after `Drop::drop`).
    bridge: HostBridge,
}

/// A Linux bridge for dockerd's default network (`--bridge <name>`), removed on drop.
#[derive(Debug)]
pub struct HostBridge {
    pub name: String,
    /// "10.232.N": the /24 the containers get addresses in; the bridge has .1.
    pub subnet: String,
}

impl HostBridge {
    fn create() -> HostBridge {
        let pid = std::process::id();
        let name = format!("husk-dk{:x}", pid % 0xffff);
        let subnet = format!("10.232.{}", 20 + pid % 200);
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        for args in [
            vec!["link", "add", &name, "type", "bridge"],
            vec!["addr", "add", &format!("{subnet}.1/24"), "dev", &name],
            vec!["link", "set", &name, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", output_text(&out));
        }
        HostBridge { name, subnet }
    }
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).output();
    }
}

/// Whether this host can run the Docker tests (docker.io installed).
pub fn docker_available() -> bool {
    Path::new(DOCKERD).is_file() && Path::new(DOCKER).is_file()
}

impl Dockerd {
    /// Start dockerd, wait until it answers and load busybox.
    pub fn start() -> Dockerd {
        let dir = TempDir::new("docker");
        let cgroup_parent = format!("/{}", unique_id("husk-docker"));
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}\n").unwrap_or_else(|e| panic!("failed to write {}: {e}", config.display()));
        let log_path = dir.join("dockerd.log");
        let socket = dir.join("docker.sock");
        let bridge = HostBridge::create();
        let child = spawn_dockerd(dir.path(), &config, &socket, &cgroup_parent, &bridge.name, &log_path);
        let mut d = Dockerd {
            dir,
            socket,
            cgroup_parent,
            child: Some(child),
            log_path,
            bridge,
        };
        d.wait_ready();
        d.load_busybox();
        d
    }

    /// `docker <args>` against this daemon, with a time limit of two minutes.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.command(args), Duration::from_secs(120))
    }

    /// [`Dockerd::docker`], panicking with the output and the daemon log unless it exits 0;
    /// returns stdout, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n--- dockerd log ---\n{}",
            output_text(&out),
            self.log_tail(40)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_CONFIG", self.dir.join("client"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        cmd
    }

    /// The bridge of the default network.
    pub fn bridge(&self) -> &HostBridge {
        &self.bridge
    }

    /// The cgroup (relative to each hierarchy's root) Docker puts its containers under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("dockerd exited early ({status}):\n{}", self.log_tail(40));
                }
            }
            let out = run_with_timeout(&mut self.command(&["version"]), Duration::from_secs(10));
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("dockerd did not answer within 60 s:\n{}", self.log_tail(40));
    }

    fn load_busybox(&self) {
        let archive = self.dir.join("busybox-docker.tar");
        let bytes = docker_archive(DOCKER_BUSYBOX).unwrap_or_else(|e| panic!("failed to build the image: {e}"));
        std::fs::write(&archive, bytes).unwrap_or_else(|e| panic!("failed to write {}: {e}", archive.display()));
        let path = archive.display().to_string();
        self.docker_ok(&["load", "-i", &path]);
    }

    /// Remove every container, stop the daemon (which stops its containerd), then the cgroup
    /// parent; the temp dir unmounts what is left under it when it goes.
    fn shutdown(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // SAFETY: signals to the dockerd this helper started (its own process group).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: as above; the group holds only dockerd and its containerd.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        remove_cgroup(&self.cgroup_parent);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dockerd log (tail) ---\n{}", self.log_tail(60));
        }
        self.shutdown();
    }
}

fn spawn_dockerd(dir: &Path, config: &Path, socket: &Path, cgroup_parent: &str, bridge: &str, log: &Path) -> Child {
    let log_file = File::create(log).unwrap_or_else(|e| panic!("failed to create {}: {e}", log.display()));
    let err_file = log_file.try_clone().expect("clone log fd");
    let husk = husk_bin();
    let mut cmd = Command::new(DOCKERD);
    cmd.env("PATH", SYSTEM_PATH)
        .arg("--config-file")
        .arg(config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--add-runtime")
        .arg(format!("husk={}", husk.display()))
        .args(["--cgroup-parent", cgroup_parent])
        .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
        // The test's bridge, and no other network set-up on the host: no docker0, no NAT, no
        // iptables chains.
        .args(["--bridge", bridge, "--iptables=false", "--ip6tables=false"])
        .args(["--ip-masq=false", "--ip-forward=false", "--userland-proxy=false"])
        .args(["--log-level", "info", "--containerd-namespace", "moby-husk-e2e"])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .process_group(0);
    cmd.spawn().unwrap_or_else(|e| panic!("failed to start {DOCKERD}: {e}"))
}

/// The busybox OCI archive with a docker-archive `manifest.json` added: Docker 20.10's
/// `docker load` reads only that (OCI index.json support came in Docker 25).
pub fn docker_archive(reference: &str) -> std::io::Result<Vec<u8>> {
    let oci = busybox_image_bytes(&format!("docker.io/library/{reference}"))?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(oci.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.push((path, data));
    }
    let by_path: HashMap<&str, &[u8]> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let parse = |path: &str| -> std::io::Result<Value> {
        let data = by_path
            .get(path)
            .ok_or_else(|| std::io::Error::other(format!("{path} missing from the OCI archive")))?;
        serde_json::from_slice(data).map_err(std::io::Error::other)
    };
    let index = parse("index.json")?;
    let manifest = parse(&blob(index["manifests"][0]["digest"].as_str().unwrap_or_default()))?;
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| blob(l["digest"].as_str().unwrap_or_default()))
        .collect();
    let docker_manifest = json!([{
        "Config": blob(manifest["config"]["digest"].as_str().unwrap_or_default()),
        "RepoTags": [reference],
        "Layers": layers,
    }]);
    let mut out = tar::Builder::new(Vec::new());
    let extra = serde_json::to_vec(&docker_manifest).map_err(std::io::Error::other)?;
    for (path, data) in files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .chain([("manifest.json", &extra[..])])
    {
        let mut h = tar::Header::new_ustar();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
        } else {
            h.set_mode(0o644);
        }
        h.set_size(data.len() as u64);
        out.append_data(&mut h, path, data)?;
    }
    out.into_inner()
}
