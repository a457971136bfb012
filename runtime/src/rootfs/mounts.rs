//! The mounts of config.json, made in order inside the rootfs.

use super::options::{self, MountOptions};
use super::resolve::{open_in_root, proc_fd_path, Create};
use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// What the mounts need to know about the container beyond the mount entry itself.
pub struct MountContext<'a> {
    pub rootfs: BorrowedFd<'a>,
    /// /proc/self/mountinfo as read once at the start of the rootfs set-up.
    pub host_mountinfo: &'a str,
    pub bundle: &'a Path,
    pub new_cgroupns: bool,
    pub new_netns: bool,
    /// The container's cgroup in each hierarchy, as (mount point, path below it): the paths can
    /// differ per hierarchy when cgroupsPath is relative (for cgroup bind mounts).
    pub cgroup_paths: &'a [(PathBuf, PathBuf)],
    /// linux.mountLabel: the SELinux context of the tmpfs/devpts/mqueue mounts.
    pub mount_label: Option<&'a str>,
}

pub fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<(), SysError> {
    for m in mounts {
        mount_one(ctx, m)?;
    }
    Ok(())
}

fn mount_one(ctx: &MountContext, m: &Mount) -> Result<(), SysError> {
    let typ = m.typ().as_deref();
    let opts = options::parse(m.options().as_deref().unwrap_or_default(), typ);
    let dest = m.destination();
    if typ == Some("cgroup") || typ == Some("cgroup2") {
        return super::cgroupfs::mount_cgroups(ctx, dest, &opts);
    }
    if opts.bind {
        return bind_mount(ctx, m, &opts);
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| typ.unwrap_or("none").to_string());
    let target = open_in_root(ctx.rootfs, dest, Create::Dir)?;
    let data = crate::lsm::mount_data(typ, opts.data_string(), ctx.mount_label);
    let result = mount(
        Some(source.as_str()),
        proc_fd_path(&target).as_str(),
        typ,
        opts.flags,
        data.as_deref(),
    );
    match result {
        Ok(()) => {}
        // sysfs belongs to a network namespace: without a new one, bind the host's instead
        // (what runc does too).
        Err(Errno::EPERM | Errno::EBUSY) if typ == Some("sysfs") && !ctx.new_netns => {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(
                Some("/sys"),
                proc_fd_path(&target).as_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .ctx("bind mount /sys on", dest.display())?;
            remount(ctx, dest, opts.flags | MsFlags::MS_BIND)?;
        }
        Err(errno) => {
            let op = format!("mount {} ({}) on", source, typ.unwrap_or("none"));
            return Err(SysError::new(op, dest.display(), errno));
        }
    }
    set_propagation(ctx, dest, &opts)
}

fn bind_source(bundle: &Path, m: &Mount) -> PathBuf {
    let source = m.source().clone().unwrap_or_default();
    if source.is_absolute() {
        source
    } else {
        bundle.join(source)
    }
}

fn bind_mount(ctx: &MountContext, m: &Mount, opts: &MountOptions) -> Result<(), SysError> {
    let dest = m.destination();
    let source = bind_source(ctx.bundle, m);
    let meta = std::fs::metadata(&source).ctx("stat bind mount source", source.display())?;
    let kind = if meta.is_dir() { Create::Dir } else { Create::File };
    let target = open_in_root(ctx.rootfs, dest, kind)?;
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(&source),
        proc_fd_path(&target).as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .ctx(&format!("bind mount {} on", source.display()), dest.display())?;
    if opts.needs_bind_remount() {
        remount(ctx, dest, opts.flags | MsFlags::MS_BIND)?;
    }
    set_propagation(ctx, dest, opts)
}

/// Change the flags of the mount now at `dest`: the path is resolved again because the fd
/// used to mount points below the new mount, not at it.
pub fn remount(ctx: &MountContext, dest: &Path, flags: MsFlags) -> Result<(), SysError> {
    let target = open_in_root(ctx.rootfs, dest, Create::Nothing)?;
    remount_fd(target.as_fd(), dest, flags)
}

pub fn remount_fd(target: BorrowedFd, dest: &Path, flags: MsFlags) -> Result<(), SysError> {
    let path = proc_fd_path(&target);
    let locked = super::paths::locked(&path);
    mount(
        None::<&str>,
        path.as_str(),
        None::<&str>,
        flags | locked | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .ctx("remount", dest.display())
}

fn set_propagation(ctx: &MountContext, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let target = open_in_root(ctx.rootfs, dest, Create::Nothing)?;
    for flag in &opts.propagation {
        mount(
            None::<&str>,
            proc_fd_path(&target).as_str(),
            None::<&str>,
            *flag,
            None::<&str>,
        )
        .ctx("set mount propagation of", dest.display())?;
    }
    Ok(())
}
