//! The container's filesystem as husk builds it: read-only root, config mounts (tmpfs, bind,
//! rbind, propagation), masked and read-only paths, /dev, and symlinks in a hostile image.

mod runtime_support;

use std::os::unix::fs::symlink;
use std::process::Command;

use husk_e2e::{output_text, Runtime, TempDir};
use runtime_support::*;
use serde_json::{json, Value};

fn add_mount(config: &mut Value, mount: Value) {
    config["mounts"].as_array_mut().expect("mounts is an array").push(mount);
}

#[test]
fn readonly_root_refuses_writes() {
    let out = run_script_on_both("touch /x 2>&1; echo rc=$?; touch /tmp/y 2>&1; echo rc=$?", |_| {});
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
}

#[test]
fn writable_root_accepts_writes() {
    let out = run_script_on_both("touch /x && echo wrote", |c| {
        c["root"]["readonly"] = false.into();
    });
    assert_eq!(out, "wrote\n");
}

#[test]
fn tmpfs_mount_has_the_size_and_mode_asked() {
    let out = run_script_on_both(
        "grep ' /data ' /proc/mounts; stat -c %a /data; touch /data/f && echo writable",
        |c| {
            add_mount(
                c,
                json!({ "destination": "/data", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "size=1m", "mode=700"] }),
            )
        },
    );
    let line = out.lines().next().unwrap_or_default();
    assert!(line.starts_with("tmpfs /data tmpfs"), "{out}");
    assert!(line.contains("size=1024k"), "{out}");
    assert!(line.contains("mode=700"), "{out}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{out}");
    assert_eq!(out.lines().nth(1), Some("700"), "{out}");
    assert!(out.ends_with("writable\n"), "{out}");
}

