//! Kernel features husk uses: namespaces, the newer syscalls, seccomp and eBPF device programs.
//! Syscalls are probed with arguments the kernel must refuse: ENOSYS means missing, any other
//! answer means the kernel knows the call. Nothing is changed.

use super::{Finding, Verdict};
use nix::errno::Errno;
use std::path::Path;

const AREA: &str = "kernel";

pub fn examine() -> Vec<Finding> {
    let mut findings = vec![release()];
    findings.extend(namespaces());
    findings.extend(syscalls());
    findings.push(seccomp());
    findings.push(device_programs());
    findings
}

fn release() -> Finding {
    let uname = nix::sys::utsname::uname();
    let release = uname.as_ref().map(|u| u.release().to_string_lossy().into_owned());
    Finding::new(
        AREA,
        "release",
        Verdict::Info,
        release.unwrap_or_else(|e| format!("unknown: {e}")),
    )
}

fn namespaces() -> Vec<Finding> {
    let required = ["mnt", "pid", "net", "ipc", "uts"];
    let optional = [
        (
            "user",
            "user namespaces (linux.uidMappings, rootless) are refused by the kernel",
        ),
        (
            "cgroup",
            "a config asking for a cgroup namespace fails; runc's default spec asks for none",
        ),
        ("time", "a time namespace (linux.timeOffsets) cannot be made"),
    ];
    let has = |ns: &str| Path::new("/proc/self/ns").join(ns).exists();
    let mut findings = Vec::new();
    let missing: Vec<_> = required.iter().filter(|ns| !has(ns)).collect();
    findings.push(match missing.is_empty() {
        true => Finding::new(AREA, "namespaces", Verdict::Ok, "mnt, pid, net, ipc, uts"),
        false => Finding::new(AREA, "namespaces", Verdict::Blocker, format!("missing: {missing:?}"))
            .advise("husk needs a kernel built with CONFIG_NAMESPACES and each of these"),
    });
    for (ns, without) in optional {
        let mut found = has(ns);
        if ns == "user" && found {
            found = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
                .map(|s| s.trim() != "0")
                .unwrap_or(true);
        }
        findings.push(match found {
            true => Finding::new(AREA, &format!("{ns} namespace"), Verdict::Ok, "available"),
            false => Finding::new(AREA, &format!("{ns} namespace"), Verdict::Warn, "not available").advise(without),
        });
    }
    findings
}

/// The answer to a call the kernel must refuse, as an errno (0: it succeeded).
fn probe(nr: libc::c_long, args: [libc::c_long; 5]) -> Errno {
    // SAFETY: every probe passes arguments the kernel rejects before acting (null or invalid
    // pointers with a zero size, an inverted range, a bad fd), or pidfd_open of ourselves.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if ret < 0 {
        return Errno::last();
    }
    if nr == libc::SYS_pidfd_open {
        // SAFETY: a new fd that nothing else owns.
        unsafe { libc::close(ret as i32) };
    }
    Errno::UnknownErrno
}

fn syscalls() -> Vec<Finding> {
    let pid = i64::from(std::process::id());
    let probes: [(&str, libc::c_long, [libc::c_long; 5], Verdict, &str); 5] = [
        (
            "clone3",
            libc::SYS_clone3,
            [0; 5],
            Verdict::Blocker,
            "husk creates the container's init with clone3 (Linux 5.3)",
        ),
        (
            "pidfd_open",
            libc::SYS_pidfd_open,
            [pid, 0, 0, 0, 0],
            Verdict::Blocker,
            "husk waits on and signals processes through pidfds (Linux 5.3)",
        ),
        (
            "openat2",
            libc::SYS_openat2,
            [libc::AT_FDCWD as i64, 0, 0, 0, 0],
            Verdict::Blocker,
            "mount targets are resolved inside the rootfs with openat2 RESOLVE_IN_ROOT (Linux 5.6)",
        ),
        (
            "close_range",
            libc::SYS_close_range,
            [10, 5, 0, 0, 0],
            Verdict::Warn,
            "fds are closed one by one instead (Linux 5.9 has close_range)",
        ),
        (
            "mount_setattr",
            libc::SYS_mount_setattr,
            [-1, 0, 0, 0, 0],
            Verdict::Warn,
            "recursive mount options (rro, rnosuid, ...) and idmapped mounts need mount_setattr (Linux 5.12)",
        ),
    ];
    probes
        .into_iter()
        .map(|(name, nr, args, when_missing, why)| match probe(nr, args) {
            Errno::ENOSYS => Finding::new(AREA, name, when_missing, "missing (ENOSYS)").advise(why),
            _ => Finding::new(AREA, name, Verdict::Ok, "supported"),
        })
        .collect()
}

fn seccomp() -> Finding {
    // SAFETY: PR_GET_SECCOMP only reads our own mode.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
        return Finding::new(AREA, "seccomp", Verdict::Warn, "not available (CONFIG_SECCOMP_FILTER)")
            .advise("configs with linux.seccomp will fail to start");
    }
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let libseccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into());
    let notify = actions.split_whitespace().any(|a| a == "user_notif");
    let detail = format!(
        "filters available, libseccomp {libseccomp}, user notification {}",
        yes_no(notify)
    );
    match notify {
        true => Finding::new(AREA, "seccomp", Verdict::Ok, detail),
        false => Finding::new(AREA, "seccomp", Verdict::Warn, detail)
            .advise("SCMP_ACT_NOTIFY profiles (listenerPath) need Linux 5.0"),
    }
}

fn device_programs() -> Finding {
    use crate::cgroups::devices_bpf::{load_program, DeviceFilter};
    let program = DeviceFilter::from_rules(&[]).map(|f| f.program());
    match program.map(|p| load_program(&p, Path::new("husk doctor probe"))) {
        Ok(Ok(_fd)) => Finding::new(
            AREA,
            "eBPF device programs",
            Verdict::Ok,
            "the kernel loads a cgroup device program",
        ),
        Ok(Err(e)) => Finding::new(
            AREA,
            "eBPF device programs",
            Verdict::Warn,
            format!("cannot load one: {e}"),
        )
        .advise("on cgroup v2 the device cgroup is an eBPF program: containers would fail to start there"),
        Err(e) => Finding::new(
            AREA,
            "eBPF device programs",
            Verdict::Warn,
            format!("cannot build the probe: {e}"),
        ),
    }
}

pub(super) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
