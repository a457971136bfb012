//! The task's rootfs mounts from the Create request, mounted at `<bundle>/rootfs` the way
//! containerd's runc shim does, and unmounted (recursively) on delete or a failed create.

use std::path::Path;

use containerd_shim::protos::api::Mount;

use crate::error::{Error, Result};

/// Mounts `mounts` in order on `<bundle>/rootfs`; returns whether anything was mounted.
pub fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(Error::io("create rootfs directory", &target))?;
    for (n, m) in mounts.iter().enumerate() {
        let fs_type = (!m.type_.is_empty()).then_some(m.type_.as_str());
        let source = (!m.source.is_empty()).then_some(m.source.as_str());
        // The crate's mount forks and waits through its exit monitor, which the daemon's main
        // loop notifies as it reaps (Create runs on a worker thread).
        let mounted = containerd_shim::mount::mount_rootfs(fs_type, source, &m.options, &target);
        if let Err(source_err) = mounted {
            if n > 0 {
                unmount_rootfs(bundle);
            }
            return Err(Error::Mount {
                target,
                source: source_err,
            });
        }
    }
    Ok(true)
}

pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    if let Some(target) = target.to_str() {
        if let Err(err) = containerd_shim::mount::umount_recursive(Some(target), libc::MNT_DETACH) {
            log::warn!("failed to unmount rootfs {target}: {err}");
        }
    }
}
