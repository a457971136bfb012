//! Running commands with a time limit, so a hung runtime fails a test instead of hanging it.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Run `cmd` with stdin from /dev/null and stdout/stderr captured; SIGKILL it after
/// `timeout`. A killed command's output ends with a "timed out" line on stderr. Output a
/// daemonised grandchild keeps writing is collected for at most a second after the exit.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_input(cmd, None, timeout)
}

/// [`run_with_timeout`] with `input` written to the command's stdin (then closed), or
/// stdin from /dev/null when `input` is None.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {cmd:?}: {e}"));
    // Fed from a thread: a child that does not read stdin must not block us on a full pipe.
    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), input) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (out_buf, out_thread) = drain(child.stdout.take());
    let (err_buf, err_thread) = drain(child.stderr.take());
    let (status, timed_out) = wait_deadline(&mut child, timeout);
    let deadline = Instant::now() + Duration::from_secs(1);
    for t in [out_thread, err_thread] {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
    let stdout = std::mem::take(&mut *out_buf.lock().unwrap_or_else(|p| p.into_inner()));
    let mut stderr = std::mem::take(&mut *err_buf.lock().unwrap_or_else(|p| p.into_inner()));
    if timed_out {
        stderr.extend_from_slice(format!("\nhusk-e2e: timed out after {timeout:?}, killed\n").as_bytes());
    }
    Output { status, stdout, stderr }
}

fn wait_deadline(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let status = child.wait().unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
                return (status, true);
            }
            Err(e) => panic!("failed to wait for child {}: {e}", child.id()),
        }
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

fn drain(pipe: Option<impl Read + Send + 'static>) -> (Buffer, JoinHandle<()>) {
    let buf: Buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let handle = std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&chunk[..n]);
        }
    });
    (buf, handle)
}

/// "status; stdout; stderr" of an output, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
