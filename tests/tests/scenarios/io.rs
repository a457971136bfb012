//! What goes in and out of a task: stdin, large stdout, env and cwd, a terminal.

use std::process::Command;
use std::time::Duration;

use husk_e2e::{output_text, run_with_timeout, unique_id, BUSYBOX_REF};

use super::{assert_clean, containerd_with_busybox, delete_and_check, run_ok, Via};

/// Through an exec: `ctr tasks exec` closes the process's stdin (CloseIO) at EOF, while
/// ctr 1.6's `run` never does, so a reader in `ctr run` would wait forever.
pub fn stdin_reaches_process(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("stdin");
    run_ok(&ctrd, via, &["-d"], &id, &["sleep", "1000"]);
    let args = ["tasks", "exec", "--exec-id", "in", &id, "sh", "-c", "wc -c; echo done"];
    let out = ctrd.ctr_with_input(&args, &[b'x'; 70_000]);
    assert!(
        out.status.success(),
        "ctr tasks exec: {}\n{}",
        output_text(&out),
        ctrd.log_tail(40)
    );
    // More than a pipe buffer, and EOF must arrive for wc to finish.
    let words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(words, ["70000", "done"]);
    delete_and_check(&ctrd, &id, &["--force"]);
}

/// The task exits right after writing 4 MiB, so most of it is still in the shim's pipe when
/// the exit is reported.
///
/// Where the result may differ, and why: the husk shim copies every byte before it answers
/// Delete, so its output must be complete. containerd's Go shim waits at most 2 s for its
/// copy (`waitTimeout(ctx, &p.wg, 2*time.Second)` in `process/init.go`) and then closes the
/// fifo; on a loaded CI machine that cut the control's output short (4,067,328 of 4,194,304
/// bytes). For the Go shim, whichever runtime it drives, the output must still be an
/// uncorrupted prefix of the stream, and a cut is reported.
pub fn large_output_is_complete(via: &Via) {
    const TOTAL: usize = 4 << 20;
    let ctrd = containerd_with_busybox();
    let id = unique_id("big");
    let out = run_ok(
        &ctrd,
        via,
        &["--rm"],
        &id,
        &["sh", "-c", "yes 0123456789abcdef | head -c 4194304"],
    );
    let expected = "0123456789abcdef\n".repeat(TOTAL / 17 + 1);
    assert!(out.len() > 17, "no output at all");
    assert!(
        expected.as_bytes().starts_with(out.as_bytes()),
        "stdout is not a prefix of the stream"
    );
    match via {
        Via::HuskShim => assert_eq!(out.len(), TOTAL, "stdout truncated"),
        Via::GoShim(_) if out.len() < TOTAL => {
            eprintln!(
                "Go shim cut stdout at {} of {TOTAL} bytes (its 2 s copy wait)",
                out.len()
            )
        }
        Via::GoShim(_) => assert_eq!(out.len(), TOTAL),
    }
    assert_clean(&ctrd, &id);
}

pub fn env_and_cwd_are_set(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("env");
    let out = run_ok(
        &ctrd,
        via,
        &["--rm", "--env", "HUSK_E2E=yes", "--cwd", "/tmp"],
        &id,
        &["sh", "-c", "echo $HUSK_E2E $(pwd) $PATH"],
    );
    assert_eq!(
        out,
        "yes /tmp /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    assert_clean(&ctrd, &id);
}

/// `ctr run -t` needs a terminal of its own: run it under script(1), which gives it a pty.
pub fn tty_is_a_terminal(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("tty");
    let runtime = via.runtime_args();
    let mut args = vec!["run"];
    args.extend(runtime.iter().map(String::as_str));
    args.extend([
        "-t",
        "--rm",
        BUSYBOX_REF,
        &id,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty-ok $(tty)",
    ]);
    let ctr = ctrd.ctr_command(&args);
    let line = std::iter::once(ctr.get_program())
        .chain(ctr.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("CONTAINERD_NAMESPACE", ctrd.namespace());
    let out = run_with_timeout(&mut script, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctr run -t: {}\n{}",
        output_text(&out),
        ctrd.log_tail(40)
    );
    assert!(text.contains("tty-ok /dev/pts/0"), "no terminal in the task: {text:?}");
    assert_clean(&ctrd, &id);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The task starts with default signal dispositions: Rust programs (husk, its shim) ignore
/// SIGPIPE, and an ignored signal survives exec, so a runtime that does not reset it gives
/// the container a `yes | head` that never ends.
pub fn sigpipe_is_not_ignored(via: &Via) {
    let ctrd = containerd_with_busybox();
    let id = unique_id("sig");
    let status = run_ok(&ctrd, via, &["--rm"], &id, &["cat", "/proc/self/status"]);
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn in /proc/self/status: {status}"));
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(
        ignored & sigpipe,
        0,
        "SIGPIPE is ignored in the task (SigIgn {ignored:#x})"
    );
    assert_clean(&ctrd, &id);
}
