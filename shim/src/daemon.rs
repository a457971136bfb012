//! The long-lived shim process (no action on the command line). The containerd-shim crate's
//! own daemon serves only `containerd.task.v3.Task`, but containerd 1.6 calls
//! `containerd.task.v2.Task` (same messages, older package name), so the daemon is ours: it
//! serves both names from one service, with as few threads as ttrpc allows, and folds reaping,
//! exit routing and OOM watching into its main thread.

use std::collections::HashMap;
use std::os::fd::IntoRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use containerd_shim::monitor::monitor_notify_by_pid;
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::{MethodHandler, Server};
use containerd_shim::util::write_address;
use containerd_shim::{Flags, Task};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::events::start_publisher;
use crate::mainloop::MainLoop;
use crate::service::{DaemonHooks, Service, TaskService};

type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// Both the v3 method names the crate generates and containerd 1.6's v2 names.
fn task_methods(task: Arc<dyn Task + Send + Sync>) -> Methods {
    let mut methods = create_task(Arc::clone(&task));
    let v2 = create_task(task).into_iter().map(|(name, handler)| {
        (
            name.replace("containerd.task.v3.", "containerd.task.v2."),
            handler,
        )
    });
    methods.extend(v2);
    methods
}

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
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "failed to become subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (main_loop, loop_fds) =
        MainLoop::new().map_err(|e| format!("failed to set up signals: {e}"))?;
    crate::logger::init(flags.debug);
    let Some(listener) =
        bind(&flags.socket).map_err(|e| format!("failed to bind {}: {e}", flags.socket))?
    else {
        write_address(&flags.socket).map_err(|e| e.to_string())?;
        server_started();
        return Ok(());
    };
    let ttrpc_address =
        std::env::var("TTRPC_ADDRESS").map_err(|_| "TTRPC_ADDRESS is not set".to_string())?;
    let events = start_publisher(ttrpc_address, flags.namespace.clone());
    // Shutdown ends the loop below, which runs on this (the main) thread.
    let (quit, oom) = (Arc::clone(&main_loop), Arc::clone(&main_loop));
    let hooks = DaemonHooks {
        shutdown: Box::new(move || quit.quit()),
        watch_oom: Box::new(move |eventfd, watch| oom.add_oom(eventfd, watch)),
    };
    let service = Service::new(&flags.namespace, events, hooks);
    let methods = task_methods(Arc::new(TaskService(Arc::clone(&service))));
    let mut server = Server::new()
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        .set_thread_count_max(3)
        .add_listener(listener.into_raw_fd())
        .map_err(|e| format!("failed to listen: {e}"))?
        .register_service(methods);
    server
        .start()
        .map_err(|e| format!("failed to start ttrpc server: {e}"))?;
    server_started();
    main_loop.run(loop_fds, || reap(&service));
    server.shutdown();
    let _ = std::fs::remove_file(socket_path(&flags.socket));
    Ok(())
}

/// `shim start` waits for EOF on our stdout: point it at stderr once the socket is served.
fn server_started() {
    // SAFETY: dup2 on the process's own standard fds.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

/// Reaps every exited child: runtime commands wake their waiter through the crate's monitor,
/// container processes go to the service.
fn reap(service: &Service) {
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
            Ok(_) | Err(_) => continue,
        };
        let _ = monitor_notify_by_pid(pid, status);
        service.on_exit(pid, status);
    }
}
