//! Control groups for one container on cgroup v1, v2 and hybrid hosts.
//!
//! A [`Cgroup`] is the list of hierarchies the container has a directory in: one per v1 mount
//! (including the controller-less `name=systemd` one, as runc) and the unified (v2) mount when
//! there is one. Each resource is applied in the hierarchy that has its controller: on a hybrid
//! host a controller bound to a v1 mount is written there, the unified mount carries only what
//! no v1 mount took (hugetlb on the hosts we run on). See docs/cgroups.md.
//!
//! Resource conversion is pure (`resources_v1`, `resources_v2`); this file and `v1`/`v2` only
//! touch the filesystem.

mod apply;
pub mod devices_bpf;
mod devices_bpf_sys;
mod error;
mod fs;
pub mod mountinfo;
pub mod resources;
pub mod resources_v1;
pub mod resources_v2;
mod stats;
pub mod systemd;
mod systemd_dbus;
pub mod systemd_props;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use error::CgroupError;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats, Stats, Throttling,
};
pub use v1::OomEventSource;
pub use v2::read_oom_kill_count;

use mountinfo::{CgroupMount, ProcCgroup};

const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies, one mount per controller (or group of controllers).
    V1,
    /// Only the unified hierarchy.
    V2,
    /// v1 hierarchies plus a cgroup2 mount carrying the controllers no v1 mount took.
    Hybrid,
}

/// The layout of this host, from /proc/self/mountinfo.
pub fn detect_layout() -> Result<Layout, CgroupError> {
    let text = fs::read(Path::new(MOUNTINFO), "mountinfo")?;
    mountinfo::layout_of(&mountinfo::parse_mountinfo(&text))
        .ok_or_else(|| CgroupError::NoCgroupMounts(MOUNTINFO.into()))
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// v1 controllers of the mount ("cpu", "name=systemd"); empty for the unified hierarchy.
    pub controllers: Vec<String>,
    pub unified: bool,
    pub mount: PathBuf,
    /// The container's cgroup, relative to `mount`.
    pub path: PathBuf,
    /// How many trailing components of `path` did not exist when this value was made: the
    /// directories `create` makes and `destroy` may remove (never a pre-existing parent).
    pub owned_depth: usize,
}

impl Hierarchy {
    /// The container's cgroup directory.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(&self.path)
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup across every hierarchy of the host. Serializable: husk stores it in
/// state.json at create and later commands reload it instead of recomputing paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    layout: Layout,
    hierarchies: Vec<Hierarchy>,
    /// The systemd unit holding the cgroup under --systemd-cgroup (see systemd.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    systemd: Option<systemd::SystemdUnit>,
}

/// Where the container's cgroup goes, from `linux.cgroupsPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// Below each hierarchy's root ("/a/b", or the default "/husk/<id>").
    Absolute(PathBuf),
    /// Below husk's own cgroup in each hierarchy, like runc.
    Relative(PathBuf),
}

/// Parses `linux.cgroupsPath`; `None` or "" gives "/husk/<container_id>".
pub fn parse_cgroups_path(cgroups_path: Option<&str>, container_id: &str) -> Result<CgroupsPath, CgroupError> {
    let raw = cgroups_path.filter(|p| !p.is_empty());
    let shown = raw.unwrap_or(container_id).to_string();
    let invalid = |reason| CgroupError::InvalidPath {
        path: shown.clone(),
        reason,
    };
    let Some(raw) = raw else {
        if container_id.is_empty() || container_id.contains('/') || container_id == "." || container_id == ".." {
            return Err(invalid("a container id must be a single path component"));
        }
        return Ok(CgroupsPath::Absolute(Path::new("husk").join(container_id)));
    };
    if raw.contains(':') {
        return Err(CgroupError::SystemdPath(raw.to_string()));
    }
    let mut clean = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid("'..' may not climb out of the hierarchy"))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(invalid("the path names no cgroup below the root"));
    }
    Ok(if raw.starts_with('/') {
        CgroupsPath::Absolute(clean)
    } else {
        CgroupsPath::Relative(clean)
    })
}

/// Counts the trailing components of `path` below `mount` that do not exist yet.
fn missing_depth(mount: &Path, path: &Path) -> usize {
    let mut depth = 0;
    let mut dir = mount.join(path);
    while depth < path.components().count() && !dir.exists() {
        depth += 1;
        dir.pop();
    }
    depth
}

