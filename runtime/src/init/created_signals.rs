//! Signals to a created container, whose init waits for `husk start`. runc's init is a Go
//! program there, and Go's runtime dies on SIGHUP, SIGINT and SIGTERM (and crashes on SIGQUIT
//! and SIGABRT): `kill <created> TERM` stops the container, so `docker stop` or containerd's
//! kill of a task never started does not wait for its SIGKILL timeout. husk's init, pid 1 of
//! its namespace with no handler, never received them. These handlers die as Go's
//! dieFromSignal does: the default action re-raised, which kills outside a new pid namespace
//! and is ignored by its pid 1, then exit status 2. execve resets caught signals to default,
//! and husk resets every signal before it anyway.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

const FATAL_TO_GO: [Signal; 5] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
    Signal::SIGABRT,
];

/// Install the handlers. As in Go, SIGHUP and SIGINT stay ignored when the caller ignored them.
pub fn die_like_go_on_fatal_signals() {
    let action = SigAction::new(SigHandler::Handler(die_like_go), SaFlags::SA_NODEFER, SigSet::empty());
    for signal in FATAL_TO_GO {
        // SAFETY: the handler calls only async-signal-safe functions.
        let Ok(old) = (unsafe { sigaction(signal, &action) }) else {
            continue;
        };
        let keep_ignored =
            matches!(signal, Signal::SIGHUP | Signal::SIGINT) && matches!(old.handler(), SigHandler::SigIgn);
        if keep_ignored {
            // SAFETY: restoring the disposition sigaction just returned.
            let _ = unsafe { sigaction(signal, &old) };
        }
    }
}

extern "C" fn die_like_go(signo: libc::c_int) {
    // SAFETY: signal, raise and _exit are async-signal-safe; SA_NODEFER leaves signo unblocked.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        libc::raise(signo);
        libc::_exit(2);
    }
}
