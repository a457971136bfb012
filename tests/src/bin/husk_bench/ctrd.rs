//! Sections 3–5 through a private containerd: `ctr run --rm`, `ctr task exec`, and the
//! memory and threads of one shim per running container.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use husk_e2e::{Containerd, BUSYBOX_REF, HUSK_RUNTIME};

use crate::measure::{reap_orphans, NotAvailable, Timer};
use crate::report::{ratio, Report, Series};
use crate::smaps;
use crate::Options;

pub const GO_RUNTIME: &str = "io.containerd.runc.v2";
pub const GO_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";
pub const HUSK_SHIM: &str = "containerd-shim-husk-v2";
const RUNC: &str = "/usr/sbin/runc";

/// A shim and the runtime it drives, as `ctr` arguments.
#[derive(Debug, Clone)]
pub struct Combo {
    pub name: &'static str,
    /// `--runtime ...` and the options that pick the runtime binary.
    pub args: Vec<String>,
    /// The shim's executable name, to find its processes.
    pub shim: &'static str,
    /// Why this combination cannot run here, found before any measurement.
    pub missing: Option<NotAvailable>,
}

fn missing(paths: &[&Path]) -> Option<NotAvailable> {
    paths
        .iter()
        .find(|p| !p.is_file())
        .map(|p| NotAvailable::Missing { path: p.to_path_buf() })
}

/// All four pairings; `config_dir` receives the options file that hands the husk shim runc.
pub fn combos(config_dir: &Path) -> Vec<Combo> {
    let target = husk_e2e::target_dir();
    let husk = target.join("husk");
    let shim = target.join(HUSK_SHIM);
    let runc_options = config_dir.join("husk-shim-runc.toml");
    let wrote = std::fs::write(&runc_options, format!("BinaryName = \"{RUNC}\"\n"));
    let mut husk_runc_missing = missing(&[&shim, Path::new(RUNC)]);
    if let Err(e) = wrote {
        husk_runc_missing = Some(NotAvailable::Spawn {
            what: format!("write {}", runc_options.display()),
            errno: e.to_string(),
        });
    }
    vec![
        Combo {
            name: "husk shim + husk",
            args: vec!["--runtime".into(), HUSK_RUNTIME.into()],
            shim: HUSK_SHIM,
            missing: missing(&[&shim, &husk]),
        },
        Combo {
            name: "Go shim + runc",
            args: vec!["--runtime".into(), GO_RUNTIME.into()],
            shim: "containerd-shim-runc-v2",
            missing: missing(&[Path::new(GO_SHIM), Path::new(RUNC)]),
        },
        Combo {
            name: "husk shim + runc (BinaryName)",
            args: vec![
                "--runtime".into(),
                HUSK_RUNTIME.into(),
                "--runtime-config-path".into(),
                runc_options.display().to_string(),
            ],
            shim: HUSK_SHIM,
            missing: husk_runc_missing,
        },
        Combo {
            name: "Go shim + husk (--runc-binary)",
            args: vec![
                "--runtime".into(),
                GO_RUNTIME.into(),
                "--runc-binary".into(),
                husk.display().to_string(),
            ],
            shim: "containerd-shim-runc-v2",
            missing: missing(&[Path::new(GO_SHIM), &husk]),
        },
    ]
}

/// A private containerd with the busybox image imported into its namespace.
pub fn start_containerd() -> Containerd {
    let mut ctrd = Containerd::builder().ctr_timeout(Duration::from_secs(120)).start();
    let ns = ctrd.namespace().to_string();
    ctrd.import_busybox(&ns);
    ctrd
}

/// `ctr --address <sock> <args>` in the containerd's namespace.
pub fn ctr(address: &Path, namespace: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(address)
        .args(args)
        .env("CONTAINERD_NAMESPACE", namespace)
        .env_remove("CONTAINERD_ADDRESS");
    cmd
}

/// `ctr run -d` of a sleeping busybox container.
pub fn run_sleeper(ctrd: &Containerd, timer: &Timer, combo: &Combo, id: &str) -> Result<(), NotAvailable> {
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(combo.args.iter().map(String::as_str));
    args.extend([BUSYBOX_REF, id, "sleep", "100000"]);
    timer.run(&mut ctr(ctrd.address(), ctrd.namespace(), &args))
}

/// Kill and delete a task and its container; best effort.
pub fn remove(address: &Path, namespace: &str, timer: &Timer, id: &str) -> Result<(), NotAvailable> {
    let task = timer.run(&mut ctr(address, namespace, &["task", "rm", "-f", id]));
    let container = timer.run(&mut ctr(address, namespace, &["container", "rm", id]));
    task.and(container)
}

