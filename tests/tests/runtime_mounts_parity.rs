//! Mounts and hooks as runc 1.1 makes them (issue 10 items 4, 5 and 6): proc and sysfs only
//! on real directories, --no-pivot without the host's proc, recursive mount options,
//! tmpcopyup, the mode of a tmpfs over an image directory, a read-only /dev, the features
//! document, and the cwd and order of the hooks the init runs. Each case runs on husk and on
//! runc, the control; where husk differs, the case says why.

mod runtime_support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::{Command, Output};

use husk_e2e::{output_text, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::{json, Value};

fn add_mount(config: &mut Value, mount: Value) {
    config["mounts"].as_array_mut().expect("mounts is an array").push(mount);
}

/// `run` in the foreground with `extra` flags before the bundle.
fn run_with(rt: &Runtime, bundle: &Bundle, extra: &[&str]) -> Output {
    let path = bundle.path().to_str().expect("bundle path is UTF-8");
    let mut args = vec!["run"];
    args.extend(extra);
    args.extend(["--bundle", path, bundle.id()]);
    rt.run(&args)
}

/// [`run_with`] without flags, which must succeed: the container's stdout.
fn stdout_ok(rt: &Runtime, bundle: &Bundle) -> String {
    let out = run_fg(rt, bundle);
    assert!(out.status.success(), "{}: {}", rt.name(), output_text(&out));
    stdout_of(&out)
}

/// A hostile image makes `/proc` or `/sys` a symlink: following it would mount the kernel's
/// files elsewhere and leave the image's own directory in place (CVE-2023-28642). runc refuses
/// with these words; husk used to follow the link and start the container.
#[test]
fn a_symlinked_proc_or_sys_in_the_image_is_refused() {
    for rt in Runtime::husk_and_runc() {
        for dir in ["proc", "sys"] {
            let bundle = sh_bundle("echo started");
            let path = bundle.rootfs().join(dir);
            std::fs::remove_dir(&path).unwrap();
            symlink("/symlink", &path).unwrap();
            let out = run_fg(&rt, &bundle);
            assert!(!out.status.success(), "{} started with /{dir} a symlink", rt.name());
            assert!(
                stderr_of(&out).contains("must be mounted on ordinary directory"),
                "{}: {}",
                rt.name(),
                output_text(&out)
            );
            assert_nothing_left(&rt, bundle.id(), &bundle);
        }
    }
}

/// With --no-pivot the host's root stays below the chroot in the container's mount namespace.
/// The kernel lets a nested user namespace mount proc or sysfs only while a fully visible one
/// is in the namespace; the container's own have locked masks, the host's had none, so the
/// nested mounts succeeded under husk. runc unmounts the host's first (msMoveRoot).
#[test]
fn no_pivot_leaves_no_host_proc_or_sysfs_for_a_nested_mount() {
    let caps = ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"];
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle(
            "mkdir -p /p /s; unshare -Urmpfn sh -c \
             'mount -t proc proc /p && echo proc mounted; mount -t sysfs sysfs /s && echo sysfs mounted'; \
             echo done",
        );
        let config = bundle.config_mut();
        config["root"]["readonly"] = false.into();
        for set in ["bounding", "effective", "permitted"] {
            config["process"]["capabilities"][set] = json!(caps);
        }
        bundle.save();
        let out = run_with(&rt, &bundle, &["--no-pivot"]);
        assert!(out.status.success(), "{}: {}", rt.name(), output_text(&out));
        assert_eq!(stdout_of(&out), "done\n", "{}: {}", rt.name(), output_text(&out));
        assert_eq!(
            stderr_of(&out).matches("permission denied").count(),
            2,
            "{}: {}",
            rt.name(),
            output_text(&out)
        );
    }
}

