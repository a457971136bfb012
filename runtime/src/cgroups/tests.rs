//! Tests against fake cgroupfs trees in a temp dir. Plain files stand in for control files: a
//! test creates the files the kernel would (a missing one must give an error), and reads back
//! the last value written.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::*;

/// A temp dir removed on drop.
pub(super) struct FakeTree(pub(super) PathBuf);

impl FakeTree {
    pub(super) fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("husk-cgroup-fake-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        FakeTree(root)
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Makes `rel` with the given control files, as the kernel would on mkdir.
    pub(super) fn dir(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(rel);
        fs::create_dir_all(&dir).unwrap();
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
        dir
    }

    pub(super) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn memory(limit: i64, swap: Option<i64>) -> LinuxResources {
    let mut m = LinuxMemoryBuilder::default().limit(limit);
    if let Some(s) = swap {
        m = m.swap(s);
    }
    LinuxResourcesBuilder::default()
        .memory(m.build().unwrap())
        .build()
        .unwrap()
}

fn kv(key: &str, value: &str) -> std::collections::HashMap<String, String> {
    [(key.to_string(), value.to_string())].into()
}

fn hugepages(size: &str, limit: i64) -> LinuxResources {
    let h = LinuxHugepageLimitBuilder::default()
        .page_size(size)
        .limit(limit)
        .build()
        .unwrap();
    LinuxResourcesBuilder::default()
        .hugepage_limits(vec![h])
        .build()
        .unwrap()
}

const V1_MEMORY_FILES: &[(&str, &str)] = &[
    ("memory.limit_in_bytes", "9223372036854771712"),
    ("memory.memsw.limit_in_bytes", "9223372036854771712"),
    ("memory.soft_limit_in_bytes", ""),
    ("memory.swappiness", "60"),
    ("cgroup.procs", ""),
];

#[test]
fn cgroups_path_default_absolute_relative_and_refused() {
    assert_eq!(
        parse_cgroups_path(None, "c1").unwrap(),
        CgroupsPath::Absolute("husk/c1".into())
    );
    assert_eq!(
        parse_cgroups_path(Some(""), "c1").unwrap(),
        CgroupsPath::Absolute("husk/c1".into())
    );
    assert_eq!(
        parse_cgroups_path(Some("/a/./b/"), "c1").unwrap(),
        CgroupsPath::Absolute("a/b".into())
    );
    assert_eq!(
        parse_cgroups_path(Some("pod/c1"), "c1").unwrap(),
        CgroupsPath::Relative("pod/c1".into())
    );
    let systemd = parse_cgroups_path(Some("system.slice:docker:abc"), "c1").unwrap_err();
    assert!(matches!(systemd, CgroupError::SystemdPath(_)));
    assert!(systemd.to_string().contains("systemd driver"), "{systemd}");
    assert!(matches!(
        parse_cgroups_path(Some("/a/../../etc"), "c1"),
        Err(CgroupError::InvalidPath { .. })
    ));
    assert!(matches!(
        parse_cgroups_path(Some("/"), "c1"),
        Err(CgroupError::InvalidPath { .. })
    ));
    assert!(parse_cgroups_path(None, "../x").is_err());
}

#[test]
fn v1_create_makes_every_hierarchy_and_inherits_cpuset() {
    let t = FakeTree::new();
    t.dir("cpuset", &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
    // What the kernel shows in a fresh cpuset: empty cpus and mems.
    for level in ["cpuset/husk", "cpuset/husk/c1"] {
        t.dir(level, &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")]);
    }
    t.dir("memory", &[]);
    t.dir("systemd", &[]);
    t.dir("cpu,cpuacct", &[]);
    std::os::unix::fs::symlink(t.path("cpu,cpuacct"), t.path("cpu")).unwrap();
    let cg = Cgroup::with_root(&t.0, Layout::V1, None, "c1").unwrap();
    assert_eq!(cg.hierarchies().len(), 4, "{cg:?}");
    assert!(cg.v1_hierarchy("name=systemd").is_some());
    assert!(cg.v1_hierarchy("cpuacct").is_some());
    assert_eq!(cg.path(), PathBuf::from("/husk/c1"));
    cg.create().unwrap();
    assert!(cg.exists());
    assert_eq!(t.read("cpuset/husk/cpuset.cpus"), "0-3");
    assert_eq!(t.read("cpuset/husk/c1/cpuset.cpus"), "0-3");
    assert_eq!(t.read("cpuset/husk/c1/cpuset.mems"), "0");
    assert!(t.path("systemd/husk/c1").is_dir());
}

#[test]
fn v1_apply_writes_each_controller_file() {
    let t = FakeTree::new();
    let cg = {
        for h in ["memory", "cpu", "pids", "blkio", "devices", "cpuset"] {
            t.dir(h, &[]);
        }
        Cgroup::with_root(&t.0, Layout::V1, Some("/ctr"), "c1").unwrap()
    };
    cg.create().unwrap();
    t.dir("memory/ctr", V1_MEMORY_FILES);
    t.dir(
        "cpu/ctr",
        &[("cpu.shares", ""), ("cpu.cfs_period_us", ""), ("cpu.cfs_quota_us", "")],
    );
    t.dir("pids/ctr", &[("pids.max", "")]);
    // A BFQ-only kernel: no blkio.weight, only blkio.bfq.weight.
    t.dir("blkio/ctr", &[("blkio.bfq.weight", "")]);
    t.dir("devices/ctr", &[("devices.allow", ""), ("devices.deny", "")]);
    t.dir("cpuset/ctr", &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .swap(128 << 20)
                .reservation(32 << 20)
                .swappiness(0u64)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(25_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
        .block_io(LinuxBlockIoBuilder::default().weight(300u16).build().unwrap())
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()
            .unwrap()])
        .build()
        .unwrap();
    cg.apply(&res).unwrap();
    assert_eq!(t.read("memory/ctr/memory.limit_in_bytes"), (64 << 20).to_string());
    assert_eq!(
        t.read("memory/ctr/memory.memsw.limit_in_bytes"),
        (128 << 20).to_string()
    );
    assert_eq!(t.read("memory/ctr/memory.soft_limit_in_bytes"), (32 << 20).to_string());
    assert_eq!(t.read("memory/ctr/memory.swappiness"), "0");
    assert_eq!(t.read("cpu/ctr/cpu.shares"), "512");
    assert_eq!(t.read("cpu/ctr/cpu.cfs_quota_us"), "25000");
    assert_eq!(t.read("cpu/ctr/cpu.cfs_period_us"), "100000");
    assert_eq!(t.read("pids/ctr/pids.max"), "42");
    assert_eq!(t.read("blkio/ctr/blkio.bfq.weight"), "300");
    assert_eq!(t.read("devices/ctr/devices.allow"), "a *:* rwm");
    assert_eq!(t.read("cpuset/ctr/cpuset.cpus"), "0");
}

#[test]
fn v1_missing_controllers_and_files_are_errors() {
    let t = FakeTree::new();
    t.dir("memory", &[]);
    t.dir("cpu", &[]);
    let cg = Cgroup::with_root(&t.0, Layout::V1, Some("/ctr"), "c1").unwrap();
    cg.create().unwrap();
    t.dir("memory/ctr", &[("memory.limit_in_bytes", "1")]);
    t.dir("cpu/ctr", &[("cpu.shares", "")]);
    let err = cg.apply(&hugepages("2MB", 1 << 21)).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "hugetlb",
                ..
            }
        ),
        "{err}"
    );
    let net = LinuxResourcesBuilder::default()
        .network(LinuxNetworkBuilder::default().class_id(7u32).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        cg.apply(&net),
        Err(CgroupError::MissingController {
            controller: "net_cls",
            ..
        })
    ));
    let pids = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(1).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        cg.apply(&pids),
        Err(CgroupError::MissingController { controller: "pids", .. })
    ));
    // No memsw file: swap accounting is off.
    let err = cg.apply(&memory(100 << 20, Some(200 << 20))).unwrap_err();
    assert!(err.to_string().contains("memsw"), "{err}");
    // No cfs files at all in this cpu cgroup.
    let quota = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().quota(5000i64).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&quota), Err(CgroupError::MissingFile { .. })));
    // A bad value anywhere leaves everything untouched, even controllers listed before it.
    let mixed = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(4096i64).build().unwrap())
        .cpu(LinuxCpuBuilder::default().shares(2u64).quota(10i64).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&mixed), Err(CgroupError::InvalidValue { .. })));
    assert_eq!(t.read("memory/ctr/memory.limit_in_bytes"), "1");
    assert_eq!(t.read("cpu/ctr/cpu.shares"), "");
    let zero_period = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().quota(5000i64).period(0u64).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&zero_period), Err(CgroupError::InvalidValue { .. })));
    let unified = LinuxResourcesBuilder::default()
        .unified(kv("memory.high", "1"))
        .build()
        .unwrap();
    // memory is a v1 hierarchy here: the key is named (without v2 at all, a key of another
    // controller would be Unsupported).
    assert!(matches!(
        cg.apply(&unified),
        Err(CgroupError::UnifiedKeyForV1Controller { .. })
    ));
    let rdma = LinuxResourcesBuilder::default()
        .unified(kv("rdma.max", "1"))
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&rdma), Err(CgroupError::Unsupported { .. })));
    // Empty sections ask for nothing and succeed.
    let empty = LinuxResourcesBuilder::default()
        .block_io(LinuxBlockIoBuilder::default().build().unwrap())
        .build()
        .unwrap();
    cg.apply(&empty).unwrap();
}

