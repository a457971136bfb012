//! Pure parsers for /proc/self/mountinfo and /proc/self/cgroup: where each cgroup hierarchy is
//! mounted, which controllers it carries, and where this process sits in it.

use std::path::PathBuf;

use super::Layout;

/// v1 controllers the kernel knows; every other super option of a cgroup mount (rw, relatime,
/// clone_children, release_agent=..., ...) is a mount flag, not a controller.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// A cgroup filesystem found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mount_point: PathBuf,
    /// The mount's root inside its hierarchy (field 4): "/" unless bind-mounted or seen from a
    /// cgroup namespace. /proc/self/cgroup paths are relative to the hierarchy, so this prefix is
    /// stripped from them to find the directory below `mount_point`.
    pub root: String,
    /// v1 controllers, with named hierarchies as "name=systemd"; empty for cgroup2.
    pub controllers: Vec<String>,
    pub unified: bool,
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Empty for the unified hierarchy ("0::/path").
    pub controllers: Vec<String>,
    pub path: String,
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
pub(crate) fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line; `None` for non-cgroup or malformed lines.
fn parse_mountinfo_line(line: &str) -> Option<CgroupMount> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    let unified = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    let controllers = if unified {
        Vec::new()
    } else {
        super_options
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_string)
            .collect()
    };
    Some(CgroupMount {
        mount_point: PathBuf::from(unescape_octal(mount_point)),
        root: unescape_octal(root),
        controllers,
        unified,
    })
}

/// All cgroup mounts, first mount of each hierarchy only (a hierarchy bind-mounted twice would
/// otherwise be created and joined twice).
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for mount in text.lines().filter_map(parse_mountinfo_line) {
        let seen = mounts
            .iter()
            .any(|m| m.unified == mount.unified && m.controllers == mount.controllers);
        if !seen && (mount.unified || !mount.controllers.is_empty()) {
            mounts.push(mount);
        }
    }
    mounts
}

/// v1 only, v2 only, or both (systemd's "hybrid": v1 controllers plus a cgroup2 mount).
pub fn layout_of(mounts: &[CgroupMount]) -> Option<Layout> {
    let v1 = mounts.iter().any(|m| !m.unified);
    let v2 = mounts.iter().any(|m| m.unified);
    match (v1, v2) {
        (true, true) => Some(Layout::Hybrid),
        (true, false) => Some(Layout::V1),
        (false, true) => Some(Layout::V2),
        (false, false) => None,
    }
}

/// Parses /proc/<pid>/cgroup ("id:controllers:path" per line).
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?.to_string();
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some(ProcCgroup {
                hierarchy_id,
                controllers,
                path,
            })
        })
        .collect()
}

/// This process's directory in `mount`, relative to the mount point ("" for the mount's root).
pub fn own_path_in(mount: &CgroupMount, entries: &[ProcCgroup]) -> Option<String> {
    let entry = entries.iter().find(|e| {
        if mount.unified {
            e.hierarchy_id == 0 && e.controllers.is_empty()
        } else {
            !e.controllers.is_empty() && e.controllers == mount.controllers
        }
    })?;
    let path = entry.path.strip_prefix(mount.root.as_str()).unwrap_or(&entry.path);
    Some(path.trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:32 /sub /mnt/mem\\040dup rw shared:4 - cgroup cgroup rw,memory
";

    #[test]
    fn mountinfo_hybrid_lists_each_hierarchy_once_with_its_controllers() {
        let mounts = parse_mountinfo(HYBRID);
        let summary: Vec<(String, Vec<String>, bool)> = mounts
            .iter()
            .map(|m| (m.mount_point.display().to_string(), m.controllers.clone(), m.unified))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                ("/sys/fs/cgroup/cpu".into(), s(&["cpu"]), false),
                ("/sys/fs/cgroup/cpuacct".into(), s(&["cpuacct"]), false),
                ("/sys/fs/cgroup/memory".into(), s(&["memory"]), false),
                ("/sys/fs/cgroup/systemd".into(), s(&["name=systemd"]), false),
                ("/sys/fs/cgroup/unified".into(), vec![], true),
            ]
        );
        assert_eq!(layout_of(&mounts), Some(Layout::Hybrid));
    }

    #[test]
    fn mountinfo_layouts_v1_v2_and_none() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(layout_of(&parse_mountinfo(v2)), Some(Layout::V2));
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let mounts = parse_mountinfo(v1);
        assert_eq!(mounts[0].controllers, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert_eq!(layout_of(&mounts), Some(Layout::V1));
        assert_eq!(layout_of(&parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda rw\n")), None);
    }

    #[test]
    fn mountinfo_unescapes_octal_mount_points() {
        let line = "99 31 0:32 /a\\040b /mnt/x\\134y rw - cgroup cgroup rw,pids\n";
        let m = &parse_mountinfo(line)[0];
        assert_eq!(m.mount_point, PathBuf::from("/mnt/x\\y"));
        assert_eq!(m.root, "/a b");
    }

    #[test]
    fn proc_cgroup_gives_own_path_per_hierarchy() {
        let text = "9:name=systemd:/user.slice\n4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/init.scope\n";
        let entries = parse_proc_cgroup(text);
        assert_eq!(entries.len(), 4);
        let mount = |controllers: &[&str], unified: bool, root: &str| CgroupMount {
            mount_point: PathBuf::from("/x"),
            root: root.into(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            unified,
        };
        assert_eq!(
            own_path_in(&mount(&["memory"], false, "/"), &entries).as_deref(),
            Some("process_api/abc")
        );
        assert_eq!(
            own_path_in(&mount(&["cpu", "cpuacct"], false, "/"), &entries).as_deref(),
            Some("")
        );
        assert_eq!(
            own_path_in(&mount(&[], true, "/"), &entries).as_deref(),
            Some("init.scope")
        );
        assert_eq!(
            own_path_in(&mount(&["memory"], false, "/process_api"), &entries).as_deref(),
            Some("abc")
        );
        assert_eq!(own_path_in(&mount(&["pids"], false, "/"), &entries), None);
    }
}
