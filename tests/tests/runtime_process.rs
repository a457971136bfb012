//! The container's process as config.json describes it: cwd, env, user and groups, umask,
//! rlimits, capabilities, no_new_privs, sysctls, oom_score_adj. Failures must be clear.
//! Each case runs on husk and on runc 1.1.5, the control, and asserts the same result.

mod runtime_support;

use husk_e2e::{output_text, Runtime};
use runtime_support::*;
use serde_json::{json, Value};

/// The value of `Key:` in /proc/self/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} not in:\n{status}"))
}

/// `cat /proc/self/status` in a container edited by `edit`, on husk and on runc: each
/// runtime's name and the text (the whole text differs, pids and memory; callers compare fields).
fn status_on_both(edit: impl Fn(&mut Value)) -> Vec<(String, String)> {
    Runtime::husk_and_runc()
        .iter()
        .map(|rt| (rt.name(), run_script_on(rt, "cat /proc/self/status", &edit)))
        .collect()
}

/// The container's `run` failed on `rt` and left nothing behind; its stderr mentions each of
/// `words` (case-insensitive), on husk in one `husk: ` line. runc's wording is no contract, so
/// `runc_words` are the words runc 1.1.5's message has too.
fn assert_run_refused(rt: &Runtime, bundle: &husk_e2e::Bundle, words: &[&str], runc_words: &[&str]) {
    let out = run_fg(rt, bundle);
    let name = rt.name();
    assert!(
        !out.status.success(),
        "{name}: expected a failure: {}",
        output_text(&out)
    );
    if name == "husk" {
        for word in words {
            assert_one_line_error(&out, word);
        }
    }
    let stderr = stderr_of(&out).to_lowercase();
    for word in runc_words {
        assert!(
            stderr.contains(&word.to_lowercase()),
            "{name}: {word:?} not in {stderr}"
        );
    }
    assert_nothing_left(rt, bundle.id(), bundle);
}

#[test]
fn cwd_is_the_configured_directory() {
    let out = run_script_on_both("pwd", |c| c["process"]["cwd"] = "/tmp".into());
    assert_eq!(out, "/tmp\n");
}

#[test]
fn env_is_exactly_the_configured_list() {
    let out = run_script_on_both("env | sort", |c| {
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]);
    });
    // busybox sh adds PWD and SHLVL of its own; the runtime adds HOME (see below).
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .collect();
    assert_eq!(lines, ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin"], "{out}");
}

/// runc's init sets the env one entry at a time with Go's os.Setenv: a name given twice keeps
/// its first place and takes its last value. husk passed both entries on, and a C program's
/// getenv reads the first.
#[test]
fn a_name_given_twice_in_the_env_keeps_its_last_value() {
    // busybox env as the process prints its environ as execve gave it (a shell reorders it).
    for rt in Runtime::husk_and_runc() {
        let mut bundle = husk_e2e::Bundle::new(&["env"]);
        bundle.config_mut()["process"]["env"] = json!(["PATH=/bin", "TERM=xterm", "HOME=/h", "TERM=dumb", "A=1"]);
        bundle.save();
        let out = run_ok(&rt, &bundle);
        assert_eq!(out, "PATH=/bin\nTERM=dumb\nHOME=/h\nA=1\n", "{}", rt.name());
    }
}

/// An env entry without `=` or without a name fails the create on both, leaving nothing
/// (runc: `invalid environment variable: "NOEQUALS"`, `environment variable name can't be
/// empty`); husk passed them on to execve.
#[test]
fn an_env_entry_without_a_name_or_value_is_refused() {
    for (entry, word) in [
        ("NOEQUALS", "invalid environment variable"),
        ("=x", "name can't be empty"),
    ] {
        for rt in Runtime::husk_and_runc() {
            let mut bundle = sh_bundle("true");
            bundle.config_mut()["process"]["env"] = json!(["PATH=/bin", entry]);
            bundle.save();
            assert_run_refused(&rt, &bundle, &[word, entry], &[word]);
        }
    }
}

/// runc 1.1 (libcontainer/init_linux.go, setupUser) sets HOME when the env has none or an
/// empty one: the user's home in the container's /etc/passwd, "/" for a uid it does not list.
/// husk passed the env on as it was, without HOME.
#[test]
fn home_is_the_users_from_etc_passwd_unless_the_env_sets_it() {
    let env = |c: &mut Value, uid: u32, env: Value| {
        c["process"]["user"] = json!({ "uid": uid, "gid": uid });
        c["process"]["env"] = env;
    };
    let home = "echo \"$HOME\"; env | grep -c ^HOME=";
    let out = run_script_on_both(home, |c| env(c, 1000, json!(["PATH=/bin"])));
    assert_eq!(out, "/home/user\n1\n");
    let out = run_script_on_both(home, |c| env(c, 4242, json!(["PATH=/bin"])));
    assert_eq!(out, "/\n1\n", "a uid /etc/passwd does not list");
    let out = run_script_on_both(home, |c| env(c, 0, json!(["HOME=", "PATH=/bin"])));
    assert_eq!(out, "/root\n1\n", "an empty HOME is replaced, not doubled");
    let out = run_script_on_both(home, |c| env(c, 0, json!(["PATH=/bin", "HOME=/mine"])));
    assert_eq!(out, "/mine\n1\n", "a set HOME is kept");
}