/// A host dir whose `sub/` is a tmpfs mounted with every flag a recursive option can clear.
fn source_with_flagged_submount() -> TempDir {
    let host = TempDir::new("recsrc");
    std::fs::create_dir(host.join("sub")).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "ro,nosuid,nodev,noexec,noatime,nodiratime,nosymfollow",
            "tmpfs",
        ])
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(st.success(), "mount the flagged tmpfs on the host");
    host
}

/// `/r<i> <options>` and `/r<i>/sub <options>` lines of the container's mountinfo, for a
/// container that rbinds `source` on `/r<i>` with each option of `options` in turn.
fn recursive_mounts(rt: &Runtime, source: &TempDir, options: &[&str]) -> Vec<String> {
    let mut bundle = sh_bundle("cut -d' ' -f5,6 /proc/self/mountinfo | grep '^/r[0-9]'; touch /r0/x 2>&1; exit 0");
    let src = source.path().to_str().unwrap();
    for (i, option) in options.iter().enumerate() {
        add_mount(
            bundle.config_mut(),
            json!({ "destination": format!("/r{i}"), "type": "bind", "source": src, "options": ["rbind", option] }),
        );
    }
    bundle.save();
    stdout_ok(rt, &bundle).lines().map(String::from).collect()
}

/// The mount flags the kernel shows for `point` in [`recursive_mounts`]' output.
fn flags_of<'a>(lines: &'a [String], point: &str) -> Vec<&'a str> {
    let line = lines
        .iter()
        .find(|l| l.split(' ').next() == Some(point))
        .unwrap_or_else(|| panic!("{point} not mounted: {lines:?}"));
    line.split(' ').nth(1).unwrap_or_default().split(',').collect()
}

/// The recursive options runc 1.1.5 applies: (option, the flag in mountinfo, set or cleared).
/// The bind of the host dir starts "rw,relatime"; its `sub/` starts with every flag set.
const RECURSIVE: &[(&str, &str, bool)] = &[
    ("rro", "ro", true),
    ("rrw", "ro", false),
    ("rnosuid", "nosuid", true),
    ("rsuid", "nosuid", false),
    ("rnodev", "nodev", true),
    ("rdev", "nodev", false),
    ("rnoexec", "noexec", true),
    ("rexec", "noexec", false),
    ("rnosymfollow", "nosymfollow", true),
    ("rsymfollow", "nosymfollow", false),
    ("rnodiratime", "nodiratime", true),
    ("rdiratime", "nodiratime", false),
    ("rnoatime", "noatime", true),
    ("rrelatime", "relatime", true),
    // Clears relatime's value, 0: nothing changes (sub stays noatime).
    ("rnorelatime", "noatime", true),
];

/// husk used to pass `rro` and the others to the kernel as fs data, which a bind ignores: the
/// mount stayed writable.
#[test]
fn recursive_mount_options_reach_every_submount() {
    let source = source_with_flagged_submount();
    let mut options: Vec<&str> = RECURSIVE.iter().map(|(o, _, _)| *o).collect();
    options.extend(["rstrictatime", "nosymfollow"]);
    let mut outputs = Vec::new();
    for rt in Runtime::husk_and_runc() {
        let lines = recursive_mounts(&rt, &source, &options);
        for (i, (option, flag, set)) in RECURSIVE.iter().enumerate() {
            let (top, sub) = (format!("/r{i}"), format!("/r{i}/sub"));
            let has = |point: &str| flags_of(&lines, point).contains(flag);
            if *set {
                assert!(has(&sub), "{}: {option}: {sub} lacks {flag}: {lines:?}", rt.name());
                if *option != "rnorelatime" {
                    assert!(has(&top), "{}: {option}: {top} lacks {flag}: {lines:?}", rt.name());
                }
            } else {
                assert!(!has(&sub), "{}: {option}: {sub} keeps {flag}: {lines:?}", rt.name());
            }
        }
        let strict = RECURSIVE.len();
        for point in [format!("/r{strict}"), format!("/r{strict}/sub")] {
            let flags = flags_of(&lines, &point);
            assert!(
                !flags.contains(&"noatime") && !flags.contains(&"relatime"),
                "{point}: {flags:?}"
            );
        }
        // Plain nosymfollow, on the top mount (its sub has it from the host already).
        let plain = strict + 1;
        assert!(
            flags_of(&lines, &format!("/r{plain}")).contains(&"nosymfollow"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("Read-only file system")), "{lines:?}");
        outputs.push(lines);
    }
    assert_eq!(outputs[0], outputs[1], "husk and runc differ");
}

