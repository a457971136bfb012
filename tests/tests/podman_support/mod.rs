//! A private podman for the tests: its own storage, run and temp dirs, a containers.conf of
//! its own, and one OCI runtime binary (husk, or runc as the control).
//!
//! Podman 4.3 from Debian (with conmon). What it shares with the host, because it cannot be
//! told otherwise: the runtime's default state root (/run/husk, /run/runc: podman does not
//! pass `--runtime-flag root=` to the `delete` its cleanup process runs), the cgroup parent
//! /libpod_parent (conmon moves itself to /libpod_parent/conmon) and
//! /var/lib/containers/cache (the image blob-info cache). Every container is removed by
//! id from all three on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use husk_e2e::{
    busybox_image_archive, cgroup_dirs, husk_bin, output_text, processes_mentioning, remove_cgroup, run_with_input,
    wait_until, TempDir,
};

pub const IMAGE: &str = "docker.io/library/busybox:latest";
const TIMEOUT: Duration = Duration::from_secs(60);
/// Podman's cgroup parent with the cgroupfs manager: containers go to libpod-<id> below it.
const CGROUP_PARENT: &str = "/libpod_parent";

/// How the runtime under test is known to podman and where it keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oci {
    Husk,
    /// Debian's runc: the control, so a failure can be told from a harness problem. (crun
    /// refuses this hybrid cgroup host.)
    Runc,
}

impl Oci {
    fn bin(self) -> PathBuf {
        match self {
            Oci::Husk => husk_bin(),
            Oci::Runc => PathBuf::from("/usr/sbin/runc"),
        }
    }

    /// The runtime's default `--root`, which podman leaves it.
    pub fn state_root(self) -> &'static Path {
        match self {
            Oci::Husk => Path::new("/run/husk"),
            Oci::Runc => Path::new("/run/runc"),
        }
    }
}

/// A podman with everything below one temp dir, the busybox image loaded.
pub struct Podman {
    oci: Oci,
    runtime: PathBuf,
    /// The runtime is named in containers.conf (as an operator sets it up), not by --runtime.
    by_name: bool,
    dir: TempDir,
}

impl Podman {
    /// A podman that is given the runtime's path with --runtime on every command.
    pub fn new(oci: Oci) -> Podman {
        Podman::build(oci, false)
    }

    /// A podman whose containers.conf makes husk the default runtime: `[engine] runtime =
    /// "husk"` and its path in `[engine.runtimes]`.
    pub fn husk_by_name() -> Podman {
        Podman::build(Oci::Husk, true)
    }

    fn build(oci: Oci, by_name: bool) -> Podman {
        assert!(
            Path::new("/usr/bin/podman").is_file(),
            "podman is not installed: apt-get install podman (tests/run.sh does)"
        );
        let podman = Podman {
            oci,
            runtime: oci.bin(),
            by_name,
            dir: TempDir::new("podman"),
        };
        podman.write_conf();
        let archive = podman.dir.join("busybox.oci.tar");
        busybox_image_archive(&archive, IMAGE).expect("busybox archive written");
        let archive = archive.to_string_lossy().into_owned();
        let loaded = podman.ok(&["load", "-i", &archive]);
        assert!(loaded.contains(IMAGE), "podman load said: {loaded}");
        podman
    }