#[test]
fn user_uid_gid_and_additional_gids_are_set() {
    for (name, out) in status_on_both(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20] });
    }) {
        assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000", "{name}");
        assert_eq!(status_field(&out, "Gid"), "1001\t1001\t1001\t1001", "{name}");
        assert_eq!(status_field(&out, "Groups"), "10 20", "{name}");
    }
}

/// A gid listed twice in additionalGids is set once: runc 1.1 collects them in a map
/// (libcontainer/user, GetAdditionalGroups); husk passed `Groups: 0 5 5` to setgroups.
#[test]
fn additional_gids_are_set_once_each() {
    for (name, out) in status_on_both(|c| {
        c["process"]["user"] = json!({ "uid": 0, "gid": 0, "additionalGids": [5, 5, 0] });
    }) {
        assert_eq!(status_field(&out, "Groups"), "0 5", "{name}");
    }
}

/// A process without `capabilities` runs with none, root or not: runc 1.1's init applies an
/// empty set (init_linux.go, finalizeNamespace). husk left it every capability it had itself
/// (CapEff 000001fffeffffff on this host): a spec that omits the field got a privileged root.
#[test]
fn a_process_without_capabilities_gets_none() {
    for (name, out) in status_on_both(|c| {
        c["process"].as_object_mut().unwrap().remove("capabilities");
    }) {
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(status_field(&out, key), "0000000000000000", "{name}: {key}");
        }
    }
}

#[test]
fn a_non_root_user_has_no_effective_capabilities_unless_asked() {
    for (name, out) in status_on_both(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        c["process"]["capabilities"] = json!({ "bounding": ["CAP_KILL"] });
    }) {
        assert_eq!(status_field(&out, "CapEff"), "0000000000000000", "{name}");
        assert_eq!(status_field(&out, "CapBnd"), "0000000000000020", "{name}");
    }
}

#[test]
fn umask_is_applied() {
    let out = run_script_on_both("umask; touch /tmp/f; stat -c %a /tmp/f", |c| {
        c["process"]["user"]["umask"] = 0o077.into();
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }));
    });
    assert_eq!(out, "0077\n600\n");
}

#[test]
fn lowered_rlimits_are_applied() {
    let script = "ulimit -Sn; ulimit -Hn; grep 'Max processes' /proc/self/limits";
    let out = run_script_on_both(script, |c| {
        c["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 256, "hard": 512 },
            { "type": "RLIMIT_NPROC", "soft": 100, "hard": 200 }
        ]);
    });
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("256"));
    assert_eq!(lines.next(), Some("512"));
    let nproc: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&nproc[2..4], ["100", "200"], "{out}");
}

#[test]
fn raising_a_hard_rlimit_fails_clearly_and_leaves_nothing() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let above = lim.rlim_max + 1000;
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("true");
        bundle.config_mut()["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 1024, "hard": above }]);
        bundle.save();
        // husk names the rlimit and the missing capability; runc says "error setting rlimit type 7".
        let husk_words = ["CAP_SYS_RESOURCE", "operation not permitted", "RLIMIT_NOFILE"];
        assert_run_refused(&rt, &bundle, &husk_words, &["rlimit", "operation not permitted"]);
    }
}

#[test]
fn capabilities_match_the_config() {
    // CAP_CHOWN = 0, CAP_KILL = 5, CAP_NET_BIND_SERVICE = 10. For uid 0 the kernel makes the
    // effective set the permitted one at execve (and no_new_privs caps permitted at the old).
    for (name, out) in status_on_both(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        });
    }) {
        let caps = |bits: u64| format!("{bits:016x}");
        assert_eq!(status_field(&out, "CapBnd"), caps(1 | 1 << 5 | 1 << 10), "{name}");
        assert_eq!(status_field(&out, "CapPrm"), caps(1 | 1 << 5), "{name}");
        assert_eq!(status_field(&out, "CapEff"), caps(1 | 1 << 5), "{name}");
        assert_eq!(status_field(&out, "CapInh"), caps(1 << 5), "{name}");
        assert_eq!(status_field(&out, "CapAmb"), caps(1 << 5), "{name}");
    }
}

