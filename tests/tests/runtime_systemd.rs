//! The systemd cgroup driver (`--systemd-cgroup`) on a host where it cannot work: this one has
//! no systemd as pid 1. Bad input and a missing systemd are refused by husk and by runc (the
//! control), with one clear line from husk and nothing left behind. The driver's real work
//! (scopes, update, delete, annotations) is proven in the VM rig: tests/vm/guest/run-tests.sh.

mod runtime_support;

use husk_e2e::{Bundle, Runtime};
use runtime_support::*;

fn bundle_at(cgroups_path: &str) -> Bundle {
    let mut bundle = Bundle::new(&["sleep", "100"]);
    bundle.config_mut()["linux"]["cgroupsPath"] = cgroups_path.into();
    bundle.save();
    bundle
}

/// A host booted with systemd has /run/systemd/system (sd_booted); these tests are about one
/// without it and say nothing on a systemd host (the VM rig covers that).
fn host_has_systemd() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// No cgroup directory named `name` under any hierarchy's system.slice or root.
fn assert_no_scope_dir(name: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for dir in [entry.path().join(name), entry.path().join("system.slice").join(name)] {
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }
}

/// `--systemd-cgroup run -d` of `bundle` fails on `rt`, leaving no container, no state and no
/// scope directory; returns the output.
fn refused(rt: &Runtime, bundle: &Bundle) -> std::process::Output {
    let path = bundle.path().to_str().unwrap();
    let out = rt.run(&["--systemd-cgroup", "run", "-d", "--bundle", path, bundle.id()]);
    assert!(!out.status.success(), "{} accepted it", rt.bin().display());
    assert!(rt.container_ids().is_empty(), "{:?}", rt.container_ids());
    assert!(!rt.root().join(bundle.id()).exists(), "state dir left");
    assert_no_scope_dir(&format!("husk-test-{}.scope", bundle.id()));
    out
}

#[test]
fn systemd_driver_without_systemd_is_refused_like_runc() {
    if host_has_systemd() {
        return;
    }
    let bundle = bundle_at("system.slice:husk-test:sd-none");
    let out = refused(&Runtime::husk(), &bundle);
    assert_one_line_error(&out, "systemd is not running on this host");
    // runc: "systemd not running on this host, cannot use systemd cgroups manager".
    let out = refused(&Runtime::runc(), &bundle);
    assert!(stderr_of(&out).contains("systemd not running"), "{}", stderr_of(&out));
}

#[test]
fn systemd_driver_refuses_malformed_cgroups_paths() {
    // runc parses "slice:prefix:name" before it looks for systemd, so a wrong number of parts is
    // refused with the format on any host; husk does the same. husk also checks the slice name
    // up front (runc leaves that to systemd's StartTransientUnit, so here it only reports the
    // missing systemd): both refuse, husk with the reason.
    for (path, husk_says, runc_says) in [
        ("a.slice:", "expects \"slice:prefix:name\"", Some("slice:prefix:name")),
        ("a.slice:p", "expects \"slice:prefix:name\"", Some("slice:prefix:name")),
        ("a/b.slice:husk-test:x", "invalid slice name", None),
        ("notaslice:husk-test:x", "invalid slice name", None),
        ("a--b.slice:husk-test:x", "invalid slice name", None),
        ("system.slice:husk-test:", "may not be empty", None),
    ] {
        let bundle = bundle_at(path);
        let out = refused(&Runtime::husk(), &bundle);
        assert_one_line_error(&out, husk_says);
        let out = refused(&Runtime::runc(), &bundle);
        if let Some(want) = runc_says {
            assert!(stderr_of(&out).contains(want), "runc on {path}: {}", stderr_of(&out));
        }
    }
}

#[test]
fn systemd_property_annotations_are_checked_before_anything_is_made() {
    if host_has_systemd() {
        return;
    }
    // runc checks annotation names in specconv, before it looks for systemd; so does husk.
    let mut bundle = bundle_at("system.slice:husk-test:sd-ann");
    bundle.config_mut()["annotations"] = serde_json::json!({"org.systemd.property.Bad-Name": "1"});
    bundle.save();
    let out = refused(&Runtime::husk(), &bundle);
    assert_one_line_error(&out, "org.systemd.property.Bad-Name");
    let out = refused(&Runtime::runc(), &bundle);
    assert!(stderr_of(&out).contains("Bad-Name"), "{}", stderr_of(&out));
}
