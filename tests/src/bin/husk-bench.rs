//! husk-bench: times husk against runc and crun (and the husk shim against containerd's Go
//! shim), interleaving the contenders round by round so machine noise hits all alike.
//! Prints median / p95 / ratio tables and keeps every raw sample in a results directory.
//! Run it through `packaging/bench.sh`, which builds the release binaries first.

#[path = "husk_bench/cri_density.rs"]
mod cri_density;
#[path = "husk_bench/ctrd.rs"]
mod ctrd;
#[path = "husk_bench/density.rs"]
mod density;
#[path = "husk_bench/measure.rs"]
mod measure;
#[path = "husk_bench/probe.rs"]
mod probe;
#[path = "husk_bench/report.rs"]
mod report;
#[path = "husk_bench/runtime.rs"]
mod runtime;
#[path = "husk_bench/sizes.rs"]
mod sizes;
#[path = "husk_bench/smaps.rs"]
mod smaps;
#[path = "husk_bench/timeline.rs"]
mod timeline;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use measure::Timer;
use report::Report;

const USAGE: &str = "usage: husk-bench [SECTION...] [--runs N] [--ctr-runs N] [--warmup N] [--n N]
                  [--parallel N] [--shim-samples N] [--out DIR]
sections: runtime (run + create/start/delete/exec), run, lifecycle, containerd (ctr run --rm +
          ctr task exec), shim-memory, density, density-cri (the density sizes as pods of 5
          through CRI), sizes, timeline (one strace'd ctr run --rm per shim), all (default)
  --runs N          samples per contender for runtime sections (default 20)
  --ctr-runs N      samples per contender through containerd (default: --runs)
  --warmup N        unrecorded rounds first (default 2)
  --n N[,N...]      container counts for density and density-cri (default 10,50,100,200)
  --parallel N      concurrent `ctr run -d` in density, pods started at once in density-cri
                    (default 4)
  --shim-samples N  sleeping containers per shim for shim-memory (default 3)
  --out DIR         results directory (default <target>/bench-results/<unix time>)";

/// The command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub sections: Vec<String>,
    pub runs: usize,
    pub ctr_runs: usize,
    pub warmup: usize,
    /// Container counts for density, smallest first.
    pub n: Vec<usize>,
    pub parallel: usize,
    pub shim_samples: usize,
    pub out: PathBuf,
}

/// "10,50,100": positive counts, sorted.
fn counts(list: &str) -> Result<Vec<usize>, String> {
    let mut v = list
        .split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| format!("--n needs counts like 10,50,100, not {list:?}"))?;
    v.sort_unstable();
    Ok(v)
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let target = husk_e2e::target_dir();
    let default_out = target
        .parent()
        .unwrap_or(&target)
        .join("bench-results")
        .join(now.to_string());
    let mut o = Options {
        sections: Vec::new(),
        runs: 20,
        ctr_runs: 0,
        warmup: 2,
        n: vec![10, 50, 100, 200],
        parallel: 4,
        shim_samples: 3,
        out: default_out,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--runs" => o.runs = number(arg)?.max(1),
            "--ctr-runs" => o.ctr_runs = number(arg)?.max(1),
            "--warmup" => o.warmup = number(arg)?,
            "--n" => o.n = counts(it.next().map(String::as_str).unwrap_or_default())?,
            "--parallel" => o.parallel = number(arg)?.max(1),
            "--shim-samples" => o.shim_samples = number(arg)?.max(1),
            "--out" => o.out = it.next().map(PathBuf::from).ok_or("--out needs a directory")?,
            "-h" | "--help" => return Err(String::new()),
            s if !s.starts_with('-') => o.sections.push(s.to_string()),
            s => return Err(format!("unknown flag {s}")),
        }
    }
    if o.ctr_runs == 0 {
        o.ctr_runs = o.runs;
    }
    if o.sections.is_empty() {
        o.sections.push("all".into());
    }
    Ok(o)
}

