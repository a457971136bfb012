//! /dev inside the container: the default device nodes, linux.devices, and the standard links.

use super::resolve::{open_in_root, proc_fd_path, relative, Create};
use crate::sys::{Context, SysError};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// A device node to make: what the runtime-spec calls the default devices, plus linux.devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub fn default_devices() -> Vec<DeviceNode> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|&(name, major, minor)| DeviceNode {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The device cgroup rules a container gets, whatever its config says (runc's order): deny
/// every device first, then the config's `linux.resources.devices`, then runc's default allow
/// list (`AllowedDevices`: mknod of any node, the standard nodes, pts, ptmx, tun). Without the
/// leading deny a config with no device rules left the cgroup at the kernel's allow-all.
/// `linux.devices` entries are made as nodes but get no rule: only the lists above allow.
pub fn cgroup_rules(config_rules: &[LinuxDeviceCgroup]) -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")];
    rules.extend(config_rules.iter().cloned());
    rules.extend([
        // mknod of any node; using one still needs its own rule.
        rule(true, LinuxDeviceType::C, None, None, "m"),
        rule(true, LinuxDeviceType::B, None, None, "m"),
        rule(true, LinuxDeviceType::C, Some(136), None, "rwm"), // /dev/pts/*
        rule(true, LinuxDeviceType::C, Some(5), Some(2), "rwm"), // /dev/ptmx
        rule(true, LinuxDeviceType::C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]);
    for node in default_devices() {
        rules.push(rule(
            true,
            LinuxDeviceType::C,
            Some(node.major as i64),
            Some(node.minor as i64),
            "rwm",
        ));
    }
    rules
}

/// A `linux.resources.devices` rule as runc accepts it: type a, b or c (u and p name nodes,
/// not cgroup rules) and a non-empty access made of r, w and m in any order, repeats allowed
/// (runc folds the string into a set; [`canonical_access`] does the same).
pub fn check_cgroup_rule(rule: &LinuxDeviceCgroup) -> Result<(), String> {
    if matches!(rule.typ(), Some(LinuxDeviceType::U | LinuxDeviceType::P)) {
        return Err(format!(
            "invalid cgroup device type {:?}",
            rule.typ().unwrap_or_default().as_str()
        ));
    }
    let access = rule.access().as_deref().unwrap_or_default();
    if access.is_empty() {
        return Err("device access cannot be empty".into());
    }
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!("device access {access:?} must be made of r, w and m"));
    }
    for n in [rule.major(), rule.minor()].into_iter().flatten() {
        if n < -1 || n > u32::MAX as i64 {
            return Err(format!("device number {n} is out of range"));
        }
    }
    Ok(())
}

/// "mwr", "rrw" → "rwm", "rw": the set of an access string in the kernel's order.
pub fn canonical_access(access: &str) -> String {
    "rwm".chars().filter(|c| access.contains(*c)).collect()
}

pub fn from_spec(dev: &LinuxDevice) -> DeviceNode {
    let kind = match dev.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    DeviceNode {
        path: dev.path().clone(),
        kind,
        major: dev.major() as u64,
        minor: dev.minor() as u64,
        mode: dev.file_mode().unwrap_or(0o666),
        uid: dev.uid().unwrap_or(0),
        gid: dev.gid().unwrap_or(0),
    }
}

/// Make every node; in a user namespace, where mknod is refused, bind the host's node instead.
pub fn create_all(rootfs: BorrowedFd, nodes: &[DeviceNode], userns: bool) -> Result<(), SysError> {
    for node in nodes {
        if userns {
            bind_host_device(rootfs, node)?;
        } else {
            make_node(rootfs, node)?;
        }
    }
    Ok(())
}

fn make_node(rootfs: BorrowedFd, node: &DeviceNode) -> Result<(), SysError> {
    let rel = relative(&node.path);
    let parent = rel
        .parent()
        .map(|p| Path::new("/").join(p))
        .unwrap_or_else(|| PathBuf::from("/"));
    let name = rel
        .file_name()
        .ok_or_else(|| SysError::new("make device", node.path.display(), Errno::EINVAL))?;
    let dir_path = open_in_root(rootfs, &parent, Create::Dir)?;
    let dir = nix::fcntl::openat(
        dir_path.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open device directory", parent.display())?;
    // A node the image already has (or a previous entry made) is replaced, as runc does.
    let _ = nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let dev = makedev(node.major, node.minor);
    mknodat(dir.as_fd(), name, node.kind, Mode::from_bits_truncate(node.mode), dev)
        .ctx("mknod", node.path.display())?;
    // mknod applies the umask; the spec's mode is the mode.
    nix::sys::stat::fchmodat(
        dir.as_fd(),
        name,
        Mode::from_bits_truncate(node.mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| if e == Errno::EOPNOTSUPP { Ok(()) } else { Err(e) })
    .ctx("chmod", node.path.display())?;
    nix::unistd::fchownat(
        dir.as_fd(),
        name,
        Some(node.uid.into()),
        Some(node.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx("chown", node.path.display())
}

fn bind_host_device(rootfs: BorrowedFd, node: &DeviceNode) -> Result<(), SysError> {
    let target = open_in_root(rootfs, &node.path, Create::File)?;
    mount(
        Some(&node.path),
        proc_fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(
        &format!("bind mount host device {} on", node.path.display()),
        node.path.display(),
    )
}

/// /dev/fd, stdin, stdout, stderr and ptmx, as every runtime makes them.
pub fn create_links(rootfs: BorrowedFd) -> Result<(), SysError> {
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    let dev_path = open_in_root(rootfs, Path::new("/dev"), Create::Dir)?;
    let dev = nix::fcntl::openat(
        dev_path.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/dev in rootfs")?;
    for (target, name) in links {
        let _ = nix::unistd::unlinkat(dev.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat(target, dev.as_fd(), name).ctx("symlink", format!("/dev/{name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices_bpf::{DeviceFilter, DeviceKind, ACC_READ};

    fn rule(json: serde_json::Value) -> LinuxDeviceCgroup {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rules_start_from_deny_all_and_end_with_the_default_list() {
        let config = [rule(
            serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}),
        )];
        let rules = cgroup_rules(&config);
        assert!(!rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A));
        assert_eq!(rules[1], config[0]);
        // On v2 the same list is the BPF program: loop0 denied, null and the config's fuse allowed.
        let filter = DeviceFilter::from_spec(&rules).unwrap();
        assert!(!filter.allows(DeviceKind::Block, 7, 0, ACC_READ));
        assert!(filter.allows(DeviceKind::Char, 1, 3, ACC_READ));
        assert!(filter.allows(DeviceKind::Char, 10, 229, ACC_READ));
        assert!(!cgroup_rules(&[]).iter().any(|r| r.major() == Some(229)));
    }

    #[test]
    fn access_strings_are_checked_and_folded_as_runc_does() {
        assert_eq!(canonical_access("mwr"), "rwm");
        assert_eq!(canonical_access("rrw"), "rw");
        let bad = [
            serde_json::json!({"allow": true, "type": "c", "access": ""}),
            serde_json::json!({"allow": true, "type": "c"}),
            serde_json::json!({"allow": true, "type": "c", "access": "rx"}),
            serde_json::json!({"allow": true, "type": "u", "access": "r"}),
            serde_json::json!({"allow": true, "type": "c", "major": -2, "access": "r"}),
        ];
        for json in bad {
            assert!(check_cgroup_rule(&rule(json.clone())).is_err(), "{json}");
        }
        assert!(check_cgroup_rule(&rule(serde_json::json!({"allow": false, "access": "wm"}))).is_ok());
    }
}
