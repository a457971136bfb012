//! Statistics, the printed tables and the results directory (raw.csv, summary.json,
//! summary.md) that keeps every single measurement.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::measure::{NotAvailable, Sample};

/// One contender's samples (milliseconds) and its failures. A contender that fails
/// [`GIVE_UP`] times before its first success is n/a and is not tried again.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub samples: Vec<f64>,
    /// CPU milliseconds of the same runs, in the same order.
    pub cpu: Vec<f64>,
    /// The round (attempt number, warm-up included) and the 1-minute load average of each
    /// kept sample, in the same order: rounds pair samples of different contenders taken
    /// side by side, the load says how busy the machine was.
    pub rounds: Vec<usize>,
    pub loads: Vec<f64>,
    attempts: usize,
    pub failures: usize,
    pub error: Option<NotAvailable>,
    /// Not tried at all (a binary is missing, a set-up step failed).
    pub skipped: bool,
}

const GIVE_UP: usize = 3;

impl Series {
    pub fn new(name: &str) -> Series {
        Series {
            name: name.to_string(),
            samples: Vec::new(),
            cpu: Vec::new(),
            rounds: Vec::new(),
            loads: Vec::new(),
            attempts: 0,
            failures: 0,
            error: None,
            skipped: false,
        }
    }

    /// A series that cannot run at all.
    pub fn unavailable(name: &str, why: NotAvailable) -> Series {
        Series {
            name: name.to_string(),
            samples: Vec::new(),
            cpu: Vec::new(),
            rounds: Vec::new(),
            loads: Vec::new(),
            attempts: 0,
            failures: GIVE_UP,
            error: Some(why),
            skipped: true,
        }
    }

    /// Record one attempt; a warm-up success is not kept, a warm-up failure counts.
    pub fn record(&mut self, sample: Result<Sample, NotAvailable>, warm_up: bool) {
        let round = self.attempts;
        self.attempts += 1;
        match sample {
            Ok(v) if !warm_up => {
                self.samples.push(v.wall_ms);
                self.cpu.push(v.cpu_ms);
                self.rounds.push(round);
                self.loads.push(crate::measure::load1());
            }
            Ok(_) => {}
            Err(e) => {
                self.failures += 1;
                self.error = Some(e);
            }
        }
    }

    /// Still worth running (not given up on).
    pub fn is_ok(&self) -> bool {
        !(self.samples.is_empty() && self.failures >= GIVE_UP)
    }

    pub fn median(&self) -> Option<f64> {
        percentile(&self.samples, 50.0)
    }

    /// Median CPU time (user + system of the command and the children it reaped).
    pub fn cpu_median(&self) -> Option<f64> {
        percentile(&self.cpu, 50.0)
    }

    pub fn p95(&self) -> Option<f64> {
        percentile(&self.samples, 95.0)
    }
}

