//! `husk run` of a terminal process without --console-socket: husk proxies the pty itself.

mod runtime_support;

use husk_e2e::{Bundle, Runtime};
use runtime_support::*;
use std::process::Command;

#[test]
fn foreground_run_with_a_terminal_proxies_the_pty_and_its_window_size() {
    let rt = Runtime::husk();
    let mut bundle = Bundle::new(&["sh", "-c", "tty; stty size; exit 5"]);
    bundle.config_mut()["process"]["terminal"] = true.into();
    bundle.save();
    // `script` gives husk a terminal of known size on stdin/stdout, as a user's shell would.
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
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "no pty inside the container: {text:?}");
    assert!(text.contains("33 101"), "window size not passed on: {text:?}");
    assert!(text.contains("rc=5"), "exit status not passed on: {text:?}");
    assert_nothing_left(&rt, bundle.id(), &bundle);
}