/// `ratime` and `rnostrictatime` undo a noatime or strictatime below the mount: back to the
/// kernel's default, relatime. husk alone: runc 1.1.5 passes MOUNT_ATTR_NOATIME (or
/// STRICTATIME) alone in attr_clr, which the kernel refuses with EINVAL, and fails the create.
#[test]
fn ratime_and_rnostrictatime_go_back_to_relatime() {
    let source = source_with_flagged_submount();
    let lines = recursive_mounts(&Runtime::husk(), &source, &["ratime", "rnostrictatime"]);
    for point in ["/r0", "/r0/sub", "/r1", "/r1/sub"] {
        let flags = flags_of(&lines, point);
        assert!(
            flags.contains(&"relatime") && !flags.contains(&"noatime"),
            "{point}: {lines:?}"
        );
    }
}

/// runc refuses nothing here (1.1.5 passes idmap as fs data, which a bind ignores): husk says
/// it does not support idmapped mounts rather than making a mount without the mapping.
#[test]
fn idmap_options_are_refused_in_one_clear_line() {
    let rt = Runtime::husk();
    for option in ["idmap", "ridmap"] {
        let host = TempDir::new("idmapsrc");
        let mut bundle = sh_bundle("true");
        add_mount(
            bundle.config_mut(),
            json!({ "destination": "/m", "type": "bind", "source": host.path().to_str().unwrap(),
                    "options": ["rbind", option] }),
        );
        bundle.save();
        let out = run_fg(&rt, &bundle);
        assert_one_line_error(&out, &format!("the {option} option (idmapped mounts) is not supported"));
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

/// An image directory `etc/data` (mode 750) with a file, a symlink and a subdirectory owned
/// by 5:6.
fn image_with_data_dir(bundle: &Bundle, dir: &str) {
    let data = bundle.rootfs().join(dir);
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("f"), "content\n").unwrap();
    std::fs::set_permissions(data.join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
    symlink("f", data.join("l")).unwrap();
    std::os::unix::fs::chown(data.join("sub"), Some(5), Some(6)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// podman sends tmpcopyup for --tmpfs: the tmpfs starts with what the image has there. husk
/// used to accept the option and mount an empty tmpfs.
#[test]
fn tmpcopyup_starts_the_tmpfs_with_the_image_content() {
    let script = "cd /etc/data && stat -c '%n %a %u:%g %F' . f sub && readlink l && cat f; \
                  touch new && echo writable; touch /etc/rodata/new 2>&1; cat /etc/rodata/f; \
                  grep -c ' /etc/r*o*data tmpfs' /proc/mounts";
    let want = ". 750 0:0 directory\nf 640 0:0 regular file\nsub 755 5:6 directory\nf\ncontent\nwritable\n\
                touch: /etc/rodata/new: Read-only file system\ncontent\n2\n";
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle(script);
        image_with_data_dir(&bundle, "etc/data");
        image_with_data_dir(&bundle, "etc/rodata");
        for (dest, extra) in [("/etc/data", "nosuid"), ("/etc/rodata", "ro")] {
            add_mount(
                bundle.config_mut(),
                json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", extra] }),
            );
        }
        bundle.save();
        assert_eq!(stdout_ok(&rt, &bundle), want, "{}", rt.name());
        assert!(
            !bundle.rootfs().join("etc/data/new").exists(),
            "the image was written to"
        );
    }
}

/// Docker and podman --tmpfs send no mode: a tmpfs over an image directory keeps its mode
/// (husk gave it tmpfs's 1777), a new mount point gets 1777.
#[test]
fn a_tmpfs_over_an_image_directory_keeps_its_mode() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("stat -c '%n %a' /etc/x /etc/y /newdir /tmp");
        for dir in ["etc/x", "etc/y"] {
            std::fs::create_dir(bundle.rootfs().join(dir)).unwrap();
        }
        std::fs::set_permissions(bundle.rootfs().join("etc/x"), std::fs::Permissions::from_mode(0o750)).unwrap();
        for (dest, options) in [("/etc/x", json!(["nosuid"])), ("/etc/y", json!(["mode=700"]))] {
            add_mount(
                bundle.config_mut(),
                json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options }),
            );
        }
        add_mount(
            bundle.config_mut(),
            json!({ "destination": "/newdir", "type": "tmpfs", "source": "tmpfs" }),
        );
        bundle.save();
        let out = stdout_ok(&rt, &bundle);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "/etc/x 750", "{}: {out}", rt.name());
        assert_eq!(lines[2..], ["/newdir 1777", "/tmp 1777"], "{}: {out}", rt.name());
        // A given mode= wins (runc 1.1.8 and crun; runc 1.1.5 chmods the directory's 755 back
        // over it, opencontainers/runc#3911): husk alone.
        if rt.bin().ends_with("husk") {
            assert_eq!(lines[1], "/etc/y 700", "{out}");
        }
    }
}

