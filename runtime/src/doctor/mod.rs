//! `husk doctor`: the preflight check an operator runs before switching a node to husk. Each
//! check says what it found and, when something is missing, what it means and what to do.
//! A `blocker` makes the exit status 1: husk (or the containerd integration the host has set
//! up) would not work. Warnings are limits an operator should know of.

mod engines;
mod host;
mod kernel;

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Info,
    Warn,
    Blocker,
}

/// One check's result. Field order is the JSON's.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub area: &'static str,
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl Finding {
    fn new(area: &'static str, check: &str, verdict: Verdict, detail: impl Into<String>) -> Finding {
        Finding {
            area,
            check: check.to_string(),
            verdict,
            detail: detail.into(),
            advice: None,
        }
    }

    fn advise(mut self, advice: impl Into<String>) -> Finding {
        self.advice = Some(advice.into());
        self
    }
}

/// Where to look for containerd; the defaults are a stock node's.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub containerd_config: PathBuf,
    /// The grpc socket; None: the one containerd's effective config names.
    pub containerd_address: Option<PathBuf>,
    /// The PATH containerd runs shims from (systemd's default for a service).
    pub containerd_path: String,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            containerd_config: PathBuf::from("/etc/containerd/config.toml"),
            containerd_address: None,
            containerd_path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        }
    }
}

/// Every check, in the order they are printed.
pub fn examine(opts: &DoctorOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(kernel::examine());
    findings.extend(host::examine());
    findings.extend(engines::examine(opts));
    findings
}

/// 1 when any check found a blocker, else 0.
pub fn exit_code(findings: &[Finding]) -> i32 {
    i32::from(findings.iter().any(|f| f.verdict == Verdict::Blocker))
}

pub fn render_json(findings: &[Finding]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        ok: bool,
        blockers: usize,
        warnings: usize,
        checks: &'a [Finding],
    }
    let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
    let report = Report {
        ok: exit_code(findings) == 0,
        blockers: count(Verdict::Blocker),
        warnings: count(Verdict::Warn),
        checks: findings,
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    let mut area = "";
    for f in findings {
        if f.area != area {
            area = f.area;
            out.push_str(&format!("{area}\n"));
        }
        let mark = match f.verdict {
            Verdict::Ok => "ok     ",
            Verdict::Info => "info   ",
            Verdict::Warn => "WARN   ",
            Verdict::Blocker => "BLOCKER",
        };
        out.push_str(&format!("  {mark} {}: {}\n", f.check, f.detail));
        if let Some(advice) = &f.advice {
            out.push_str(&format!("          -> {advice}\n"));
        }
    }
    let blockers = findings.iter().filter(|f| f.verdict == Verdict::Blocker).count();
    let warnings = findings.iter().filter(|f| f.verdict == Verdict::Warn).count();
    out.push_str(&match blockers {
        0 => format!("husk can run here ({warnings} warnings)\n"),
        n => format!("husk cannot run here as set up: {n} blockers, {warnings} warnings\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocker_fails_the_exit_code_and_warnings_do_not() {
        let warn = Finding::new("kernel", "x", Verdict::Warn, "old");
        assert_eq!(exit_code(std::slice::from_ref(&warn)), 0);
        let blocker = Finding::new("containerd", "shim", Verdict::Blocker, "missing").advise("install it");
        assert_eq!(exit_code(&[warn.clone(), blocker.clone()]), 1);
        let text = render_text(&[warn, blocker]);
        assert!(
            text.contains("BLOCKER shim: missing\n          -> install it"),
            "{text}"
        );
        assert!(text.ends_with("1 blockers, 1 warnings\n"), "{text}");
    }

    #[test]
    fn json_report_lists_checks_in_order_with_their_verdicts() {
        let findings = [
            Finding::new("kernel", "clone3", Verdict::Ok, "supported"),
            Finding::new("cgroups", "layout", Verdict::Info, "hybrid"),
        ];
        let json: serde_json::Value = serde_json::from_str(&render_json(&findings)).expect("valid json");
        assert_eq!(json["ok"], true);
        assert_eq!(json["checks"][0]["check"], "clone3");
        assert_eq!(json["checks"][1]["verdict"], "info");
        assert!(json["checks"][0].get("advice").is_none());
    }
}