const V2_LEAF: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpuset cpu io memory hugetlb pids"),
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("cpu.weight", ""),
    ("cpu.max", ""),
    ("memory.max", ""),
    ("memory.swap.max", ""),
    ("memory.low", ""),
    ("memory.high", ""),
    ("pids.max", ""),
    ("io.weight", ""),
    ("hugetlb.2MB.max", ""),
    ("cpuset.cpus", ""),
];

fn v2_tree() -> (FakeTree, Cgroup) {
    let t = FakeTree::new();
    t.dir(
        "",
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids"),
            ("cgroup.subtree_control", "cpuset cpu io memory pids"),
        ],
    );
    let cg = Cgroup::with_root(&t.0, Layout::V2, Some("/ctr"), "c1").unwrap();
    cg.create().unwrap();
    t.dir("ctr", V2_LEAF);
    (t, cg)
}

#[test]
fn v2_create_delegates_missing_controllers_and_apply_converts() {
    let (t, cg) = v2_tree();
    // Only the one controller not yet enabled was written.
    assert_eq!(t.read("cgroup.subtree_control"), "+hugetlb");
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100 << 20)
                .swap(300 << 20)
                .reservation(10 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(-1i64)
                .period(100_000u64)
                .cpus("0-1")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
        .block_io(LinuxBlockIoBuilder::default().weight(1000u16).build().unwrap())
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 << 21)
            .build()
            .unwrap()])
        .unified(kv("memory.high", "90M"))
        .build()
        .unwrap();
    cg.apply(&res).unwrap();
    assert_eq!(t.read("ctr/memory.max"), (100 << 20).to_string());
    assert_eq!(t.read("ctr/memory.swap.max"), (200 << 20).to_string());
    assert_eq!(t.read("ctr/memory.low"), (10 << 20).to_string());
    assert_eq!(t.read("ctr/memory.high"), "90M");
    assert_eq!(t.read("ctr/cpu.weight"), "39");
    assert_eq!(t.read("ctr/cpu.max"), "max 100000");
    assert_eq!(t.read("ctr/cpuset.cpus"), "0-1");
    assert_eq!(t.read("ctr/pids.max"), "max");
    assert_eq!(t.read("ctr/io.weight"), "10000");
    assert_eq!(t.read("ctr/hugetlb.2MB.max"), (4 << 21).to_string());
    // v2 device rules are a BPF program for a real cgroup (runtime/tests/cgroups_devices_bpf.rs):
    // a bad rule is refused before any write; a plain directory is no cgroup to attach to.
    let deny = |access: &str| {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access(access)
            .build()
            .unwrap()
    };
    let bad = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(7).build().unwrap())
        .devices(vec![deny("x")])
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&bad), Err(CgroupError::DeviceRule(_))));
    assert_eq!(t.read("ctr/pids.max"), "max");
    let devices = LinuxResourcesBuilder::default()
        .devices(vec![deny("rwm")])
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&devices), Err(CgroupError::DeviceFilter(_))));
}

