//! The `cgroup` mount of config.json: the container's view of the cgroup hierarchies.
//! With a cgroup namespace each hierarchy is mounted afresh (the kernel shows the namespace's
//! root); without one, the container's own cgroup directories are bind-mounted from the host.
//! v1 and hybrid hosts get a tmpfs at the destination with one directory per v1 hierarchy.

use super::mounts::{remount, MountContext};
use super::options::MountOptions;
use super::resolve::{open_in_root, proc_fd_path, Create};
use crate::cgroups::mountinfo::{parse_mountinfo, CgroupMount};
use crate::sys::{Context, SysError};
use nix::mount::{mount, MsFlags};
use std::os::fd::AsFd;
use std::path::Path;

const HOST_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The data string that mounts this hierarchy afresh: its controllers ("cpu", "name=systemd").
fn mount_data(h: &CgroupMount) -> String {
    h.controllers.join(",")
}

pub fn mount_cgroups(ctx: &MountContext, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    // The host's hierarchies, parsed by the cgroup manager's own mountinfo reader.
    let all = parse_mountinfo(ctx.host_mountinfo);
    let unified_only = all.len() == 1 && all[0].unified && all[0].mount_point == Path::new(HOST_CGROUP_ROOT);
    if unified_only {
        mount_hierarchy(ctx, &all[0], dest, opts)?;
    } else {
        let target = open_in_root(ctx.rootfs, dest, Create::Dir)?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some("tmpfs"),
            proc_fd_path(&target).as_str(),
            Some("tmpfs"),
            flags,
            Some("mode=755"),
        )
        .ctx("mount tmpfs for cgroups on", dest.display())?;
        // v1 hierarchies only, as runc 1.1.5 (libcontainer/rootfs_linux.go, getCgroupMounts:
        // cgroups.GetCgroupMounts lists "cgroup" filesystems): on a hybrid host the container sees
        // no /sys/fs/cgroup/unified, so tools in it (systemd among them) find the legacy layout.
        let v1 = all.iter().filter(|h| !h.unified);
        for h in v1.filter(|h| h.mount_point.starts_with(HOST_CGROUP_ROOT)) {
            let Ok(name) = h.mount_point.strip_prefix(HOST_CGROUP_ROOT) else {
                continue;
            };
            mount_hierarchy(ctx, h, &dest.join(name), opts)?;
        }
        if opts.flags.contains(MsFlags::MS_RDONLY) {
            remount(ctx, dest, flags | MsFlags::MS_RDONLY)?;
        }
    }
    Ok(())
}

fn mount_hierarchy(ctx: &MountContext, h: &CgroupMount, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    let target = open_in_root(ctx.rootfs, dest, Create::Dir)?;
    let target_path = proc_fd_path(&target);
    let flags = opts.flags & !MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let readonly = opts.flags & MsFlags::MS_RDONLY;
    if ctx.new_cgroupns {
        let data = mount_data(h);
        let (fstype, data) = if h.unified {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(data.as_str()))
        };
        // Read-only at once: no remount that would resolve the path a second time.
        mount(Some(fstype), target_path.as_str(), Some(fstype), flags | readonly, data)
            .ctx(&format!("mount {fstype} ({}) on", mount_data(h)), dest.display())?;
        return Ok(());
    }
    let path = ctx
        .cgroup_paths
        .iter()
        .find(|(mount, _)| *mount == h.mount_point)
        .or(ctx.cgroup_paths.first())
        .map(|(_, path)| path.clone())
        .unwrap_or_default();
    let source = h.mount_point.join(path.strip_prefix("/").unwrap_or(&path));
    let tree = super::detached::clone_tree(&source, true)
        .map_err(|e| SysError::new(format!("bind mount {} on", source.display()), dest.display(), e.errno))?;
    super::detached::attach(tree.as_fd(), target.as_fd(), dest)?;
    if !readonly.is_empty() {
        super::mounts::remount_fd(tree.as_fd(), dest, flags | MsFlags::MS_BIND | readonly)?;
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
        let hs = parse_mountinfo(text);
        assert_eq!(hs.len(), 3);
        assert_eq!(
            (hs[0].mount_point.as_path(), hs[0].unified, mount_data(&hs[0]).as_str()),
            (Path::new("/sys/fs/cgroup/cpu"), false, "cpu")
        );
        assert_eq!(mount_data(&hs[1]), "name=systemd");
        assert!(hs[2].unified);
    }
}
