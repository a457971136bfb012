//! Section 6: N sleeping containers through containerd per shim: time until all run, the
//! shims' total memory, then remove them all and check that nothing is left behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use husk_e2e::Containerd;

use crate::ctrd::{combos, remove, run_sleeper, shim_pids, start_containerd, Combo, Mem};
use crate::measure::{reap_orphans, NotAvailable, Timer};
use crate::report::Report;
use crate::Options;

/// What one shim's density run found.
struct Outcome {
    start: Duration,
    running: usize,
    shims: usize,
    mem: Mem,
    remove: Duration,
    leftovers: Vec<String>,
}

/// Run `job(i)` for i in 0..n on `parallel` threads; the first error, if any.
fn in_parallel(
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
    let mut left = find();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        reap_orphans();
        left = find();
    }
    left
}

fn density_one(ctrd: &Containerd, combo: &Combo, opts: &Options, scratch: &Path) -> Result<Outcome, NotAvailable> {
    if let Some(e) = &combo.missing {
        return Err(e.clone());
    }
    let tag: String = combo.name.chars().take(1).collect();
    let ids: Vec<String> = (0..opts.n).map(|i| format!("d{tag}{i}")).collect();
    let began = Instant::now();
    let started = in_parallel(
        opts.n,
        opts.parallel,
        |i, timer| run_sleeper(ctrd, timer, combo, &ids[i]),
        scratch,
    );
    let start = began.elapsed();
    let running = running_tasks(ctrd);
    std::thread::sleep(Duration::from_millis(500));
    let pids = shim_pids(ctrd.address(), combo.shim);
    let mem = pids.iter().filter_map(|p| Mem::read(*p)).fold(Mem::default(), Mem::add);
    let (addr, ns): (PathBuf, String) = (ctrd.address().to_path_buf(), ctrd.namespace().to_string());
    let began = Instant::now();
    let removed = in_parallel(
        opts.n,
        opts.parallel,
        |i, timer| remove(&addr, &ns, timer, &ids[i]),
        scratch,
    );
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
        shims: pids.len(),
        mem,
        remove: remove_time,
        leftovers: left,
    })
}

/// Section 6 for husk shim + husk and Go shim + runc, one after the other.
pub fn bench_density(opts: &Options, report: &mut Report) {
    report.say(&format!(
        "\n## 6. density: {} sleeping containers via `ctr run -d` ({} in parallel)",
        opts.n, opts.parallel
    ));
    let ctrd = start_containerd();
    let scratch = ctrd.dir().to_path_buf();
    let list: Vec<Combo> = combos(ctrd.dir()).into_iter().take(2).collect();
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for combo in &list {
        let outcome = density_one(&ctrd, combo, opts, &scratch);
        match outcome {
            Ok(o) => {
                let mib = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
                report.raw("density", "start_all_s", combo.name, 0, o.start.as_secs_f64(), "s");
                report.raw("density", "shim_rss_kb", combo.name, 0, o.mem.rss_kb as f64, "kB");
                report.raw("density", "shim_pss_kb", combo.name, 0, o.mem.pss_kb as f64, "kB");
                rows.push(vec![
                    combo.name.to_string(),
                    format!("{:.2}", o.start.as_secs_f64()),
                    format!("{}/{}", o.running, opts.n),
                    o.shims.to_string(),
                    mib(o.mem.rss_kb),
                    mib(o.mem.pss_kb),
                    o.mem.threads.to_string(),
                    format!("{:.2}", o.remove.as_secs_f64()),
                    if o.leftovers.is_empty() {
                        "none".into()
                    } else {
                        o.leftovers.join(", ")
                    },
                ]);
                totals.push(Some(o.mem));
            }
            Err(e) => {
                let mut row = vec![combo.name.to_string(), format!("n/a: {e}")];
                row.resize(9, String::new());
                rows.push(row);
                totals.push(None);
            }
        }
    }
    let header = [
        "shim + runtime",
        "start all s",
        "running",
        "shims",
        "shim RSS MiB",
        "shim PSS MiB",
        "threads",
        "remove all s",
        "left behind",
    ];
    report.table(&format!("density, N = {}", opts.n), &header, &rows);
    let ratio = |f: fn(&Mem) -> u64| match (totals.first().copied().flatten(), totals.get(1).copied().flatten()) {
        (Some(h), Some(g)) if f(&g) > 0 => Some(f(&h) as f64 / f(&g) as f64),
        _ => None,
    };
    report.target("husk shims' total RSS / Go shims'", ratio(|m| m.rss_kb), 0.15, "×");
    report.target("husk shims' total PSS / Go shims'", ratio(|m| m.pss_kb), 0.15, "×");
    drop(ctrd);
    reap_orphans();
}
