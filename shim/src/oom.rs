//! OOM events. cgroup v1: an eventfd registered on memory.oom_control via cgroup.event_control;
//! the kernel signals it on every OOM and once more when the cgroup is removed. cgroup v2 (a host
//! whose memory controller is in the unified tree): an inotify watch on memory.events, which the
//! kernel modifies on every event (containerd's cgroup2 manager watches it the same way), and
//! which reports IN_IGNORED when the cgroup is removed. Either fd is polled by the main loop and
//! `check` compares the `oom_kill` count (both files spell it `oom_kill N`).
//!
//! Under systemd the kill and the cgroup's removal race: when the OOM killer takes a scope's
//! last process, systemd removes the scope's cgroup at once, and a shim that reads the count
//! after that reads nothing. So an OOM is also remembered as `notified` when it shows before its
//! kill is counted (v1: an eventfd read; v2: memory.events' `oom` count, raised before the
//! kill, whose own notification the kernel may defer by 10 ms), and reported when the cgroup
//! goes away.

use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics::TASK_OOM_EVENT_TOPIC;

use crate::error::{Error, Result};
use crate::events::EventSender;
use crate::stats::parse_proc_cgroup;

/// Counts the OOM kills already reported, shared by the eventfd thread and the exit path.
pub struct OomWatch {
    id: String,
    control_path: PathBuf,
    reported: Arc<AtomicU64>,
    events: EventSender,
    /// v1 (an eventfd on memory.oom_control), whose reads count notifications.
    v1: bool,
    /// An OOM showed that `oom_kill` did not count yet (the kernel notifies before it kills), so
    /// it is still to be reported.
    notified: AtomicBool,
    /// v2: memory.events' `oom` count last seen (allocations that failed at the limit and
    /// called the OOM killer).
    ooms_seen: AtomicU64,
}

impl OomWatch {
    /// The cgroup was removed (its eventfd fires one last time then).
    pub fn gone(&self) -> bool {
        !self.control_path.exists()
    }

    /// Publishes TaskOOM once per new `oom_kill` count. The exit path calls it too, before
    /// TaskExit: the v1 notification is skipped when another task holds the memcg's OOM lock,
    /// and CRI needs the OOM event before the exit to say "OOMKilled".
    pub fn check(&self) -> bool {
        if self.gone() {
            // Removed before its count could be read: an OOM noticed earlier is all we know.
            let notified = self.take_notified();
            if notified {
                self.publish();
            }
            return notified;
        }
        let count = oom_kill_count(&self.control_path);
        let seen = self.reported.fetch_max(count, Ordering::SeqCst);
        let new_oom = count > seen || (count == 0 && under_oom(&self.control_path));
        if new_oom {
            self.publish();
        }
        new_oom
    }

    /// The watch fd became readable while the cgroup exists.
    pub fn signalled(&self) {
        let oom_rose = self.v1 || self.v2_oom_count_rose();
        if !self.check() && oom_rose {
            self.notified.store(true, Ordering::SeqCst);
        }
    }

    /// v2: memory.events' `oom` count grew since the last look (an OOM whose kill may not be
    /// counted yet).
    fn v2_oom_count_rose(&self) -> bool {
        let count = event_count(&self.control_path, "oom");
        count > self.ooms_seen.fetch_max(count, Ordering::SeqCst)
    }

    /// The cgroup is gone; `signals` is what the v1 eventfd counted since its last read: one
    /// per OOM notification and one for the removal. systemd removes an empty scope's cgroup
    /// as soon as its last process, the OOM-killed init, exits: often before `oom_kill` could
    /// be read (seen in the v1 + systemd VM). An OOM notified and not yet reported is
    /// reported now.
    pub fn removed(&self, signals: u64) {
        let notified_by_eventfd = self.v1 && signals > 1;
        if self.take_notified() || notified_by_eventfd {
            self.publish();
        }
    }

    /// Claims a pending OOM, so that the exit path and the main loop report it once between them.
    fn take_notified(&self) -> bool {
        self.notified.swap(false, Ordering::SeqCst)
    }

    fn publish(&self) {
        self.notified.store(false, Ordering::SeqCst);
        let event = TaskOOM {
            container_id: self.id.clone(),
            ..Default::default()
        };
        self.events.send(TASK_OOM_EVENT_TOPIC, event);
    }
}

