//! The cgroup manager against this host's real hierarchies (root only; skipped otherwise).
//! Each test uses its own cgroup name (pid + counter) and a Drop guard that thaws, kills and
//! reaps its processes and removes the cgroup, so a failing assertion leaves nothing behind.

use std::fs;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use husk::cgroups::{detect_layout, Cgroup, CgroupError, Layout, OomEventSource};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

const BUSYBOX: &str = "/bin/busybox";
const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "husk-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Root on a host with v1 controllers (v1 or hybrid); otherwise the test has nothing to check.
fn v1_host() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    match detect_layout() {
        Ok(Layout::V1 | Layout::Hybrid) => true,
        other => {
            eprintln!("skipped: no v1 hierarchies ({other:?})");
            false
        }
    }
}

/// Owns a cgroup and the processes put in it; cleans both up on drop.
struct Fixture {
    cg: Cgroup,
    children: Vec<Child>,
}

impl Fixture {
    fn new(cg: Cgroup) -> Self {
        cg.create().expect("create cgroup");
        Fixture {
            cg,
            children: Vec::new(),
        }
    }

    /// Starts a shell that waits for a line on stdin before exec'ing `sleep`, so that the exec
    /// (and its page faults) happen inside the cgroup. Returns its pid.
    fn spawn_in_cgroup(&mut self, then: &str) -> i32 {
        let mut child = Command::new(BUSYBOX)
            .args(["sh", "-c", &format!("read x; {then}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox");
        let pid = child.id() as i32;
        self.cg.add_process(pid).expect("add process");
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        self.children.push(child);
        pid
    }

    fn dir(&self, controller: &str) -> PathBuf {
        self.cg
            .v1_hierarchy(controller)
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
            .dir()
    }

    fn read(&self, controller: &str, file: &str) -> String {
        let path = self.dir(controller).join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }

    fn kill_children(&mut self) {
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill_children();
        let _ = self.cg.destroy();
    }
}

fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(64i64 << 20).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(20_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn v1_limits_processes_freeze_stats_and_destroy_on_the_real_host() {
    if !v1_host() {
        return;
    }
    let mut fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("v1"))), "ctr").unwrap());
    fx.cg.apply(&resources()).unwrap();
    assert_eq!(fx.read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(fx.read("cpu", "cpu.shares"), "512");
    assert_eq!(fx.read("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(fx.read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(fx.read("pids", "pids.max"), "20");
    assert_eq!(fx.read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(fx.read("cpuset", "cpuset.mems"), "0");

    let pid = fx.spawn_in_cgroup("exec sleep 1000");
    assert_eq!(fx.cg.pids().unwrap(), vec![pid]);
    for h in fx.cg.hierarchies() {
        let procs = fs::read_to_string(h.dir().join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{pid} not in {}",
            h.dir().display()
        );
    }
    wait_for("sleep to exec", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });

    fx.cg.freeze().unwrap();
    assert!(fx.cg.is_frozen().unwrap());
    assert_eq!(fx.read("freezer", "freezer.state"), "FROZEN");
    // The v1 freezer parks tasks in uninterruptible sleep.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("State:") && l.contains('D')),
        "{status}"
    );
    fx.cg.thaw().unwrap();
    assert!(!fx.cg.is_frozen().unwrap());
    assert_eq!(fx.read("freezer", "freezer.state"), "THAWED");

    let stats = fx.cg.stats().unwrap();
    assert_eq!((stats.pids.current, stats.pids.limit), (1, 20));
    assert_eq!(stats.memory.usage.limit, 64 << 20);
    assert!(stats.memory.usage.usage > 0, "{:?}", stats.memory.usage);
    assert!(stats.memory.raw.contains_key("rss"), "{:?}", stats.memory.raw);
    assert!(stats.cpu.usage.total > 0, "{:?}", stats.cpu.usage);
    assert_eq!(stats.cpu.usage.percpu.len(), num_cpus());

    fx.kill_children();
    assert!(fx.cg.pids().unwrap().is_empty());
    fx.cg.destroy().unwrap();
    for h in fx.cg.hierarchies() {
        assert!(!h.dir().exists(), "{} remains", h.dir().display());
    }
}

fn num_cpus() -> usize {
    fs::read_to_string("/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu").map_or(0, |s| s.split_whitespace().count())
}

#[test]
fn hybrid_creates_in_every_hierarchy_including_systemd_and_unified() {
    if !v1_host() {
        return;
    }
    let name = unique("every");
    let fx = Fixture::new(Cgroup::for_container(Some(&format!("/{name}")), "ctr").unwrap());
    assert!(fx.cg.v1_hierarchy("name=systemd").is_some(), "{:?}", fx.cg);
    if fx.cg.layout() == Layout::Hybrid {
        let u = fx.cg.unified_hierarchy().expect("unified hierarchy");
        assert!(u.dir().join("cgroup.procs").exists());
    }
    for h in fx.cg.hierarchies() {
        assert!(h.dir().is_dir(), "{}", h.dir().display());
        assert_eq!(h.dir().file_name().unwrap(), name.as_str());
    }
    // state.json round trip keeps every path.
    let back: Cgroup = serde_json::from_str(&serde_json::to_string(&fx.cg).unwrap()).unwrap();
    assert_eq!(back, fx.cg);
}

#[test]
fn memory_and_swap_can_be_raised_and_lowered_in_any_order() {
    if !v1_host() {
        return;
    }
    let fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("memsw"))), "ctr").unwrap());
    if !fx.dir("memory").join("memory.memsw.limit_in_bytes").exists() {
        eprintln!("skipped: swap accounting is off");
        return;
    }
    let mem = |limit: i64, swap: i64| {
        let m = LinuxMemoryBuilder::default().limit(limit).swap(swap).build().unwrap();
        LinuxResourcesBuilder::default().memory(m).build().unwrap()
    };
    for (limit, swap) in [
        (256i64 << 20, 512i64 << 20),
        (64 << 20, 128 << 20),
        (1 << 30, 2 << 30),
        (32 << 20, 32 << 20),
    ] {
        fx.cg
            .apply(&mem(limit, swap))
            .unwrap_or_else(|e| panic!("{limit}/{swap}: {e}"));
        assert_eq!(fx.read("memory", "memory.limit_in_bytes"), limit.to_string());
        assert_eq!(fx.read("memory", "memory.memsw.limit_in_bytes"), swap.to_string());
    }
    let cpu = |quota: i64, period: u64| {
        let c = LinuxCpuBuilder::default().quota(quota).period(period).build().unwrap();
        LinuxResourcesBuilder::default().cpu(c).build().unwrap()
    };
    for (quota, period) in [(50_000i64, 100_000u64), (5_000, 10_000), (-1, 1_000_000)] {
        fx.cg
            .apply(&cpu(quota, period))
            .unwrap_or_else(|e| panic!("{quota}/{period}: {e}"));
        assert_eq!(fx.read("cpu", "cpu.cfs_period_us"), period.to_string());
        assert_eq!(fx.read("cpu", "cpu.cfs_quota_us"), quota.to_string());
    }
}

