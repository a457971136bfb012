//! The daemon's main thread: one poll(2) over the signal pipe (SIGCHLD and the signals the shim
//! ignores), a wake pipe, the ttrpc listener and connections (server.rs), and every container's
//! OOM eventfd — so reaping, the Task API and OOM watching cost no thread of their own.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;
use signal_hook::consts::{SIGCHLD, SIGINT, SIGPIPE, SIGTERM};

use crate::oom::OomWatch;
use crate::server::Server;

struct State {
    oom: Vec<(Arc<File>, Arc<OomWatch>)>,
    quit: bool,
}

pub struct MainLoop {
    state: Mutex<State>,
    wake: File,
}

/// The read ends the loop polls; kept apart so `MainLoop` can be shared while `run` owns them.
pub struct LoopFds {
    signals: File,
    wake: File,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(std::io::Error::from)
}

impl MainLoop {
    pub fn new() -> std::io::Result<(Arc<MainLoop>, LoopFds)> {
        let (sig_r, sig_w) = pipe()?;
        for signal in [SIGCHLD, SIGTERM, SIGINT, SIGPIPE] {
            signal_hook::low_level::pipe::register(signal, sig_w.try_clone()?)?;
        }
        let (wake_r, wake_w) = pipe()?;
        let state = Mutex::new(State {
            oom: Vec::new(),
            quit: false,
        });
        let main = Arc::new(MainLoop {
            state,
            wake: File::from(wake_w),
        });
        Ok((
            main,
            LoopFds {
                signals: File::from(sig_r),
                wake: File::from(wake_r),
            },
        ))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the loop run a turn: a worker's reply or a handled exit is waiting.
    pub fn wake(&self) {
        let _ = (&self.wake).write(b"x");
    }

    pub fn add_oom(&self, eventfd: File, watch: Arc<OomWatch>) {
        self.lock().oom.push((Arc::new(eventfd), watch));
        self.wake();
    }

    pub fn quit(&self) {
        self.lock().quit = true;
        self.wake();
    }

    /// Runs until `quit`; `on_sigchld` reaps.
    pub fn run(&self, fds: LoopFds, server: &mut Server, on_sigchld: impl Fn()) {
        let mut sink = [0u8; 64];
        loop {
            let oom = {
                let state = self.lock();
                if state.quit {
                    return;
                }
                state.oom.clone()
            };
            let mut polled = vec![
                PollFd::new(fds.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(fds.wake.as_fd(), PollFlags::POLLIN),
            ];
            let served = server.poll_fds();
            let n_served = served.len();
            polled.extend(served.into_iter().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
            polled.extend(oom.iter().map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut polled, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(err) => {
                    log::error!("main loop poll failed: {err}");
                    return;
                }
            }
            let ready: Vec<bool> = polled
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(polled);
            if ready[1] {
                while (&fds.wake).read(&mut sink).is_ok_and(|n| n > 0) {}
            }
            if ready[0] {
                while (&fds.signals).read(&mut sink).is_ok_and(|n| n > 0) {}
                on_sigchld();
            }
            server.on_ready(&ready[2..2 + n_served]);
            // Replies from worker threads (their wake byte was drained above).
            server.collect_finished();
            let oom_ready = &ready[2 + n_served..];
            for ((eventfd, watch), _) in oom.iter().zip(oom_ready).filter(|(_, r)| **r) {
                // An eventfd (v1) reads 8 bytes, its notification count; an inotify fd (v2)
                // needs room for its events.
                let mut buf = [0u8; 256];
                let n = (&**eventfd).read(&mut buf).unwrap_or(0);
                let signals = match buf[..8].try_into() {
                    Ok(count) if n == 8 => u64::from_ne_bytes(count),
                    _ => 0,
                };
                // The last notification comes when the cgroup goes away: stop watching it.
                if watch.gone() {
                    self.lock().oom.retain(|(fd, _)| !Arc::ptr_eq(fd, eventfd));
                    watch.removed(signals);
                } else {
                    watch.signalled();
                }
            }
            server.answer_waits();
        }
    }
}
