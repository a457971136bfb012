//! Namespaces of husk's containers (and runc's, the control), compared with the host's through
//! /proc/<pid>/ns links: new ones differ, listed paths are joined, unlisted ones are shared.

mod runtime_support;

use std::process::Command;

use husk_e2e::{unique_id, Bundle, Runtime};
use runtime_support::*;
use serde_json::{json, Value};

const KINDS: [(&str, &str); 6] = [
    ("pid", "pid"),
    ("mount", "mnt"),
    ("uts", "uts"),
    ("ipc", "ipc"),
    ("network", "net"),
    ("cgroup", "cgroup"),
];

fn set_namespaces(config: &mut Value, list: Value) {
    config["linux"]["namespaces"] = list;
}

#[test]
fn every_new_namespace_differs_from_the_host() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        let all: Vec<Value> = KINDS.iter().map(|(t, _)| json!({ "type": t })).collect();
        set_namespaces(bundle.config_mut(), Value::Array(all));
        bundle.save();
        let pid = create_ok(&rt, &bundle).to_string();
        for (_, link) in KINDS {
            let host = ns_link("self", link);
            let container = ns_link(&pid, link);
            assert_ne!(host, container, "{}: {link} namespace must be new", rt.name());
        }
    }
}

#[test]
fn namespaces_not_listed_are_the_hosts() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = Bundle::new(&["sleep", "100"]);
        // Only pid and mount new: no hostname (it needs a uts namespace).
        set_namespaces(bundle.config_mut(), json!([{ "type": "pid" }, { "type": "mount" }]));
        bundle.config_mut()["hostname"] = "".into();
        bundle.save();
        let pid = create_ok(&rt, &bundle).to_string();
        for link in ["uts", "ipc", "net", "cgroup"] {
            assert_eq!(
                ns_link("self", link),
                ns_link(&pid, link),
                "{}: {link} is shared",
                rt.name()
            );
        }
        for link in ["pid", "mnt"] {
            assert_ne!(
                ns_link("self", link),
                ns_link(&pid, link),
                "{}: {link} is new",
                rt.name()
            );
        }
    }
}

/// `ip netns add <name>`; `ip netns del` on drop.
struct NetNs(String);

impl NetNs {
    fn add() -> NetNs {
        let name = unique_id("husk-ns");
        let out = Command::new("ip").args(["netns", "add", &name]).output().unwrap();
        assert!(out.status.success(), "ip netns add: {out:?}");
        NetNs(name)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn joining_a_netns_made_by_ip_netns_shares_it() {
    for rt in Runtime::husk_and_runc() {
        let netns = NetNs::add();
        let mut bundle = Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["linux"]["namespaces"][1] = json!({ "type": "network", "path": netns.path() });
        bundle.save();
        let pid = create_ok(&rt, &bundle);
        assert_eq!(
            inode(format!("/proc/{pid}/ns/net")),
            inode(netns.path()),
            "{}: the container is in the named netns",
            rt.name()
        );
    }
}

#[test]
fn joining_another_containers_namespaces_shares_them() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let first = Bundle::new(&["sleep", "100"]);
        let first_pid = create_ok(&rt, &first);
        rt.run_ok(&["start", first.id()]);

        let mut second = sh_bundle("echo $$; sleep 100");
        let ns = |kind: &str| format!("/proc/{first_pid}/ns/{kind}");
        second.config_mut()["linux"]["namespaces"] = json!([
            { "type": "pid", "path": ns("pid") },
            { "type": "network", "path": ns("net") },
            { "type": "ipc", "path": ns("ipc") },
            { "type": "uts", "path": ns("uts") },
            { "type": "mount" }
        ]);
        // The uts namespace is the first container's: its hostname stays.
        second.config_mut()["hostname"] = "".into();
        second.save();
        let second_pid = create_ok(&rt, &second);
        for link in ["pid", "net", "ipc", "uts"] {
            assert_eq!(
                ns_link(&first_pid.to_string(), link),
                ns_link(&second_pid.to_string(), link),
                "{name}: {link} is joined"
            );
        }
        assert_ne!(
            ns_link(&first_pid.to_string(), "mnt"),
            ns_link(&second_pid.to_string(), "mnt"),
            "{name}: mnt is new"
        );
        // In the first container's pid namespace the second is not pid 1.
        let status = std::fs::read_to_string(format!("/proc/{second_pid}/status")).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).expect("NSpid line");
        let inner: Vec<&str> = nspid.split_whitespace().skip(1).collect();
        assert_eq!(inner.len(), 2, "{name}: two pid namespaces: {nspid}");
        assert_ne!(inner[1], "1", "{name}: the joiner is not the init: {nspid}");
    }
}

