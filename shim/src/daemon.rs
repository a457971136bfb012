//! The long-lived shim process (no action on the command line). The containerd-shim crate's
//! own daemon serves only `containerd.task.v3.Task`, but containerd 1.6 calls
//! `containerd.task.v2.Task` (same messages, older package name), so the daemon is ours: one
//! thread serves both names (server.rs) and does reaping, exit routing and OOM watching; the
//! RPCs that run the runtime, and exit handling, run on short-lived worker threads.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

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
    let (exited, finished) = (Arc::clone(&main_loop), Arc::clone(&main_loop));
    let hooks = DaemonHooks {
        shutdown: Box::new(move || quit.quit()),
        watch_oom: Box::new(move |eventfd, watch| oom.add_oom(eventfd, watch)),
        exit_handled: Box::new(move || exited.wake()),
    };
    let service = Service::new(&flags.namespace, events.clone(), hooks);
    let wake = Box::new(move || finished.wake());
    let mut server = Server::new(listener, Arc::clone(&service), wake).map_err(|e| format!("failed to listen: {e}"))?;
    server_started();
    main_loop.run(loop_fds, &mut server, || reap(&service));
    let _ = std::fs::remove_file(socket_path(&flags.socket));
    // As containerd's shim does: the events of the last calls (TaskDelete) still go out.
    if !events.flush(PUBLISH_ON_EXIT) {
        log::warn!("events still unpublished after {PUBLISH_ON_EXIT:?}; exiting anyway");
    }
    Ok(())
}

/// How long the daemon waits at exit for its events to be published (containerd's shim: 5 s).
const PUBLISH_ON_EXIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `shim start` waits for EOF on our stdout: point it at stderr once the socket is served.
fn server_started() {
    // SAFETY: dup2 on the process's own standard fds.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

fn reap_once() -> Option<(i32, i32)> {
    loop {
        return match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => Some((pid.as_raw(), code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => Some((pid.as_raw(), 128 + sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => None,
            Ok(_) | Err(_) => continue,
        };
    }
}

/// Reaps every exited child. Runtime commands (and the crate's rootfs mount) run on worker
/// threads that subscribed to the crate's exit monitor before they forked: notify it first.
/// Container processes go to the service, which handles them off this thread.
fn reap(service: &Arc<Service>) {
    while let Some((pid, status)) = reap_once() {
        let _ = monitor_notify_by_pid(pid, status);
        service.on_exit(pid, status);
    }
}
