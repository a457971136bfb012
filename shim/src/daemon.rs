//! The long-lived shim process (no action on the command line). The containerd-shim crate's
//! own daemon serves only `containerd.task.v3.Task`, but containerd 1.6 calls
//! `containerd.task.v2.Task` (same messages, older package name), so the daemon is ours: one
//! thread serves both names (server.rs) and does reaping, exit routing and OOM watching.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::monitor::monitor_notify_by_pid;
use containerd_shim::util::write_address;
use containerd_shim::Flags;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::events::start_publisher;
use crate::mainloop::MainLoop;
use crate::server::Server;
use crate::service::{DaemonHooks, Service};

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// Binds the shim socket; None when a live shim already serves it (grouped containers).
fn bind(address: &str) -> std::io::Result<Option<UnixListener>> {
    let path = socket_path(address);
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    match UnixListener::bind(path) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path).map(Some)
        }
        Err(e) => Err(e),
    }
}

pub fn run(flags: Flags) -> Result<(), String> {
    // One malloc arena: glibc would give each thread (stdio pumps, the publisher) its own,
    // 64 MiB reserved and a few hundred KiB touched apiece, for allocations this small.
    // SAFETY: mallopt with integer arguments, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "failed to become subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (main_loop, loop_fds) = MainLoop::new().map_err(|e| format!("failed to set up signals: {e}"))?;
    crate::logger::init(flags.debug);
    let Some(listener) = bind(&flags.socket).map_err(|e| format!("failed to bind {}: {e}", flags.socket))? else {
        write_address(&flags.socket).map_err(|e| e.to_string())?;
        server_started();
        return Ok(());
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").map_err(|_| "TTRPC_ADDRESS is not set".to_string())?;
    let events = start_publisher(ttrpc_address, flags.namespace.clone());
    // Shutdown ends the loop below, which runs on this (the main) thread.
    let (quit, oom) = (Arc::clone(&main_loop), Arc::clone(&main_loop));
    let hooks = DaemonHooks {
        shutdown: Box::new(move || quit.quit()),
        watch_oom: Box::new(move |eventfd, watch| oom.add_oom(eventfd, watch)),
    };
    let service = Service::new(&flags.namespace, events, hooks);
    let mut server = Server::new(listener, Arc::clone(&service)).map_err(|e| format!("failed to listen: {e}"))?;
    // Runtime commands run on this thread, which is also the only reaper: they wait for
    // their own pid directly.
    crate::runtime::wait_directly();
    server_started();
    main_loop.run(loop_fds, &mut server, || reap(&service));
    let _ = std::fs::remove_file(socket_path(&flags.socket));
    Ok(())
}

/// `shim start` waits for EOF on our stdout: point it at stderr once the socket is served.
fn server_started() {
    // SAFETY: dup2 on the process's own standard fds.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

/// Exits reaped by `with_crate_monitor` for the service; `reap` hands them over (their SIGCHLD
/// bytes are still in the signal pipe, so the loop calls it next).
static STASHED: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());

fn reap_once(flags: WaitPidFlag) -> Option<(i32, i32)> {
    loop {
        return match waitpid(None, Some(flags)) {
            Ok(WaitStatus::Exited(pid, code)) => Some((pid.as_raw(), code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => Some((pid.as_raw(), 128 + sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => None,
            Ok(_) | Err(_) => continue,
        };
    }
}

/// Runs `f`, which waits for a child through the containerd-shim crate's exit monitor (its
/// `mount_rootfs` forks), on a short-lived thread while this thread — the daemon's only
/// reaper — reaps and notifies the monitor. Outside the daemon the crate's thread reaps.
pub fn with_crate_monitor<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if !crate::runtime::waits_directly() {
        return f();
    }
    std::thread::scope(|scope| {
        let helper = scope.spawn(f);
        while !helper.is_finished() {
            match reap_once(WaitPidFlag::WNOHANG) {
                Some((pid, status)) => {
                    let _ = monitor_notify_by_pid(pid, status);
                    STASHED.lock().unwrap_or_else(|e| e.into_inner()).push((pid, status));
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        match helper.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Reaps every exited child (runtime commands reap their own on this same thread): container
/// processes go to the service.
fn reap(service: &Service) {
    let stashed = std::mem::take(&mut *STASHED.lock().unwrap_or_else(|e| e.into_inner()));
    for (pid, status) in stashed {
        service.on_exit(pid, status);
    }
    while let Some((pid, status)) = reap_once(WaitPidFlag::WNOHANG) {
        service.on_exit(pid, status);
    }
}