/// The machine, so a table is never read without it.
fn machine(report: &mut Report, opts: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report.say("# husk-bench");
    report.say(&format!(
        "machine: {cpus} CPUs ({cpu}), kernel {}, load {}",
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    report.say(&format!(
        "command: husk-bench {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    report.say(&format!(
        "runs: {} per contender (containerd: {}), {} warm-up rounds, contenders interleaved and rotated each round",
        opts.runs, opts.ctr_runs, opts.warmup
    ));
    report.say(&format!("binaries: {}", husk_e2e::target_dir().display()));
    let attach = probe::cgroup_attach_ms();
    report.say(&format!(
        "cgroup attach (first write to cgroup.procs) min/median/max: {} — ≥ 5 ms means the write waited for an RCU grace period (the kernel's default), ~0.2 ms that it did not (see docs/performance.md)",
        attach
            .map(|(a, b, c)| format!("{a:.2}/{b:.2}/{c:.2} ms"))
            .unwrap_or_else(|| "n/a".into())
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("husk-bench: {msg}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("husk-bench: must run as root (containers, cgroups, containerd)");
        std::process::exit(2);
    }
    // Before any thread exists: unshare(CLONE_NEWNS) needs a single-threaded process.
    let field = measure::enter_fair_field();
    measure::become_subreaper();
    let mut report = Report::new(opts.out.clone());
    let timer = Timer::new(report.dir().join("stderr.txt"), Duration::from_secs(60));
    machine(&mut report, &opts);
    match field {
        Ok(note) => report.say(&format!("mount namespace: {note}")),
        Err(e) => report.say(&format!(
            "mount namespace: {e}; crun will refuse this hybrid host and show as n/a"
        )),
    }
    let wants = |s: &str| opts.sections.iter().any(|x| x == s || x == "all");
    let wants_runtime = |s: &str| wants(s) || opts.sections.iter().any(|x| x == "runtime");
    for s in &opts.sections {
        let known = [
            "all",
            "runtime",
            "run",
            "lifecycle",
            "containerd",
            "shim-memory",
            "density",
            "density-cri",
            "sizes",
            "timeline",
        ];
        if !known.contains(&s.as_str()) {
            eprintln!("husk-bench: unknown section {s}\n{USAGE}");
            std::process::exit(2);
        }
    }
    if wants_runtime("run") {
        runtime::bench_run(&opts, &mut report, &timer);
    }
    if wants_runtime("lifecycle") {
        runtime::bench_lifecycle(&opts, &mut report, &timer);
    }
    if wants("containerd") {
        ctrd::bench_ctr(&opts, &mut report, &timer);
    }
    if wants("shim-memory") {
        ctrd::bench_shim_memory(&opts, &mut report, &timer);
    }
    if wants("density") {
        density::bench_density(&opts, &mut report);
    }
    if wants("density-cri") {
        cri_density::bench_density_cri(&opts, &mut report);
    }
    if wants("sizes") {
        sizes::bench_sizes(&mut report);
    }
    if wants("timeline") {
        timeline::bench_timeline(&opts, &mut report, &timer);
    }
    report.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_run_everything_twenty_times() {
        let o = parse_args(&[]).expect("no arguments parse");
        assert_eq!(o.sections, ["all"]);
        assert_eq!((o.runs, o.ctr_runs, o.warmup), (20, 20, 2));
        assert_eq!(o.n, [10, 50, 100, 200]);
    }

    #[test]
    fn sections_and_flags_combine() {
        let o = parse_args(&args(&["density", "sizes", "--n", "20", "--runs", "5"])).expect("valid");
        assert_eq!(o.sections, ["density", "sizes"]);
        assert_eq!((o.n.as_slice(), o.runs, o.ctr_runs), (&[20][..], 5, 5));
        let o = parse_args(&args(&["density", "--n", "50,10"])).expect("valid");
        assert_eq!(o.n, [10, 50]);
        assert!(parse_args(&args(&["--n", "10,x"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
    }
}