pub fn watch(id: &str, pid: u32, events: EventSender) -> Result<(Arc<OomWatch>, File)> {
    let proc_path = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&proc_path).map_err(Error::io("read cgroup of init", &proc_path))?;
    let paths = parse_proc_cgroup(&text);
    let Some(dir) = paths.v1("memory") else {
        let dir = paths
            .unified()
            .ok_or_else(|| Error::InvalidArgument("no memory cgroup".into()))?;
        return watch_v2(id, &dir.join("memory.events"), events);
    };
    let control_path = dir.join("memory.oom_control");
    let control = File::open(&control_path).map_err(Error::io("open memory.oom_control", &control_path))?;
    // SAFETY: eventfd returns a new fd or -1; we own it from here on.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(Error::io("create eventfd", &control_path)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: efd is a fresh fd that nothing else owns.
    let eventfd = unsafe { File::from_raw_fd(efd) };
    let register = dir.join("cgroup.event_control");
    fs::write(&register, format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd()))
        .map_err(Error::io("register oom eventfd", &register))?;
    // The eventfd stays registered as long as it is open; the control fd is not needed after.
    drop(control);
    let reported = Arc::new(AtomicU64::new(oom_kill_count(&control_path)));
    let watch = Arc::new(OomWatch {
        id: id.to_string(),
        control_path,
        reported,
        events,
        v1: true,
        notified: AtomicBool::new(false),
        ooms_seen: AtomicU64::new(0),
    });
    Ok((watch, eventfd))
}

/// cgroup v2: an inotify fd that becomes readable when memory.events changes.
fn watch_v2(id: &str, events_path: &Path, events: EventSender) -> Result<(Arc<OomWatch>, File)> {
    let inotify = watch_modifications(events_path)?;
    let reported = Arc::new(AtomicU64::new(oom_kill_count(events_path)));
    let watch = Arc::new(OomWatch {
        id: id.to_string(),
        control_path: events_path.to_path_buf(),
        reported,
        events,
        v1: false,
        notified: AtomicBool::new(false),
        ooms_seen: AtomicU64::new(event_count(events_path, "oom")),
    });
    Ok((watch, inotify))
}

/// A non-blocking inotify fd watching `path` for writes (and its removal).
fn watch_modifications(path: &Path) -> Result<File> {
    let failed = |what| move |_| Error::io(what, path)(std::io::Error::last_os_error());
    // SAFETY: inotify_init1 returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(failed("create inotify")(()));
    }
    // SAFETY: fd is fresh and owned by the File from here on.
    let inotify = unsafe { File::from_raw_fd(fd) };
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{}: nul in path", path.display())))?;
    // SAFETY: a valid inotify fd and a nul-terminated path.
    if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), c_path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(failed("watch memory.events")(()));
    }
    Ok(inotify)
}