#[test]
fn device_rules_reach_devices_list() {
    if !v1_host() {
        return;
    }
    let fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("dev"))), "ctr").unwrap());
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let null = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(3)
        .access("rwm")
        .build()
        .unwrap();
    let res = LinuxResourcesBuilder::default()
        .devices(vec![deny_all, null])
        .build()
        .unwrap();
    fx.cg.apply(&res).unwrap();
    assert_eq!(fx.read("devices", "devices.list"), "c 1:3 rwm");
}

#[test]
fn missing_controllers_on_this_host_are_errors() {
    if !v1_host() {
        return;
    }
    let fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("missing"))), "ctr").unwrap());
    if fx.cg.v1_hierarchy("net_cls").is_none() {
        let net = LinuxResourcesBuilder::default()
            .network(LinuxNetworkBuilder::default().class_id(0x100001u32).build().unwrap())
            .build()
            .unwrap();
        let err = fx.cg.apply(&net).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::MissingController {
                    controller: "net_cls",
                    ..
                }
            ),
            "{err}"
        );
    }
    let odd_size = LinuxHugepageLimitBuilder::default()
        .page_size("3MB")
        .limit(0i64)
        .build()
        .unwrap();
    let res = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![odd_size])
        .build()
        .unwrap();
    let err = fx.cg.apply(&res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingFile { .. } | CgroupError::MissingController { .. }
        ),
        "{err}"
    );
}