/// runc mounts /dev writable, fills it, and makes it read-only at the end; husk made it
/// read-only at once and then failed to create /dev/pts in it (EROFS).
#[test]
fn a_read_only_dev_is_made_read_only_at_the_end() {
    let script = "ls -d /dev/null /dev/pts/ptmx /dev/shm; touch /dev/x 2>&1; \
                  grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6";
    let want = "/dev/null\n/dev/pts/ptmx\n/dev/shm\ntouch: /dev/x: Read-only file system\nro,nosuid\n";
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle(script);
        let dev = &mut bundle.config_mut()["mounts"][1];
        assert_eq!(dev["destination"], "/dev");
        dev["options"].as_array_mut().unwrap().push("ro".into());
        bundle.save();
        assert_eq!(stdout_ok(&rt, &bundle), want, "{}", rt.name());
    }
}

#[test]
fn features_list_the_mount_options_runc_lists() {
    let options = |rt: &Runtime| -> Vec<String> {
        let doc: Value = serde_json::from_str(&rt.run_ok(&["features"])).expect("features is JSON");
        let mut list: Vec<String> = serde_json::from_value(doc["mountOptions"].clone()).expect("a list of names");
        list.sort();
        list
    };
    assert_eq!(options(&Runtime::husk()), options(&Runtime::runc()));
}

/// runc runs createContainer hooks from the rootfs (it chdirs there first) and execs the path
/// as it is: a relative path is found in the rootfs. husk ran them from its own cwd.
#[test]
fn create_container_hooks_run_from_the_rootfs() {
    for rt in Runtime::husk_and_runc() {
        let out_dir = TempDir::new("hookcwd");
        let mut bundle = sh_bundle("true");
        let record = out_dir.join("cwd");
        let hook = bundle.rootfs().join("hook.sh");
        std::fs::write(&hook, format!("#!/bin/sh\npwd > {}\n", record.display())).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        bundle.config_mut()["hooks"] = json!({ "createContainer": [{ "path": "hook.sh", "args": ["hook.sh"] }] });
        bundle.save();
        stdout_ok(&rt, &bundle);
        let cwd = std::fs::read_to_string(&record).unwrap_or_else(|e| panic!("{}: hook did not run: {e}", rt.name()));
        let rootfs = std::fs::canonicalize(bundle.rootfs()).unwrap();
        assert_eq!(cwd.trim_end(), rootfs.to_str().unwrap(), "{}", rt.name());
    }
}

