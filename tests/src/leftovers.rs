//! Finding (and removing) what a container can leave behind: processes, mounts, cgroups.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the asserts give things to go away: a killed process still needs reaping,
/// a shim unmounts after its task is deleted.
const SETTLE: Duration = Duration::from_secs(5);

/// Poll `done` every 20 ms until it returns true or `timeout` passes; true if it did.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes (other than this one) whose command line contains `needle`, as (pid, cmdline).
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline.trim_end().to_string()));
        }
    }
    found
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|m| m.point.starts_with(dir))
        .map(|m| m.point)
        .collect()
}

/// Directories for cgroup `path` (e.g. "/husk-test/abc") in every mounted hierarchy that
/// has one (v1 controllers, the v2 unified tree).
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    cgroup_mounts()
        .into_iter()
        .map(|root| root.join(rel))
        .filter(|dir| !rel.is_empty() && dir.is_dir())
        .collect()
}

/// Make cgroup `path` in every mounted hierarchy (where it is missing). A new v1 cpuset
/// cgroup starts with no cpus and mems: they are copied from the root, as runtimes do.
pub fn make_cgroup_dirs(path: &str) {
    let rel = path.trim_start_matches('/');
    for root in cgroup_mounts() {
        let dir = root.join(rel);
        if dir.is_dir() || std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(root.join(file)) {
                let _ = std::fs::write(dir.join(file), value.trim());
            }
        }
    }
}

/// Remove cgroup `path` in every hierarchy: thaw it, SIGKILL its processes, remove
/// its sub-cgroups and itself (a cgroup dir can only go with rmdir, once empty).
pub fn remove_cgroup(path: &str) {
    for dir in cgroup_dirs(path) {
        remove_cgroup_dir(&dir);
    }
}

fn remove_cgroup_dir(dir: &Path) {
    let mut subdirs = Vec::new();
    collect_dirs(dir, &mut subdirs);
    subdirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for sub in &subdirs {
        // Frozen processes cannot die, and a killed one still holds the cgroup until reaped.
        let _ = std::fs::write(sub.join("freezer.state"), "THAWED");
        let _ = std::fs::write(sub.join("cgroup.freeze"), "0");
        kill_cgroup_procs(sub);
    }
    for sub in &subdirs {
        let gone = wait_until(Duration::from_secs(10), || match std::fs::remove_dir(sub) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(_) => {
                kill_cgroup_procs(sub);
                false
            }
        });
        if !gone {
            eprintln!("husk-e2e: failed to remove cgroup {}", sub.display());
        }
    }
}

fn kill_cgroup_procs(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill has no memory effects; the pid comes from the test's own cgroup.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

/// Names of the directories directly in `dir` (empty when it cannot be read).
pub(crate) fn subdir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Panics unless, within a few seconds, no process mentions `needle` in its command line.
pub fn assert_no_processes_mentioning(needle: &str) {
    if !wait_until(SETTLE, || processes_mentioning(needle).is_empty()) {
        panic!(
            "processes mentioning {needle:?} are left: {:#?}",
            processes_mentioning(needle)
        );
    }
}

/// Panics unless, within a few seconds, nothing is mounted at or below `dir`.
pub fn assert_no_mounts_under(dir: &Path) {
    if !wait_until(SETTLE, || mounts_under(dir).is_empty()) {
        panic!("mounts under {} are left: {:#?}", dir.display(), mounts_under(dir));
    }
}

/// Panics unless, within a few seconds, cgroup `path` exists in no hierarchy.
pub fn assert_no_cgroup(path: &str) {
    if !wait_until(SETTLE, || cgroup_dirs(path).is_empty()) {
        panic!("cgroup {path} is left: {:#?}", cgroup_dirs(path));
    }
}

/// All three checks: no process mentions `id`, nothing is mounted below `dir`, and cgroup
/// `cgroups_path` is gone everywhere.
pub fn assert_no_leftovers(id: &str, dir: &Path, cgroups_path: &str) {
    assert_no_processes_mentioning(id);
    assert_no_mounts_under(dir);
    assert_no_cgroup(cgroups_path);
}

struct MountEntry {
    point: PathBuf,
    fstype: String,
}

fn mountinfo() -> Vec<MountEntry> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: the mount point is
/// field 5, the fs type follows the "-" separator.
fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let point = unescape_octal(fields.get(4)?);
    let sep = fields.iter().position(|f| *f == "-")?;
    let fstype = fields.get(sep + 1)?.to_string();
    Some(MountEntry {
        point: PathBuf::from(point),
        fstype,
    })
}

/// Mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Roots of the mounted cgroup hierarchies (v1 and v2), as mounted in this namespace.
pub(crate) fn cgroup_mounts() -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| m.point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_line_gives_point_and_type() {
        let m =
            parse_mountinfo_line("36 35 98:0 / /tmp/a\\040b rw,noatime shared:1 - overlay overlay rw").expect("parses");
        assert_eq!(m.point, PathBuf::from("/tmp/a b"));
        assert_eq!(m.fstype, "overlay");
    }

    #[test]
    fn cgroup_dirs_of_root_is_empty() {
        assert!(cgroup_dirs("/").is_empty());
    }
}
