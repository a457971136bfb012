//! Section 1 (`run` of /bin/true) and section 2 (create, start, delete, exec apart):
//! husk, runc and crun on the same busybox bundle, interleaved round by round.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use husk_e2e::{Bundle, TempDir};

use crate::measure::{load_line, reap_orphans, wait_pid_gone, NotAvailable, Sample, Timer};
use crate::probe;
use crate::report::{paired_ratio, ratio, Report, Series};
use crate::Options;

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

/// A runc-compatible runtime with its own state root and bundles.
struct Contender {
    name: String,
    argv: Vec<OsString>,
    /// Set on every command of this contender only (e.g. `HUSK_EXESEAL=memfd`).
    envs: Vec<(String, String)>,
    root: TempDir,
    true_bundle: Bundle,
    sleep_bundle: Bundle,
}

impl Contender {
    fn new(name: &str, argv: Vec<OsString>) -> Contender {
        Contender {
            name: name.to_owned(),
            argv,
            envs: Vec::new(),
            root: TempDir::new(&format!("root-{name}")),
            true_bundle: bench_bundle(&["/bin/true"]),
            sleep_bundle: bench_bundle(&["sleep", "100000"]),
        }
    }

    /// `<argv> --root <root> <args>`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).arg("--root").arg(self.root.path()).args(args);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn bundle_cmd(&self, verb: &str, bundle: &Path, id: &str) -> Command {
        let mut cmd = self.cmd(&[verb, "-b"]);
        cmd.arg(bundle).arg(id);
        cmd
    }

    /// The init pid from `state`.
    fn pid(&self, id: &str) -> Result<i32, NotAvailable> {
        let out = self.cmd(&["state", id]).output().map_err(|e| NotAvailable::Spawn {
            what: format!("{} state", self.name),
            errno: e.to_string(),
        })?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        state["pid"]
            .as_i64()
            .map(|p| p as i32)
            .ok_or_else(|| NotAvailable::Unexpected {
                what: format!(
                    "{} state {id}: no pid in {:?}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout)
                ),
            })
    }

    /// Force-delete, for cleanup after a failure; errors do not matter here.
    fn force_delete(&self, id: &str) {
        let _ = self.cmd(&["delete", "-f", id]).output();
    }
}

/// runc's default spec without ambient capabilities, like the spec containerd generates:
/// raising an ambient cap that is not inheritable fails (runc only warns), and that is a
/// correctness question, not a speed one.
fn bench_bundle(args: &[&str]) -> Bundle {
    let mut bundle = Bundle::new(args);
    if let Some(caps) = bundle.config_mut()["process"]["capabilities"].as_object_mut() {
        caps.remove("ambient");
    }
    bundle.save();
    bundle
}

/// husk, runc, crun: whichever exist; a missing one becomes an n/a row. All run as they
/// are, in the harness's mount namespace (see `measure::enter_fair_field`). Then the extra
/// husk builds or settings of [`EXTRA_VAR`].
fn contenders() -> (Vec<Contender>, Vec<Series>) {
    let husk = husk_e2e::target_dir().join("husk");
    let mut list = Vec::new();
    let mut missing = Vec::new();
    let extras = extra_contenders(&std::env::var(EXTRA_VAR).unwrap_or_default());
    let fixed = [
        ("husk".to_owned(), husk, Vec::new()),
        ("runc".to_owned(), PathBuf::from(RUNC), Vec::new()),
        ("crun".to_owned(), PathBuf::from(CRUN), Vec::new()),
    ];
    for (name, bin, envs) in fixed.into_iter().chain(extras) {
        if bin.is_file() {
            let mut c = Contender::new(&name, vec![bin.into_os_string()]);
            c.envs = envs;
            list.push(c);
        } else {
            missing.push(Series::unavailable(&name, NotAvailable::Missing { path: bin }));
        }
    }
    (list, missing)
}

/// More contenders, each compared with husk: `NAME=PATH[:KEY=VALUE...]`, separated by `;`,
/// e.g. `husk-memfd=target/release/husk:HUSK_EXESEAL=memfd;husk-static=/tmp/static/husk`
/// (an A/B of two builds or two settings in one interleaved run).
const EXTRA_VAR: &str = "HUSK_BENCH_EXTRA";

type ExtraContender = (String, PathBuf, Vec<(String, String)>);

fn extra_contenders(spec: &str) -> Vec<ExtraContender> {
    spec.split(';')
        .filter_map(|one| {
            let (name, rest) = one.trim().split_once('=')?;
            let mut parts = rest.split(':');
            let path = PathBuf::from(parts.next()?);
            let envs = parts
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect();
            Some((name.to_owned(), path, envs))
        })
        .collect()
}

/// One timed `run` of /bin/true, cleaned up if it failed.
fn time_run(c: &Contender, timer: &Timer, round: usize) -> Result<Sample, NotAvailable> {
    let id = format!("r{round}");
    let r = timer.time(&mut c.bundle_cmd("run", c.true_bundle.path(), &id));
    if r.is_err() {
        c.force_delete(&id);
    }
    r
}

/// The floors: what any runtime must pay for the same container, at the least.
fn time_floor(which: usize, timer: &Timer, round: usize) -> Result<Sample, NotAvailable> {
    match which {
        0 => timer.time(Command::new("unshare").args(["-fpmuin", "true"])),
        _ => probe::floor_with_cgroup(timer, round),
    }
}

const FLOORS: [&str; 2] = [
    "floor: unshare -fpmuin true",
    "floor + cgroup: mkdir, attach, unshare -fpmuin true, rmdir",
];

