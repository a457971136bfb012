//! Section 8: where one `ctr run --rm busybox true` spends its time, for husk shim + husk
//! and Go shim + runc. containerd (and so every shim and runtime it starts) is traced with
//! `strace -f --seccomp-bpf` for execve and process exits only, so the traced processes
//! stop at those syscalls alone; the events are printed relative to ctr's spawn.
//! strace adds a little to each exec and exit; both paths pay it alike.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use husk_e2e::BUSYBOX_REF;

use crate::ctrd::{combos, ctr, start_containerd};
use crate::measure::{load_line, reap_orphans, Timer};
use crate::report::Report;
use crate::Options;

/// One line of the trace that matters: a program starting, or a traced process ending.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: f64,
    pub pid: u32,
    pub what: String,
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The program's name and its arguments, without flags and their values where they are
/// long (paths, addresses), e.g. `runc create` or `containerd-shim-husk-v2 start`.
fn short_argv(args: &str) -> String {
    // A string strace shortened ends in `"...`; drop the dots so the split below holds.
    let args = args.replace("\"...", "\"");
    let words: Vec<&str> = args
        .split("\", \"")
        .map(|w| w.trim_matches(|c| c == '[' || c == ']' || c == '"'))
        .collect();
    let name = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)).unwrap_or("");
    let verbs = ["create", "start", "delete", "init", "kill", "state", "exec", "run"];
    let verb = words.iter().skip(1).find(|w| verbs.contains(w) || **w == "true");
    match verb {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    }
}

/// Parse `strace -f -ttt` output: execve of a program (successful ones) and the exits of
/// processes that exec'd something we saw, since Go's threads would flood the list.
pub fn parse(trace: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut pending: HashMap<u32, String> = HashMap::new();
    for line in trace.lines() {
        // "PID  SECONDS.MICROS rest": strace pads the pid with a varying number of spaces.
        let Some((pid, line)) = line.split_once(' ') else {
            continue;
        };
        let Some((at, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let (Ok(pid), Ok(at)) = (pid.parse::<u32>(), at.parse::<f64>()) else {
            continue;
        };
        // With several threads traced, strace splits a call into "execve(... <unfinished
        // ...>" and "<... execve resumed>) = 0" lines.
        let done = if let Some(args) = rest.strip_prefix("execve(") {
            let argv = args.split_once(", [").map(|(_, a)| a).unwrap_or("");
            pending.insert(pid, short_argv(argv.split("], ").next().unwrap_or("")));
            rest.ends_with("= 0")
        } else {
            rest.starts_with("<... execve resumed>") && rest.ends_with("= 0")
        };
        if done {
            if let Some(what) = pending.remove(&pid) {
                names.insert(pid, what.clone());
                events.push(Event {
                    at,
                    pid,
                    what: format!("exec {what}"),
                });
            }
        } else if rest.starts_with("+++ exited") || rest.starts_with("+++ killed") {
            if let Some(name) = names.get(&pid) {
                let how = rest.trim_start_matches("+++ ").trim_end_matches(" +++");
                events.push(Event {
                    at,
                    pid,
                    what: format!("{name}: {how}"),
                });
            }
        }
    }
    events
}

fn start_strace(pid: u32, out: &Path) -> Option<Child> {
    let child = Command::new("strace")
        .args([
            "-f",
            "--seccomp-bpf",
            "-ttt",
            "-q",
            "-e",
            "trace=execve",
            "-s",
            "64",
            "-o",
        ])
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // strace has attached once the traced process shows a TracerPid.
    for _ in 0..100 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("TracerPid:") && !l.ends_with("\t0"))
        {
            std::thread::sleep(Duration::from_millis(200));
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

fn stop(mut child: Child) {
    // SAFETY: kill with a pid we spawned and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
}

/// Section 8: one traced `ctr run --rm` per shim, after one untraced warm-up run.
pub fn bench_timeline(opts: &Options, report: &mut Report, timer: &Timer) {
    report.say("\n## 8. timeline of one `ctr run --rm busybox true` (strace of containerd, execve and exits)");
    report.say(&format!("load: {}", load_line()));
    let ctrd = start_containerd();
    let (addr, ns) = (ctrd.address().to_path_buf(), ctrd.namespace().to_string());
    for (j, combo) in combos(ctrd.dir()).into_iter().take(2).enumerate() {
        if let Some(e) = &combo.missing {
            report.say(&format!("{}: n/a: {e}", combo.name));
            continue;
        }
        let run = |id: &str| {
            let mut args: Vec<&str> = vec!["run", "--rm"];
            args.extend(combo.args.iter().map(String::as_str));
            args.extend([BUSYBOX_REF, id, "true"]);
            timer.time(&mut ctr(&addr, &ns, &args))
        };
        for w in 0..opts.warmup.max(1) {
            let _ = run(&format!("tw{j}-{w}"));
        }
        let out = ctrd.dir().join(format!("timeline-{j}.strace"));
        let Some(strace) = start_strace(ctrd.pid(), &out) else {
            report.say(&format!("{}: n/a: strace did not start", combo.name));
            continue;
        };
        let t0 = epoch();
        let sample = run(&format!("tl{j}"));
        let t1 = epoch();
        stop(strace);
        reap_orphans();
        let trace = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::copy(&out, report.dir().join(format!("timeline-{j}.strace")));
        let rows: Vec<Vec<String>> = parse(&trace)
            .into_iter()
            .map(|e| vec![format!("{:.1}", (e.at - t0) * 1e3), e.pid.to_string(), e.what])
            .chain(std::iter::once(vec![
                format!("{:.1}", (t1 - t0) * 1e3),
                String::new(),
                format!(
                    "ctr exits ({})",
                    sample.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())
                ),
            ]))
            .collect();
        report.table(
            &format!("{}: ms after ctr was spawned", combo.name),
            &["ms", "pid", "event"],
            &rows,
        );
    }
    drop(ctrd);
    reap_orphans();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_execs_and_their_exits() {
        let trace = r#"100  1000.000100 execve("/usr/sbin/runc", ["runc", "--root", "/run/x"..., "create", "--bundle", "/b", "id"], 0x1 /* 9 vars */) = 0
103 1000.000150 execve("/bin/true", ["true"], 0x2 /* 1 var */ <unfinished ...>
101 1000.000200 +++ exited with 0 +++
103 1000.000300 <... execve resumed>) = 0
100 1000.002000 +++ exited with 0 +++
102 1000.003000 execve("/bin/true", ["true"], 0x2 /* 1 var */) = -1 ENOENT (No such file or directory)
"#;
        let events = parse(trace);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].what, "exec runc create");
        assert_eq!((events[1].pid, events[1].what.as_str()), (103, "exec true"));
        assert_eq!(events[1].at, 1000.0003);
        assert_eq!(events[2].what, "runc create: exited with 0");
        assert_eq!(events[2].pid, 100);
    }
}