#[test]
fn hostname_and_domainname_are_set_in_the_new_uts_namespace() {
    for rt in Runtime::husk_and_runc() {
        let out = run_script_on(&rt, "hostname; cat /proc/sys/kernel/domainname", |config| {
            config["hostname"] = "box1".into();
            config["domainname"] = "example.test".into();
        });
        // husk honours domainname; runc 1.1.5 parses but silently ignores it (its libcontainer
        // config has no Domainname until 1.2), so its new uts namespace keeps "(none)".
        let domain = if rt.name() == "husk" { "example.test" } else { "(none)" };
        assert_eq!(out, format!("box1\n{domain}\n"), "{}", rt.name());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "box1", "the host's hostname is untouched");
}

#[test]
fn the_process_is_pid_1_of_its_pid_namespace() {
    // Not run_script_on_both: the pids after 1 are not a contract (runc's Go init spends a few
    // on its threads before the exec).
    for rt in Runtime::husk_and_runc() {
        let out = run_script_on(&rt, "echo $$; ps -o pid,comm | tail -n +2", |_| {});
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("1"), "{}: {out}", rt.name());
        // Only the container's own processes are visible: sh as 1, ps, and the forked tail.
        let pids: Vec<&str> = lines.filter_map(|l| l.split_whitespace().next()).collect();
        assert!(pids.contains(&"1"), "{}: {out}", rt.name());
        assert!(pids.len() <= 3, "{}: host processes are visible: {out}", rt.name());
    }
}

#[test]
fn a_new_netns_has_only_loopback() {
    let out = run_script_on_both("cat /proc/net/dev | tail -n +3 | cut -d: -f1", |_| {});
    let ifaces: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

#[test]
fn a_user_namespace_maps_root_to_the_configured_host_ids() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("cat /proc/self/uid_map /proc/self/gid_map; id -u");
        add_user_namespace(&mut bundle);
        bundle.save();
        let out = run_ok(&rt, &bundle);
        let fields: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(fields[0], ["0", "100000", "65536"], "{}: {out}", rt.name());
        assert_eq!(fields[1], ["0", "100000", "65536"], "{}: {out}", rt.name());
        assert_eq!(fields[2], ["0"], "{}: {out}", rt.name());
    }
}

#[test]
fn a_created_init_cannot_be_read_through_proc_exe_from_its_pid_namespace() {
    // CVE-2019-5736: until it execs, the init is the runtime (husk, or runc's memfd clone);
    // it is non-dumpable, so a process in the container (root, without CAP_SYS_PTRACE)
    // cannot open /proc/1/exe to overwrite the runtime's binary.
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let first = Bundle::new(&["sleep", "100"]);
        let first_pid = create_ok(&rt, &first);
        let mut second =
            sh_bundle("cat /proc/1/exe > /dev/null 2>&1 && echo readable || echo denied; cat /proc/1/comm");
        second.config_mut()["linux"]["namespaces"][0] =
            json!({ "type": "pid", "path": format!("/proc/{first_pid}/ns/pid") });
        second.save();
        // husk is stricter than runc 1.1.5: its init is non-dumpable until the exec, so
        // /proc/1/exe cannot even be opened; runc's init is readable, but is a sealed memfd copy
        // (libcontainer/nsenter/cloned_binary.c), so writing through it cannot reach the host's
        // binary. The init's name is the runtime's own: runc's re-exec'd init is runc:[2:INIT].
        let (exe, comm) = if name == "husk" {
            ("denied", "husk")
        } else {
            ("readable", "runc:[2:INIT]")
        };
        assert_eq!(run_ok(&rt, &second), format!("{exe}\n{comm}\n"), "{name}");
        // The control: once the init has exec'd busybox (dumpable), the same read works.
        rt.run_ok(&["start", first.id()]);
        let mut third = Bundle::new(&["true"]);
        *third.config_mut() = second.config().clone();
        third.config_mut()["linux"]["cgroupsPath"] = format!("/husk-test/{}", third.id()).into();
        third.save();
        assert_eq!(run_ok(&rt, &third), "readable\nsleep\n", "{name}");
    }
}