/// Section 1: `<rt> run` of /bin/true, beside the floors, one sample of each per round.
pub fn bench_run(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 1. runtime `run` of /bin/true (create + start + wait + delete)");
    report.say(&format!("load at start: {}", load_line()));
    let (list, missing) = contenders();
    let mut series: Vec<Series> = list.iter().map(|c| Series::new(&c.name)).collect();
    series.extend(FLOORS.iter().map(|f| Series::new(f)));
    let n = series.len();
    for round in 0..opts.runs + opts.warmup {
        for k in 0..n {
            let i = (k + round) % n;
            if !series[i].is_ok() {
                continue;
            }
            let sample = match list.get(i) {
                Some(c) => time_run(c, timer, round),
                None => time_floor(i - list.len(), timer, round),
            };
            reap_orphans();
            series[i].record(sample, round < opts.warmup);
        }
    }
    let floor_i = n - 1;
    series.extend(missing);
    report.timing_table("runtime", "run /bin/true", &series, true);
    report.say(&format!("load at end: {}", load_line()));
    let find = |name: &str| series.iter().position(|s| s.name == name);
    let husk = &series[0];
    for (other, limit) in [
        (find("crun"), Some(0.75)),
        (find("runc"), Some(0.3)),
        (Some(floor_i), None),
    ] {
        let Some(o) = other.map(|i| &series[i]) else { continue };
        say_ratio(report, husk, o);
        if let Some(limit) = limit {
            report.target(&format!("husk run / {} run", o.name), ratio(husk, o), limit, "×");
        }
    }
    let is_extra = |c: &&Contender| !["husk", "runc", "crun"].contains(&c.name.as_str());
    for extra in list.iter().filter(is_extra) {
        if let Some(i) = find(&extra.name) {
            say_ratio(report, &series[i], husk);
        }
    }
}

/// `a / b: medians, per-round pairs (median), CPU`.
fn say_ratio(report: &mut Report, a: &Series, b: &Series) {
    let (wall, paired) = (ratio(a, b), paired_ratio(a, b));
    let cpu = a.cpu_median().zip(b.cpu_median()).map(|(x, y)| x / y);
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "n/a".into());
    report.say(&format!(
        "{} / {}: medians {}, per-round pairs (median) {}, CPU {}",
        a.name,
        b.name,
        fmt(wall),
        fmt(paired),
        fmt(cpu)
    ));
}

/// One create/start/delete cycle of /bin/true; the three times in ms.
fn lifecycle(c: &Contender, timer: &Timer, id: &str) -> [Result<Sample, NotAvailable>; 3] {
    let na = |e: &NotAvailable| Err(e.clone());
    let create = timer.time(&mut c.bundle_cmd("create", c.true_bundle.path(), id));
    if let Err(e) = &create {
        c.force_delete(id);
        return [na(e), na(e), na(e)];
    }
    let pid = c.pid(id);
    let start = timer.time(&mut c.cmd(&["start", id]));
    if let Err(e) = &start {
        c.force_delete(id);
        return [create, na(e), na(e)];
    }
    let gone = match pid {
        Ok(pid) => wait_pid_gone(pid, Duration::from_secs(10)),
        Err(_) => false,
    };
    let delete = if gone {
        timer.time(&mut c.cmd(&["delete", id]))
    } else {
        Err(NotAvailable::Unexpected {
            what: format!("{}: /bin/true did not exit after start", c.name),
        })
    };
    if delete.is_err() {
        c.force_delete(id);
    }
    [create, start, delete]
}

/// A running `sleep` container per contender for `exec`; None (with the reason) if it fails.
fn start_sleeper(c: &Contender, timer: &Timer, id: &str) -> Result<(), NotAvailable> {
    let r = timer
        .run(&mut c.bundle_cmd("create", c.sleep_bundle.path(), id))
        .and_then(|()| timer.run(&mut c.cmd(&["start", id])));
    if r.is_err() {
        c.force_delete(id);
    }
    r
}

/// Section 2: create, start, delete and exec timed apart.
pub fn bench_lifecycle(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 2. runtime create / start / delete / exec, timed apart");
    let (list, missing) = contenders();
    report.say(&format!("load at start: {}", load_line()));
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    let mut verbs: Vec<Vec<Series>> = (0..4).map(|_| names.iter().map(|n| Series::new(n)).collect()).collect();
    for (i, c) in list.iter().enumerate() {
        if let Err(e) = start_sleeper(c, timer, "sleeper") {
            verbs[3][i] = Series::unavailable(&c.name, e);
        }
    }
    for round in 0..opts.runs + opts.warmup {
        for k in 0..list.len() {
            let i = (k + round) % list.len();
            let c = &list[i];
            let warm = round < opts.warmup;
            if verbs[0][i].is_ok() {
                let times = lifecycle(c, timer, &format!("l{round}"));
                for (v, t) in times.into_iter().enumerate() {
                    verbs[v][i].record(t, warm);
                }
            }
            if verbs[3][i].is_ok() {
                let exec = timer.time(&mut c.cmd(&["exec", "sleeper", "/bin/true"]));
                verbs[3][i].record(exec, warm);
            }
            reap_orphans();
        }
    }
    for c in &list {
        let _ = timer.run(&mut c.cmd(&["kill", "sleeper", "KILL"]));
        if let Ok(pid) = c.pid("sleeper") {
            wait_pid_gone(pid, Duration::from_secs(5));
        }
        c.force_delete("sleeper");
    }
    reap_orphans();
    for (verb, mut series) in ["create", "start", "delete", "exec /bin/true"].into_iter().zip(verbs) {
        series.extend(missing.iter().cloned());
        report.timing_table("lifecycle", verb, &series, true);
    }
    report.say(&format!("load at end: {}", load_line()));
}