/// Hierarchies found by directory name under a fake root: "cpu,cpuacct" is a mount of those
/// controllers, "systemd" the name=systemd one, "unified" the cgroup2 mount of a hybrid host.
fn mounts_under(root: &Path, layout: Layout) -> Result<Vec<CgroupMount>, CgroupError> {
    let unified = |p: &Path| CgroupMount {
        mount_point: p.to_path_buf(),
        root: "/".into(),
        controllers: vec![],
        unified: true,
    };
    if layout == Layout::V2 {
        return Ok(vec![unified(root)]);
    }
    let err = |source| CgroupError::Read {
        what: "cgroup root",
        path: root.to_path_buf(),
        source,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for path in names {
        // Symlinks such as cpu -> cpu,cpuacct name the same mount: keep the real directory.
        let Ok(real) = path.canonicalize() else { continue };
        let Some(name) = real.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if !real.is_dir() || mounts.iter().any(|m| m.mount_point == real) {
            continue;
        }
        if name == "unified" {
            if layout == Layout::Hybrid {
                mounts.push(unified(&real));
            }
            continue;
        }
        let controllers = name
            .split(',')
            .map(|c| {
                if c == "systemd" {
                    "name=systemd".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        mounts.push(CgroupMount {
            mount_point: real,
            root: "/".into(),
            controllers,
            unified: false,
        });
    }
    Ok(mounts)
}

impl Cgroup {
    /// The container's cgroup on this host. `cgroups_path` is `linux.cgroupsPath`: absolute is
    /// below each hierarchy's root, relative below husk's own cgroup (like runc); `None` is
    /// "/husk/<container_id>". Systemd paths ("slice:prefix:name") are refused: no systemd driver.
    pub fn for_container(cgroups_path: Option<&str>, container_id: &str) -> Result<Cgroup, CgroupError> {
        let path = parse_cgroups_path(cgroups_path, container_id)?;
        let text = fs::read(Path::new(MOUNTINFO), "mountinfo")?;
        let mounts = mountinfo::parse_mountinfo(&text);
        let layout = mountinfo::layout_of(&mounts).ok_or_else(|| CgroupError::NoCgroupMounts(MOUNTINFO.into()))?;
        let own = match path {
            CgroupsPath::Relative(_) => mountinfo::parse_proc_cgroup(&fs::read(Path::new(PROC_CGROUP), "own cgroup")?),
            CgroupsPath::Absolute(_) => Vec::new(),
        };
        Ok(Self::build(layout, &mounts, &path, &own))
    }

    /// Like `for_container`, on the tree under `root` (a fake cgroupfs in tests, or a real mount):
    /// for V2 `root` is the unified mount, for V1 and Hybrid the directory holding one directory
    /// per hierarchy (and "unified"). Relative paths are taken below each hierarchy's root.
    pub fn with_root(
        root: &Path,
        layout: Layout,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let path = parse_cgroups_path(cgroups_path, container_id)?;
        let mounts = mounts_under(root, layout)?;
        if mounts.is_empty() {
            return Err(CgroupError::NoCgroupMounts(root.to_path_buf()));
        }
        Ok(Self::build(layout, &mounts, &path, &[]))
    }

    fn build(layout: Layout, mounts: &[CgroupMount], path: &CgroupsPath, own: &[ProcCgroup]) -> Cgroup {
        let hierarchies = mounts
            .iter()
            .map(|m| {
                let path = match path {
                    CgroupsPath::Absolute(p) => p.clone(),
                    CgroupsPath::Relative(p) => {
                        PathBuf::from(mountinfo::own_path_in(m, own).unwrap_or_default()).join(p)
                    }
                };
                let owned_depth = missing_depth(&m.mount_point, &path);
                Hierarchy {
                    controllers: m.controllers.clone(),
                    unified: m.unified,
                    mount: m.mount_point.clone(),
                    path,
                    owned_depth,
                }
            })
            .collect();
        Cgroup {
            layout,
            hierarchies,
            systemd: None,
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The container's cgroup as a path from the hierarchy root ("/husk/<id>"), as the first
    /// hierarchy has it. With an absolute cgroupsPath every hierarchy has the same path; with a
    /// relative one they may differ (husk's own cgroup differs per hierarchy): use `path_in`.
    pub fn path(&self) -> PathBuf {
        Path::new("/").join(
            self.hierarchies
                .first()
                .map(|h| h.path.as_path())
                .unwrap_or(Path::new("")),
        )
    }

    /// The container's path from the root of the hierarchy mounted at `mount_point`.
    pub fn path_in(&self, mount_point: &Path) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.mount == mount_point)
            .map(|h| Path::new("/").join(&h.path))
    }

    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The v1 hierarchy that has `controller` ("memory", "name=systemd").
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| !h.unified && h.has(controller))
    }

    pub fn unified_hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.unified)
    }

    /// Controllers enabled for the container in the unified hierarchy (its cgroup.controllers;
    /// before `create`, the mount root's).
    pub fn unified_controllers(&self) -> Result<Vec<String>, CgroupError> {
        let Some(u) = self.unified_hierarchy() else {
            return Ok(Vec::new());
        };
        let leaf = u.dir().join("cgroup.controllers");
        let file = if leaf.exists() {
            leaf
        } else {
            u.mount.join("cgroup.controllers")
        };
        let text = fs::read_optional(&file, "cgroup.controllers")?.unwrap_or_default();
        Ok(text.split_whitespace().map(str::to_string).collect())
    }

    /// The container's directory for a controller, v1 first, then unified ("memory", "io").
    pub fn controller_dir(&self, v1_name: &str, v2_name: &str) -> Result<Option<(PathBuf, bool)>, CgroupError> {
        if let Some(h) = self.v1_hierarchy(v1_name) {
            return Ok(Some((h.dir(), false)));
        }
        match self.unified_hierarchy() {
            Some(u) if self.unified_controllers()?.iter().any(|c| c == v2_name) => Ok(Some((u.dir(), true))),
            _ => Ok(None),
        }
    }

    /// Makes the container's directory in every hierarchy. v1 cpuset levels get their parent's
    /// cpus and mems (a cpuset without them refuses tasks); in the unified hierarchy every
    /// ancestor enables its available controllers for its children. On error, call `destroy`.
    pub fn create(&self) -> Result<(), CgroupError> {
        self.hierarchies.iter().try_for_each(create_hierarchy)
    }

    /// Writes `resources` (at create, and for `husk update`). Each controller goes to the
    /// hierarchy that has it; a requested controller the host lacks is an error.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.set_systemd_properties(resources)?;
        apply::apply(self, resources)
    }

    /// Moves `pid` (a whole process) into the container's cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            fs::write(&h.dir().join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The hierarchy used to list and freeze processes: the freezer's, else any with processes.
    fn process_hierarchy(&self) -> Option<&Hierarchy> {
        if self.layout == Layout::V2 {
            return self.unified_hierarchy();
        }
        self.v1_hierarchy("freezer")
            .or_else(|| self.v1_hierarchy("pids"))
            .or_else(|| self.hierarchies.iter().find(|h| !h.unified))
    }

    /// Every process in the container's cgroup and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(h) = self.process_hierarchy() else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        collect_pids(&h.dir(), &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// v1 freezer if the host has one, else the unified hierarchy's cgroup.freeze.
    fn freezer(&self) -> Result<(PathBuf, bool), CgroupError> {
        if let Some(h) = self.v1_hierarchy("freezer") {
            return Ok((h.dir(), false));
        }
        self.unified_hierarchy()
            .map(|u| (u.dir(), true))
            .ok_or(CgroupError::MissingController {
                resource: "pause",
                controller: "freezer",
            })
    }

    /// Freezes every process and returns once the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (dir, false) => v1::freeze(&dir),
            (dir, true) => v2::set_frozen(&dir, true),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (dir, false) => v1::thaw(&dir),
            (dir, true) => v2::set_frozen(&dir, false),
        }
    }

    /// Before a create: refuse unified keys this host can never take, refuse a cgroup that
    /// already exists frozen (the init would sit in the freezer and create would never return),
    /// and warn when it already holds processes, as runc 1.1 does.
    pub fn check_before_create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        if let Some(res) = resources {
            apply::check_unified(self, res)?;
        }
        if let Ok((dir, _)) = self.freezer() {
            if dir.is_dir() && self.is_frozen()? {
                return Err(CgroupError::UnexpectedlyFrozen(dir));
            }
        }
        match self.pids() {
            // On stderr, as husk's other warnings (and runc's, which logrus prints there).
            Ok(pids) if !pids.is_empty() => eprintln!(
                "husk: warning: container's cgroup is not empty: {} process(es) found",
                pids.len()
            ),
            _ => {}
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            (dir, false) => v1::is_frozen(&dir),
            (dir, true) => v2::is_frozen(&dir),
        }
    }

    /// Removes the container's cgroup everywhere: nested cgroups deepest first, then the
    /// parents `create` made while they are empty. Missing directories are fine; EBUSY (a task
    /// still exiting) is retried briefly.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = self.stop_systemd_unit().err();
        for h in &self.hierarchies {
            if let Err(e) = destroy_hierarchy(h) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether the container's directory exists in every hierarchy.
    pub fn exists(&self) -> bool {
        self.hierarchies.iter().all(|h| h.dir().is_dir())
    }

    /// Usage figures (cpu, memory, pids, block I/O, hugetlb) from whichever hierarchy has each.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        stats::collect(self)
    }

    /// What to watch for OOM kills: a v1 eventfd registered on memory.oom_control, or the v2
    /// memory.events file. See [`OomEventSource`].
    pub fn oom_event_source(&self) -> Result<OomEventSource, CgroupError> {
        match self.controller_dir("memory", "memory")? {
            Some((dir, false)) => v1::register_oom_eventfd(&dir),
            Some((dir, true)) => Ok(OomEventSource::MemoryEvents(dir.join("memory.events"))),
            None => Err(CgroupError::MissingController {
                resource: "oom events",
                controller: "memory",
            }),
        }
    }
}

