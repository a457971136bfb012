//! Machine facts that change every runtime's figures, measured before the benchmarks.
//!
//! Moving a process into a cgroup takes the global `cgroup_threadgroup_rwsem` for writing,
//! which waits for an RCU grace period: 7–18 ms on this 2-CPU VM under load, paid by every
//! `create` (husk, runc and crun alike). While a hierarchy mounted with `favordynmods`
//! exists (or while other writers keep the rwsem in its writer mode) the same write takes
//! ~0.15 ms, so figures taken in the two states cannot be compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
