//! The Kubernetes packaging (packaging/containerd, packaging/pause) against the real
//! containerd: register-husk.sh merges husk into an operator's config, and the pause image runs under husk the way a CRI
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

/// Runs packaging/containerd/register-husk.sh on `config`; returns (success, output).
fn register_husk(config: &Path) -> (bool, String) {
    let out = run_with_timeout(
        Command::new("bash")
            .arg(packaging("containerd/register-husk.sh"))
            .arg("--config")
            .arg(config)
            .arg("--options")
            .arg(config.with_file_name("husk-options.toml"))
            .args(["--husk-binary", "/usr/local/bin/husk"]),
        Duration::from_secs(60),
    );
    (out.status.success(), output_text(&out))
}

fn config_dump(config: &Path) -> String {
    let out = run_with_timeout(
        Command::new("containerd")
            .arg("--config")
            .arg(config)
            .args(["config", "dump"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "config dump: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An operator's settings survive registration: the CRI table keeps its own keys, runc stays
/// the default runtime, and running the script again changes nothing. (The CRI plugin really
/// loading with that config is cri_pod.rs's registering_husk_in_debians_stock_config_...)
#[test]
fn register_husk_adds_the_runtime_and_keeps_the_operators_settings() {
    let dir = TempDir::new("register");
    let config = dir.join("config.toml");
    let stock = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image = \"example.org/pause:9\"\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n";
    std::fs::write(&config, stock).expect("config written");
    let (ok, text) = register_husk(&config);
    assert!(ok, "register-husk.sh: {text}");
    let dump = config_dump(&config);
    for wanted in [
        "bin_dir = \"/usr/lib/cni\"",
        "sandbox_image = \"example.org/pause:9\"",
        "default_runtime_name = \"runc\"",
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]",
        "runtime_type = \"io.containerd.runc.v2\"",
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk]",
        &format!("runtime_type = \"{HUSK_RUNTIME}\""),
    ] {
        assert!(dump.contains(wanted), "{wanted} missing from:\n{dump}");
    }
    let options = std::fs::read_to_string(dir.join("husk-options.toml")).expect("options file written");
    assert!(options.contains("BinaryName = \"/usr/local/bin/husk\""), "{options}");
    assert_eq!(
        std::fs::read_to_string(config.with_extension("toml.husk-backup"))
            .ok()
            .as_deref(),
        Some(stock)
    );

    let registered = std::fs::read_to_string(&config).expect("config");
    let (ok, text) = register_husk(&config);
    assert!(ok && text.contains("already registered"), "second run: {text}");
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        registered,
        "second run changed it"
    );
}

/// A config containerd cannot read is left exactly as it was, with a one-line reason.
#[test]
fn register_husk_leaves_a_broken_config_untouched() {
    let dir = TempDir::new("register-bad");
    let config = dir.join("config.toml");
    let broken = "version = 2\n[plugins\n";
    std::fs::write(&config, broken).expect("config written");
    let (ok, text) = register_husk(&config);
    assert!(!ok, "accepted a broken config: {text}");
    assert!(text.contains("cannot read"), "{text}");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), broken);
    assert!(
        !dir.join("husk-options.toml").exists(),
        "options file written for a refused config"
    );
    assert!(!config.with_extension("toml.husk-backup").exists());
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
