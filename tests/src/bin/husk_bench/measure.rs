//! Timing one command precisely: the clock runs from just before spawn until the kernel
//! reports the exit through a pidfd, so no polling interval is added to any figure.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One measurement, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall_ms: f64,
    /// User + system time of the command and of the children it waited for (wait4's
    /// rusage): on a loaded machine this is steadier than wall time, which includes
    /// waiting for a CPU.
    pub cpu_ms: f64,
}

/// Why a measurement could not be taken; shown as "n/a: <reason>" in the tables.
#[derive(Debug, Clone)]
pub enum NotAvailable {
    /// A binary the contender needs is not there.
    Missing { path: PathBuf },
    /// The command could not be started at all.
    Spawn { what: String, errno: String },
    /// The command ran and failed; the first line of its stderr says why.
    Failed {
        what: String,
        status: String,
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    Timeout { what: String, secs: u64 },
    /// A step the benchmark relies on did not hold (e.g. no shim process found).
    Unexpected { what: String },
}

impl fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAvailable::Missing { path } => write!(f, "{} not found", path.display()),
            NotAvailable::Spawn { what, errno } => write!(f, "failed to spawn {what}: {errno}"),
            NotAvailable::Failed { what, status, stderr } => write!(f, "{what} failed ({status}): {stderr}"),
            NotAvailable::Timeout { what, secs } => write!(f, "{what} timed out after {secs}s"),
            NotAvailable::Unexpected { what } => write!(f, "{what}"),
        }
    }
}

/// Runs commands with stdout to /dev/null and stderr to a scratch file (a pipe would keep
/// a detached container's fd open and make us wait for an EOF that never comes).
#[derive(Debug, Clone)]
pub struct Timer {
    stderr_path: PathBuf,
    timeout: Duration,
}

impl Timer {
    pub fn new(stderr_path: PathBuf, timeout: Duration) -> Timer {
        Timer { stderr_path, timeout }
    }

    /// Wall time of `cmd` from spawn to exit, and the CPU time it and the children it
    /// waited for used; an error unless it exits 0.
    pub fn time(&self, cmd: &mut Command) -> Result<Sample, NotAvailable> {
        let what = describe(cmd);
        let stderr = File::create(&self.stderr_path).map_err(|e| NotAvailable::Spawn {
            what: format!("{what} (stderr file {})", self.stderr_path.display()),
            errno: e.to_string(),
        })?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| NotAvailable::Spawn {
            what: what.clone(),
            errno: e.to_string(),
        })?;
        let exited = wait_exit(&child, self.timeout);
        let elapsed = start.elapsed();
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NotAvailable::Timeout {
                what,
                secs: self.timeout.as_secs(),
            });
        }
        let (status, cpu) = reap_with_usage(&child).map_err(|e| NotAvailable::Spawn {
            what: what.clone(),
            errno: e.to_string(),
        })?;
        if status == 0 {
            return Ok(Sample {
                wall_ms: elapsed.as_secs_f64() * 1e3,
                cpu_ms: cpu.as_secs_f64() * 1e3,
            });
        }
        Err(NotAvailable::Failed {
            what,
            status: format!("wait status {status:#x}"),
            stderr: first_line(&self.stderr_path),
        })
    }

    /// Like [`Timer::time`], for set-up steps whose time does not matter.
    pub fn run(&self, cmd: &mut Command) -> Result<(), NotAvailable> {
        self.time(cmd).map(|_| ())
    }
}

/// Reap the exited child with wait4 for its rusage; (raw wait status, user + system time).
/// std's `Child::wait` would reap it too but throws the rusage away.
fn reap_with_usage(child: &Child) -> std::io::Result<(i32, Duration)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: status and ru are valid out-pointers for this call.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((status, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

/// Block until the child exits (true) or the timeout passes (false), using a pidfd.
fn wait_exit(child: &Child, timeout: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd < 0 {
        return wait_exit_polling(child, timeout);
    }
    // SAFETY: fd is a fresh pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return true;
        }
        if n == 0 || left.is_zero() {
            return false;
        }
        // EINTR: poll again with what is left.
    }
}

/// Without pidfds (kernel < 5.3) the best we can do is poll.
fn wait_exit_polling(child: &Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if is_zombie(child.id() as i32) {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

/// The program and its arguments, shortened for a table cell.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()];
    parts.extend(cmd.get_args().take(3).map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn first_line(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(4096).read_to_string(&mut text);
    }
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("(no stderr)");
    line.chars().take(160).collect()
}

/// Become the child subreaper: container inits and daemonised shims whose parents exit are
/// re-parented to us, so we can wait for them and reap them instead of leaving zombies.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
}

/// Reap every exited orphan. Only call while no thread has a `Command` running: this
/// could otherwise take the exit status that thread is waiting for.
pub fn reap_orphans() {
    loop {
        // SAFETY: waitpid with a null status pointer is allowed.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// Wait until `pid` has exited: reap it if it is our (re-parented) child, else poll /proc.
pub fn wait_pid_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        // SAFETY: waitpid with a null status pointer is allowed.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid {
            return true;
        }
        if r < 0 && !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        if r < 0 && is_zombie(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    false
}

/// Exited but not yet reaped (state Z in /proc/<pid>/stat; the comm before it may hold ')').
fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'))
}

/// The 1-minute load average now (0 if /proc/loadavg cannot be read).
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg prints them.
pub fn load_line() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// User + system time this thread has used so far (for work the harness does itself, such
/// as the floor's cgroup mkdir and rmdir).
pub fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Where crun 1.8 sees cgroup2 on a hybrid host and then refuses to run.
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// True while the cgroup2 mount of a hybrid host is visible to this process.
pub fn unified_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(UNIFIED))
}

/// The fair field: move the whole harness (and so every runtime, containerd and shim it
/// starts) into one private mount namespace without the hybrid host's cgroup2 mount, so
/// crun runs without a wrapper and husk, runc and crun all see the same v1 layout.
/// Must run while the process is single-threaded. Returns what was done, for the header.
pub fn enter_fair_field() -> Result<String, String> {
    if !unified_mounted() {
        return Ok(format!(
            "{UNIFIED} not mounted: runtimes run in the host mount namespace"
        ));
    }
    let errno = || std::io::Error::last_os_error().to_string();
    // SAFETY: unshare takes flags only; the process has one thread here.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!("failed to unshare the mount namespace: {}", errno()));
    }
    let root = c"/";
    // SAFETY: the strings are valid C strings; a null source/type/data is allowed here.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!("failed to make / private: {}", errno()));
    }
    let unified = c"/sys/fs/cgroup/unified";
    // SAFETY: a valid C string path.
    if unsafe { libc::umount2(unified.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(format!("failed to unmount {UNIFIED}: {}", errno()));
    }
    Ok(format!(
        "one private mount namespace for the whole run, {UNIFIED} unmounted in it: husk, runc and crun \
         (and containerd, its shims) all see the same cgroup v1 layout; no wrapper, no subtraction"
    ))
}