#[test]
fn relative_path_goes_below_our_own_cgroup_and_destroy_keeps_it() {
    if !v1_host() {
        return;
    }
    let name = unique("rel");
    let fx = Fixture::new(Cgroup::for_container(Some(&name), "ctr").unwrap());
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_memory = own
        .lines()
        .find_map(|l| l.split_once(":memory:"))
        .map(|(_, p)| p.to_string());
    let memory = fx.cg.v1_hierarchy("memory").unwrap();
    let expected = Path::new(own_memory.as_deref().unwrap_or("/").trim_start_matches('/')).join(&name);
    assert_eq!(memory.path, expected);
    let parent = memory.dir().parent().unwrap().to_path_buf();
    drop(fx);
    assert!(parent.is_dir(), "destroy removed our own cgroup {}", parent.display());
    assert!(!parent.join(&name).exists());
}

#[test]
fn v1_oom_eventfd_counts_an_oom_kill() {
    if !v1_host() {
        return;
    }
    let mut fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("oom"))), "ctr").unwrap());
    let limit = 16i64 << 20;
    let mut m = LinuxMemoryBuilder::default().limit(limit);
    if fx.dir("memory").join("memory.memsw.limit_in_bytes").exists() {
        m = m.swap(limit); // no swap: the hog must be killed, not swapped out
    }
    fx.cg
        .apply(
            &LinuxResourcesBuilder::default()
                .memory(m.build().unwrap())
                .build()
                .unwrap(),
        )
        .unwrap();
    let OomEventSource::EventFd(efd) = fx.cg.oom_event_source().unwrap() else {
        eprintln!("skipped: memory is not a v1 controller here");
        return;
    };
    // dd allocates and fills a 64 MiB buffer: four times the limit.
    fx.spawn_in_cgroup("exec /bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
    let mut pfd = libc::pollfd {
        fd: efd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(ready, 1, "no OOM event within 10 s");
    let mut count = [0u8; 8];
    // SAFETY: reading 8 bytes into an 8-byte buffer from our own eventfd.
    let n = unsafe { libc::read(efd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    assert_eq!(n, 8);
    assert!(u64::from_ne_bytes(count) >= 1);
    let status = fx.children[0].wait().unwrap();
    assert!(!status.success(), "the hog survived: {status:?}");
    // The peak reached the limit. (failcnt stays 0 on recent kernels: not asserted.)
    let memory = fx.cg.stats().unwrap().memory;
    assert_eq!(memory.usage.max, limit as u64, "{:?}", memory.usage);
    assert!(memory.oom_kill >= 1, "oom_kill {}", memory.oom_kill);
}

#[test]
fn v2_unified_mount_creates_joins_freezes_and_destroys() {
    if !nix::unistd::geteuid().is_root() || !Path::new(UNIFIED).join("cgroup.procs").exists() {
        eprintln!("skipped: needs root and a cgroup2 mount at {UNIFIED}");
        return;
    }
    let mut fx = Fixture::new(
        Cgroup::with_root(
            Path::new(UNIFIED),
            Layout::V2,
            Some(&format!("/{}", unique("v2"))),
            "ctr",
        )
        .unwrap(),
    );
    let dir = fx.cg.unified_hierarchy().unwrap().dir();
    let pid = fx.spawn_in_cgroup("exec sleep 1000");
    assert_eq!(fx.cg.pids().unwrap(), vec![pid]);
    fx.cg.freeze().unwrap();
    assert!(fx.cg.is_frozen().unwrap());
    assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap().trim(), "1");
    fx.cg.thaw().unwrap();
    assert!(!fx.cg.is_frozen().unwrap());
    if fx.cg.unified_controllers().unwrap().iter().any(|c| c == "hugetlb") {
        let h = LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 21)
            .build()
            .unwrap();
        fx.cg
            .apply(
                &LinuxResourcesBuilder::default()
                    .hugepage_limits(vec![h])
                    .build()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("hugetlb.2MB.max")).unwrap().trim(),
            (4u64 << 21).to_string()
        );
        if let Ok(rsvd) = fs::read_to_string(dir.join("hugetlb.2MB.rsvd.max")) {
            assert_eq!(rsvd.trim(), (4u64 << 21).to_string());
        }
        assert!(fx.cg.stats().unwrap().hugetlb.contains_key("2MB"));
    }
    fx.kill_children();
    fx.cg.destroy().unwrap();
    assert!(!dir.exists());
}