fn oom_control(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn under_oom(path: &Path) -> bool {
    oom_control(path).lines().any(|l| l.trim() == "under_oom 1")
}

fn oom_kill_count(path: &Path) -> u64 {
    // memory.oom_control (v1) and memory.events (v2) both have an `oom_kill N` line.
    event_count(path, "oom_kill")
}

/// The `<key> N` line of a flat-keyed cgroup file; 0 when absent or unreadable.
fn event_count(path: &Path, key: &str) -> u64 {
    oom_control(path)
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_write_to_the_watched_file_makes_the_inotify_fd_readable() {
        let path = std::env::temp_dir().join(format!("husk-memory-events-{}", std::process::id()));
        fs::write(&path, "low 0\noom 0\noom_kill 0\noom_group_kill 0\n").unwrap();
        let mut fd = watch_modifications(&path).unwrap();
        let mut buf = [0u8; 256];
        assert!(fd.read(&mut buf).is_err(), "nothing to read before a write");
        fs::write(&path, "low 0\noom 1\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert!(fd.read(&mut buf).unwrap() > 0);
        assert_eq!(oom_kill_count(&path), 1);
        fs::remove_file(&path).unwrap();
    }

    fn v1_watch_of_a_removed_cgroup() -> (OomWatch, std::sync::mpsc::Receiver<crate::events::Event>) {
        let (events, rx) = EventSender::for_test();
        let watch = OomWatch {
            id: "c1".into(),
            control_path: PathBuf::from("/nonexistent/husk-test/memory.oom_control"),
            reported: Arc::new(AtomicU64::new(0)),
            events,
            v1: true,
            notified: AtomicBool::new(false),
            ooms_seen: AtomicU64::new(0),
        };
        assert!(watch.gone());
        (watch, rx)
    }

    #[test]
    fn an_oom_notified_with_the_removal_is_reported() {
        let (watch, rx) = v1_watch_of_a_removed_cgroup();
        watch.removed(1);
        assert!(rx.try_recv().is_err(), "the removal alone is no OOM");
        watch.removed(2);
        assert!(rx.try_recv().is_ok(), "OOM + removal in one read");
    }

    #[test]
    fn an_oom_notified_before_the_kill_counted_is_reported_on_removal() {
        let (watch, rx) = v1_watch_of_a_removed_cgroup();
        watch.notified.store(true, Ordering::SeqCst);
        watch.removed(1);
        assert!(rx.try_recv().is_ok());
        watch.removed(1);
        assert!(rx.try_recv().is_err(), "reported once");
    }

    const EVENTS_BEFORE: &str = "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\noom_group_kill 0\n";
    /// What memory.events shows between the OOM and its kill being counted.
    const EVENTS_OOM_NOT_KILLED_YET: &str = "low 0\nhigh 0\nmax 9\noom 1\noom_kill 0\noom_group_kill 0\n";

    /// A v2 watch on a memory.events stand-in in a temp dir.
    fn v2_watch(
        name: &str,
    ) -> (
        Arc<OomWatch>,
        File,
        PathBuf,
        std::sync::mpsc::Receiver<crate::events::Event>,
    ) {
        let path = std::env::temp_dir().join(format!("husk-{name}-{}", std::process::id()));
        fs::write(&path, EVENTS_BEFORE).unwrap();
        let (events, rx) = EventSender::for_test();
        let (watch, inotify) = watch_v2("c2", &path, events).unwrap();
        (watch, inotify, path, rx)
    }

    #[test]
    fn a_v2_oom_seen_before_its_kill_is_reported_when_systemd_removes_the_cgroup() {
        let (watch, _fd, path, rx) = v2_watch("oom-then-removed");
        fs::write(&path, EVENTS_OOM_NOT_KILLED_YET).unwrap();
        watch.signalled();
        assert!(rx.try_recv().is_err(), "no kill counted yet");
        fs::remove_file(&path).unwrap();
        assert!(watch.gone());
        watch.removed(0);
        assert!(rx.try_recv().is_ok(), "the OOM is reported on removal");
        watch.removed(0);
        assert!(!watch.check());
        assert!(rx.try_recv().is_err(), "reported once");
    }

    #[test]
    fn a_v2_oom_seen_before_its_kill_is_reported_by_the_exit_path_after_removal() {
        let (watch, _fd, path, rx) = v2_watch("oom-exit-path");
        fs::write(&path, EVENTS_OOM_NOT_KILLED_YET).unwrap();
        watch.signalled();
        fs::remove_file(&path).unwrap();
        assert!(watch.check(), "the exit path reports it");
        assert!(rx.try_recv().is_ok());
        watch.removed(0);
        assert!(rx.try_recv().is_err(), "reported once");
    }

    #[test]
    fn a_v2_cgroup_removed_after_reclaim_alone_reports_no_oom() {
        let (watch, _fd, path, rx) = v2_watch("max-only");
        fs::write(&path, EVENTS_BEFORE.replace("max 3", "max 40")).unwrap();
        watch.signalled();
        fs::remove_file(&path).unwrap();
        watch.removed(0);
        assert!(!watch.check());
        assert!(rx.try_recv().is_err(), "hitting memory.max is no OOM");
    }

    #[test]
    fn a_v2_oom_counted_with_its_kill_is_reported_once() {
        let (watch, _fd, path, rx) = v2_watch("oom-and-kill");
        fs::write(&path, EVENTS_OOM_NOT_KILLED_YET.replace("oom_kill 0", "oom_kill 1")).unwrap();
        watch.signalled();
        assert!(rx.try_recv().is_ok());
        assert!(!watch.check(), "the exit path sees nothing new");
        fs::remove_file(&path).unwrap();
        watch.removed(0);
        assert!(rx.try_recv().is_err(), "reported once");
    }
}