/// runc loads a late (noNewPrivileges) seccomp filter before the startContainer hooks, which
/// thus run under it; husk ran them first, and a hook could do what the profile forbids.
#[test]
fn start_container_hooks_run_under_the_seccomp_filter() {
    for rt in Runtime::husk_and_runc() {
        let out_dir = TempDir::new("hookseccomp");
        let mut bundle = sh_bundle("true");
        let config = bundle.config_mut();
        add_mount(
            config,
            json!({ "destination": "/out", "type": "bind", "source": out_dir.path().to_str().unwrap(),
                    "options": ["rbind", "rw"] }),
        );
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }]
        });
        config["hooks"] = json!({ "startContainer": [{
            "path": "/bin/sh", "args": ["sh", "-c", "mkdir /out/d 2>/dev/null; echo $? > /out/rc"] }] });
        bundle.save();
        stdout_ok(&rt, &bundle);
        let rc = std::fs::read_to_string(out_dir.join("rc")).unwrap_or_default();
        assert_eq!(rc, "1\n", "{}: the hook's mkdir was not refused", rt.name());
        assert!(!out_dir.join("d").exists(), "{}", rt.name());
    }
}

/// A container reading two bind mounts (`/mf` a file, `/md` a directory) whose sources sit in a
/// host directory only the host's root may search (mkdtemp's 0700): `host` must outlive the run.
fn reads_binds_below_a_private_host_dir(host: &TempDir) -> Bundle {
    std::fs::create_dir(host.join("d")).unwrap();
    std::fs::write(host.join("d/in-dir"), "dir\n").unwrap();
    std::fs::write(host.join("f"), "file\n").unwrap();
    let mut bundle = sh_bundle("cat /mf /md/in-dir; touch /mf 2>&1; exit 0");
    map_root_to_100000(&mut bundle);
    // The rootfs's directories belong to the host's root, which the mapped root cannot write
    // to: the mount points are made here.
    std::fs::write(bundle.rootfs().join("mf"), "").unwrap();
    std::fs::create_dir(bundle.rootfs().join("md")).unwrap();
    for (dest, source, bind) in [("/mf", "f", "bind"), ("/md", "d", "rbind")] {
        add_mount(
            bundle.config_mut(),
            json!({ "destination": dest, "type": "bind", "source": host.join(source).to_str().unwrap(),
                    "options": [bind, "ro"] }),
        );
    }
    bundle
}

const BINDS_READ: &str = "file\ndir\ntouch: /mf: Read-only file system\n";

/// With a user namespace the init is root of that namespace only (host uid 100000 here): a bind
/// source inside a host directory it may not search failed with `failed to stat bind mount
/// source ...: permission denied`. runc opens the sources while it is still root in the host's
/// namespaces; husk's parent clones them before clone3.
#[test]
fn bind_sources_the_mapped_root_cannot_reach_are_mounted_in_a_user_namespace() {
    for rt in Runtime::husk_and_runc() {
        let host = TempDir::new("usernsbind");
        let mut bundle = reads_binds_below_a_private_host_dir(&host);
        add_user_namespace(&mut bundle);
        bundle.save();
        assert_eq!(stdout_ok(&rt, &bundle), BINDS_READ, "{}", rt.name());
    }
}

/// The same with a user namespace joined by path (podman's --userns pods): the init, made in
/// the joined namespace by stage 1, is its root only.
#[test]
fn bind_sources_the_mapped_root_cannot_reach_are_mounted_in_a_joined_user_namespace() {
    for rt in Runtime::husk_and_runc() {
        let mut first = Bundle::new(&["sleep", "100"]);
        add_user_namespace(&mut first);
        first.save();
        let first_pid = create_ok(&rt, &first);
        let host = TempDir::new("joinedbind");
        let mut bundle = reads_binds_below_a_private_host_dir(&host);
        bundle.config_mut()["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user", "path": format!("/proc/{first_pid}/ns/user") }));
        bundle.save();
        assert_eq!(stdout_ok(&rt, &bundle), BINDS_READ, "{}", rt.name());
    }
}