/// Section 3 and 4: `ctr run --rm ... true` and `ctr task exec ... true`, interleaved.
pub fn bench_ctr(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 3./4. through containerd 1.6 (`ctr run --rm`, `ctr task exec`)");
    let ctrd = start_containerd();
    let list = combos(ctrd.dir());
    let (addr, ns) = (ctrd.address().to_path_buf(), ctrd.namespace().to_string());
    let mut runs: Vec<Series> = list.iter().map(|c| Series::new(c.name)).collect();
    let mut execs: Vec<Series> = list.iter().map(|c| Series::new(c.name)).collect();
    for (i, c) in list.iter().enumerate() {
        if let Some(e) = &c.missing {
            runs[i] = Series::unavailable(c.name, e.clone());
            execs[i] = Series::unavailable(c.name, e.clone());
            continue;
        }
        if let Err(e) = run_sleeper(&ctrd, timer, c, &format!("x{i}")) {
            let _ = remove(&addr, &ns, timer, &format!("x{i}"));
            execs[i] = Series::unavailable(c.name, e);
        }
    }
    for round in 0..opts.ctr_runs + opts.warmup {
        for k in 0..list.len() {
            let i = (k + round) % list.len();
            let c = &list[i];
            let warm = round < opts.warmup;
            if runs[i].is_ok() {
                let id = format!("c{i}-{round}");
                let mut args: Vec<&str> = vec!["run", "--rm"];
                args.extend(c.args.iter().map(String::as_str));
                args.extend([BUSYBOX_REF, &id, "true"]);
                let r = timer.time(&mut ctr(&addr, &ns, &args));
                if r.is_err() {
                    let _ = remove(&addr, &ns, timer, &id);
                }
                runs[i].record(r, warm);
            }
            if execs[i].is_ok() {
                let (cid, eid) = (format!("x{i}"), format!("e{round}"));
                let args = ["task", "exec", "--exec-id", &eid, &cid, "true"];
                let r = timer.time(&mut ctr(&addr, &ns, &args));
                execs[i].record(r, warm);
            }
            reap_orphans();
        }
    }
    for i in 0..list.len() {
        let _ = remove(&addr, &ns, timer, &format!("x{i}"));
    }
    reap_orphans();
    for (bench, series) in [("ctr run --rm busybox true", &runs), ("ctr task exec true", &execs)] {
        report.timing_table("containerd", bench, series, false);
        let what = format!("husk shim+husk / Go shim+runc, {bench}");
        report.target(&what, ratio(&series[0], &series[1]), 0.6, "×");
    }
    drop(ctrd);
    reap_orphans();
}

/// RSS and PSS (kB, from smaps_rollup) and the thread count of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub threads: u64,
}

impl Mem {
    pub fn read(pid: i32) -> Option<Mem> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(Mem {
            rss_kb: field(&rollup, "Rss:")?,
            pss_kb: field(&rollup, "Pss:")?,
            threads: field(&status, "Threads:")?,
        })
    }

    pub fn add(self, o: Mem) -> Mem {
        Mem {
            rss_kb: self.rss_kb + o.rss_kb,
            pss_kb: self.pss_kb + o.pss_kb,
            threads: self.threads + o.threads,
        }
    }
}