/// major:minor of a real disk (not zram or loop), for throttle rules.
fn some_disk() -> Option<String> {
    let mut disks: Vec<_> = fs::read_dir("/sys/block").ok()?.filter_map(|e| e.ok()).collect();
    disks.sort_by_key(|e| e.file_name());
    disks
        .into_iter()
        .filter(|e| {
            !e.file_name().to_string_lossy().starts_with("zram") && !e.file_name().to_string_lossy().starts_with("loop")
        })
        .find_map(|e| {
            fs::read_to_string(e.path().join("dev"))
                .ok()
                .map(|d| d.trim().to_string())
        })
}

#[test]
fn blkio_weight_falls_back_to_bfq_and_throttles_reach_the_kernel() {
    if !v1_host() {
        return;
    }
    let Some(disk) = some_disk() else {
        eprintln!("skipped: no block device");
        return;
    };
    let (major, minor) = disk
        .split_once(':')
        .map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()))
        .unwrap();
    let fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("blkio"))), "ctr").unwrap());
    let throttle = oci_spec::runtime::LinuxThrottleDeviceBuilder::default()
        .major(major)
        .minor(minor)
        .rate(1u64 << 20)
        .build()
        .unwrap();
    let dir = fx.dir("blkio");
    // Proportional weights need CFQ (blkio.weight) or BFQ (blkio.bfq.weight) in the kernel.
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| dir.join(f).exists());
    let mut b = oci_spec::runtime::LinuxBlockIoBuilder::default().throttle_read_bps_device(vec![throttle]);
    if weight_file.is_some() {
        b = b.weight(300u16);
    }
    fx.cg
        .apply(
            &LinuxResourcesBuilder::default()
                .block_io(b.build().unwrap())
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        fx.read("blkio", "blkio.throttle.read_bps_device"),
        format!("{disk} {}", 1u64 << 20)
    );
    if let Some(weight_file) = weight_file {
        // blkio.bfq.weight reads back as "default 300".
        assert!(
            fx.read("blkio", weight_file).ends_with("300"),
            "{}",
            fx.read("blkio", weight_file)
        );
    }
}

/// Removes `/name` in every hierarchy on drop (the shared parent of the concurrency test).
struct ParentGuard(Vec<PathBuf>);

impl Drop for ParentGuard {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = fs::remove_dir(dir);
        }
    }
}

#[test]
fn concurrent_create_and_destroy_under_one_parent_never_fail() {
    if !v1_host() {
        return;
    }
    let parent = unique("par");
    let probe = Cgroup::for_container(Some(&format!("/{parent}/probe")), "p").unwrap();
    let _guard = ParentGuard(probe.hierarchies().iter().map(|h| h.mount.join(&parent)).collect());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let parent = parent.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    // Each container may find the parent present or not, and may remove it.
                    let cg = Cgroup::for_container(Some(&format!("/{parent}/c{t}-{i}")), "c").unwrap();
                    let made = cg.create();
                    let removed = cg.destroy();
                    made.and(removed)
                        .unwrap_or_else(|e| panic!("thread {t} round {i}: {e}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn destroy_waits_out_a_task_that_is_still_exiting() {
    if !v1_host() {
        return;
    }
    let mut fx = Fixture::new(Cgroup::for_container(Some(&format!("/{}", unique("busy"))), "ctr").unwrap());
    let pid = fx.spawn_in_cgroup("exec sleep 1000");
    // While the task lives, rmdir says EBUSY; it ends 100 ms into destroy's retries.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    });
    let started = std::time::Instant::now();
    fx.cg.destroy().unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(90));
    killer.join().unwrap();
    for h in fx.cg.hierarchies() {
        assert!(!h.dir().exists(), "{} remains", h.dir().display());
    }
}
