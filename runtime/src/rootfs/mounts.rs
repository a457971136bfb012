//! The mounts of config.json, made in order inside the rootfs.

use super::detached;
use super::options::{self, MountOptions};
use super::resolve::{open_in_root, proc_fd_path, Create};
use super::tmpfs;
use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    /// The bind sources the parent cloned (`open_bind_sources`), by mount index; empty when
    /// the init reaches them itself.
    pub bind_sources: &'a [Option<OwnedFd>],
}

pub fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<(), SysError> {
    for (index, m) in mounts.iter().enumerate() {
        mount_one(ctx, m, index)?;
    }
    Ok(())
}

/// With a user namespace the init is root of that namespace only, and a bind source below a
/// host directory its mapped root may not search fails with EACCES. So the parent, still root in
/// the host's namespaces, clones every bind source into a detached mount before clone3 (the init
/// inherits the fds) and the init attaches those trees (runc 1.1 passes such mount fds too).
/// A source the parent cannot clone (a rootless husk lacks CAP_SYS_ADMIN in the host's mount
/// namespace; a missing path) is left to the init, which clones it or reports the error as before.
pub fn open_bind_sources(mounts: &[Mount], bundle: &Path) -> Vec<Option<OwnedFd>> {
    mounts
        .iter()
        .map(|m| {
            let typ = m.typ().as_deref();
            let opts = options::parse(m.options().as_deref().unwrap_or_default(), typ);
            let cgroup = typ == Some("cgroup") || typ == Some("cgroup2");
            (opts.bind && !cgroup)
                .then(|| clone_source(bundle, m, &opts).ok())
                .flatten()
        })
        .collect()
}

fn clone_source(bundle: &Path, m: &Mount, opts: &MountOptions) -> Result<OwnedFd, SysError> {
    let source = bind_source(bundle, m);
    detached::clone_tree(&source, opts.recursive).map_err(|e| {
        let op = format!("bind mount {} on", source.display());
        SysError::new(op, m.destination().display(), e.errno)
    })
}

fn mount_one(ctx: &MountContext, m: &Mount, index: usize) -> Result<(), SysError> {
    let typ = m.typ().as_deref();
    let opts = options::parse(m.options().as_deref().unwrap_or_default(), typ);
    let dest = m.destination();
    if typ == Some("cgroup") || typ == Some("cgroup2") {
        return super::cgroupfs::mount_cgroups(ctx, dest, &opts);
    }
    if let Some(fs @ ("proc" | "sysfs")) = typ {
        refuse_unless_directory(ctx, dest, fs)?;
    }
    if opts.bind {
        return bind_mount(ctx, m, &opts, index);
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| typ.unwrap_or("none").to_string());
    let (target, existed) = open_mount_point(ctx, dest)?;
    check_resolved_target(ctx, &target, typ, dest)?;
    let tmpfs = typ == Some("tmpfs");
    let mut data = opts.data_string();
    if tmpfs && !opts.has_mode() {
        data = tmpfs::data_keeping_mode(data, existed.then(|| tmpfs::directory_mode(target.as_fd())).flatten());
    }
    let data = crate::lsm::mount_data(typ, data, ctx.mount_label);
    // The image's directory, as it is before the tmpfs covers it.
    let copy_from = match tmpfs && opts.tmpcopyup {
        true => Some(tmpfs::open_listable(target.as_fd(), dest)?),
        false => None,
    };
    let mut flags = opts.flags;
    if delays_readonly(typ, dest) {
        // Made read-only by `finish`, once /dev is filled or the tmpfs copied up.
        flags &= !MsFlags::MS_RDONLY;
    }
    let result = mount(
        Some(source.as_str()),
        proc_fd_path(&target).as_str(),
        typ,
        flags,
        data.as_deref(),
    );
    match result {
        Ok(()) => {}
        // sysfs belongs to a network namespace: without a new one, bind the host's instead
        // (what runc does too).
        Err(Errno::EPERM | Errno::EBUSY) if typ == Some("sysfs") && !ctx.new_netns => {
            let tree = detached::clone_tree(Path::new("/sys"), true)?;
            detached::attach(tree.as_fd(), target.as_fd(), dest)?;
            remount_fd(tree.as_fd(), dest, opts.flags | MsFlags::MS_BIND)?;
            set_recursive_attrs(tree.as_fd(), dest, &opts)?;
            return set_propagation_fd(tree.as_fd(), dest, &opts);
        }
        Err(errno) => {
            let op = format!("mount {} ({}) on", source, typ.unwrap_or("none"));
            return Err(SysError::new(op, dest.display(), errno));
        }
    }
    if copy_from.is_some() || opts.has_recursive_attrs() {
        let mounted = open_in_root(ctx.rootfs, dest, Create::Nothing)?;
        if let Some(from) = copy_from {
            tmpfs::copy_up(from.as_fd(), mounted.as_fd(), dest)?;
        }
        set_recursive_attrs(mounted.as_fd(), dest, &opts)?;
    }
    set_propagation(ctx, dest, &opts)
}

