//! The Kubernetes packaging (packaging/containerd, packaging/pause) against the real
//! containerd: the drop-in is accepted, and the pause image runs under husk the way a CRI
//! sandbox uses it (started detached, stopped with SIGTERM, exit status 0).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use husk_e2e::{
    assert_no_processes_mentioning, output_text, pause_image_archive, run_with_timeout, unique_id, wait_until,
    Containerd, TempDir, HUSK_RUNTIME, PAUSE_REF,
};

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging").join(path)
}

#[test]
fn containerd_1x_accepts_the_v2_drop_in() {
    let dir = TempDir::new("dropin");
    let config = dir.join("config.toml");
    let d = dir.path().display();
    let drop_in = packaging("containerd/husk-v2.toml");
    let text = format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\nimports = [\"{}\"]\n",
        drop_in.display()
    );
    std::fs::write(&config, text).expect("config written");
    let out = run_with_timeout(
        Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .args(["config", "dump"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "config dump: {}", output_text(&out));
    let dump = String::from_utf8_lossy(&out.stdout);
    let table = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk]";
    let at = dump
        .find(table)
        .unwrap_or_else(|| panic!("no husk runtime in:\n{dump}"));
    let husk = &dump[at..];
    let options_at = husk.find(".runtimes.husk.options]").expect("options table");
    assert!(husk[..options_at].contains(&format!("runtime_type = \"{HUSK_RUNTIME}\"")));
    assert!(husk[options_at..]
        .lines()
        .nth(1)
        .is_some_and(|l| l.trim() == "ConfigPath = \"/etc/containerd/husk-options.toml\""));
}

#[test]
fn pause_image_runs_under_husk_and_exits_0_on_sigterm() {
    let ctrd = Containerd::start();
    let archive = ctrd.dir().join("pause.oci.tar");
    pause_image_archive(&archive, PAUSE_REF).expect("pause image built");
    ctrd.ctr_ok(&["images", "import", &archive.to_string_lossy()]);

    let id = unique_id("pause");
    ctrd.ctr_ok(&["run", "-d", "--runtime", HUSK_RUNTIME, PAUSE_REF, &id]);
    let status = |ctrd: &Containerd| {
        let tasks = ctrd.ctr_ok(&["tasks", "ls"]);
        tasks
            .lines()
            .find(|l| l.starts_with(&id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || status(&ctrd) == "RUNNING"),
        "pause is not running: {}",
        status(&ctrd)
    );
    // It must still be running after a moment: pause() returns only on a signal.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(status(&ctrd), "RUNNING");

    ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGTERM", &id]);
    assert!(
        wait_until(Duration::from_secs(10), || status(&ctrd) == "STOPPED"),
        "pause did not stop on SIGTERM: {}",
        status(&ctrd)
    );
    // `ctr tasks delete` fails with the task's exit code when it is not 0.
    let out = ctrd.ctr(&["tasks", "delete", &id]);
    assert!(out.status.success(), "pause exited non-zero: {}", output_text(&out));
    ctrd.ctr_ok(&["containers", "delete", &id]);
    assert_no_processes_mentioning(&id);
}
