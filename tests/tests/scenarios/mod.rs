//! Container lifecycle scenarios driven through a private containerd with `ctr`, shared by
//! the test files that pick the shim and runtime (`go_shim_interop.rs`, `husk_shim.rs`).

use std::path::PathBuf;
use std::time::Duration;

mod concurrency;
mod io;
mod lifecycle;
mod mounts;
mod parity;

pub use concurrency::*;
pub use io::*;
pub use lifecycle::*;
pub use mounts::*;
pub use parity::*;

use husk_e2e::{assert_no_leftovers, output_text, wait_until, Containerd, BUSYBOX_REF, HUSK_RUNTIME};

/// Which shim containerd starts, and which runtime binary it drives. (Each test file uses
/// some of the variants.)
#[allow(dead_code)]
pub enum Via {
    /// containerd-shim-runc-v2 with `--runc-binary <path>` (husk, or runc as the control).
    GoShim(PathBuf),
    /// containerd-shim-husk-v2 (from the target dir, on containerd's PATH).
    HuskShim,
}

impl Via {
    pub(crate) fn runtime_args(&self) -> Vec<String> {
        match self {
            Via::GoShim(bin) => vec![
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                bin.display().to_string(),
            ],
            Via::HuskShim => vec!["--runtime".into(), HUSK_RUNTIME.into()],
        }
    }
}

/// A private containerd with busybox imported into its namespace.
pub(crate) fn containerd_with_busybox() -> Containerd {
    let mut ctrd = Containerd::start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    ctrd
}

/// `ctr run <runtime args> <flags> busybox <id> <cmd...>`.
pub(crate) fn run(ctrd: &Containerd, via: &Via, flags: &[&str], id: &str, cmd: &[&str]) -> std::process::Output {
    let runtime = via.runtime_args();
    let mut args: Vec<&str> = vec!["run"];
    args.extend(runtime.iter().map(String::as_str));
    args.extend_from_slice(flags);
    args.push(BUSYBOX_REF);
    args.push(id);
    args.extend_from_slice(cmd);
    ctrd.ctr(&args)
}

pub(crate) fn run_ok(ctrd: &Containerd, via: &Via, flags: &[&str], id: &str, cmd: &[&str]) -> String {
    let out = run(ctrd, via, flags, id, cmd);
    assert!(
        out.status.success(),
        "ctr run failed: {}\n--- containerd log ---\n{}",
        output_text(&out),
        ctrd.log_tail(60)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn assert_clean(ctrd: &Containerd, id: &str) {
    assert_eq!(ctrd.ctr_ok(&["containers", "ls", "-q"]), "", "containers left");
    assert_no_leftovers(id, &ctrd.state(), &format!("/{}/{id}", ctrd.namespace()));
}

/// `ctr tasks delete <flags> <id>`, `ctr containers delete <id>`, then [`assert_clean`].
pub(crate) fn delete_and_check(ctrd: &Containerd, id: &str, flags: &[&str]) {
    let mut args = vec!["tasks", "delete"];
    args.extend_from_slice(flags);
    args.push(id);
    ctrd.ctr_ok(&args);
    ctrd.ctr_ok(&["containers", "delete", id]);
    assert_clean(ctrd, id);
}

/// The STATUS column of `ctr tasks ls` for `id` ("" when it is not listed).
pub(crate) fn task_status(ctrd: &Containerd, id: &str) -> String {
    let list = ctrd.ctr_ok(&["tasks", "ls"]);
    list.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
        .next()
        .unwrap_or_default()
}

pub(crate) fn kill_and_wait_stopped(ctrd: &Containerd, id: &str) {
    // sleep is pid 1 in its namespace and ignores SIGTERM (no handler): SIGKILL it.
    ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id]);
    let stopped = wait_until(Duration::from_secs(10), || task_status(ctrd, id) == "STOPPED");
    assert!(
        stopped,
        "task not STOPPED after SIGKILL: {}\n{}",
        ctrd.ctr_ok(&["tasks", "ls"]),
        ctrd.log_tail(40)
    );
}

/// A module `$module` with one #[test] per scenario, each run with `$via`:
/// test names read `<module>::<scenario>`.
#[macro_export]
macro_rules! scenario_tests {
    ($module:ident, $via:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            fn via() -> $crate::scenarios::Via {
                $via
            }

            #[test]
            fn echo_prints_output() {
                $crate::scenarios::echo_prints_output(&via());
            }

            #[test]
            fn exit_status_reaches_ctr() {
                $crate::scenarios::exit_status_reaches_ctr(&via());
            }

            #[test]
            fn detached_task_is_killed_and_deleted() {
                $crate::scenarios::detached_task_is_killed_and_deleted(&via());
            }

            #[test]
            fn exec_runs_in_running_task() {
                $crate::scenarios::exec_runs_in_running_task(&via());
            }

            #[test]
            fn pause_and_resume() {
                $crate::scenarios::pause_and_resume(&via());
            }

            #[test]
            fn stdin_reaches_process() {
                $crate::scenarios::stdin_reaches_process(&via());
            }

            #[test]
            fn large_output_is_complete() {
                $crate::scenarios::large_output_is_complete(&via());
            }

            #[test]
            fn env_and_cwd_are_set() {
                $crate::scenarios::env_and_cwd_are_set(&via());
            }

            #[test]
            fn tty_is_a_terminal() {
                $crate::scenarios::tty_is_a_terminal(&via());
            }

            #[test]
            fn read_only_rootfs_refuses_writes() {
                $crate::scenarios::read_only_rootfs_refuses_writes(&via());
            }

            #[test]
            fn bind_mount_is_shared_with_host() {
                $crate::scenarios::bind_mount_is_shared_with_host(&via());
            }

            #[test]
            fn sigpipe_is_not_ignored() {
                $crate::scenarios::sigpipe_is_not_ignored(&via());
            }

            #[test]
            fn memory_limit_is_applied() {
                $crate::scenarios::memory_limit_is_applied(&via());
            }
        }
    };
}

/// The Go shim parity scenarios (issue 11), each run with `$via`; go_shim_interop.rs runs them
/// on the Go shim with runc as the control.
#[macro_export]
macro_rules! parity_tests {
    ($module:ident, $via:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            fn via() -> $crate::scenarios::Via {
                $via
            }

            #[test]
            fn no_pivot_option_is_honoured() {
                $crate::scenarios::no_pivot_option_is_honoured(&via());
            }

            #[test]
            fn shim_oom_score_is_one_above_containerd() {
                $crate::scenarios::shim_oom_score_is_one_above_containerd(&via());
            }

            #[test]
            fn host_pid_init_exit_kills_the_rest() {
                $crate::scenarios::host_pid_init_exit_kills_the_rest(&via());
            }

            #[test]
            fn killed_client_and_shim_leave_nothing() {
                $crate::scenarios::killed_client_and_shim_leave_nothing(&via());
            }

            #[test]
            fn slow_create_does_not_stall_the_pod() {
                $crate::scenarios::slow_create_does_not_stall_the_pod(&via());
            }

            #[test]
            fn client_killed_during_create_leaves_nothing() {
                $crate::scenarios::client_killed_during_create_leaves_nothing(&via());
            }

            #[test]
            fn half_made_exec_leaves_nothing() {
                $crate::scenarios::half_made_exec_leaves_nothing(&via());
            }
        }
    };
}
