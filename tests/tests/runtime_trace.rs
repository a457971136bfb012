//! `husk --trace`: the start-up timeline names every phase, the init's own included.
//!
//! husk only: the timeline is husk's own diagnostic; runc 1.1.5 has no `--trace` flag
//! ("flag provided but not defined") and no HUSK_TRACE. The one shared behaviour, an untraced
//! run printing nothing of its own, is checked on both.

mod runtime_support;

use husk_e2e::{Bundle, Runtime};
use runtime_support::*;

fn traced_run(flag: bool) -> (String, String) {
    let rt = Runtime::husk();
    let bundle = Bundle::new(&["sh", "-c", "echo traced"]);
    let path = bundle.path().to_str().unwrap().to_string();
    // `husk --root R [--trace] run ...`: the global flag goes before the command.
    let mut cmd = rt.command(&[]);
    if flag {
        cmd.arg("--trace");
    } else {
        cmd.env("HUSK_TRACE", "1");
    }
    cmd.args(["run", "--bundle", &path, bundle.id()]);
    let out = cmd.output().expect("run husk");
    assert!(out.status.success(), "husk --trace run: {}", stderr_of(&out));
    assert_nothing_left(&rt, bundle.id(), &bundle);
    (stdout_of(&out), stderr_of(&out))
}

#[test]
fn trace_flag_prints_every_phase_of_create_including_the_inits() {
    let (stdout, stderr) = traced_run(true);
    assert!(stdout.contains("traced"), "{stdout}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("husk trace "))
        .unwrap_or_else(|| panic!("no trace line in {stderr:?}"));
    for phase in [
        "parse and validate config",
        "clone3",
        "init: mounts and devices",
        "init: process",
        "init set-up (until Ready)",
        "total",
    ] {
        assert!(line.contains(phase), "phase {phase:?} missing from {line}");
    }
    // The reason it is husk-only, checked.
    let runc = Runtime::runc().run(&["--trace", "list"]);
    assert!(
        !runc.status.success() && stderr_of(&runc).contains("flag provided but not defined"),
        "runc now has --trace: compare it: {}",
        stderr_of(&runc)
    );
}

#[test]
fn husk_trace_env_enables_the_trace_and_no_trace_prints_nothing() {
    let (_, stderr) = traced_run(false);
    assert!(stderr.contains("husk trace "), "{stderr}");
    for rt in Runtime::husk_and_runc() {
        let bundle = Bundle::new(&["true"]);
        let out = run_fg(&rt, &bundle);
        assert!(out.status.success(), "{}: {}", rt.name(), stderr_of(&out));
        assert_eq!(stderr_of(&out), "", "{}: an untraced run prints nothing", rt.name());
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}