#[test]
fn readonly_bind_of_a_host_dir_is_readable_not_writable() {
    let host = TempDir::new("bindsrc");
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    let src = host.path().to_str().unwrap().to_string();
    let out = run_script_on_both("cat /mnt/host/hello; touch /mnt/host/new 2>&1; echo rc=$?", |c| {
        add_mount(
            c,
            json!({ "destination": "/mnt/host", "type": "bind", "source": src,
                        "options": ["bind", "ro"] }),
        )
    });
    assert!(out.starts_with("from the host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!host.join("new").exists(), "the container wrote to the host");
}

#[test]
fn rw_bind_writes_reach_the_host() {
    for rt in Runtime::husk_and_runc() {
        let host = TempDir::new("bindrw");
        let src = host.path().to_str().unwrap().to_string();
        run_script_on(&rt, "echo hi > /mnt/out/file", |c| {
            add_mount(
                c,
                json!({ "destination": "/mnt/out", "type": "none", "source": src,
                        "options": ["rbind", "rw"] }),
            )
        });
        let written = std::fs::read_to_string(host.join("file")).unwrap_or_default();
        assert_eq!(written, "hi\n", "{}", rt.name());
    }
}

/// A host dir with a tmpfs mounted on its `sub/` holding `inner`; TempDir's drop unmounts it.
fn dir_with_submount() -> TempDir {
    let host = TempDir::new("rbindsrc");
    std::fs::create_dir(host.join("sub")).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs on the host");
    std::fs::write(host.join("sub/inner"), "submount\n").unwrap();
    host
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let host = dir_with_submount();
    let src = host.path().to_str().unwrap().to_string();
    let out = run_script_on_both("cat /r/sub/inner; ls /b/sub | wc -l", |c| {
        add_mount(
            c,
            json!({ "destination": "/r", "type": "bind", "source": src, "options": ["rbind"] }),
        );
        add_mount(
            c,
            json!({ "destination": "/b", "type": "bind", "source": src, "options": ["bind"] }),
        );
    });
    assert_eq!(out, "submount\n0\n");
}

/// The optional fields (shared:N, master:N) of the mount at `point` in mountinfo text.
fn propagation_of(mountinfo: &str, point: &str) -> String {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} not in mountinfo:\n{mountinfo}"));
    let before_sep = line.split(" - ").next().unwrap();
    before_sep.split(' ').skip(6).collect::<Vec<_>>().join(" ")
}

#[test]
fn mount_propagation_options_are_applied() {
    // Peer group numbers differ from run to run: compare the kind of propagation only.
    for rt in Runtime::husk_and_runc() {
        let a = TempDir::new("propa");
        let b = TempDir::new("propb");
        let (sa, sb) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
        let out = run_script_on(&rt, "cat /proc/self/mountinfo", |c| {
            add_mount(
                c,
                json!({ "destination": "/shared", "type": "bind", "source": sa, "options": ["rbind", "rshared"] }),
            );
            add_mount(
                c,
                json!({ "destination": "/private", "type": "bind", "source": sb, "options": ["rbind", "rprivate"] }),
            );
        });
        let name = rt.name();
        assert!(propagation_of(&out, "/shared").contains("shared:"), "{name}: {out}");
        assert_eq!(propagation_of(&out, "/private"), "", "{name}: {out}");
    }
}

#[test]
fn masked_paths_read_empty() {
    // This kernel has no /proc/kcore (a masked path that does not exist is skipped, which
    // the default spec relies on): /proc/timer_list has content on the host.
    let host = std::fs::read("/proc/timer_list").unwrap();
    assert!(!host.is_empty(), "/proc/timer_list is empty on the host");
    let out = run_script_on_both(
        "wc -c < /proc/timer_list; ls /proc/acpi | wc -l; grep -c ' /proc/acpi ' /proc/self/mountinfo",
        |_| {},
    );
    assert_eq!(out, "0\n0\n1\n");
}

#[test]
fn readonly_paths_refuse_writes() {
    let out = run_script_on_both(
        "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; echo rc=$?; (echo 1 > /proc/sysrq-trigger) 2>&1; echo rc=$?; grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f4-",
        |_| {},
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    let mount = out.lines().last().unwrap_or_default();
    // Mount ids (the first three fields) differ between runs: they are cut off.
    assert!(mount.split(' ').nth(2).is_some_and(|o| o.starts_with("ro")), "{out}");
}

/// A masked path inside a read-only one (the kubelet's `/proc/sys/kernel/...` style): masked,
/// read-only, and one mount entry each, as runc makes them (read-only paths first, then masks;
/// husk masked first and its recursive read-only bind then copied the mask: two entries).
#[test]
fn a_masked_path_inside_a_readonly_path_is_mounted_once() {
    let out = run_script_on_both(
        "wc -c < /proc/sys/kernel/hostname; grep -c ' /proc/sys/kernel/hostname ' /proc/self/mountinfo; \
         grep -c ' /proc/sys ' /proc/self/mountinfo; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null; echo rc=$?",
        |c| {
            c["linux"]["maskedPaths"] = json!(["/proc/sys/kernel/hostname"]);
            c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
        },
    );
    assert_eq!(out, "0\n1\n1\nrc=1\n");
}

#[test]
fn default_devices_exist_with_numbers_and_mode() {
    let out = run_script_on_both(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t,%T %a' /dev/$d; done",
        |_| {},
    );
    let want = "/dev/null character special file 1,3 666\n\
                /dev/zero character special file 1,5 666\n\
                /dev/full character special file 1,7 666\n\
                /dev/random character special file 1,8 666\n\
                /dev/urandom character special file 1,9 666\n\
                /dev/tty character special file 5,0 666\n";
    assert_eq!(out, want);
}

#[test]
fn dev_null_is_usable_under_a_deny_all_device_cgroup() {
    // The default spec denies every device in the cgroup: husk must still allow the defaults.
    let out = run_script_on_both("echo x > /dev/null && head -c 4 /dev/zero | wc -c", |_| {});
    assert_eq!(out, "4\n");
}

#[test]
fn dev_symlinks_point_where_runc_points_them() {
    let out = run_script_on_both(
        "for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done",
        |_| {},
    );
    assert_eq!(
        out,
        "fd /proc/self/fd\nstdin /proc/self/fd/0\nstdout /proc/self/fd/1\nstderr /proc/self/fd/2\nptmx pts/ptmx\n"
    );
}

#[test]
fn devpts_shm_and_mqueue_are_mounted() {
    for rt in Runtime::husk_and_runc() {
        let out = run_script_on(&rt, "cut -d' ' -f2,3 /proc/mounts", |_| {});
        for want in [
            "/proc proc",
            "/dev tmpfs",
            "/dev/pts devpts",
            "/dev/shm tmpfs",
            "/dev/mqueue mqueue",
            "/sys sysfs",
        ] {
            assert!(out.lines().any(|l| l == want), "{}: {want} missing:\n{out}", rt.name());
        }
    }
}

/// A symlink in the image pointing at a host directory: the mount below it must land in the
/// rootfs, never on the host path.
fn assert_hostile_symlink_stays_inside(rt: &Runtime, link_target: impl Fn(&str) -> String) {
    let name = rt.name();
    let host = TempDir::new("hostile");
    let host_path = host.path().to_str().unwrap().to_string();
    let mut bundle = sh_bundle(&format!(
        "ls -d {host_path}/x && grep -c ' {host_path}/x ' /proc/self/mountinfo"
    ));
    symlink(link_target(&host_path), bundle.rootfs().join("evil")).unwrap();
    // The symlink is followed *inside* the rootfs, where its target must exist.
    bundle.config_mut()["root"]["readonly"] = false.into();
    add_mount(
        bundle.config_mut(),
        json!({ "destination": "/evil/x", "type": "tmpfs", "source": "tmpfs" }),
    );
    bundle.save();
    let out = run_fg(rt, &bundle);
    assert!(
        !host.join("x").exists(),
        "{name} created {host_path}/x on the host: {}",
        output_text(&out)
    );
    assert!(
        husk_e2e::mounts_under(host.path()).is_empty(),
        "{name} mounted on the host path"
    );
    assert!(out.status.success(), "{name}: {}", output_text(&out));
    assert_eq!(stdout_of(&out), format!("{host_path}/x\n1\n"), "{name}");
    assert!(
        bundle
            .rootfs()
            .join(host_path.trim_start_matches('/'))
            .join("x")
            .is_dir(),
        "{name}: the mount point was not made inside the rootfs"
    );
}

#[test]
fn hostile_absolute_symlink_resolves_inside_the_rootfs() {
    for rt in Runtime::husk_and_runc() {
        assert_hostile_symlink_stays_inside(&rt, |host| host.to_string());
    }
}

#[test]
fn hostile_relative_symlink_resolves_inside_the_rootfs() {
    for rt in Runtime::husk_and_runc() {
        assert_hostile_symlink_stays_inside(&rt, |host| format!("../../../../../../..{host}"));
    }
}

#[test]
fn bind_source_symlink_in_the_bundle_is_the_hosts_choice() {
    // The source of a bind is a host path (the operator's), unlike the destination.
    let host = TempDir::new("bindlink");
    std::fs::create_dir(host.join("real")).unwrap();
    std::fs::write(host.join("real/f"), "ok\n").unwrap();
    symlink(host.join("real"), host.join("link")).unwrap();
    let src = host.join("link").to_str().unwrap().to_string();
    let out = run_script_on_both("cat /m/f", |c| {
        add_mount(
            c,
            json!({ "destination": "/m", "type": "bind", "source": src, "options": ["rbind", "ro"] }),
        )
    });
    assert_eq!(out, "ok\n");
}

#[test]
fn hostile_symlink_as_a_file_bind_target_creates_nothing_on_the_host() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let host = TempDir::new("hostilefile");
        let victim = host.join("victim");
        let source = TempDir::new("bindfile");
        std::fs::write(source.join("f"), "bound\n").unwrap();
        let mut bundle = sh_bundle(&format!("cat {}", victim.display()));
        symlink(&victim, bundle.rootfs().join("evil-file")).unwrap();
        bundle.config_mut()["root"]["readonly"] = false.into();
        add_mount(
            bundle.config_mut(),
            json!({ "destination": "/evil-file", "type": "bind",
                    "source": source.join("f").to_str().unwrap(), "options": ["bind", "ro"] }),
        );
        bundle.save();
        let out = run_fg(&rt, &bundle);
        assert!(!victim.exists(), "{name} created {} on the host", victim.display());
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        assert_eq!(stdout_of(&out), "bound\n", "{name}");
        let inside = bundle.rootfs().join(victim.strip_prefix("/").unwrap());
        assert!(
            inside.is_file(),
            "{name}: the bind target was not made inside the rootfs"
        );
    }
}