// husk only: runc 1.1 has no time namespace (added in 1.2); 1.1.5 refuses `{"type": "time"}`
// with `namespace {"time" ""} does not exist` and silently ignores linux.timeOffsets.
#[test]
fn a_new_time_namespace_differs_from_the_host() {
    let rt = Runtime::husk();
    let mut bundle = Bundle::new(&["sleep", "100"]);
    bundle.config_mut()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "time" }));
    bundle.save();
    let pid = create_ok(&rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    // clone3(CLONE_NEWTIME) puts only time_for_children in the new namespace; the init
    // enters it at execve, i.e. at start.
    assert_ne!(ns_link("self", "time"), ns_link(&pid.to_string(), "time"));
    // The reason it is husk-only, checked: runc refuses the namespace type.
    let runc = Runtime::runc();
    let path = bundle.path().to_str().unwrap();
    let refused = runc.run(&["create", "--bundle", path, &format!("{}-runc", bundle.id())]);
    // (It fails converting the spec, before any cgroup: this container's is not touched.)
    let why = stderr_of(&refused);
    assert!(
        !refused.status.success() && why.contains("time") && why.contains("does not exist"),
        "runc now has time namespaces: run the test on both: {why}"
    );
}

// husk only: runc 1.1.5 has no time namespace (see a_new_time_namespace_differs_from_the_host).
#[test]
fn time_offsets_shift_the_boottime_clock() {
    let out = run_script("cut -d. -f1 /proc/uptime", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "time" }));
        c["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 864000, "nanosecs": 0 } });
    });
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inside: f64 = out.trim().parse().unwrap();
    assert!(inside - host > 863000.0, "uptime inside {inside}, host {host}");
}

/// podman's pods with `--userns` join the infra container's user (and often pid) namespace by
/// path while making new uts, mount and ipc namespaces. Those must belong to the joined user
/// namespace, where the container's root has its rights: runc's nsexec joins first and clones
/// after. husk cloned first, so the new uts namespace was the host's: `failed to sethostname:
/// operation not permitted`. runc 1.1 wants the mappings repeated even when joining.
#[test]
fn joining_a_user_and_pid_namespace_makes_the_new_namespaces_inside_them() {
    for rt in Runtime::husk_and_runc() {
        let mut first = Bundle::new(&["sleep", "100"]);
        map_root_to_100000(&mut first);
        first.config_mut()["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user" }));
        first.save();
        let first_pid = create_ok(&rt, &first);
        let mut second = sh_bundle("cat /proc/self/uid_map; id -u; hostname; mkdir /dev/made && echo made; echo $$");
        map_root_to_100000(&mut second);
        let config = second.config_mut();
        config["hostname"] = "joined".into();
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "pid");
        namespaces.push(json!({ "type": "user", "path": format!("/proc/{first_pid}/ns/user") }));
        namespaces.push(json!({ "type": "pid", "path": format!("/proc/{first_pid}/ns/pid") }));
        second.save();
        let out = run_ok(&rt, &second);
        let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["0", "100000", "65536"], "{}: {out}", rt.bin().display());
        assert_eq!(
            lines[1..4],
            [["0"], ["joined"], ["made"]],
            "{}: {out}",
            rt.bin().display()
        );
        // Born into the first container's pid namespace, where its init is 1.
        assert_ne!(lines[4], ["1"], "{}: {out}", rt.bin().display());
    }
}
