//! The host's set-up: cgroup layout and controllers, the init system (which cgroup driver to
//! use), the capability bounding set, and the security modules.

use super::kernel::yes_no;
use super::{Finding, Verdict};
use crate::cgroups::mountinfo::{parse_mountinfo, CgroupMount};
use crate::cgroups::Layout;

pub fn examine() -> Vec<Finding> {
    let mut findings = vec![privileges(), capabilities(), security_modules()];
    findings.extend(cgroups());
    findings.push(init_system());
    findings
}

fn privileges() -> Finding {
    match nix::unistd::geteuid().is_root() {
        true => Finding::new("host", "user", Verdict::Ok, "root"),
        false => Finding::new(
            "host",
            "user",
            Verdict::Warn,
            "not root: what follows is what this user can see",
        )
        .advise("containerd runs husk as root; run `sudo husk doctor` for the node's view"),
    }
}

fn cgroups() -> Vec<Finding> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&text);
    let Some(layout) = crate::cgroups::mountinfo::layout_of(&mounts) else {
        return vec![
            Finding::new("cgroups", "layout", Verdict::Blocker, "no cgroup filesystem is mounted")
                .advise("mount cgroup2 on /sys/fs/cgroup (or the v1 hierarchies)"),
        ];
    };
    let name = match layout {
        Layout::V1 => "v1 (legacy)",
        Layout::V2 => "v2 (unified)",
        Layout::Hybrid => "hybrid (v1 controllers plus a cgroup2 mount)",
    };
    let mut findings = vec![Finding::new("cgroups", "layout", Verdict::Info, name)];
    let controllers = controllers(&mounts);
    let missing: Vec<&str> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !controllers.iter().any(|have| have == c))
        .collect();
    findings.push(match missing.is_empty() {
        true => Finding::new("cgroups", "controllers", Verdict::Ok, controllers.join(" ")),
        false => Finding::new(
            "cgroups",
            "controllers",
            Verdict::Warn,
            format!("{} (missing {})", controllers.join(" "), missing.join(", ")),
        )
        .advise("limits on the missing controllers fail to apply; enable them (v2: cgroup.subtree_control)"),
    });
    findings.push(delegation(&mounts));
    findings
}

/// Controllers a container can get: v1 hierarchies' names, plus what the unified root offers.
fn controllers(mounts: &[CgroupMount]) -> Vec<String> {
    let mut all: Vec<String> = mounts.iter().flat_map(|m| m.controllers.iter().cloned()).collect();
    for m in mounts.iter().filter(|m| m.unified) {
        let list = std::fs::read_to_string(m.mount_point.join("cgroup.controllers")).unwrap_or_default();
        all.extend(list.split_whitespace().map(str::to_string));
    }
    all.retain(|c| !c.starts_with("name="));
    all.sort();
    all.dedup();
    all
}

/// husk must be able to make cgroups: the mounts must be writable for us.
fn delegation(mounts: &[CgroupMount]) -> Finding {
    let read_only: Vec<String> = mounts
        .iter()
        .filter(|m| nix::unistd::access(&m.mount_point, nix::unistd::AccessFlags::W_OK).is_err())
        .map(|m| m.mount_point.display().to_string())
        .collect();
    match read_only.is_empty() {
        true => Finding::new("cgroups", "writable", Verdict::Ok, "every cgroup mount is writable"),
        false => Finding::new(
            "cgroups",
            "writable",
            Verdict::Blocker,
            format!("not writable: {}", read_only.join(", ")),
        )
        .advise("husk makes a cgroup per container: run as root with the cgroup mounts read-write"),
    }
}

fn init_system() -> Finding {
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let init = init.trim();
    match init == "systemd" {
        true => Finding::new("cgroups", "init", Verdict::Info, "systemd is pid 1").advise(
            "kubeadm sets the kubelet's cgroupDriver: systemd; the runtime must then use the systemd driver \
             (SystemdCgroup = true in the runtime options), else the cgroupfs driver on both sides",
        ),
        false => Finding::new(
            "cgroups",
            "init",
            Verdict::Info,
            format!(
                "pid 1 is {:?}, not systemd: use the cgroupfs driver",
                if init.is_empty() { "unknown" } else { init }
            ),
        ),
    }
}

fn capabilities() -> Finding {
    let bounding = match caps::read(None, caps::CapSet::Bounding) {
        Ok(set) => set,
        Err(e) => return Finding::new("host", "capabilities", Verdict::Warn, format!("cannot read: {e}")),
    };
    let mut missing: Vec<String> = caps::all()
        .difference(&bounding)
        .map(|c| c.to_string().to_lowercase())
        .collect();
    missing.sort();
    if missing.is_empty() {
        return Finding::new("host", "capabilities", Verdict::Ok, "full bounding set");
    }
    let detail = format!("missing from the bounding set: {}", missing.join(", "));
    let mut finding = Finding::new("host", "capabilities", Verdict::Warn, detail);
    if missing.iter().any(|c| c == "cap_sys_resource") {
        finding = finding.advise(
            "without CAP_SYS_RESOURCE a negative oom_score_adj and raising a hard rlimit fail even for root: \
             set restrict_oom_score_adj = true in containerd's CRI config",
        );
    }
    finding
}

fn security_modules() -> Finding {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    let host = crate::lsm::HostLsm::detect();
    let detail = format!(
        "{} (AppArmor {}, SELinux {})",
        if lsm.trim().is_empty() { "unknown" } else { lsm.trim() },
        yes_no(host.apparmor),
        yes_no(host.selinux)
    );
    let mut finding = Finding::new("host", "security modules", Verdict::Info, detail);
    if !host.apparmor {
        finding = finding.advise(
            "configs naming process.apparmorProfile (Docker and podman set one when AppArmor is enabled) are refused here",
        );
    }
    finding
}