/// Makes the container's directory in one hierarchy, level by level. A shared parent can vanish
/// midway when another container's `destroy` removes it as empty: mkdir below it fails with
/// ENOENT, its files with ENODEV once rmdir has begun. Start over then.
fn create_hierarchy(h: &Hierarchy) -> Result<(), CgroupError> {
    let mut attempts = 0;
    loop {
        match create_levels(h) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) && attempts < 5 => attempts += 1,
            other => return other,
        }
    }
}

fn create_levels(h: &Hierarchy) -> Result<(), CgroupError> {
    let mut dir = h.mount.clone();
    let levels = h.path.components().count();
    for (level, component) in h.path.components().enumerate() {
        let parent = dir.clone();
        dir.push(component);
        if h.unified {
            v2::enable_controllers(&parent)?;
        }
        match std::fs::create_dir(&dir) {
            Ok(()) if level + 1 < levels => mark_made_parent(&h.mount, &dir),
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Mkdir { path: dir, source }),
        }
        if h.has("cpuset") {
            v1::inherit_cpuset(&parent, &dir)?;
        }
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                what: "cgroup directory",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    Ok(entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let Some(text) = fs::read_optional(&dir.join("cgroup.procs"), "cgroup.procs")? else {
        return Ok(());
    };
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for sub in subdirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

/// rmdir with a short retry on EBUSY: a task that was killed leaves its cgroup only once it has
/// fully exited (and, on v2, been reaped).
fn rmdir_retrying(dir: &Path) -> Result<(), CgroupError> {
    let mut delay = std::time::Duration::from_millis(5);
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 9 => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(500));
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    rmdir_retrying(dir)
}

fn destroy_hierarchy(h: &Hierarchy) -> Result<(), CgroupError> {
    let mut dir = h.dir();
    remove_tree(&dir)?;
    // Parents go too when they are empty and husk made them: this container's create
    // (owned_depth) or any other husk create (the marker). Decided now, not at create time:
    // with parallel creates under a shared parent, the one that made it is not always the last
    // to be deleted.
    for level in 1..h.path.components().count() {
        dir.pop();
        if level >= h.owned_depth && !made_parent_marker(&h.mount, &dir).exists() {
            break;
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT)) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY | libc::EEXIST)) => break,
            Err(source) => return Err(CgroupError::Rmdir { path: dir, source }),
        }
        let _ = std::fs::remove_file(made_parent_marker(&h.mount, &dir));
    }
    Ok(())
}

