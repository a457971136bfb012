//! `husk run` of a terminal process without --console-socket: the runtime proxies the pty
//! itself. Each case runs on husk and on runc, the control.

mod runtime_support;

use husk_e2e::{Bundle, Runtime};
use runtime_support::*;
use std::process::Command;

/// Runs `run` of a terminal process under `script`, which gives the runtime a terminal of a
/// known size on stdin/stdout, as a user's shell would; returns what the terminal showed.
fn run_in_terminal(rt: &Runtime, bundle: &Bundle) -> String {
    let inner = format!(
        "stty rows 33 cols 101; {} --root {} run --bundle {} {}; echo rc=$?",
        rt.bin().display(),
        rt.root().display(),
        bundle.path().display(),
        bundle.id()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .output()
        .expect("run script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn terminal_bundle(args: &[&str]) -> Bundle {
    let mut bundle = Bundle::new(args);
    bundle.config_mut()["process"]["terminal"] = true.into();
    bundle.save();
    bundle
}

fn proxies_the_pty_and_its_window_size(rt: Runtime) {
    let bundle = terminal_bundle(&["sh", "-c", "tty; stty size; exit 5"]);
    let text = run_in_terminal(&rt, &bundle);
    assert!(text.contains("/dev/pts/"), "no pty inside the container: {text:?}");
    if rt.bin().ends_with("husk") {
        assert!(text.contains("33 101"), "window size not passed on: {text:?}");
    } else {
        // runc 1.1.5 sizes the pty from its own process after start: a quick `stty size`
        // sees 0x0 in about 2 runs of 7 on a loaded machine. Printed, not asserted.
        eprintln!("runc (control, size not asserted): {text:?}");
    }
    assert!(text.contains("rc=5"), "exit status not passed on: {text:?}");
    assert_nothing_left(&rt, bundle.id(), &bundle);
}

#[test]
fn foreground_run_with_a_terminal_proxies_the_pty_and_its_window_size() {
    proxies_the_pty_and_its_window_size(Runtime::husk());
}

#[test]
fn runc_foreground_run_with_a_terminal_proxies_the_pty_and_its_window_size() {
    proxies_the_pty_and_its_window_size(Runtime::runc());
}

/// The window size must be on the pty before the process runs, not copied onto the master
/// once the runtime gets round to it: a slow poststart hook holds the runtime back while the
/// process already runs `stty size`. The plain case failed 2 runs in 3 on a fresh CI machine,
/// where the runtime was slower than the container. husk differs from runc on purpose here:
/// runc 1.1.5 copies the size onto the master from its own process after start, so it races
/// too (it showed "window size set too late" on a loaded machine); only husk is asserted, and
/// runc's result is printed for the record.
#[test]
fn window_size_is_set_before_the_process_runs_even_when_the_runtime_is_slow() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = terminal_bundle(&["sh", "-c", "stty size; sleep 1"]);
        bundle.config_mut()["hooks"] = serde_json::json!({
            "poststart": [{"path": "/bin/sleep", "args": ["sleep", "0.5"]}]
        });
        bundle.save();
        let text = run_in_terminal(&rt, &bundle);
        let name = rt.bin().display();
        if rt.bin().ends_with("husk") {
            assert!(text.contains("33 101"), "{name}: window size set too late: {text:?}");
        } else {
            eprintln!("{name} (control, not asserted: it sizes the pty after start): {text:?}");
        }
        assert!(text.contains("rc=0"), "{name}: {text:?}");
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}
