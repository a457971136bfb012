//! OCI bundles: a temp dir with a busybox rootfs and a config.json.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::{busybox_rootfs, default_spec, leftovers, unique_id, TempDir};

/// A bundle in a temp dir: `rootfs/` (busybox) and `config.json` (runc's default spec,
/// see [`default_spec`]) with its own cgroupsPath `/husk-test/<id>`. On drop the cgroup is
/// removed (its processes killed) and the directory unmounted and removed.
#[derive(Debug)]
pub struct Bundle {
    dir: TempDir,
    id: String,
    config: Value,
}

/// The bundles alive in this test process. Their shared parent cgroup `/husk-test` is made
/// before the first and removed after the last, under this lock. It used to be removed
/// whenever it was empty, by a bundle's drop or by husk's delete (husk removes parents it
/// made): in the instant between runc's mkdir of `/husk-test` and of `/husk-test/<id>`, in
/// another thread, so runc failed "mkdir /sys/fs/cgroup/cpuset/husk-test/<id>: no such file
/// or directory" (CI, once). Made here first, it is no runtime's to remove.
static LIVE_BUNDLES: Mutex<usize> = Mutex::new(0);
const PARENT_CGROUP: &str = "/husk-test";

fn bundle_born() {
    let mut live = LIVE_BUNDLES.lock().unwrap_or_else(|e| e.into_inner());
    if *live == 0 {
        leftovers::make_cgroup_dirs(PARENT_CGROUP);
    }
    *live += 1;
}

fn bundle_gone() {
    let mut live = LIVE_BUNDLES.lock().unwrap_or_else(|e| e.into_inner());
    *live = live.saturating_sub(1);
    if *live == 0 {
        // rmdir fails harmlessly while a cgroup made outside a Bundle is still in it.
        for dir in leftovers::cgroup_dirs(PARENT_CGROUP) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Bundle {
    /// A bundle whose process runs `args`; config.json is already written.
    pub fn new(args: &[&str]) -> Bundle {
        bundle_born();
        let id = unique_id("b");
        let dir = TempDir::new("bundle");
        busybox_rootfs(&dir.join("rootfs"))
            .unwrap_or_else(|e| panic!("failed to write busybox rootfs in {}: {e}", dir.path().display()));
        let config = default_spec(args, &format!("/husk-test/{id}"));
        let bundle = Bundle { dir, id, config };
        bundle.save();
        bundle
    }

    /// A fresh id for the bundle, also the last element of its cgroupsPath: a handy
    /// container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The config to change; call [`Bundle::save`] afterwards.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// Write config.json.
    pub fn save(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("a serde_json::Value serializes");
        let path = self.config_path();
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The cgroupsPath in the config (what the test set, or `/husk-test/<id>`).
    pub fn cgroups_path(&self) -> String {
        self.config
            .pointer("/linux/cgroupsPath")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Keep the directory after the test (printed on drop), for debugging.
    pub fn keep(&mut self) {
        self.dir.keep();
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let cgroup = self.cgroups_path();
        // Only absolute paths name a cgroup directly; anything else (systemd's
        // "slice:prefix:name") is the runtime's to clean up.
        if cgroup.starts_with('/') && cgroup.len() > 1 {
            leftovers::remove_cgroup(&cgroup);
        }
        bundle_gone();
    }
}
