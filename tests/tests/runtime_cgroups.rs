//! Cgroups of husk's containers on this hybrid host (v1 controllers at
//! /sys/fs/cgroup/<controller>, cgroup2 with hugetlb only at /sys/fs/cgroup/unified):
//! resource limits seen from the host and from inside, removal on delete, the freezer, ps.
//! Every test runs on husk and on runc, the control, and asserts the same.

mod runtime_support;

use std::path::PathBuf;
use std::time::Duration;

use husk_e2e::{assert_no_cgroup, cgroup_dirs, wait_until, Bundle, Runtime};
use runtime_support::*;
use serde_json::{json, Value};

fn v1_file(cgroups_path: &str, controller: &str, file: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(cgroups_path.trim_start_matches('/'))
        .join(file)
}

fn read_trim(path: &PathBuf) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn limited_bundle(args: &[&str]) -> Bundle {
    let mut bundle = Bundle::new(args);
    bundle.config_mut()["linux"]["resources"] = json!({
        "devices": [{ "allow": false, "access": "rwm" }],
        "memory": { "limit": 67108864 },
        "cpu": { "shares": 512, "quota": 50000, "period": 100000 },
        "pids": { "limit": 20 }
    });
    bundle.save();
    bundle
}

#[test]
fn limits_are_written_in_the_hosts_v1_hierarchies() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = limited_bundle(&["sleep", "100"]);
        let pid = create_ok(&rt, &bundle);
        let cg = bundle.cgroups_path();
        for (controller, file, want) in [
            ("memory", "memory.limit_in_bytes", "67108864"),
            ("cpu", "cpu.shares", "512"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.cfs_period_us", "100000"),
            ("pids", "pids.max", "20"),
        ] {
            assert_eq!(read_trim(&v1_file(&cg, controller, file)), want, "{name}: {file}");
        }
        // The init is in the container's cgroup of every hierarchy.
        for controller in ["memory", "cpu", "pids", "freezer", "devices", "blkio", "cpuset"] {
            let procs = read_trim(&v1_file(&cg, controller, "cgroup.procs"));
            assert_eq!(procs, pid.to_string(), "{name}: {controller}/cgroup.procs");
        }
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            own.lines().any(|l| l.ends_with(&format!(":memory:{cg}"))),
            "{name}: {own}"
        );
    }
}

#[test]
fn limits_are_visible_inside_the_container() {
    for rt in Runtime::husk_and_runc() {
        let bundle = limited_bundle(&[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares",
        ]);
        assert_eq!(run_ok(&rt, &bundle), "67108864\n20\n512\n", "{}", rt.name());
    }
}

#[test]
fn the_pids_limit_stops_forks() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = limited_bundle(&["sh", "-c", "for i in $(seq 30); do sleep 10 & done; echo all forked"]);
        bundle.config_mut()["linux"]["resources"]["pids"]["limit"] = 5.into();
        bundle.save();
        let out = run_fg(&rt, &bundle);
        let text = husk_e2e::output_text(&out);
        assert!(!stdout_of(&out).contains("all forked"), "{}: {text}", rt.name());
        assert!(stderr_of(&out).contains("can't fork"), "{}: {text}", rt.name());
    }
}

#[test]
fn delete_removes_the_cgroup_from_every_hierarchy() {
    for rt in Runtime::husk_and_runc() {
        let bundle = limited_bundle(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let dirs = cgroup_dirs(&bundle.cgroups_path());
        // cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids, name=systemd, unified...
        assert!(dirs.len() >= 9, "{}: {dirs:?}", rt.name());
        rt.run_ok(&["kill", bundle.id(), "KILL"]);
        wait_status(&rt, bundle.id(), "stopped");
        rt.run_ok(&["delete", bundle.id()]);
        assert_no_cgroup(&bundle.cgroups_path());
    }
}

#[test]
fn pause_freezes_and_resume_thaws() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = Bundle::new(&["sleep", "100"]);
        let pid = create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let freezer = v1_file(&bundle.cgroups_path(), "freezer", "freezer.state");

        rt.run_ok(&["pause", bundle.id()]);
        assert_eq!(read_trim(&freezer), "FROZEN", "{name}");
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("paused"), "{name}");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(stat.contains(") D ") || stat.contains(") S "), "{name}: {stat}");
        let again = rt.run(&["pause", bundle.id()]);
        assert!(!again.status.success(), "{name} paused a paused container");
        if name == "husk" {
            assert_one_line_error(&again, "paused");
        }

        rt.run_ok(&["resume", bundle.id()]);
        assert_eq!(read_trim(&freezer), "THAWED", "{name}");
        assert_eq!(status_of(&rt, bundle.id()).as_deref(), Some("running"), "{name}");
        let again = rt.run(&["resume", bundle.id()]);
        assert!(!again.status.success(), "{name} resumed a running container");
        if name == "husk" {
            assert_one_line_error(&again, "running");
        }
    }
}

