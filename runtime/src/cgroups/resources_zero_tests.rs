//! "Zero means unset": the resources Docker, podman and the CRI plugin send, on create and on
//! update, applied to a fake v1 tree. Every file starts as "untouched"; a zero (or Docker's -1
//! swappiness) must leave it so, as runc's fs driver does, and a real value must land.

use oci_spec::runtime::LinuxResources;

use super::tests::FakeTree;
use super::*;

const UNTOUCHED: &str = "untouched";
/// The kernel's "no limit", which the memory writer reads back to order its writes.
const NO_MEMORY_LIMIT: &str = "9223372036854771712";

fn initial(file: &str) -> &'static str {
    if file == "memory.limit_in_bytes" {
        NO_MEMORY_LIMIT
    } else {
        UNTOUCHED
    }
}

const FILES: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.kmem.tcp.limit_in_bytes",
            "memory.oom_control",
        ],
    ),
    (
        "cpu",
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
        ],
    ),
    ("pids", &["pids.max"]),
    // A BFQ kernel (this host's): blkio.bfq.weight only, which refuses 0 with ERANGE.
    ("blkio", &["blkio.bfq.weight", "blkio.leaf_weight"]),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
];

fn v1_tree() -> (FakeTree, Cgroup) {
    let t = FakeTree::new();
    for (h, _) in FILES {
        t.dir(h, &[]);
    }
    let cg = Cgroup::with_root(&t.0, Layout::V1, Some("/ctr"), "c1").unwrap();
    cg.create().unwrap();
    for (h, files) in FILES {
        let contents: Vec<(&str, &str)> = files.iter().map(|f| (*f, initial(f))).collect();
        t.dir(&format!("{h}/ctr"), &contents);
    }
    (t, cg)
}

/// Every control file that no longer reads "untouched", as (file, value).
fn written(t: &FakeTree) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (h, files) in FILES {
        for f in *files {
            let v = t.read(&format!("{h}/ctr/{f}"));
            if v != initial(f) {
                out.push((f.to_string(), v));
            }
        }
    }
    out
}

struct Case {
    client: &'static str,
    resources: &'static str,
    expect: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        // `docker run busybox` with no limit flags (Docker 20.10, daemon/oci_linux.go).
        client: "docker run, no limits",
        resources: r#"{"memory":{},"cpu":{"shares":0},"blockIO":{"weight":0},"pids":{"limit":0}}"#,
        expect: &[],
    },
    Case {
        client: "docker run --memory 64m --pids-limit 20 --cpus 0.5 --memory-swappiness -1",
        resources: r#"{"memory":{"limit":67108864,"swap":134217728,"swappiness":18446744073709551615},
            "cpu":{"shares":0,"quota":50000,"period":100000},"blockIO":{"weight":0},"pids":{"limit":20}}"#,
        expect: &[
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "134217728"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("pids.max", "20"),
        ],
    },
    Case {
        // `docker update --memory 32m` (daemon/update_linux.go toContainerdResources): the whole
        // set, with zeros for everything not configured.
        client: "docker update --memory 32m",
        resources: r#"{"cpu":{"shares":0,"period":0,"quota":0,"cpus":"","mems":""},
            "memory":{"limit":33554432,"reservation":0,"kernel":0},"pids":{"limit":0}}"#,
        expect: &[("memory.limit_in_bytes", "33554432")],
    },
    Case {
        client: "docker update --pids-limit -1 --blkio-weight 300",
        resources: r#"{"blockIO":{"weight":300},"cpu":{"shares":0,"period":0,"quota":0},
            "memory":{"limit":0,"reservation":0,"kernel":0},"pids":{"limit":-1}}"#,
        expect: &[("pids.max", "max"), ("blkio.bfq.weight", "300")],
    },
    Case {
        client: "docker run --cpu-quota -1 --memory -1",
        resources: r#"{"memory":{"limit":-1},"cpu":{"quota":-1}}"#,
        expect: &[
            ("memory.limit_in_bytes", "-1"),
            ("memory.memsw.limit_in_bytes", "-1"),
            ("cpu.cfs_quota_us", "-1"),
        ],
    },
    Case {
        client: "docker run --memory-swappiness 0 --kernel-memory-tcp 1m",
        resources: r#"{"memory":{"swappiness":0,"kernelTCP":1048576}}"#,
        expect: &[
            ("memory.swappiness", "0"),
            ("memory.kmem.tcp.limit_in_bytes", "1048576"),
        ],
    },
    Case {
        // podman run: the default pids limit, the rest zero or absent.
        client: "podman run",
        resources: r#"{"pids":{"limit":2048},"blockIO":{"weight":0,"leafWeight":0}}"#,
        expect: &[("pids.max", "2048")],
    },
    Case {
        // The CRI plugin for a BestEffort pod container (kubelet: shares 2, period 100000, quota 0).
        client: "CRI BestEffort",
        resources: r#"{"cpu":{"shares":2,"quota":0,"period":100000,"cpus":"","mems":""},
            "memory":{"limit":0,"swap":0}}"#,
        expect: &[("cpu.shares", "2"), ("cpu.cfs_period_us", "100000")],
    },
    Case {
        client: "CRI update, rt period and runtime 0",
        resources: r#"{"cpu":{"shares":1024,"quota":0,"period":0,"realtimePeriod":0,"realtimeRuntime":0}}"#,
        expect: &[("cpu.shares", "1024")],
    },
];

#[test]
fn zero_means_unset_as_docker_podman_and_cri_send_it() {
    for case in CASES {
        let (t, cg) = v1_tree();
        let res: LinuxResources = serde_json::from_str(case.resources).unwrap();
        if let Err(e) = cg.apply(&res) {
            panic!("{}: {e}", case.client);
        }
        let want: Vec<(String, String)> = case
            .expect
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect();
        assert_eq!(written(&t), want, "{}", case.client);
    }
}

#[test]
fn zero_resources_need_no_controller() {
    // Docker's zeros on a host without blkio or pids mounted (a v1 host with only memory):
    // nothing is asked of them, so nothing can fail.
    let t = FakeTree::new();
    t.dir("memory", &[]);
    let cg = Cgroup::with_root(&t.0, Layout::V1, Some("/ctr"), "c1").unwrap();
    cg.create().unwrap();
    let res: LinuxResources = serde_json::from_str(CASES[0].resources).unwrap();
    cg.apply(&res).unwrap();
}

#[test]
fn swappiness_above_100_is_still_refused() {
    let (_t, cg) = v1_tree();
    let res: LinuxResources = serde_json::from_str(r#"{"memory":{"swappiness":101}}"#).unwrap();
    assert!(matches!(cg.apply(&res), Err(CgroupError::InvalidValue { .. })));
}
