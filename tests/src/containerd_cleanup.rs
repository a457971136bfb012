//! Tearing a private containerd down without leaving anything behind, even when the runtime
//! under test is broken: every step has a time limit and the next step does not depend on
//! the previous one having worked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::containerd::Containerd;
use crate::leftovers::{processes_mentioning, remove_cgroup, subdir_names as dir_names, wait_until};

/// Where the v2 shims keep per-task bundles: <state>/io.containerd.runtime.v2.task/<ns>/<id>.
const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// Namespaces that a system containerd uses too: their shared directories are never removed.
const SHARED_NAMESPACES: [&str; 4] = ["default", "k8s.io", "moby", "buildkit"];

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- containerd log {} (tail) ---\n{}",
                self.address.display(),
                self.log_tail(200)
            );
        }
        let alive = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        // Shim sockets and on-disk tasks are read before the delete makes them disappear.
        let mut tasks = self.tasks_on_disk();
        let shim_sockets: Vec<PathBuf> = tasks.iter().filter_map(|(ns, id)| self.shim_socket(ns, id)).collect();
        if alive {
            tasks.extend(self.delete_all_tasks());
        }
        tasks.sort();
        tasks.dedup();
        self.stop_daemon();
        kill_processes_mentioning(&self.dir.path().display().to_string());
        for (ns, id) in &tasks {
            remove_cgroup(&format!("/{ns}/{id}"));
            remove_runtime_state(ns, id);
        }
        // `ctr run --rm` leaves the namespace's parent cgroup (/<ns>) behind, even when all
        // went well; try every namespace this instance has seen.
        let mut namespaces: Vec<&str> = tasks.iter().map(|(ns, _)| ns.as_str()).collect();
        namespaces.extend(self.namespaces_seen.iter().map(String::as_str));
        namespaces.push(&self.namespace);
        namespaces.sort();
        namespaces.dedup();
        for ns in namespaces {
            remove_namespace_dirs(ns);
        }
        for socket in shim_sockets {
            let _ = std::fs::remove_file(socket);
        }
        // The TempDir field then unmounts what is left below root/ and state/ and removes it.
    }
}

impl Containerd {
    /// Kill and delete every task and container in every namespace, through containerd;
    /// returns the (namespace, container id) pairs it found.
    fn delete_all_tasks(&mut self) -> Vec<(String, String)> {
        let short = Duration::from_secs(15);
        let saved = std::mem::replace(&mut self.ctr_timeout, short);
        let mut seen = Vec::new();
        self.namespaces_seen = lines(&self.ctr(&["namespaces", "ls", "-q"]).stdout);
        for ns in self.namespaces_seen.clone() {
            for id in lines(&self.ctr(&["-n", &ns, "tasks", "ls", "-q"]).stdout) {
                let _ = self.ctr(&["-n", &ns, "tasks", "kill", "-a", "-s", "SIGKILL", &id]);
                let _ = self.ctr(&["-n", &ns, "tasks", "delete", "-f", &id]);
            }
            for id in lines(&self.ctr(&["-n", &ns, "containers", "ls", "-q"]).stdout) {
                let _ = self.ctr(&["-n", &ns, "containers", "delete", &id]);
                seen.push((ns.clone(), id));
            }
        }
        self.ctr_timeout = saved;
        seen
    }

    /// (namespace, id) of every task whose bundle is still in the state dir: these are
    /// the ones that containerd (or a dead shim) could not clean up.
    fn tasks_on_disk(&self) -> Vec<(String, String)> {
        let mut tasks = Vec::new();
        for ns in dir_names(&self.state().join(TASK_DIR)) {
            for id in dir_names(&self.state().join(TASK_DIR).join(&ns)) {
                tasks.push((ns.clone(), id));
            }
        }
        tasks
    }

    /// The shim's socket file, from the `address` file it leaves in the task bundle
    /// ("unix:///run/containerd/s/<hash>"); a killed shim leaves the socket behind.
    fn shim_socket(&self, ns: &str, id: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.state().join(TASK_DIR).join(ns).join(id).join("address")).ok()?;
        let path = text.trim().strip_prefix("unix://")?;
        Some(PathBuf::from(path))
    }

    /// SIGTERM, then SIGKILL after 5 s.
    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill has no memory effects; pid is our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let exited = wait_until(Duration::from_secs(20), || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// SIGKILL every process whose command line mentions `needle` (the shims get our socket
/// path as `-address`), and wait up to 5 s for them to go.
fn kill_processes_mentioning(needle: &str) {
    for (pid, _) in processes_mentioning(needle) {
        // SAFETY: kill has no memory effects; the pid names one of our shims.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let gone = wait_until(Duration::from_secs(20), || {
        processes_mentioning(needle).iter().all(|(pid, _)| is_zombie(*pid))
    });
    if !gone {
        eprintln!("husk-e2e: processes still running: {:#?}", processes_mentioning(needle));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// The runtimes' own state for a task: the Go runc shim uses /run/containerd/runc/<ns>/<id>
/// (shared with a system containerd, hence the unique namespace), other shims similar dirs.
fn remove_runtime_state(ns: &str, id: &str) {
    for runtime in dir_names(Path::new("/run/containerd")) {
        let dir = Path::new("/run/containerd").join(runtime).join(ns).join(id);
        if dir.is_dir() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// rmdir the per-namespace cgroup parents and runtime state dirs: rmdir only removes
/// empty ones. The cgroup parents of shared namespaces (CRI's /k8s.io) are rmdir'ed too: a
/// system containerd's live containers keep theirs busy, and it recreates an empty one on
/// demand. Shared namespaces' runtime state dirs are left alone.
fn remove_namespace_dirs(ns: &str) {
    for dir in crate::cgroup_dirs(&format!("/{ns}")) {
        let _ = std::fs::remove_dir(dir);
    }
    if SHARED_NAMESPACES.contains(&ns) {
        return;
    }
    for runtime in dir_names(Path::new("/run/containerd")) {
        let _ = std::fs::remove_dir(Path::new("/run/containerd").join(runtime).join(ns));
    }
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// ctr's fifo dir (`/run/containerd/fifo/<random>/<id>-stdin|stdout|stderr`) for container
/// `id`: ctr removes it on the way out, a killed ctr cannot, and containerd never does. A test
/// that kills its client holds one of these; on drop (also on failure) the dirs go.
pub struct ClientFifos(pub String);

impl Drop for ClientFifos {
    fn drop(&mut self) {
        let prefix = format!("{}-", self.0);
        let Ok(dirs) = std::fs::read_dir("/run/containerd/fifo") else {
            return;
        };
        for dir in dirs.flatten().map(|e| e.path()) {
            let ours = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                })
                .unwrap_or(false);
            if ours {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}