/// Nearest-rank percentile (p50 of an even count is the mean of the middle two).
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    if p == 50.0 {
        let n = v.len();
        return Some((v[(n - 1) / 2] + v[n / 2]) / 2.0);
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// The results directory and everything printed so far.
pub struct Report {
    dir: PathBuf,
    csv: Option<File>,
    markdown: String,
    json: Vec<Value>,
}

impl Report {
    /// Creates `dir` with a raw.csv header; a directory that cannot be made only costs the
    /// files, never the run.
    pub fn new(dir: PathBuf) -> Report {
        let csv = fs::create_dir_all(&dir)
            .and_then(|()| File::create(dir.join("raw.csv")))
            .and_then(|mut f| {
                writeln!(f, "section,benchmark,contender,sample,value,unit,load1")?;
                Ok(f)
            });
        let csv = match csv {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("husk-bench: failed to create {}: {e}", dir.display());
                None
            }
        };
        Report {
            dir,
            csv,
            markdown: String::new(),
            json: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Print a line (and keep it for summary.md).
    pub fn say(&mut self, line: &str) {
        println!("{line}");
        self.markdown.push_str(line);
        self.markdown.push('\n');
    }

    /// One raw measurement into raw.csv, with the load average now.
    pub fn raw(&mut self, section: &str, bench: &str, contender: &str, i: usize, v: f64, unit: &str) {
        let load = crate::measure::load1();
        self.raw_at_load(section, bench, contender, i, v, unit, load);
    }

    /// One raw measurement into raw.csv, with the load average it was taken at.
    #[allow(clippy::too_many_arguments)]
    pub fn raw_at_load(&mut self, section: &str, bench: &str, who: &str, i: usize, v: f64, unit: &str, load: f64) {
        if let Some(f) = self.csv.as_mut() {
            let _ = writeln!(f, "{section},{bench},\"{who}\",{i},{v:.4},{unit},{load:.2}");
        }
    }

    /// A timing table: median, p95 and the ratio of each median to the first row's
    /// (husk); with `cpu`, also the median CPU time and its ratio. Every sample goes to
    /// raw.csv; failures are counted and the last error printed under the table.
    pub fn timing_table(&mut self, section: &str, bench: &str, series: &[Series], cpu: bool) {
        for s in series {
            for (k, (v, c)) in s.samples.iter().zip(&s.cpu).enumerate() {
                let (round, load) = (s.rounds[k], s.loads[k]);
                self.raw_at_load(section, bench, &s.name, round, *v, "ms", load);
                self.raw_at_load(section, bench, &s.name, round, *c, "cpu_ms", load);
            }
        }
        let base = series.first().and_then(Series::median);
        let cpu_base = series.first().and_then(Series::cpu_median);
        let ratio = |v: f64, b: Option<f64>| b.map(|b| format!("{:.2}", v / b)).unwrap_or_else(|| "-".into());
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for s in series {
            let runs = match s.failures {
                _ if s.skipped => "-".to_string(),
                0 => s.samples.len().to_string(),
                f => format!("{} ({f} failed)", s.samples.len()),
            };
            let mut cells = match (s.median(), s.p95()) {
                (Some(med), Some(p95)) => vec![
                    s.name.clone(),
                    runs,
                    format!("{med:.2}"),
                    format!("{p95:.2}"),
                    ratio(med, base),
                ],
                _ => {
                    let why = s.error.as_ref().map(ToString::to_string);
                    let why = why.unwrap_or_else(|| "no samples".into());
                    vec![
                        s.name.clone(),
                        runs,
                        format!("n/a: {why}"),
                        String::new(),
                        String::new(),
                    ]
                }
            };
            if cpu {
                match s.cpu_median() {
                    Some(c) => cells.extend([format!("{c:.2}"), ratio(c, cpu_base)]),
                    None => cells.extend([String::new(), String::new()]),
                }
            }
            if let (Some(e), false) = (&s.error, s.samples.is_empty()) {
                errors.push(format!("  {} failed {} time(s), last: {e}", s.name, s.failures));
            }
            self.json.push(json!({
                "section": section, "benchmark": bench, "contender": s.name,
                "runs": s.samples.len(), "failures": s.failures,
                "median_ms": s.median(), "p95_ms": s.p95(),
                "cpu_median_ms": if cpu { s.cpu_median() } else { None },
                "error": s.error.as_ref().map(ToString::to_string),
            }));
            rows.push(cells);
        }
        let mut header = vec!["contender", "runs", "median ms", "p95 ms", "× husk"];
        if cpu {
            header.extend(["CPU ms", "CPU × husk"]);
        }
        self.table(bench, &header, &rows);
        for e in errors {
            self.say(&e);
        }
    }

    /// A free-form table (memory, density, sizes); rows also go to summary.json.
    pub fn table(&mut self, title: &str, header: &[&str], rows: &[Vec<String>]) {
        let mut out = String::new();
        let _ = writeln!(out, "\n### {title}\n");
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        print!("{out}");
        self.markdown.push_str(&out);
        let objects: Vec<Value> = rows
            .iter()
            .map(|r| {
                let pairs = header.iter().zip(r).map(|(h, c)| (h.to_string(), json!(c)));
                Value::Object(pairs.collect())
            })
            .collect();
        self.json.push(json!({ "table": title, "rows": objects }));
    }

    /// A target beside the figures: reported, never asserted.
    pub fn target(&mut self, what: &str, actual: Option<f64>, limit: f64, unit: &str) {
        let line = match actual {
            Some(a) => {
                let verdict = if a <= limit { "met" } else { "NOT met" };
                format!("- target {what} ≤ {limit}{unit}: {a:.2}{unit} — {verdict}")
            }
            None => format!("- target {what} ≤ {limit}{unit}: n/a"),
        };
        self.say(&line);
        self.json
            .push(json!({ "target": what, "limit": limit, "actual": actual }));
    }

    /// Write summary.json and summary.md next to raw.csv.
    pub fn finish(&mut self) {
        let json = Value::Array(std::mem::take(&mut self.json));
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        for (name, body) in [("summary.json", text), ("summary.md", self.markdown.clone())] {
            let path = self.dir.join(name);
            if let Err(e) = fs::write(&path, body) {
                eprintln!("husk-bench: failed to write {}: {e}", path.display());
            }
        }
        println!("\nraw results: {}", self.dir.display());
    }
}

/// The median of `a` over the median of `b`, when both exist.
pub fn ratio(a: &Series, b: &Series) -> Option<f64> {
    Some(a.median()? / b.median()?)
}

/// The median over rounds of a's sample / b's sample from the same round: both were taken
/// side by side, so a burst of load that hits one round cancels out of its ratio.
pub fn paired_ratio(a: &Series, b: &Series) -> Option<f64> {
    let ratios: Vec<f64> = a
        .rounds
        .iter()
        .zip(&a.samples)
        .filter_map(|(r, va)| {
            let k = b.rounds.iter().position(|rb| rb == r)?;
            Some(va / b.samples[k])
        })
        .collect();
    percentile(&ratios, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.5));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
