//! cgroup v2 device programs on this host's real cgroup2 mount (root only; skipped otherwise).
//! On the hybrid test host the v2 mount has no controllers to speak of, but device programs
//! attach to any v2 cgroup and the kernel runs them for every task in it, beside v1's devices.
//! Each test makes its own cgroup and a Drop guard kills its shell, detaches and removes it.

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use husk::cgroups::devices_bpf::{self, DeviceFilter, DeviceFilterError, Insn};
use husk::cgroups::{Cgroup, CgroupError, Layout};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResourcesBuilder};

const BUSYBOX: &str = "/bin/busybox";
const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "husk-bpf-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Root, and a cgroup2 mount at UNIFIED (hybrid) — else nothing to check here.
fn usable() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new(UNIFIED).join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup2 mount at {UNIFIED}");
        return false;
    }
    true
}

fn dev(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    DeviceFilter::from_spec(rules).unwrap().program()
}

/// A busybox shell that runs one command per line and answers with its output and status.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Shell {
    fn spawn() -> Shell {
        let mut child = Command::new(BUSYBOX)
            .args([
                "sh",
                "-c",
                "while read -r cmd; do eval \"$cmd\" 2>&1; echo \"rc=$?\"; done",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Shell { child, stdin, stdout }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs `cmd` in the shell; its output lines and exit status.
    fn run(&mut self, cmd: &str) -> (String, i32) {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut out = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "shell exited during {cmd:?}: {out}"
            );
            if let Some(rc) = line.trim_end().strip_prefix("rc=") {
                return (out, rc.parse().unwrap());
            }
            out.push_str(&line);
        }
    }

    /// Whether the shell may read (`<`) or write (`>`) the device node `path`; an EPERM
    /// refusal must say so, any other failure is a test bug.
    fn can(&mut self, redirect: &str, path: &str) -> bool {
        // In a subshell: a failed redirection may end the shell that tried it.
        let (out, rc) = self.run(&format!("( true {redirect}{path} )"));
        if rc != 0 {
            assert!(out.contains("Operation not permitted"), "{redirect}{path}: {out}");
        }
        rc == 0
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh cgroup directly below the cgroup2 mount; detaches its programs and removes it on drop
/// (after the Shell guards, which are declared later and so dropped first).
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> TestCgroup {
        let dir = Path::new(UNIFIED).join(unique());
        fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }

    fn add(&self, pid: i32) {
        fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    /// An exiting task keeps a v2 cgroup busy for a while after its parent reaped it; on a
    /// loaded machine that outlasted the old 0.5 s and left the directory behind. Anything
    /// still inside is killed, and the rmdir is retried for up to 10 s.
    fn drop(&mut self) {
        let _ = devices_bpf::detach_device_programs(&self.0);
        let _ = fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..1000 {
            match fs::remove_dir(&self.0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => break,
            }
        }
    }
}

#[test]
fn program_denies_null_then_update_allows_it_without_a_second_program() {
    if !usable() {
        return;
    }
    let cg = TestCgroup::new();
    let mut shell = Shell::spawn();
    cg.add(shell.pid());
    assert!(shell.can("<", "/dev/null"), "before any program");

    let deny_null = [
        dev(true, LinuxDeviceType::A, None, None, "rwm"),
        dev(false, LinuxDeviceType::C, Some(1), Some(3), "rw"),
    ];
    devices_bpf::attach_device_filter(&cg.0, &program(&deny_null)).unwrap();
    let first = devices_bpf::attached_device_programs(&cg.0).unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(!shell.can("<", "/dev/null"));
    assert!(!shell.can(">", "/dev/null"));
    assert!(shell.can("<", "/dev/zero"));
    // The test process itself is outside the cgroup and unaffected.
    fs::File::open("/dev/null").unwrap();

    devices_bpf::attach_device_filter(&cg.0, &program(&[dev(true, LinuxDeviceType::A, None, None, "rwm")])).unwrap();
    let second = devices_bpf::attached_device_programs(&cg.0).unwrap();
    assert_eq!(second.len(), 1, "the old program must be detached: {second:?}");
    assert_ne!(first, second);
    assert!(shell.can("<", "/dev/null"));
    assert!(shell.can(">", "/dev/null"));
}

#[test]
fn children_of_the_cgroup_are_filtered_too() {
    if !usable() {
        return;
    }
    let cg = TestCgroup::new();
    let nested = TestCgroup(cg.0.join("inner"));
    fs::create_dir(&nested.0).unwrap();
    let mut shell = Shell::spawn();
    nested.add(shell.pid());
    let deny_all = [
        dev(false, LinuxDeviceType::A, None, None, "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), Some(5), "r"),
    ];
    devices_bpf::attach_device_filter(&cg.0, &program(&deny_all)).unwrap();
    assert!(shell.can("<", "/dev/zero"));
    assert!(!shell.can(">", "/dev/zero"), "only r was allowed");
    assert!(!shell.can("<", "/dev/null"));
    drop(shell);
    drop(nested);
}

/// The kernel asks once for read|write on an O_RDWR open: a deny of "r" alone must refuse it
/// (v1 does; runc's program would let it through).
#[test]
fn read_write_open_is_refused_by_a_deny_of_read() {
    if !usable() {
        return;
    }
    let cg = TestCgroup::new();
    let mut shell = Shell::spawn();
    cg.add(shell.pid());
    let rules = [
        dev(true, LinuxDeviceType::A, None, None, "rwm"),
        dev(false, LinuxDeviceType::C, Some(1), Some(3), "r"),
    ];
    devices_bpf::attach_device_filter(&cg.0, &program(&rules)).unwrap();
    assert!(!shell.can("<>", "/dev/null"), "O_RDWR");
    assert!(!shell.can("<", "/dev/null"));
    assert!(shell.can(">", "/dev/null"));
    assert!(shell.can("<>", "/dev/zero"));
}

/// The whole path a v2 host takes: Cgroup::create, apply with device rules, add_process,
/// apply again (update), destroy.
#[test]
fn cgroup_apply_on_a_v2_layout_attaches_the_device_program() {
    if !usable() {
        return;
    }
    let name = unique();
    let cg = Cgroup::with_root(Path::new(UNIFIED), Layout::V2, Some(&format!("/{name}")), "bpf").unwrap();
    struct Destroy<'a>(&'a Cgroup);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let dir = self.0.unified_hierarchy().unwrap().dir();
            let _ = devices_bpf::detach_device_programs(&dir);
            let _ = self.0.destroy();
        }
    }
    cg.create().unwrap();
    let _destroy = Destroy(&cg);
    let dir = cg.unified_hierarchy().unwrap().dir();
    assert_eq!(dir, Path::new(UNIFIED).join(&name));
    let mut shell = Shell::spawn();
    cg.add_process(shell.pid()).unwrap();

    // containerd's shape: deny all, then allow-list.
    let rules = vec![
        dev(false, LinuxDeviceType::A, None, None, "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        dev(false, LinuxDeviceType::C, Some(1), Some(3), "w"),
    ];
    cg.apply(&LinuxResourcesBuilder::default().devices(rules).build().unwrap())
        .unwrap();
    assert!(shell.can("<", "/dev/zero") && shell.can(">", "/dev/zero"));
    assert!(shell.can("<", "/dev/null"));
    assert!(!shell.can(">", "/dev/null"), "w was taken back");
    assert!(!shell.can("<", "/dev/full"), "c 1:7 was never allowed");

    let update = vec![
        dev(true, LinuxDeviceType::A, None, None, "rwm"),
        dev(false, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
    ];
    cg.apply(&LinuxResourcesBuilder::default().devices(update).build().unwrap())
        .unwrap();
    assert_eq!(devices_bpf::attached_device_programs(&dir).unwrap().len(), 1);
    assert!(shell.can("<", "/dev/full") && shell.can(">", "/dev/null"));
    assert!(!shell.can("<", "/dev/zero"));

    // A rule v1 would silently ignore is refused, and the program in place stays.
    let hole = vec![
        dev(false, LinuxDeviceType::A, None, None, "rwm"),
        dev(true, LinuxDeviceType::C, Some(1), None, "rwm"),
        dev(false, LinuxDeviceType::C, Some(1), Some(3), "r"),
    ];
    let err = cg
        .apply(&LinuxResourcesBuilder::default().devices(hole).build().unwrap())
        .unwrap_err();
    assert!(matches!(err, CgroupError::DeviceRule(_)), "{err}");
    assert!(!shell.can("<", "/dev/zero"));

    drop(shell);
    drop(_destroy);
    assert!(!dir.exists(), "destroy removes the cgroup with its program");
}

#[test]
fn verifier_rejection_carries_the_log_and_the_cgroup() {
    if !usable() {
        return;
    }
    // exit without setting r0: the verifier says "R0 !read_ok".
    let bad = [Insn::exit()];
    let err = devices_bpf::load_program(&bad, Path::new("/sys/fs/cgroup/unified/some/cgroup")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DeviceFilterError::Load { .. }), "{text}");
    assert!(
        text.contains("BPF_PROG_LOAD") && text.contains("/sys/fs/cgroup/unified/some/cgroup"),
        "{text}"
    );
    assert!(text.contains("verifier log:") && text.contains("R0"), "{text}");
}

#[test]
fn attaching_to_a_missing_cgroup_names_it() {
    if !usable() {
        return;
    }
    let dir = Path::new(UNIFIED).join(unique());
    let err = devices_bpf::attach_device_filter(&dir, &program(&[])).unwrap_err();
    assert!(matches!(err, DeviceFilterError::Open { .. }), "{err}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The container's cgroup seen from the host: whatever is left in it is killed and it is removed.
struct HostCgroup(PathBuf);

impl Drop for HostCgroup {
    fn drop(&mut self) {
        for pid in fs::read_to_string(self.0.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
        {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = TestCgroup(self.0.clone());
    }
}

/// A busybox bundle whose process mknods a loop device node (b 7:0, in no default rule) and
/// reports which devices it could open.
fn loop_probe_bundle(dir: &Path, cgroups_path: &str) -> serde_json::Value {
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "mknod", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let husk = env!("CARGO_BIN_EXE_husk");
    let out = Command::new(husk).arg("spec").current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "husk spec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    let probe = "mknod /tmp/loop0 b 7 0 && echo mknod-ok; (true </tmp/loop0) 2>&1 && echo loop-ok; (true </dev/zero) && echo zero-ok";
    config["process"]["args"] = serde_json::json!(["sh", "-c", probe]);
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_MKNOD".into());
    }
    config["root"] = serde_json::json!({ "path": "rootfs", "readonly": false });
    config["linux"]["cgroupsPath"] = cgroups_path.into();
    config
}

/// `husk run` in a private mount namespace where /sys/fs/cgroup is the cgroup2 mount alone:
/// husk sees a pure v2 host (Layout::V2) and must enforce device rules with the BPF program.
#[test]
fn husk_run_on_a_v2_only_mount_enforces_device_rules() {
    if !usable() || Command::new("unshare").arg("--help").output().is_err() {
        return;
    }
    let name = unique();
    let tmp = TempDir(std::env::temp_dir().join(&name));
    let bundle = tmp.0.join("bundle");
    let root = tmp.0.join("state");
    fs::create_dir_all(&bundle).unwrap();
    let mut config = loop_probe_bundle(&bundle, &format!("/{name}"));
    let _cgroup = HostCgroup(Path::new(UNIFIED).join(&name));
    let script = format!(
        "umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec {} --root {} run {name}",
        env!("CARGO_BIN_EXE_husk"),
        root.display()
    );
    let deny_all = serde_json::json!([{ "allow": false, "access": "rwm" }]);
    let allow_all = serde_json::json!([{ "allow": true, "access": "rwm" }]);
    let deny_loop_read = serde_json::json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "b", "major": 7, "access": "r" }]);
    for (rules, loop_ok) in [(deny_all, false), (allow_all, true), (deny_loop_read, false)] {
        config["linux"]["resources"] = serde_json::json!({ "devices": rules });
        fs::write(bundle.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
        let _ = fs::remove_file(bundle.join("rootfs/tmp/loop0"));
        let out = Command::new("timeout")
            .args(["60", "unshare", "-m", "--propagation", "private", "sh", "-c", &script])
            .current_dir(&bundle)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let context = format!("{rules}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{context}");
        assert!(stdout.contains("mknod-ok") && stdout.contains("zero-ok"), "{context}");
        assert_eq!(stdout.contains("loop-ok"), loop_ok, "{context}");
        if !loop_ok {
            assert!(
                stdout.contains("can't open /tmp/loop0: Operation not permitted"),
                "{context}"
            );
        }
        assert!(
            !Path::new(UNIFIED).join(&name).exists(),
            "husk run removes the cgroup: {context}"
        );
    }
}