#[test]
fn v2_refuses_what_it_cannot_do() {
    let (t, cg) = v2_tree();
    let net = LinuxResourcesBuilder::default()
        .network(LinuxNetworkBuilder::default().class_id(7u32).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&net), Err(CgroupError::Unsupported { .. })));
    assert!(matches!(
        cg.apply(&hugepages("1GB", 1 << 30)),
        Err(CgroupError::MissingFile { .. })
    ));
    // The unsupported page size is found before the pids limit is written.
    let mut both = hugepages("1GB", 1 << 30);
    both.set_pids(Some(LinuxPidsBuilder::default().limit(9).build().unwrap()));
    assert!(matches!(cg.apply(&both), Err(CgroupError::MissingFile { .. })));
    assert_eq!(t.read("ctr/pids.max"), "");
    let bad_key = LinuxResourcesBuilder::default()
        .unified(kv("../../x.y", "1"))
        .build()
        .unwrap();
    assert!(matches!(cg.apply(&bad_key), Err(CgroupError::InvalidValue { .. })));
    // A controller that did not make it into the leaf is missing, not silently skipped.
    fs::write(t.path("ctr/cgroup.controllers"), "cpu memory").unwrap();
    let pids = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        cg.apply(&pids),
        Err(CgroupError::MissingController { controller: "pids", .. })
    ));
    let rdma_key = LinuxResourcesBuilder::default()
        .unified(kv("rdma.max", "x"))
        .build()
        .unwrap();
    assert!(matches!(
        cg.apply(&rdma_key),
        Err(CgroupError::UnifiedControllerMissing { .. })
    ));
    // Swap accounting off: an explicit swap limit fails, unlimited memory still works.
    fs::remove_file(t.path("ctr/memory.swap.max")).unwrap();
    assert!(matches!(
        cg.apply(&memory(100, Some(200))),
        Err(CgroupError::MissingFile { .. })
    ));
    cg.apply(&memory(-1, None)).unwrap();
    assert_eq!(t.read("ctr/memory.max"), "max");
}

