//! The lifecycle verbs, one file each. Every verb takes the global options and its own.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod exec_cgroup;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spawn_init;
pub mod spec;
pub mod start;
pub mod state;
pub mod tty_proxy;
pub mod update;

use std::path::PathBuf;

/// Options every command shares (runc's global flags).
#[derive(Debug, Clone)]
pub struct Global {
    pub root: PathBuf,
    /// --trace: print where the start time goes (see trace.rs).
    pub trace: bool,
    /// --systemd-cgroup: new containers' cgroups are systemd units (cgroups/systemd.rs).
    pub systemd_cgroup: bool,
}

/// The time now as RFC 3339 in UTC with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(super::format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::format_rfc3339(1_709_251_199, 5),
            "2024-02-29T23:59:59.000000005Z"
        );
    }
}