#[test]
fn shared_rootfs_propagation_leaks_no_mount_to_the_host() {
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let src = TempDir::new("sharedsrc");
        let mut bundle = husk_e2e::Bundle::new(&["sleep", "100"]);
        bundle.config_mut()["linux"]["rootfsPropagation"] = "rshared".into();
        add_mount(
            bundle.config_mut(),
            json!({ "destination": "/data", "type": "bind", "source": src.path().to_str().unwrap(),
                    "options": ["rbind"] }),
        );
        bundle.save();
        create_ok(&rt, &bundle);
        rt.run_ok(&["start", bundle.id()]);
        // While the container lives, the host sees none of its mounts.
        let leaked = husk_e2e::mounts_under(bundle.path());
        assert!(leaked.is_empty(), "{name}: {leaked:?}");
        let leaked = husk_e2e::mounts_under(src.path());
        assert!(leaked.is_empty(), "{name}: {leaked:?}");
        rt.run_ok(&["delete", "--force", bundle.id()]);
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn a_relative_bind_source_is_taken_from_the_bundle() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("cat /m/f");
        std::fs::create_dir(bundle.path().join("shared")).unwrap();
        std::fs::write(bundle.path().join("shared/f"), "in bundle\n").unwrap();
        add_mount(
            bundle.config_mut(),
            json!({ "destination": "/m", "type": "bind", "source": "shared", "options": ["rbind", "ro"] }),
        );
        bundle.save();
        assert_eq!(run_ok(&rt, &bundle), "in bundle\n", "{}", rt.name());
    }
}