/// runc mounts tmpfs and /dev writable and makes them read-only at the very end: /dev gets its
/// nodes and the mount points of /dev/pts etc., a tmpfs its copied-up content, first.
pub fn delays_readonly(typ: Option<&str>, dest: &Path) -> bool {
    typ == Some("tmpfs") || Path::new("/").join(super::resolve::relative(dest)) == Path::new("/dev")
}

/// The mount point, made when missing; and whether it was there already (a tmpfs over an
/// image directory keeps that directory's mode).
fn open_mount_point(ctx: &MountContext, dest: &Path) -> Result<(OwnedFd, bool), SysError> {
    match open_in_root(ctx.rootfs, dest, Create::Nothing) {
        Ok(fd) => Ok((fd, true)),
        Err(e) if e.errno == Errno::ENOENT => Ok((open_in_root(ctx.rootfs, dest, Create::Dir)?, false)),
        Err(e) => Err(e),
    }
}

/// proc and sysfs go on a real directory of the image, never through a symlink (or onto a
/// file) there: following it would leave the image's own `/proc` in place and every later check
/// of "/proc/..." looking at the wrong thing (runc's words, CVE-2023-28642).
fn refuse_unless_directory(ctx: &MountContext, dest: &Path, fs: &str) -> Result<(), SysError> {
    let rel = super::resolve::relative(dest);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(());
    };
    let parent = match open_in_root(ctx.rootfs, &Path::new("/").join(parent), Create::Nothing) {
        Ok(fd) => fd,
        Err(e) if e.errno == Errno::ENOENT => return Ok(()),
        Err(e) => return Err(e),
    };
    match nix::sys::stat::fstatat(parent.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(SysError::new("stat mount point", dest.display(), errno)),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
        Ok(_) => Err(SysError::new(
            format!("mount {fs} on"),
            format!(
                "{}: filesystem \"{fs}\" must be mounted on ordinary directory",
                dest.display()
            ),
            Errno::ENOTDIR,
        )),
    }
}

fn set_recursive_attrs(mount_root: BorrowedFd, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
    if !opts.has_recursive_attrs() {
        return Ok(());
    }
    detached::set_recursive_attrs(mount_root, opts.rec_set, opts.rec_clear, dest)
}

fn bind_source(bundle: &Path, m: &Mount) -> PathBuf {
    let source = m.source().clone().unwrap_or_default();
    if source.is_absolute() {
        source
    } else {
        bundle.join(source)
    }
}

fn bind_mount(ctx: &MountContext, m: &Mount, opts: &MountOptions, index: usize) -> Result<(), SysError> {
    let dest = m.destination();
    // Made detached (here, or by the parent) and attached through the target's fd: `tree` is
    // then the new mount itself, so the remount and propagation below reach it and nothing
    // else, whatever the rootfs's paths have become meanwhile.
    let cloned;
    let tree = match ctx.bind_sources.get(index).and_then(Option::as_ref) {
        Some(fd) => fd.as_fd(),
        None => {
            cloned = clone_source(ctx.bundle, m, opts)?;
            cloned.as_fd()
        }
    };
    let st = nix::sys::stat::fstat(tree).ctx("stat bind mount source", bind_source(ctx.bundle, m).display())?;
    let kind = match st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        true => Create::Dir,
        false => Create::File,
    };
    let target = open_in_root(ctx.rootfs, dest, kind)?;
    check_resolved_target(ctx, &target, Some("bind"), dest)?;
    detached::attach(tree, target.as_fd(), dest)?;
    if opts.needs_bind_remount() {
        remount_fd(tree, dest, opts.flags | MsFlags::MS_BIND)?;
    }
    set_recursive_attrs(tree, dest, opts)?;
    set_propagation_fd(tree, dest, opts)
}

/// runc's checkProcMount on the path the target fd really has (a symlink in the image already
/// followed): nothing but proc on /proc, and below it only the allow-list.
fn check_resolved_target(ctx: &MountContext, target: &OwnedFd, typ: Option<&str>, dest: &Path) -> Result<(), SysError> {
    let refuse = || {
        SysError::new(
            "mount (only proc may be mounted on /proc, and below it runc's allow-list) on",
            dest.display(),
            Errno::EPERM,
        )
    };
    let root = std::fs::read_link(proc_fd_path(&ctx.rootfs)).ctx("read path of", "rootfs")?;
    let real = std::fs::read_link(proc_fd_path(target)).ctx("read path of", dest.display())?;
    let Ok(inside) = real.strip_prefix(&root) else {
        return Err(refuse());
    };
    crate::config::security::check_proc_mount(&Path::new("/").join(inside), typ).map_err(|_| refuse())
}

/// Change the flags of the mount now at `dest`, resolving the path again: only for mounts
/// made in the container after pivot_root, where no host-side path is involved.
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
    set_propagation_fd(target.as_fd(), dest, opts)
}

fn set_propagation_fd(target: BorrowedFd, dest: &Path, opts: &MountOptions) -> Result<(), SysError> {
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