#[test]
fn a_non_root_user_keeps_exactly_its_ambient_capabilities() {
    // Without file capabilities a non-root process keeps across execve only what is ambient.
    for (name, out) in status_on_both(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        let set = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": set, "effective": set, "inheritable": set, "ambient": set
        });
    }) {
        let nbs = format!("{:016x}", 1 << 10);
        assert_eq!(status_field(&out, "CapEff"), nbs, "{name}");
        assert_eq!(status_field(&out, "CapPrm"), nbs, "{name}");
        assert_eq!(status_field(&out, "CapAmb"), nbs, "{name}");
        assert_eq!(
            status_field(&out, "CapBnd"),
            format!("{:016x}", 1 << 5 | 1 << 10),
            "{name}"
        );
    }
}

#[test]
fn runc_default_capabilities_work_without_inheritable() {
    // runc's own `runc spec` lists ambient caps but no inheritable ones; runc skips them.
    for (name, out) in status_on_both(|_| {}) {
        let caps = 1u64 << 29 | 1 << 5 | 1 << 10; // AUDIT_WRITE, KILL, NET_BIND_SERVICE
        assert_eq!(status_field(&out, "CapBnd"), format!("{caps:016x}"), "{name}");
        assert_eq!(status_field(&out, "CapEff"), format!("{caps:016x}"), "{name}");
        assert_eq!(status_field(&out, "CapAmb"), "0000000000000000", "{name}");
    }
}

#[test]
fn a_dropped_capability_is_enforced() {
    // root in the container, but without CAP_CHOWN (not in the default set).
    let out = run_script_on_both("touch /tmp/f; chown 1000 /tmp/f 2>&1; echo rc=$?", |c| {
        c["root"]["readonly"] = false.into();
    });
    assert!(out.contains("Operation not permitted") && out.contains("rc=1"), "{out}");
}

#[test]
fn no_new_privileges_is_set_when_asked_and_only_then() {
    let on = run_script_on_both("grep NoNewPrivs /proc/self/status", |_| {});
    assert_eq!(on, "NoNewPrivs:\t1\n");
    let off = run_script_on_both("grep NoNewPrivs /proc/self/status", |c| {
        c["process"]["noNewPrivileges"] = false.into();
    });
    assert_eq!(off, "NoNewPrivs:\t0\n");
}

#[test]
fn sysctl_is_written_in_the_new_netns_only() {
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host.trim() == "1" { "0" } else { "1" };
    let out = run_script_on_both("cat /proc/sys/net/ipv4/ip_forward", |c| {
        c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": want });
    });
    assert_eq!(out.trim(), want);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host,
        "the host's value is untouched"
    );
}

#[test]
fn a_host_sysctl_is_refused_before_anything_is_made() {
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("true");
        bundle.config_mut()["linux"]["sysctl"] = json!({ "vm.swappiness": "10" });
        bundle.save();
        assert_run_refused(&rt, &bundle, &["vm.swappiness"], &["vm.swappiness"]);
    }
}

#[test]
fn positive_oom_score_adj_is_applied() {
    let out = run_script_on_both("cat /proc/self/oom_score_adj", |c| {
        c["process"]["oomScoreAdj"] = 500.into();
    });
    assert_eq!(out, "500\n");
}

#[test]
fn negative_oom_score_adj_fails_clearly_and_leaves_nothing() {
    // CAP_SYS_RESOURCE is missing from this host's bounding set.
    for rt in Runtime::husk_and_runc() {
        let mut bundle = sh_bundle("true");
        bundle.config_mut()["process"]["oomScoreAdj"] = (-500).into();
        bundle.save();
        assert_run_refused(&rt, &bundle, &["oom_score_adj", "CAP_SYS_RESOURCE"], &["oom_score_adj"]);
    }
}

#[test]
fn a_missing_program_fails_create_not_start() {
    for rt in Runtime::husk_and_runc() {
        let bundle = husk_e2e::Bundle::new(&["/no/such/program"]);
        let path = bundle.path().to_str().unwrap();
        let out = rt.run(&["create", "--bundle", path, bundle.id()]);
        let name = rt.name();
        assert!(!out.status.success(), "{name}: create succeeded: {}", output_text(&out));
        assert!(
            stderr_of(&out).contains("/no/such/program"),
            "{name}: {}",
            output_text(&out)
        );
        if name == "husk" {
            // husk's error is one line; runc's is a logrus line plus its own summary.
            assert_one_line_error(&out, "/no/such/program");
        }
        assert_nothing_left(&rt, bundle.id(), &bundle);
    }
}

#[test]
fn only_stdio_fds_reach_the_process() {
    for rt in Runtime::husk_and_runc() {
        let out = run_script_on(&rt, "ls /proc/self/fd | sort -n | tr '\\n' ' '", |_| {});
        // 0 1 2, and the fd ls itself holds open on the directory.
        let fds: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(&fds[..3], ["0", "1", "2"], "{}: {out}", rt.name());
        assert!(
            fds.len() <= 4,
            "{}: stray fds leak into the container: {out}",
            rt.name()
        );
    }
}