#[test]
fn delete_force_of_a_paused_container_leaves_nothing() {
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        rt.run_ok(&["pause", bundle.id()]);
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn ps_lists_every_process_of_the_container() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sh_bundle("sleep 100 & sleep 100 & wait");
        let pid = create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let procs = v1_file(&bundle.cgroups_path(), "pids", "cgroup.procs");
        let three = wait_until(Duration::from_secs(20), || read_trim(&procs).lines().count() == 3);
        assert!(three, "{name}: cgroup.procs: {}", read_trim(&procs));
        let json: Value = serde_json::from_str(&rt.run_ok(&["ps", "--format", "json", bundle.id()])).unwrap();
        let mut listed: Vec<i64> = json
            .as_array()
            .expect("ps --format json is an array")
            .iter()
            .map(|p| p.as_i64().unwrap())
            .collect();
        listed.sort();
        let mut want: Vec<i64> = read_trim(&procs).lines().map(|l| l.parse().unwrap()).collect();
        want.sort();
        assert_eq!(listed, want, "{name}");
        assert!(listed.contains(&(pid as i64)), "{name}");

        let table = rt.run_ok(&["ps", bundle.id()]);
        assert!(
            table.lines().next().unwrap_or_default().contains("PID"),
            "{name}: {table}"
        );
        assert_eq!(table.lines().count(), 4, "{name}: header and three processes:\n{table}");
    }
}

#[test]
fn kill_all_reaches_every_process_in_the_cgroup() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = sh_bundle("sleep 100 & sleep 100 & wait");
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let procs = v1_file(&bundle.cgroups_path(), "pids", "cgroup.procs");
        let three = wait_until(Duration::from_secs(20), || read_trim(&procs).lines().count() == 3);
        assert!(three, "{name}: not three processes: {}", read_trim(&procs));
        rt.run_ok(&["kill", "--all", bundle.id(), "KILL"]);
        let empty = wait_until(Duration::from_secs(20), || read_trim(&procs).is_empty());
        assert!(empty, "{name}: left in the cgroup: {}", read_trim(&procs));
        wait_status(&rt, bundle.id(), "stopped");
    }
}

#[test]
fn update_changes_the_limits_of_a_live_container() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = limited_bundle(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let id = bundle.id();
        // runc's flag is --cpu-share (singular).
        let flags = ["--memory", "33554432", "--pids-limit", "7", "--cpu-share", "256"];
        rt.run_ok(&[&["update"][..], &flags, &[id]].concat());
        let cg = bundle.cgroups_path();
        let limit = read_trim(&v1_file(&cg, "memory", "memory.limit_in_bytes"));
        assert_eq!(limit, "33554432", "{name}");
        assert_eq!(read_trim(&v1_file(&cg, "pids", "pids.max")), "7", "{name}");
        assert_eq!(read_trim(&v1_file(&cg, "cpu", "cpu.shares")), "256", "{name}");
        if name == "husk" {
            // husk also takes the plural, the config field's name; runc 1.1.5 refuses it.
            rt.run_ok(&["update", "--cpu-shares", "384", id]);
            assert_eq!(read_trim(&v1_file(&cg, "cpu", "cpu.shares")), "384", "{name}");
        }
        // A resources file with the usual deny-all device rule must keep the default devices usable.
        let file = bundle.path().join("resources.json");
        let resources = json!({ "devices": [{ "allow": false, "access": "rwm" }], "pids": { "limit": 9 } });
        std::fs::write(&file, resources.to_string()).unwrap();
        rt.run_ok(&["update", "--resources", file.to_str().unwrap(), id]);
        assert_eq!(read_trim(&v1_file(&cg, "pids", "pids.max")), "9", "{name}");
        let list = read_trim(&v1_file(&cg, "devices", "devices.list"));
        assert!(
            list.lines().any(|l| l == "c 1:3 rwm"),
            "{name}: /dev/null not allowed after update:\n{list}"
        );
    }
}