/// The `cgroup` mount on this hybrid host: a tmpfs with one directory per v1 hierarchy and no
/// cgroup2 (runc 1.1.5 mounts only "cgroup" filesystems there; husk used to add
/// /sys/fs/cgroup/unified), and nothing can be made at its root.
#[test]
fn the_cgroup_mount_holds_the_v1_hierarchies_only_and_refuses_writes() {
    let out = run_script_on_both(
        "ls /sys/fs/cgroup; grep -c ' /sys/fs/cgroup/' /proc/self/mountinfo; grep -c cgroup2 /proc/self/mountinfo; \
         mkdir /sys/fs/cgroup/x 2>/dev/null; echo mkdir=$?",
        |_| {},
    );
    assert!(out.starts_with("blkio\ncpu\n"), "{out}");
    assert!(out.ends_with("\n0\nmkdir=1\n"), "{out}");
    // husk only: the config asks for "ro" and husk's tmpfs says so. runc 1.1.5 means to remount
    // it read-only (mountCgroupV1) but /proc/mounts shows it rw; its mkdir fails with EACCES.
    let mounts = run_script_on(&Runtime::husk(), "grep ' /sys/fs/cgroup ' /proc/mounts", |_| {});
    assert!(mounts.starts_with("tmpfs /sys/fs/cgroup tmpfs ro,"), "{mounts}");
}