fn field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The processes running `shim_name` for this containerd (its socket is on their command
/// line), as pids.
pub fn shim_pids(address: &Path, shim_name: &str) -> Vec<i32> {
    husk_e2e::processes_mentioning(&address.display().to_string())
        .into_iter()
        .filter(|(pid, _)| exe_name(*pid).is_some_and(|n| n == shim_name))
        .map(|(pid, _)| pid)
        .collect()
}

fn exe_name(pid: i32) -> Option<String> {
    let exe: PathBuf = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

/// Section 5: one sleeping container per shim at a time; the shim's RSS, PSS, threads.
pub fn bench_shim_memory(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 5. shim memory and threads per running container (idle `sleep`)");
    let ctrd = start_containerd();
    let list: Vec<Combo> = combos(ctrd.dir()).into_iter().take(2).collect();
    let mut rows = Vec::new();
    let mut figures: Vec<Option<Mem>> = Vec::new();
    let mut notes = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let measured = measure_one_shim(&ctrd, timer, c, opts.shim_samples, i);
        match measured {
            Ok((m, names, maps)) => {
                notes.push(format!("{} threads: {names}", c.name));
                if let Some(maps) = maps {
                    per_mapping(report, c.name, &maps);
                }
                for (j, key) in ["rss_kb", "pss_kb", "threads"].iter().enumerate() {
                    let v = [m.rss_kb, m.pss_kb, m.threads][j];
                    report.raw("shim-memory", key, c.name, 0, v as f64, key);
                }
                rows.push(vec![
                    c.name.to_string(),
                    format!("{:.2}", m.rss_kb as f64 / 1024.0),
                    format!("{:.2}", m.pss_kb as f64 / 1024.0),
                    m.threads.to_string(),
                ]);
                figures.push(Some(m));
            }
            Err(e) => {
                rows.push(vec![
                    c.name.to_string(),
                    format!("n/a: {e}"),
                    String::new(),
                    String::new(),
                ]);
                figures.push(None);
            }
        }
    }
    report.table(
        "shim per container (median over samples)",
        &["shim + runtime", "RSS MiB", "PSS MiB", "threads"],
        &rows,
    );
    for note in notes {
        report.say(&note);
    }
    let husk = figures.first().copied().flatten();
    report.target("husk shim RSS", husk.map(|m| m.rss_kb as f64 / 1024.0), 2.0, " MiB");
    report.target("husk shim threads", husk.map(|m| m.threads as f64), 2.0, "");
    drop(ctrd);
    reap_orphans();
}

/// The smaps text of one shim and its per-mapping totals.
type SmapsOf = (String, Vec<(String, smaps::Pages)>);

/// A shim's pages per mapping (a table), and its whole smaps in the results directory.
fn per_mapping(report: &mut Report, shim: &str, (text, groups): &SmapsOf) {
    let file: String = shim.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = report.dir().join(format!("smaps-{file}.txt"));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("husk-bench: failed to write {}: {e}", path.display());
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .take(12)
        .map(|(g, p)| {
            vec![
                g.clone(),
                p.rss_kb.to_string(),
                p.pss_kb.to_string(),
                p.private_dirty_kb.to_string(),
            ]
        })
        .collect();
    report.table(
        &format!(
            "{shim}: one shim's pages per mapping (largest 12; whole smaps in {})",
            path.display()
        ),
        &["mapping", "RSS kB", "PSS kB", "private dirty kB"],
        &rows,
    );
}

/// Start `samples` sleepers (all running at once, so PSS shares the shim's pages among
/// them as it would in production), read each new shim, remove them; the median.
fn measure_one_shim(
    ctrd: &Containerd,
    timer: &Timer,
    combo: &Combo,
    samples: usize,
    index: usize,
) -> Result<(Mem, String, Option<SmapsOf>), NotAvailable> {
    if let Some(e) = &combo.missing {
        return Err(e.clone());
    }
    let (addr, ns) = (ctrd.address(), ctrd.namespace());
    let before = shim_pids(addr, combo.shim);
    let ids: Vec<String> = (0..samples.max(1)).map(|s| format!("m{index}-{s}")).collect();
    let started: Result<(), NotAvailable> = ids.iter().try_for_each(|id| run_sleeper(ctrd, timer, combo, id));
    // Let the shims finish their start-up work (event publishing, output copiers).
    std::thread::sleep(Duration::from_millis(500));
    let pids: Vec<i32> = shim_pids(addr, combo.shim)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let names = pids.first().map(|p| thread_names(*p)).unwrap_or_default();
    let smaps = pids.first().and_then(|p| smaps::of_pid(*p));
    let seen: Vec<Mem> = pids.into_iter().filter_map(Mem::read).collect();
    for id in &ids {
        let _ = remove(addr, ns, timer, id);
    }
    started?;
    if seen.is_empty() {
        return Err(NotAvailable::Unexpected {
            what: format!("no new {} process found", combo.shim),
        });
    }
    let mid = |f: fn(&Mem) -> u64| {
        let mut v: Vec<u64> = seen.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mem = Mem {
        rss_kb: mid(|m| m.rss_kb),
        pss_kb: mid(|m| m.pss_kb),
        threads: mid(|m| m.threads),
    };
    Ok((mem, names, smaps))
}

/// "name×count, ..." of a process's threads (from /proc/PID/task/*/comm), to see which
/// parts of a shim keep a thread each.
fn thread_names(pid: i32) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        *counts.entry(comm.trim().to_string()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(n, c)| format!("{n}×{c}")).collect();
    parts.join(", ")
}
