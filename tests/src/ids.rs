//! Ids that do not collide between tests, test processes and runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<prefix>-<pid>-<counter>-<4 hex>`: unique within this process by the counter, across
/// concurrent processes by the pid, and across runs (pid reuse) by the random part.
/// Short, because ids end up in unix socket paths (108 bytes) and cgroup names.
pub fn unique_id(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{:04x}", std::process::id(), random_u16())
}

pub(crate) fn random_u16() -> u16 {
    let mut buf = [0u8; 2];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if got == 2 {
        return u16::from_ne_bytes(buf);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}