/// Where husk notes the parent cgroups it made (one empty file per directory, named by its
/// escaped path): cgroupfs holds no files of ours, and the state dirs of different roots or
/// of deleted containers cannot tell.
const MADE_PARENTS_DIR: &str = "/run/husk/cgroup-parents";

/// The notes of a real cgroup filesystem go to /run; those of a fake tree (unit tests) stay
/// beside its hierarchies, and go with it.
fn made_parents_dir(mount: &Path) -> PathBuf {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    let on_cgroupfs = statfs(mount).is_ok_and(|st| {
        let kind = st.filesystem_type();
        kind == CGROUP_SUPER_MAGIC || kind == CGROUP2_SUPER_MAGIC
    });
    match (on_cgroupfs, mount.parent()) {
        (false, Some(tree)) => tree.join(".husk-cgroup-parents"),
        _ => PathBuf::from(MADE_PARENTS_DIR),
    }
}

fn made_parent_marker(mount: &Path, dir: &Path) -> PathBuf {
    let name = dir.display().to_string().replace('%', "%25").replace('/', "%2F");
    made_parents_dir(mount).join(name)
}

/// Best effort: without the note the parent is only removed by the container that made it.
fn mark_made_parent(mount: &Path, dir: &Path) {
    let marker = made_parent_marker(mount, dir);
    if marker.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok()) {
        let _ = std::fs::File::create(marker);
    }
}

#[cfg(test)]
mod resources_zero_tests;
#[cfg(test)]
mod tests;
