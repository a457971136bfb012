//! Section 1 (`run` of /bin/true) and section 2 (create, start, delete, exec apart):
//! husk, runc and crun on the same busybox bundle, interleaved round by round.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use husk_e2e::{Bundle, TempDir};

use crate::measure::{reap_orphans, wait_pid_gone, NotAvailable, Sample, Timer};
use crate::report::{ratio, Report, Series};
use crate::Options;

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";
/// crun 1.8 refuses a hybrid host (it sees cgroup2 at /sys/fs/cgroup/unified); in a private
/// mount namespace without that mount it takes the v1 path like runc.
const UNIFIED: &str = "/sys/fs/cgroup/unified";
const CRUN_WRAPPER: &str = "umount /sys/fs/cgroup/unified && exec \"$0\" \"$@\"";

/// A runc-compatible runtime with its own state root and bundles.
struct Contender {
    name: &'static str,
    argv: Vec<OsString>,
    root: TempDir,
    true_bundle: Bundle,
    sleep_bundle: Bundle,
}

impl Contender {
    fn new(name: &'static str, argv: Vec<OsString>) -> Contender {
        Contender {
            name,
            argv,
            root: TempDir::new(&format!("root-{name}")),
            true_bundle: bench_bundle(&["/bin/true"]),
            sleep_bundle: bench_bundle(&["sleep", "100000"]),
        }
    }

    /// `<argv> --root <root> <args>`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).arg("--root").arg(self.root.path()).args(args);
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

fn cgroup_hybrid() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(UNIFIED))
}

fn sh_wrapper(script: &str, rest: &[&str]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = ["unshare", "-m", "sh", "-c", script]
        .iter()
        .map(OsString::from)
        .collect();
    argv.extend(rest.iter().map(OsString::from));
    argv
}

/// husk, runc, crun: whichever exist; a missing one becomes an n/a row.
fn contenders(report: &mut Report) -> (Vec<Contender>, Vec<Series>) {
    let husk = husk_e2e::target_dir().join("husk");
    let wrap = cgroup_hybrid();
    let mut list = Vec::new();
    let mut missing = Vec::new();
    for (name, bin) in [
        ("husk", husk.clone()),
        ("runc", PathBuf::from(RUNC)),
        ("crun", PathBuf::from(CRUN)),
    ] {
        if !bin.is_file() {
            missing.push(Series::unavailable(name, NotAvailable::Missing { path: bin }));
            continue;
        }
        let argv = if name == "crun" && wrap {
            sh_wrapper(CRUN_WRAPPER, &[CRUN])
        } else {
            vec![bin.into_os_string()]
        };
        list.push(Contender::new(name, argv));
    }
    if wrap {
        report.say(&format!(
            "note: crun refuses this hybrid cgroup host; every crun command runs as `unshare -m sh -c '{CRUN_WRAPPER}' crun ...` (row \"crun-wrapper\" is that wrapper alone, `exec true`)"
        ));
    }
    (list, missing)
}

/// Section 1: `<rt> run` of /bin/true, plus the wrapper's own cost and an unshare floor.
pub fn bench_run(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 1. runtime `run` of /bin/true (create + start + wait + delete)");
    let (list, missing) = contenders(report);
    let mut series: Vec<Series> = list.iter().map(|c| Series::new(c.name)).collect();
    let mut extra: Vec<(Series, Vec<OsString>)> = vec![
        (
            Series::new("crun-wrapper (unshare -m sh -c umount; exec true)"),
            sh_wrapper("umount /sys/fs/cgroup/unified && exec true", &[]),
        ),
        (
            Series::new("floor: unshare -fpmuinC true"),
            ["unshare", "-fpmuinC", "true"].iter().map(OsString::from).collect(),
        ),
    ];
    if !cgroup_hybrid() {
        extra.remove(0);
    }
    let total = opts.runs + opts.warmup;
    for round in 0..total {
        let n = list.len() + extra.len();
        for k in 0..n {
            let i = (k + round) % n;
            let alive = if i < list.len() {
                series[i].is_ok()
            } else {
                extra[i - list.len()].0.is_ok()
            };
            if !alive {
                continue;
            }
            let sample = if i < list.len() {
                let c = &list[i];
                let id = format!("r{round}");
                let r = timer.time(&mut c.bundle_cmd("run", c.true_bundle.path(), &id));
                if r.is_err() {
                    c.force_delete(&id);
                }
                (i, r)
            } else {
                let (_, argv) = &extra[i - list.len()];
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                (i, timer.time(&mut cmd))
            };
            reap_orphans();
            let ms = sample.1;
            let warm = round < opts.warmup;
            match sample.0 {
                i if i < list.len() => series[i].record(ms, warm),
                i => extra[i - list.len()].0.record(ms, warm),
            }
        }
    }
    series.extend(missing);
    let crun_net = crun_minus_wrapper(&series, &extra, Series::median);
    let crun_cpu_net = crun_minus_wrapper(&series, &extra, Series::cpu_median);
    let runc_i = series.iter().position(|s| s.name == "runc");
    let crun_i = series.iter().position(|s| s.name == "crun");
    series.extend(extra.into_iter().map(|(s, _)| s));
    report.timing_table("runtime", "run /bin/true", &series, true);
    if let Some(net) = crun_net {
        report.say(&format!("crun minus wrapper (difference of medians): {net:.2} ms"));
    }
    let husk_net = crun_net.and_then(|net| Some(series[0].median()? / net));
    if let (Some(net), Some(husk)) = (crun_cpu_net, series[0].cpu_median()) {
        report.say(&format!(
            "CPU: crun minus wrapper {net:.2} ms; husk / that {:.2}×",
            husk / net
        ));
    }
    let crun_ratio = crun_i.and_then(|i| ratio(&series[0], &series[i]));
    let runc_ratio = runc_i.and_then(|i| ratio(&series[0], &series[i]));
    report.target("husk run / crun run (crun incl. wrapper)", crun_ratio, 0.6, "×");
    report.target("husk run / (crun run minus wrapper)", husk_net, 0.6, "×");
    report.target("husk run / runc run", runc_ratio, 0.3, "×");
}

/// crun's median minus its wrapper's, by `stat` (wall or CPU median).
fn crun_minus_wrapper(
    series: &[Series],
    extra: &[(Series, Vec<OsString>)],
    stat: fn(&Series) -> Option<f64>,
) -> Option<f64> {
    let crun = stat(series.iter().find(|s| s.name == "crun")?)?;
    let wrapper = extra.iter().find(|(s, _)| s.name.starts_with("crun-wrapper"))?;
    Some(crun - stat(&wrapper.0)?)
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
    let (list, missing) = contenders(report);
    let names: Vec<&str> = list.iter().map(|c| c.name).collect();
    let mut verbs: Vec<Vec<Series>> = (0..4).map(|_| names.iter().map(|n| Series::new(n)).collect()).collect();
    for (i, c) in list.iter().enumerate() {
        if let Err(e) = start_sleeper(c, timer, "sleeper") {
            verbs[3][i] = Series::unavailable(c.name, e);
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
}
