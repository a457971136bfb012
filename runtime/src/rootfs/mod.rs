//! The container's root filesystem: propagation, the rootfs bind, mounts in order, /dev,
//! pivot_root, then masked and read-only paths.

pub mod cgroupfs;
pub mod cwd;
pub mod detached;
pub mod devices;
pub mod mounts;
pub mod options;
pub mod paths;
pub mod pivot;
pub mod resolve;
pub mod tmpfs;

use crate::sys::{Context, SysError};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;
use std::os::fd::AsFd;
use std::path::Path;

/// The flags a rootfsPropagation value stands for (None when the value is unknown).
pub fn propagation_flags(value: &str) -> Option<MsFlags> {
    options::propagation_flag(value)
}

/// What the rootfs set-up needs beyond the spec.
pub struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroup_paths: &'a [(std::path::PathBuf, std::path::PathBuf)],
    pub new_cgroupns: bool,
    pub new_netns: bool,
    pub userns: bool,
    /// Bind sources the parent cloned (see `mounts::open_bind_sources`), by mount index.
    pub bind_sources: &'a [Option<std::os::fd::OwnedFd>],
}

/// Everything up to (not including) pivot_root: runs in the container's new mount namespace.
pub fn prepare(plan: &RootfsPlan) -> Result<(), SysError> {
    let linux = plan.spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flags)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // Nothing the container mounts may reach the host: slave (or what the config asks) first.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        propagation | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("set propagation of", "/")?;
    let host_mountinfo = make_parent_mount_private(plan.rootfs)?;
    mount(
        Some(plan.rootfs),
        plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("bind mount rootfs on itself", plan.rootfs.display())?;
    let root_fd = nix::fcntl::open(
        plan.rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open rootfs", plan.rootfs.display())?;
    let ctx = mounts::MountContext {
        rootfs: root_fd.as_fd(),
        host_mountinfo: &host_mountinfo,
        bundle: plan.bundle,
        new_cgroupns: plan.new_cgroupns,
        new_netns: plan.new_netns,
        cgroup_paths: plan.cgroup_paths,
        mount_label: linux.and_then(|l| l.mount_label().as_deref()),
        bind_sources: plan.bind_sources,
    };
    let spec_mounts = plan.spec.mounts().as_deref().unwrap_or_default();
    mounts::mount_all(&ctx, spec_mounts)?;
    let mut nodes = devices::default_devices();
    nodes.extend(
        linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
            .map(devices::from_spec),
    );
    let dev_is_mounted = spec_mounts.iter().any(|m| m.destination() == Path::new("/dev"));
    if dev_is_mounted {
        devices::create_all(root_fd.as_fd(), &nodes, plan.userns)?;
        devices::create_links(root_fd.as_fd())?;
    } else {
        // /dev comes from the image (or a bind): add only the devices the config names.
        let extra: Vec<_> = nodes.split_off(devices::default_devices().len());
        devices::create_all(root_fd.as_fd(), &extra, plan.userns)?;
    }
    Ok(())
}

/// pivot_root refuses a new root whose parent mount is shared; making that parent private
/// inside our own mount namespace changes nothing on the host. Returns the mountinfo it read,
/// which the cgroup mounts reuse.
fn make_parent_mount_private(rootfs: &Path) -> Result<String, SysError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    let parent = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|mp| rootfs.starts_with(mp))
        .max_by_key(|mp| mp.len())
        .unwrap_or("/")
        .to_string();
    let shared = mountinfo.lines().any(|line| {
        let mut fields = line.split(' ');
        fields.nth(4) == Some(parent.as_str()) && line.split(" - ").next().is_some_and(|l| l.contains("shared:"))
    });
    if shared {
        mount(
            None::<&str>,
            parent.as_str(),
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx("make private the parent mount", &parent)?;
    }
    Ok(mountinfo)
}

/// The read-only tmpfs and /dev mounts, mounted writable by `prepare` (as runc does).
fn remount_delayed_readonly(spec_mounts: &[oci_spec::runtime::Mount]) -> Result<(), SysError> {
    let root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", "/")?;
    for m in spec_mounts {
        let typ = m.typ().as_deref();
        let opts = options::parse(m.options().as_deref().unwrap_or_default(), typ);
        let dest = m.destination();
        if opts.bind || !opts.flags.contains(MsFlags::MS_RDONLY) || !mounts::delays_readonly(typ, dest) {
            continue;
        }
        let target = resolve::open_in_root(root.as_fd(), dest, resolve::Create::Nothing)?;
        mounts::remount_fd(target.as_fd(), dest, opts.flags | MsFlags::MS_BIND)?;
    }
    Ok(())
}

/// After pivot_root (or the move for --no-pivot): read-only paths, masked paths, read-only `/`,
/// and the final propagation of `/`. Read-only paths come first, as in runc
/// (standard_init_linux.go): their recursive bind would otherwise copy a mask made below them,
/// leaving two mount entries where runc has one.
pub fn finish(spec: &Spec) -> Result<(), SysError> {
    let linux = spec.linux().as_ref();
    for path in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
        paths::make_readonly(path)?;
    }
    for path in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
        paths::mask(path)?;
    }
    remount_delayed_readonly(spec.mounts().as_deref().unwrap_or_default())?;
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        paths::readonly_root()?;
    }
    if let Some(flags) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flags)
    {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).ctx("set propagation of", "/")?;
    }
    Ok(())
}
