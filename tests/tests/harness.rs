//! The harness proves itself against Debian's runc and containerd-shim-runc-v2: if these
//! fail, the e2e helpers (not husk) are broken.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use husk_e2e::{
    assert_no_leftovers, assert_no_mounts_under, assert_no_processes_mentioning, busybox_image_archive, output_text,
    run_with_timeout, unique_id, Bundle, Containerd, TempDir, BUSYBOX_REF,
};

const RUNC: &str = "/usr/sbin/runc";

#[test]
fn busybox_bundle_runs_under_runc() {
    let bundle = Bundle::new(&["sh", "-c", "echo hello; hostname; id -u; cat /etc/passwd | grep -c :"]);
    let root = TempDir::new("runc-root");
    let id = bundle.id().to_string();
    let out = run_with_timeout(
        Command::new(RUNC)
            .arg("--root")
            .arg(root.path())
            .args(["run", "-b"])
            .arg(bundle.path())
            .arg(&id),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "runc run failed: {}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nhusk\n0\n3\n");
    assert!(!root.join(&id).exists(), "runc run left its state dir");
    assert_no_leftovers(&id, bundle.path(), &bundle.cgroups_path());
}

#[test]
fn bundle_config_changes_are_saved() {
    let mut bundle = Bundle::new(&["true"]);
    bundle.config_mut()["hostname"] = "changed".into();
    bundle.save();
    let text = std::fs::read_to_string(bundle.config_path()).expect("config.json readable");
    let config: serde_json::Value = serde_json::from_str(&text).expect("config.json is json");
    assert_eq!(config["hostname"], "changed");
    assert!(bundle.rootfs().join("bin/sh").exists());
    assert!(bundle.cgroups_path().starts_with("/husk-test/"));
}

#[test]
fn image_archive_is_a_valid_oci_layout() {
    let dir = TempDir::new("image");
    let archive = dir.join("busybox.tar");
    busybox_image_archive(&archive, BUSYBOX_REF).expect("archive written");
    let out = Command::new("tar").arg("-tf").arg(&archive).output().expect("tar runs");
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(names.lines().any(|l| l == "oci-layout"), "{names}");
    assert!(names.lines().any(|l| l == "index.json"), "{names}");
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("blobs/sha256/") && l.len() > 20)
            .count(),
        3
    );
}

#[test]
fn image_imports_and_runs_with_runc_shim() {
    let mut ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    let images = ctrd.ctr_ok(&["images", "ls", "-q"]);
    assert!(images.lines().any(|l| l == BUSYBOX_REF), "images: {images}");

    let id = unique_id("hi");
    let out = ctrd.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        BUSYBOX_REF,
        &id,
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");
    assert_eq!(ctrd.ctr_ok(&["containers", "ls", "-q"]), "");
    assert_no_processes_mentioning(&id);
    assert_no_mounts_under(&ctrd.state());
}

#[test]
fn containerd_drop_removes_everything_it_made() {
    // A detached task still running at drop: the harness must kill it and clean up.
    let (ctrd, ns, id) = containerd_with_sleeping_task("left");
    let dir = ctrd.dir().to_path_buf();
    let address = ctrd.address().display().to_string();
    drop(ctrd);
    assert_no_processes_mentioning(&address);
    assert_no_leftovers(&id, &dir, &format!("/{ns}/{id}"));
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(
        husk_e2e::cgroup_dirs(&format!("/{ns}")).is_empty(),
        "namespace cgroup left"
    );
    assert!(
        !Path::new("/run/containerd/runc").join(&ns).exists(),
        "runc state for {ns} left"
    );
}

#[test]
fn containerd_cleans_up_when_the_test_panics() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (ctrd, ns, id) = containerd_with_sleeping_task("panic");
        seen = Some((ctrd.dir().to_path_buf(), ns, id));
        panic!("test failure while a task runs");
    }));
    assert!(result.is_err());
    let (dir, ns, id) = seen.expect("the task was started");
    assert_no_leftovers(&id, &dir, &format!("/{ns}/{id}"));
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn bundle_drop_kills_and_removes_its_cgroup() {
    let bundle = Bundle::new(&["true"]);
    let cgroup = bundle.cgroups_path();
    // What a runtime that died half-way would leave: the cgroup with a live process in it.
    let dir = Path::new("/sys/fs/cgroup/pids").join(cgroup.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).expect("cgroup created");
    let mut child = Command::new("sleep").arg("1000").spawn().expect("sleep runs");
    std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("moved into the cgroup");
    drop(bundle);
    let status = child.wait().expect("sleep reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(husk_e2e::cgroup_dirs(&cgroup).is_empty(), "cgroup {cgroup} left");
}

#[test]
fn runtime_helper_drives_runc_create_start_delete() {
    let bundle = Bundle::new(&["sleep", "1000"]);
    let runc = husk_e2e::Runtime::runc();
    let id = bundle.id().to_string();
    runc.run_ok(&["create", "--bundle", &bundle.path().to_string_lossy(), &id]);
    assert_eq!(runc.state(&id).expect("state")["status"], "created");
    runc.run_ok(&["start", &id]);
    assert_eq!(runc.state(&id).expect("state")["status"], "running");
    assert_eq!(runc.container_ids(), vec![id.clone()]);
    // Left running on purpose: Runtime's drop must force-delete it.
    drop(runc);
    assert_no_leftovers(&id, bundle.path(), &bundle.cgroups_path());
}

/// A private containerd running a detached `sleep 1000` under the Go runc shim:
/// (containerd, namespace, container id).
fn containerd_with_sleeping_task(prefix: &str) -> (Containerd, String, String) {
    let mut ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    let id = unique_id(prefix);
    let args = [
        "run",
        "-d",
        "--runtime",
        "io.containerd.runc.v2",
        BUSYBOX_REF,
        &id,
        "sleep",
        "1000",
    ];
    ctrd.ctr_ok(&args);
    (ctrd, ns, id)
}

#[test]
fn containerd_with_cri_loads_the_cri_plugin() {
    let ctrd = Containerd::builder().cri(true).start();
    let plugins = ctrd.ctr_ok(&["plugins", "ls"]);
    let cri = plugins
        .lines()
        .find(|l| l.contains("io.containerd.grpc.v1") && l.contains(" cri "))
        .unwrap_or_else(|| panic!("no cri plugin listed:\n{plugins}"));
    assert!(cri.trim_end().ends_with("ok"), "cri plugin not ok: {cri}");
}
