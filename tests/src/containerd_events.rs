//! `ctr events` as a test reads it: started, confirmed subscribed, then searched for a topic.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{wait_until, Containerd};

/// A running `ctr events` whose output a thread collects; killed on drop.
pub struct EventWatch {
    child: Child,
    seen: Arc<Mutex<String>>,
}

impl EventWatch {
    /// Starts `ctr events` and returns once it is subscribed: a fixed sleep missed events on a
    /// loaded machine, so it creates marker namespaces until containerd's /namespaces/create
    /// for one shows up in the output.
    pub fn start(ctrd: &Containerd) -> EventWatch {
        let mut child = ctrd
            .ctr_command(&["events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let seen = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("ctr events stdout");
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let watch = EventWatch { child, seen };
        let marker = format!("events-ready-{}", std::process::id());
        let subscribed = wait_until(Duration::from_secs(30), || {
            let _ = ctrd.ctr(&["namespaces", "create", &marker]);
            let _ = ctrd.ctr(&["namespaces", "remove", &marker]);
            watch.text().contains(&marker)
        });
        assert!(subscribed, "ctr events never showed the marker namespace");
        watch
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a line with `topic`.
    pub fn wait_for(&self, topic: &str, limit: Duration) -> bool {
        wait_until(limit, || self.text().contains(topic))
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
