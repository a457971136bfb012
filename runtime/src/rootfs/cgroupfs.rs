//! The `cgroup` mount of config.json: the container's view of the cgroup hierarchies.
//! With a cgroup namespace each hierarchy is mounted afresh (the kernel shows the namespace's
//! root); without one, the container's own cgroup directories are bind-mounted from the host.
//! v1 and hybrid hosts get a tmpfs at the destination with one directory per hierarchy.

use super::mounts::{remount, MountContext};
use super::options::MountOptions;
use super::resolve::{open_in_root, proc_fd_path, Create};
use crate::sys::{Context, SysError};
use nix::mount::{mount, MsFlags};
use std::path::{Path, PathBuf};

const HOST_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    pub v2: bool,
    /// The super options naming its controllers, e.g. "cpu" or "name=systemd".
    pub options: String,
}

/// The cgroup hierarchies in a mountinfo text (fields per proc(5)).
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Hierarchy> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let super_opts = right.nth(1)?;
    let v2 = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    let options = super_opts.split(',').filter(|o| *o != "rw" && *o != "ro").collect::<Vec<_>>().join(",");
    Some(Hierarchy { mount_point: PathBuf::from(mount_point), v2, options })
}

pub fn mount_cgroups(ctx: &MountContext, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    let all = hierarchies(&mountinfo);
    let unified_only = all.len() == 1 && all[0].v2 && all[0].mount_point == Path::new(HOST_CGROUP_ROOT);
    if unified_only {
        mount_hierarchy(ctx, &all[0], dest, opts)?;
    } else {
        let target = open_in_root(ctx.rootfs, dest, Create::Dir)?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), proc_fd_path(&target).as_str(), Some("tmpfs"), flags, Some("mode=755"))
            .ctx("mount tmpfs for cgroups on", dest.display())?;
        for h in all.iter().filter(|h| h.mount_point.starts_with(HOST_CGROUP_ROOT)) {
            let Ok(name) = h.mount_point.strip_prefix(HOST_CGROUP_ROOT) else { continue };
            mount_hierarchy(ctx, h, &dest.join(name), opts)?;
        }
        if opts.flags.contains(MsFlags::MS_RDONLY) {
            remount(ctx, dest, flags | MsFlags::MS_RDONLY)?;
        }
    }
    Ok(())
}

fn mount_hierarchy(ctx: &MountContext, h: &Hierarchy, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    let target = open_in_root(ctx.rootfs, dest, Create::Dir)?;
    let target_path = proc_fd_path(&target);
    let flags = opts.flags & !MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if ctx.new_cgroupns {
        let (fstype, data) = if h.v2 { ("cgroup2", None) } else { ("cgroup", Some(h.options.as_str())) };
        mount(Some(fstype), target_path.as_str(), Some(fstype), flags, data)
            .ctx(&format!("mount {fstype} ({}) on", h.options), dest.display())?;
    } else {
        let path = ctx
            .cgroup_paths
            .iter()
            .find(|(mount, _)| *mount == h.mount_point)
            .or(ctx.cgroup_paths.first())
            .map(|(_, path)| path.clone())
            .unwrap_or_default();
        let source = h.mount_point.join(path.strip_prefix("/").unwrap_or(&path));
        mount(Some(&source), target_path.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .ctx(&format!("bind mount {} on", source.display()), dest.display())?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        remount(ctx, dest, flags | MsFlags::MS_BIND | MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mountinfo_lists_v1_and_unified() {
        let text = "\
35 25 0:30 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 35 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
38 35 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let hs = hierarchies(text);
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0], Hierarchy { mount_point: "/sys/fs/cgroup/cpu".into(), v2: false, options: "cpu".into() });
        assert_eq!(hs[1].options, "name=systemd");
        assert!(hs[2].v2);
    }
}
