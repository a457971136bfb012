//! Section 6: N sleeping containers through containerd per shim: time until all run, the
//! shims' total memory, then remove them all and check that nothing is left behind.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use husk_e2e::Containerd;

use crate::ctrd::{combos, remove, run_sleeper, shim_pids, start_containerd, Combo, Mem};
use crate::measure::{load_line, reap_orphans, NotAvailable, Timer};
use crate::report::Report;
use crate::Options;

/// What one shim's density run found.
pub struct Outcome {
    pub start: Duration,
    pub running: usize,
    pub shims: usize,
    pub mem: Mem,
    /// containerd's own RSS before the first container and with all of them running.
    pub containerd_idle: Mem,
    pub containerd_busy: Mem,
    pub remove: Duration,
    pub leftovers: Vec<String>,
}

/// Run `job(i)` for i in 0..n on `parallel` threads; the first error, if any.
pub fn in_parallel(
    n: usize,
    parallel: usize,
    job: impl Fn(usize, &Timer) -> Result<(), NotAvailable> + Sync,
    scratch: &Path,
) -> Result<(), NotAvailable> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<NotAvailable>> = Mutex::new(None);
    std::thread::scope(|s| {
        for t in 0..parallel.max(1) {
            let timer = Timer::new(scratch.join(format!("stderr-{t}")), Duration::from_secs(120));
            let (next, first_error, job) = (&next, &first_error, &job);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                if let Err(e) = job(i, &timer) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn running_tasks(ctrd: &Containerd) -> usize {
    let out = ctrd.ctr(&["task", "ls"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("RUNNING"))
        .count()
}

/// What is left of the containers `ids` after removal: tasks, containers, shims, cgroups,
/// mounts. Given 10 s to settle (shims exit after their last task is deleted).
fn leftovers(ctrd: &Containerd, combo: &Combo, ids: &[String]) -> Vec<String> {
    let ns = ctrd.namespace().to_string();
    let find = || {
        let mut left = Vec::new();
        let tasks = ctrd.ctr(&["task", "ls", "-q"]);
        let containers = ctrd.ctr(&["container", "ls", "-q"]);
        for (what, out) in [("tasks", tasks), ("containers", containers)] {
            let n = String::from_utf8_lossy(&out.stdout).lines().count();
            if n > 0 {
                left.push(format!("{n} {what}"));
            }
        }
        let shims = shim_pids(ctrd.address(), combo.shim).len();
        if shims > 0 {
            left.push(format!("{shims} shim processes"));
        }
        let cgroups: usize = ids
            .iter()
            .map(|id| husk_e2e::cgroup_dirs(&format!("/{ns}/{id}")).len())
            .sum();
        if cgroups > 0 {
            left.push(format!("{cgroups} cgroup dirs"));
        }
        let mounts = husk_e2e::mounts_under(&ctrd.state()).len();
        if mounts > 0 {
            left.push(format!("{mounts} mounts under the state dir"));
        }
        left
    };
    until_settled(find)
}

/// `find()` until it finds nothing, for at most 10 s (shims exit after their last task is
/// deleted, cgroups go once their processes are reaped); what it found last.
pub fn until_settled(find: impl Fn() -> Vec<String>) -> Vec<String> {
    let mut left = find();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        reap_orphans();
        left = find();
    }
    left
}

/// Once all containers run: the number of `shim` processes, their summed memory, and
/// containerd's, after 500 ms for the shims to finish their start-up work (event
/// publishing, output copiers).
pub fn memory_with_all_running(ctrd: &Containerd, shim: &str) -> (usize, Mem, Mem) {
    std::thread::sleep(Duration::from_millis(500));
    let pids = shim_pids(ctrd.address(), shim);
    let mem = pids.iter().filter_map(|p| Mem::read(*p)).fold(Mem::default(), Mem::add);
    let containerd = Mem::read(ctrd.pid() as i32).unwrap_or_default();
    (pids.len(), mem, containerd)
}

fn density_one(ctrd: &Containerd, combo: &Combo, n: usize, opts: &Options) -> Result<Outcome, NotAvailable> {
    if let Some(e) = &combo.missing {
        return Err(e.clone());
    }
    let scratch = ctrd.dir();
    let containerd_mem = || Mem::read(ctrd.pid() as i32).unwrap_or_default();
    let containerd_idle = containerd_mem();
    let tag: String = combo.name.chars().take(1).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("d{tag}{i}")).collect();
    let began = Instant::now();
    let started = in_parallel(
        n,
        opts.parallel,
        |i, timer| run_sleeper(ctrd, timer, combo, &ids[i]),
        scratch,
    );
    let start = began.elapsed();
    let running = running_tasks(ctrd);
    let (shims, mem, containerd_busy) = memory_with_all_running(ctrd, combo.shim);
    let (addr, ns): (PathBuf, String) = (ctrd.address().to_path_buf(), ctrd.namespace().to_string());
    let began = Instant::now();
    let removed = in_parallel(n, opts.parallel, |i, timer| remove(&addr, &ns, timer, &ids[i]), scratch);
    let remove_time = began.elapsed();
    reap_orphans();
    let left = leftovers(ctrd, combo, &ids);
    started?;
    if let Err(e) = removed {
        eprintln!("husk-bench: density removal: {e}");
    }
    Ok(Outcome {
        start,
        running,
        shims,
        mem,
        containerd_idle,
        containerd_busy,
        remove: remove_time,
        leftovers: left,
    })
}

const HEADER: [&str; 10] = [
    "shim + runtime",
    "start all s",
    "running",
    "shims",
    "shim RSS MiB",
    "shim PSS MiB",
    "threads",
    "containerd RSS MiB (idle → all running)",
    "remove all s",
    "left behind",
];

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

/// One table row, the raw.csv lines (of `section`) and a CSV line for the plot.
fn record(report: &mut Report, section: &str, csv: &mut String, combo: &str, n: usize, o: &Outcome) -> Vec<String> {
    let figures = [
        ("start_all_s", o.start.as_secs_f64(), "s"),
        ("remove_all_s", o.remove.as_secs_f64(), "s"),
        ("shim_rss_kb", o.mem.rss_kb as f64, "kB"),
        ("shim_pss_kb", o.mem.pss_kb as f64, "kB"),
        ("containerd_rss_kb", o.containerd_busy.rss_kb as f64, "kB"),
    ];
    for (what, v, unit) in figures {
        report.raw(section, &format!("{what} N={n}"), combo, 0, v, unit);
    }
    let _ = writeln!(
        csv,
        "{n},\"{combo}\",{:.3},{:.3},{:.2},{:.2},{:.2},{}",
        o.start.as_secs_f64(),
        o.remove.as_secs_f64(),
        o.mem.rss_kb as f64 / 1024.0,
        o.mem.pss_kb as f64 / 1024.0,
        o.containerd_busy.rss_kb as f64 / 1024.0,
        o.mem.threads
    );
    vec![
        combo.to_string(),
        format!("{:.2}", o.start.as_secs_f64()),
        format!("{}/{n}", o.running),
        o.shims.to_string(),
        mib(o.mem.rss_kb),
        mib(o.mem.pss_kb),
        o.mem.threads.to_string(),
        format!("{} → {}", mib(o.containerd_idle.rss_kb), mib(o.containerd_busy.rss_kb)),
        format!("{:.2}", o.remove.as_secs_f64()),
        if o.leftovers.is_empty() {
            "none".into()
        } else {
            o.leftovers.join(", ")
        },
    ]
}

/// Section 6: for each N, husk shim + husk and Go shim + runc (alternating which goes
/// first), each in a fresh private containerd so neither inherits the other's heap.
pub fn bench_density(opts: &Options, report: &mut Report) {
    let title = format!(
        "\n## 6. density: N sleeping containers via `ctr run -d` ({} in parallel), N = {:?}",
        opts.parallel, opts.n
    );
    sizes_side_by_side(opts, report, ("density", &title), |j, n| {
        let ctrd = start_containerd();
        let combo = &combos(ctrd.dir())[j];
        let outcome = density_one(&ctrd, combo, n, opts);
        drop(ctrd);
        reap_orphans();
        (combo.name, outcome)
    });
}

/// For each N of `--n`: `one(j, n)` for j = 0 (husk shim + husk) and 1 (Go shim + runc),
/// alternating which goes first, as one table per N, targets on the shims' memory, and
/// `<section>.csv` (the columns plot-density.sh reads).
pub fn sizes_side_by_side(
    opts: &Options,
    report: &mut Report,
    (section, title): (&str, &str),
    mut one: impl FnMut(usize, usize) -> (&'static str, Result<Outcome, NotAvailable>),
) {
    report.say(title);
    let mut csv =
        String::from("n,combo,start_all_s,remove_all_s,shim_rss_mib,shim_pss_mib,containerd_rss_mib,threads\n");
    for (k, &n) in opts.n.iter().enumerate() {
        report.say(&format!("load before N = {n}: {}", load_line()));
        let mut rows = vec![Vec::new(), Vec::new()];
        let mut totals = [None, None];
        for j in [k % 2, 1 - k % 2] {
            let (name, outcome) = one(j, n);
            rows[j] = match outcome {
                Ok(o) => {
                    totals[j] = Some(o.mem);
                    record(report, section, &mut csv, name, n, &o)
                }
                Err(e) => {
                    let mut row = vec![name.to_string(), format!("n/a: {e}")];
                    row.resize(HEADER.len(), String::new());
                    row
                }
            };
        }
        report.table(&format!("{section}, N = {n}"), &HEADER, &rows);
        let ratio = |f: fn(&Mem) -> u64| match totals {
            [Some(h), Some(g)] if f(&g) > 0 => Some(f(&h) as f64 / f(&g) as f64),
            _ => None,
        };
        report.target("husk shims' total RSS / Go shims'", ratio(|m| m.rss_kb), 0.15, "×");
        report.target("husk shims' total PSS / Go shims'", ratio(|m| m.pss_kb), 0.15, "×");
    }
    let path = report.dir().join(format!("{section}.csv"));
    if let Err(e) = std::fs::write(&path, csv) {
        eprintln!("husk-bench: failed to write {}: {e}", path.display());
    }
}