#[test]
fn v2_check_before_update_refuses_a_limit_below_usage() {
    let (t, cg) = v2_tree();
    fs::write(t.path("ctr/memory.current"), "5000\n").unwrap();
    let res = |check: bool| {
        let m = LinuxMemoryBuilder::default()
            .limit(4096i64)
            .check_before_update(check)
            .build()
            .unwrap();
        LinuxResourcesBuilder::default().memory(m).build().unwrap()
    };
    assert!(matches!(
        cg.apply(&res(true)),
        Err(CgroupError::InvalidValue {
            resource: "memory.limit",
            ..
        })
    ));
    assert_eq!(t.read("ctr/memory.max"), "");
    cg.apply(&res(false)).unwrap();
    assert_eq!(t.read("ctr/memory.max"), "4096");
}

#[test]
fn v2_freeze_and_oom_source_use_cgroup_files() {
    let (t, cg) = v2_tree();
    fs::write(t.path("ctr/cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze().unwrap();
    assert_eq!(t.read("ctr/cgroup.freeze"), "1");
    assert!(cg.is_frozen().unwrap());
    fs::write(t.path("ctr/cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    cg.thaw().unwrap();
    assert_eq!(t.read("ctr/cgroup.freeze"), "0");
    assert!(!cg.is_frozen().unwrap());
    match cg.oom_event_source().unwrap() {
        OomEventSource::MemoryEvents(p) => {
            assert_eq!(p, t.path("ctr/memory.events"));
            fs::write(&p, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
            assert_eq!(read_oom_kill_count(&p).unwrap(), 1);
        }
        other => panic!("{other:?}"),
    }
}

fn hybrid_tree() -> (FakeTree, Cgroup) {
    let t = FakeTree::new();
    for h in ["memory", "freezer", "systemd"] {
        t.dir(h, &[]);
    }
    t.dir(
        "unified",
        &[("cgroup.controllers", "hugetlb"), ("cgroup.subtree_control", "")],
    );
    let cg = Cgroup::with_root(&t.0, Layout::Hybrid, Some("/ctr"), "c1").unwrap();
    cg.create().unwrap();
    t.dir("memory/ctr", V1_MEMORY_FILES);
    t.dir("freezer/ctr", &[("freezer.state", "THAWED"), ("cgroup.procs", "")]);
    t.dir("systemd/ctr", &[("cgroup.procs", "")]);
    t.dir(
        "unified/ctr",
        &[
            ("cgroup.controllers", "hugetlb"),
            ("cgroup.procs", ""),
            ("hugetlb.2MB.max", ""),
        ],
    );
    (t, cg)
}

#[test]
fn hybrid_applies_each_resource_where_its_controller_lives() {
    let (t, cg) = hybrid_tree();
    assert_eq!(t.read("unified/cgroup.subtree_control"), "+hugetlb");
    cg.apply(&memory(50 << 20, None)).unwrap();
    assert_eq!(t.read("memory/ctr/memory.limit_in_bytes"), (50 << 20).to_string());
    cg.apply(&hugepages("2MB", -1)).unwrap();
    assert_eq!(t.read("unified/ctr/hugetlb.2MB.max"), "max");
    // memory is a v1 controller here: unified memory keys are refused, naming the key, before
    // anything is made.
    let high = LinuxResourcesBuilder::default()
        .unified(kv("memory.high", "1G"))
        .build()
        .unwrap();
    for err in [
        cg.apply(&high).unwrap_err(),
        cg.check_before_create(Some(&high)).unwrap_err(),
    ] {
        assert!(
            matches!(&err, CgroupError::UnifiedKeyForV1Controller { key, .. } if key == "memory.high"),
            "{err}"
        );
    }
    cg.check_before_create(Some(&hugepages("2MB", -1))).unwrap();
    cg.add_process(4242).unwrap();
    for h in ["memory", "freezer", "systemd", "unified"] {
        assert_eq!(t.read(&format!("{h}/ctr/cgroup.procs")), "4242", "{h}");
    }
    // The v1 freezer wins over cgroup.freeze.
    cg.freeze().unwrap();
    assert_eq!(t.read("freezer/ctr/freezer.state"), "FROZEN");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
}

#[test]
fn create_in_a_frozen_cgroup_is_refused() {
    let (t, cg) = hybrid_tree();
    cg.check_before_create(None).unwrap();
    fs::write(t.path("freezer/ctr/freezer.state"), "FROZEN").unwrap();
    let err = cg.check_before_create(None).unwrap_err();
    assert!(
        err.to_string().contains("container's cgroup unexpectedly frozen"),
        "{err}"
    );
}

#[test]
fn pids_are_listed_recursively() {
    let (t, cg) = hybrid_tree();
    fs::write(t.path("freezer/ctr/cgroup.procs"), "12\n10\n").unwrap();
    t.dir("freezer/ctr/nested", &[("cgroup.procs", "11\n")]);
    assert_eq!(cg.pids().unwrap(), vec![10, 11, 12]);
}

/// Containers a then b created under /shared/husk; a made husk, /shared existed before.
fn two_under_a_shared_parent() -> (FakeTree, Cgroup, Cgroup) {
    let t = FakeTree::new();
    t.dir("pids/shared", &[]);
    let a = Cgroup::with_root(&t.0, Layout::V1, Some("/shared/husk/a"), "a").unwrap();
    a.create().unwrap();
    let b = Cgroup::with_root(&t.0, Layout::V1, Some("/shared/husk/b"), "b").unwrap();
    b.create().unwrap();
    (t, a, b)
}

#[test]
fn destroy_removes_only_what_create_made() {
    let (t, a, b) = two_under_a_shared_parent();
    fs::create_dir(t.path("pids/shared/husk/a/nested")).unwrap();
    // b found husk existing: it owns only its leaf.
    b.destroy().unwrap();
    assert!(t.path("pids/shared/husk/a").is_dir());
    a.destroy().unwrap();
    assert!(!t.path("pids/shared/husk").exists());
    assert!(t.path("pids/shared").is_dir());
    // Destroying twice is fine.
    a.destroy().unwrap();
}

#[test]
fn the_last_container_deleted_removes_a_shared_parent_whoever_made_it() {
    let (t, a, b) = two_under_a_shared_parent();
    // a made husk but goes first: husk is busy then; b, which found it, removes it.
    a.destroy().unwrap();
    assert!(t.path("pids/shared/husk/b").is_dir());
    b.destroy().unwrap();
    assert!(!t.path("pids/shared/husk").exists());
    assert!(t.path("pids/shared").is_dir(), "a parent husk did not make stays");
}

#[test]
fn cgroup_survives_a_state_json_round_trip() {
    let (_t, cg) = hybrid_tree();
    let json = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cg);
    assert!(json.contains("\"layout\":\"hybrid\""), "{json}");
}

#[test]
fn stats_read_v1_and_v2_files() {
    let (t, cg) = hybrid_tree();
    t.dir(
        "memory/ctr",
        &[
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.failcnt", "2"),
            ("memory.stat", "cache 100\nrss 200\ntotal_cache 100\n"),
            ("memory.memsw.usage_in_bytes", "5000"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
        ],
    );
    t.dir(
        "unified/ctr",
        &[("hugetlb.2MB.current", "2097152"), ("hugetlb.2MB.events", "max 1\n")],
    );
    let s = cg.stats().unwrap();
    assert_eq!(
        (s.memory.usage.usage, s.memory.usage.max, s.memory.usage.failcnt),
        (4096, 8192, 2)
    );
    assert_eq!(s.memory.cache, 100);
    assert_eq!(s.memory.raw["rss"], 200);
    assert_eq!(s.memory.swap.usage, 5000);
    assert_eq!(s.memory.oom_kill, 2);
    assert_eq!(
        s.hugetlb["2MB"],
        HugetlbStats {
            usage: 2 << 20,
            max: 0,
            failcnt: 1
        }
    );

    let (t, cg) = v2_tree();
    t.dir(
        "ctr",
        &[
            (
                "cpu.stat",
                "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 5\nnr_throttled 1\nthrottled_usec 7\n",
            ),
            ("memory.current", "1000"),
            ("memory.max", "max"),
            ("memory.stat", "anon 10\nfile 20\n"),
            ("pids.current", "3"),
            ("pids.max", "max"),
            ("io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(
        (s.cpu.usage.total, s.cpu.usage.user, s.cpu.usage.kernel),
        (10_000, 6_000, 4_000)
    );
    assert_eq!((s.cpu.throttling.periods, s.cpu.throttling.throttled_time), (5, 7_000));
    assert_eq!(
        (s.memory.usage.usage, s.memory.usage.limit, s.memory.cache),
        (1000, u64::MAX, 20)
    );
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
}

#[test]
fn with_root_on_an_empty_tree_is_an_error() {
    let t = FakeTree::new();
    assert!(matches!(
        Cgroup::with_root(&t.0, Layout::V1, None, "c1"),
        Err(CgroupError::NoCgroupMounts(_))
    ));
    assert!(Path::new(&t.0).is_dir());
}
