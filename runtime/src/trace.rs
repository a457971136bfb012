//! `husk --trace`: where a container's start time goes, phase by phase, on stderr and (as an
//! info line) in the json log. Phases measured inside the init come back over the sync socket.

use std::time::Instant;

pub struct Trace {
    enabled: bool,
    start: Instant,
    last: Instant,
    /// (phase, microseconds)
    phases: Vec<(String, u64)>,
}

impl Trace {
    pub fn new(enabled: bool) -> Trace {
        let now = Instant::now();
        Trace {
            enabled,
            start: now,
            last: now,
            phases: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Close the phase that ran since the previous mark.
    pub fn mark(&mut self, phase: &str) {
        // Every phase is a set-up step that --debug reports.
        log::debug!("{phase}: done");
        if self.enabled {
            let now = Instant::now();
            self.phases
                .push((phase.to_string(), (now - self.last).as_micros() as u64));
            self.last = now;
        }
    }

    /// Phases measured elsewhere (the init), shown indented under the phase that contained them.
    pub fn add_nested(&mut self, phases: Vec<(String, u64)>) {
        if self.enabled {
            self.phases
                .extend(phases.into_iter().map(|(name, us)| (format!("  init: {name}"), us)));
        }
    }

    pub fn phases(&self) -> &[(String, u64)] {
        &self.phases
    }

    /// One line: `parse 0.31ms | cgroup 1.20ms | ... | total 7.90ms`.
    pub fn render(&self) -> String {
        let mut parts: Vec<String> = self
            .phases
            .iter()
            .map(|(name, us)| format!("{} {:.2}ms", name.trim(), *us as f64 / 1000.0))
            .collect();
        parts.push(format!(
            "total {:.2}ms",
            (self.last - self.start).as_micros() as f64 / 1000.0
        ));
        parts.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_trace_records_nothing_and_enabled_one_keeps_order() {
        let mut off = Trace::new(false);
        off.mark("parse");
        assert!(off.phases().is_empty());
        let mut on = Trace::new(true);
        on.mark("parse");
        on.add_nested(vec![("rootfs".into(), 1500)]);
        on.mark("handshake");
        let names: Vec<&str> = on.phases().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["parse", "  init: rootfs", "handshake"]);
        assert!(on.render().contains("rootfs 1.50ms") && on.render().contains("total"));
    }
}