#[test]
fn events_stats_report_memory_pids_and_cpuset() {
    let (mut cpusets, mut shapes) = (Vec::new(), Vec::new());
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = limited_bundle(&["sleep", "100"]);
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        let out = rt.run_ok(&["events", "--stats", bundle.id()]);
        let event: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{name}: {e}: {out}"));
        assert_eq!(event["type"], "stats", "{name}: {event}");
        assert_eq!(event["id"], bundle.id(), "{name}: {event}");
        let usage = event["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        assert!(usage > 0, "{name}: {event}");
        assert_eq!(event["data"]["pids"]["current"], 1, "{name}: {event}");
        assert_eq!(event["data"]["pids"]["limit"], 20, "{name}: {event}");
        let cpus = event["data"]["cpuset"]["cpus"].as_array().map_or(0, Vec::len);
        assert!(cpus > 0, "{name}: no cpuset.cpus: {event}");
        cpusets.push(event["data"]["cpuset"].clone());
        shapes.push(zero_figures_left_out(&event["data"]));
    }
    // The container inherits the host's cpuset: both report the same one.
    assert_eq!(cpusets[0], cpusets[1], "husk's cpuset stats, then runc's");
    assert_eq!(shapes[0], shapes[1], "what husk leaves out at zero, then runc");
}

/// What runc leaves out at zero (omitempty in its types/events.go), as a rule both must follow,
/// and runc's two fixed members. husk printed `"throttledPeriods": 0` and so on before. The
/// figures themselves vary (the CPU quota's period count), so only zeros are looked for.
fn zero_figures_left_out(data: &Value) -> Value {
    let zeros_in = |v: &Value| {
        let members = v.as_object().into_iter().flatten();
        members
            .filter(|(_, n)| n.as_u64() == Some(0))
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    json!({
        "zero throttling figures": zeros_in(&data["cpu"]["throttling"]),
        "zero pids figures": zeros_in(&data["pids"]),
        "kernelTCP keys": data["memory"]["kernelTCP"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        "intel_rdt": data["intel_rdt"],
        "network_interfaces": data.get("network_interfaces"),
    })
}

/// `/proc/self/cgroup` as the container's process sees it first thing, with or without a
/// cgroup namespace: (hierarchy, path) per line, the unified `0::` line left out (this host's
/// cgroup2 has no controller that runc or husk joins in a way that tells them apart).
fn first_sight_of_own_cgroups(rt: &Runtime, cgroupns: bool) -> (Vec<(String, String)>, String) {
    let mut bundle = Bundle::new(&["cat", "/proc/self/cgroup"]);
    if cgroupns {
        bundle.config_mut()["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({ "type": "cgroup" }));
    }
    bundle.save();
    let out = run_ok(rt, &bundle);
    let lines = out
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            (!ctrl.is_empty()).then(|| (ctrl.to_owned(), path.to_owned()))
        })
        .collect();
    (lines, bundle.cgroups_path())
}

/// The init joins its cgroups while it mounts (sync.rs: Proceed, then CgroupJoined); what runs
/// where must not change: the process is in the container's cgroup of every v1 hierarchy
/// from its first instruction, and a cgroup namespace is rooted there (every path `/`), as
/// with runc.
#[test]
fn the_process_starts_in_its_cgroups_and_a_cgroup_namespace_is_rooted_there() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let (lines, cg) = first_sight_of_own_cgroups(&rt, false);
        assert!(lines.len() >= 5, "{name}: {lines:?}");
        for (ctrl, path) in &lines {
            assert_eq!(path, &cg, "{name}: {ctrl} without a cgroup namespace: {lines:?}");
        }
        let (lines, _) = first_sight_of_own_cgroups(&rt, true);
        assert!(lines.len() >= 5, "{name}: {lines:?}");
        for (ctrl, path) in &lines {
            assert_eq!(path, "/", "{name}: {ctrl} in a cgroup namespace: {lines:?}");
        }
    }
}
