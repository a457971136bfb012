//! The rootfs and mounts a task sees, and the resources it is given.

use husk_e2e::{cgroup_dirs, unique_id, TempDir};

use super::{assert_clean, containerd_with_busybox, delete_and_check, run, run_ok, Via};

pub fn read_only_rootfs_refuses_writes(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("ro");
    let out = run(
        &ctrd,
        via,
        &["--rm", "--read-only"],
        &id,
        &["sh", "-c", "touch /x 2>/dev/null; echo $?"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n",
        "a write to a read-only rootfs succeeded"
    );
    assert_clean(&ctrd, &id);
}

pub fn bind_mount_is_shared_with_host(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("bind");
    let host = TempDir::new("bind");
    std::fs::write(host.join("in"), "from host\n").expect("write input");
    let mount = format!("type=bind,src={},dst=/data,options=rbind:rw", host.path().display());
    let out = run_ok(
        &ctrd,
        via,
        &["--rm", "--mount", &mount],
        &id,
        &["sh", "-c", "cat /data/in; echo from task > /data/out"],
    );
    assert_eq!(out, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out")).expect("task wrote /data/out"),
        "from task\n"
    );
    assert_clean(&ctrd, &id);
}

pub fn memory_limit_is_applied(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("mem");
    run_ok(
        &ctrd,
        via,
        &["-d", "--memory-limit", "33554432"],
        &id,
        &["sleep", "1000"],
    );
    let cgroup = format!("/{}/{id}", ctrd.namespace());
    // v1 memory controller or a v2 tree, whichever this host has.
    let limit = cgroup_dirs(&cgroup)
        .iter()
        .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
        .find_map(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_else(|| panic!("no memory cgroup for {cgroup}: {:?}", cgroup_dirs(&cgroup)));
    assert_eq!(limit.trim(), "33554432");
    delete_and_check(&ctrd, &id, &["--force"]);
}
