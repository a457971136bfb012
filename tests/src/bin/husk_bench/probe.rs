//! Machine facts that change every runtime's figures, measured before the benchmarks, and
//! the floor every runtime's `run` stands on.
//!
//! Moving a process into a cgroup takes the global `cgroup_threadgroup_rwsem` for writing,
//! which waits for an RCU grace period: 7–18 ms on this 2-CPU VM under load, paid by every
//! `create` (husk, runc and crun alike). While a hierarchy mounted with `favordynmods`
//! exists (or while other writers keep the rwsem in its writer mode) the same write takes
//! ~0.15 ms, so figures taken in the two states cannot be compared.

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{thread_cpu, NotAvailable, Sample, Timer};

/// The first cgroup hierarchy with a writable cgroup.procs (v1 cpu, memory, or v2 root).
fn hierarchy() -> Option<PathBuf> {
    ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").is_file())
}

/// One attach of a fresh `sleep` into `dir`, in milliseconds.
fn attach_once(dir: &Path) -> Option<f64> {
    let mut child = Command::new("sleep").arg("10").stdin(Stdio::null()).spawn().ok()?;
    let pid = child.id().to_string();
    let start = Instant::now();
    let ok = std::fs::write(dir.join("cgroup.procs"), pid).is_ok();
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    ok.then_some(elapsed.as_secs_f64() * 1e3)
}

/// (min, median, max) time of moving a new process into a cgroup over 5 tries, 200 ms
/// apart so the rwsem's grace-period state can lapse in between; None if no hierarchy is
/// writable. Other processes moving tasks at the same moment make single tries vary.
pub fn cgroup_attach_ms() -> Option<(f64, f64, f64)> {
    let dir = hierarchy()?.join(format!("husk-bench-probe-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        samples.extend(attach_once(&dir));
    }
    let _ = std::fs::remove_dir(&dir);
    let median = crate::report::percentile(&samples, 50.0)?;
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(0.0, f64::max);
    Some((min, median, max))
}

/// The floor with a cgroup: what every runtime's `run` must do at the least — one cgroup
/// mkdir, `unshare -fpmuin true` (the namespaces of runc's default spec; forked, so the
/// pid namespace gets its init) attached to that cgroup before it execs (the write a
/// runtime does for its container's init), and the rmdir after it exited. Wall time covers
/// all of it; CPU time is the command's plus this thread's mkdir and rmdir.
pub fn floor_with_cgroup(timer: &Timer, round: usize) -> Result<Sample, NotAvailable> {
    let failed = |what: String, e: std::io::Error| NotAvailable::Spawn {
        what,
        errno: e.to_string(),
    };
    let base = hierarchy().ok_or_else(|| NotAvailable::Unexpected {
        what: "no writable cgroup hierarchy for the floor".into(),
    })?;
    let dir = base.join(format!("husk-bench-floor-{}-{round}", std::process::id()));
    let procs =
        CString::new(dir.join("cgroup.procs").into_os_string().into_vec()).map_err(|_| NotAvailable::Unexpected {
            what: format!("NUL in {}", dir.display()),
        })?;
    let mut cmd = Command::new("unshare");
    cmd.arg("-fpmuin").arg("true");
    // SAFETY: the closure only calls open, write and close (async-signal-safe) on memory
    // that was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let cpu_before = thread_cpu();
    let start = Instant::now();
    std::fs::create_dir(&dir).map_err(|e| failed(format!("mkdir {}", dir.display()), e))?;
    let ran = timer.time(&mut cmd);
    let removed = std::fs::remove_dir(&dir);
    let wall = start.elapsed();
    let own_cpu = thread_cpu().saturating_sub(cpu_before);
    let sample = ran?;
    removed.map_err(|e| failed(format!("rmdir {}", dir.display()), e))?;
    Ok(Sample {
        wall_ms: wall.as_secs_f64() * 1e3,
        cpu_ms: sample.cpu_ms + own_cpu.as_secs_f64() * 1e3,
    })
}