    pub fn oci(&self) -> Oci {
        self.oci
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Settings that have no command-line flag, and the ones every podman command (also
    /// the cleanup process conmon runs on exit) must agree on.
    fn write_conf(&self) {
        let d = self.dir.path().display();
        let (default, table) = if self.by_name {
            let path = self.runtime.display();
            (
                "runtime = \"husk\"\n",
                format!("[engine.runtimes]\nhusk = [\"{path}\"]\n"),
            )
        } else {
            ("", String::new())
        };
        // Podman's default rlimits (nofile and nproc 1048576) would raise the hard limits,
        // which needs CAP_SYS_RESOURCE: missing from this machine's bounding set, so runc
        // fails on them too. The file lock type keeps the locks in our tmpdir instead of
        // the host-wide /dev/shm/libpod_lock; "none" networking needs no netavark or CNI.
        let conf = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             log_driver = \"k8s-file\"\n\
             netns = \"none\"\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             lock_type = \"file\"\n\
             {default}\
             [network]\n\
             network_config_dir = \"{d}/networks\"\n\
             {table}"
        );
        std::fs::write(self.conf_path(), conf).expect("containers.conf written");
        // A host storage.conf (none on this machine) must not add options to ours.
        let storage = format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n");
        std::fs::write(self.dir.join("storage.conf"), storage).expect("storage.conf written");
    }

    /// The environment every podman command needs: our containers.conf and storage.conf.
    pub fn envs(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("CONTAINERS_CONF", self.conf_path()),
            ("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf")),
        ]
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }

    /// The flags before the subcommand that keep this podman apart from any other.
    pub fn global_args(&self) -> Vec<String> {
        let d = self.dir.path().display();
        let runtime = self.runtime.display();
        [
            format!("--root={d}/root"),
            format!("--runroot={d}/runroot"),
            format!("--tmpdir={d}/tmp"),
            "--storage-driver=overlay".to_string(),
            "--cgroup-manager=cgroupfs".to_string(),
            "--events-backend=file".to_string(),
        ]
        .into_iter()
        .chain((!self.by_name).then(|| format!("--runtime={runtime}")))
        .collect()
    }

    /// `podman <global_args> <args>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.envs(self.envs()).args(self.global_args()).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, None)
    }

    pub fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        run_with_input(&mut self.command(args), input, TIMEOUT)
    }

    /// Stdout of a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} under {:?}: {}",
            self.oci,
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run -d --name <name> <args>` (options, image, command) and return the full id.
    pub fn run_detached(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        self.ok(&all).trim().to_string()
    }

    /// A field of `podman inspect`, as Go template text (e.g. "{{.State.Status}}").
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "--format", template, name]).trim().to_string()
    }

    /// Panics unless nothing of container `id` is left on the host: its processes (conmon
    /// names it), its cgroup, its runtime state dir, its mounts.
    pub fn assert_gone(&self, id: &str) {
        let cgroup = format!("{CGROUP_PARENT}/libpod-{id}");
        let state = self.oci.state_root().join(id);
        let gone = wait_until(Duration::from_secs(10), || {
            processes_mentioning(id).is_empty()
                && cgroup_dirs(&cgroup).is_empty()
                && !state.exists()
                && !mounts_mentioning(self.dir(), id)
        });
        assert!(
            gone,
            "container {id} under {:?} left: processes {:#?}, cgroups {:#?}, state dir {}: {}, mounts: {}",
            self.oci,
            processes_mentioning(id),
            cgroup_dirs(&cgroup),
            state.display(),
            state.exists(),
            mounts_mentioning(self.dir(), id)
        );
    }

    /// Full ids that `podman <list...> -q --no-trunc` prints.
    fn ids(&self, list: &[&str]) -> Vec<String> {
        let mut args = list.to_vec();
        args.extend(["-q", "--no-trunc"]);
        let out = self.run(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

fn mounts_mentioning(dir: &Path, id: &str) -> bool {
    husk_e2e::mounts_under(dir)
        .iter()
        .any(|m| m.to_string_lossy().contains(id))
}

impl Drop for Podman {
    fn drop(&mut self) {
        let ids = self.ids(&["ps", "-a"]);
        let pods = self.ids(&["pod", "ps"]);
        for rm in [&["pod", "rm", "-af", "-t", "0"][..], &["rm", "-af", "-t", "0"]] {
            let out = self.run(rm);
            if !out.status.success() {
                eprintln!("husk-e2e: podman {rm:?}: {}", output_text(&out));
            }
        }
        // conmon and podman's cleanup processes name our dir in their command lines.
        let dir = self.dir.path().to_string_lossy().into_owned();
        for (pid, _) in processes_mentioning(&dir) {
            // SAFETY: kill has no memory effects; the pid names a process of this test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_until(Duration::from_secs(20), || processes_mentioning(&dir).is_empty());
        for id in &ids {
            remove_cgroup(&format!("{CGROUP_PARENT}/libpod-{id}"));
            let state = self.oci.state_root().join(id);
            if state.exists() {
                eprintln!("husk-e2e: removing leftover {}", state.display());
                let _ = std::fs::remove_dir_all(&state);
            }
        }
        // A pod's cgroup holds its containers' cgroups.
        for pod in &pods {
            remove_cgroup(&format!("{CGROUP_PARENT}/{pod}"));
        }
        // TempDir's drop unmounts the overlay layers and podman's shm mounts below it.
    }
}

/// Text of an output's stdout, for asserts.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `scenario` against a fresh podman with husk and, in a second test, with runc.
macro_rules! under_husk_and_runc {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::*;

            #[test]
            fn husk() {
                $scenario(&Podman::new(Oci::Husk));
            }

            #[test]
            fn runc() {
                $scenario(&Podman::new(Oci::Runc));
            }
        }
    };
}
