//! husk's command line: parse, call the library, print. No container logic here.

pub mod args;

use crate::container::{self, create::CreateOptions, Global};
use crate::error::{Error, Result};
use crate::logging::LogTarget;
use args::{parse, switch, value, FlagSpec, Parsed};
use std::path::PathBuf;

const GLOBAL_FLAGS: &[FlagSpec] = &[
    value(&["root"]),
    value(&["log"]),
    value(&["log-format"]),
    value(&["criu"]),
    value(&["rootless"]),
    switch(&["debug"]),
    switch(&["trace"]),
    switch(&["systemd-cgroup"]),
    switch(&["version", "v"]),
    switch(&["help", "h"]),
];

const CREATE_FLAGS: &[FlagSpec] = &[
    value(&["bundle", "b"]),
    value(&["pid-file"]),
    value(&["console-socket"]),
    value(&["preserve-fds"]),
    switch(&["no-pivot"]),
    switch(&["no-new-keyring"]),
    switch(&["detach", "d"]),
    switch(&["keep"]),
    switch(&["no-subreaper"]),
];

const USAGE: &str = "usage: husk [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--trace] COMMAND [ARGS]
commands: create, start, run, exec, update, events, state, kill, delete, list, pause, resume, ps, spec, features";

/// Runs the command line and returns the process's exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let mut log = LogTarget::default();
    match dispatch(&argv, &mut log) {
        Ok(code) => code,
        Err(e) => {
            log.error(&e.to_string());
            1
        }
    }
}

fn dispatch(argv: &[String], log: &mut LogTarget) -> Result<i32> {
    let global_args = parse(argv, GLOBAL_FLAGS, true)?;
    log.file = global_args.get("log").map(PathBuf::from);
    log.json = global_args.get("log-format") == Some("json");
    if global_args.has("version") {
        println!(
            "husk version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            crate::state::OCI_VERSION
        );
        return Ok(0);
    }
    let trace = global_args.has("trace") || std::env::var_os("HUSK_TRACE").is_some_and(|v| v == "1");
    let global = Global {
        root: PathBuf::from(global_args.get("root").unwrap_or("/run/husk")),
        trace,
        systemd_cgroup: global_args.has("systemd-cgroup"),
    };
    let Some((command, rest)) = global_args.positional.split_first() else {
        return Err(Error::Usage(USAGE.to_string()));
    };
    match command.as_str() {
        "create" => cmd_create(&global, rest),
        "start" => one_id(rest, &[])
            .and_then(|(id, _)| container::start::start(&global, &id))
            .map(|_| 0),
        "run" => cmd_run(&global, rest),
        "state" => cmd_state(&global, rest),
        "kill" => cmd_kill(&global, rest),
        "delete" => cmd_delete(&global, rest),
        "list" => cmd_list(&global, rest),
        "exec" => cmd_exec(&global, rest),
        "update" => cmd_update(&global, rest),
        "events" => cmd_events(&global, rest),
        "pause" => one_id(rest, &[])
            .and_then(|(id, _)| container::pause::pause(&global, &id))
            .map(|_| 0),
        "resume" => one_id(rest, &[])
            .and_then(|(id, _)| container::pause::resume(&global, &id))
            .map(|_| 0),
        "ps" => cmd_ps(&global, rest),
        "spec" => cmd_spec(rest),
        "features" => {
            println!("{}", container::features::features_json());
            Ok(0)
        }
        "version" => dispatch(&["--version".to_string()], log),
        "help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

/// Parse a command taking exactly one container id plus `flags`.
fn one_id(rest: &[String], flags: &[FlagSpec]) -> Result<(String, Parsed)> {
    let parsed = parse(rest, flags, false)?;
    match parsed.positional.as_slice() {
        [id] => Ok((id.clone(), parsed)),
        [] => Err(Error::Usage("a container id is required".into())),
        _ => Err(Error::Usage(format!(
            "expected one container id, got {:?}",
            parsed.positional
        ))),
    }
}

fn create_options(parsed: &Parsed) -> Result<CreateOptions> {
    let preserve_fds = match parsed.get("preserve-fds") {
        Some(n) => n
            .parse()
            .map_err(|_| Error::Usage(format!("--preserve-fds: {n:?} is not a number")))?,
        None => 0,
    };
    Ok(CreateOptions {
        bundle: PathBuf::from(parsed.get("bundle").unwrap_or(".")),
        pid_file: parsed.get("pid-file").map(PathBuf::from),
        console_socket: parsed.get("console-socket").map(PathBuf::from),
        no_pivot: parsed.has("no-pivot"),
        no_new_keyring: parsed.has("no-new-keyring"),
        preserve_fds,
    })
}

fn cmd_create(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, parsed) = one_id(rest, CREATE_FLAGS)?;
    container::create::create(global, &id, &create_options(&parsed)?, true)?;
    Ok(0)
}

fn cmd_run(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, parsed) = one_id(rest, CREATE_FLAGS)?;
    container::run::run(global, &id, &create_options(&parsed)?, parsed.has("detach"))
}

const EXEC_FLAGS: &[FlagSpec] = &[
    value(&["process", "p"]),
    value(&["console-socket"]),
    value(&["pid-file"]),
    value(&["cwd"]),
    value(&["env", "e"]),
    value(&["user", "u"]),
    value(&["additional-gids", "g"]),
    value(&["cap", "c"]),
    value(&["preserve-fds"]),
    value(&["process-label"]),
    value(&["apparmor"]),
    value(&["cgroup"]),
    switch(&["tty", "t"]),
    switch(&["detach", "d"]),
    switch(&["no-new-privs"]),
    switch(&["ignore-paused"]),
];

/// runc's form: flags, then the id, then the command and its own arguments untouched.
fn cmd_exec(global: &Global, rest: &[String]) -> Result<i32> {
    let parsed = parse(rest, EXEC_FLAGS, true)?;
    let Some((id, command)) = parsed.positional.split_first() else {
        return Err(Error::Usage("usage: husk exec [flags] ID [COMMAND [ARG...]]".into()));
    };
    if parsed.get("apparmor").is_some() || parsed.get("process-label").is_some() {
        return Err(Error::Unsupported("exec --apparmor / --process-label on this host"));
    }
    let number = |name: &str, text: &str| -> Result<u32> {
        text.parse()
            .map_err(|_| Error::Usage(format!("--{name}: {text:?} is not a number")))
    };
    let opts = container::exec::ExecOptions {
        process_file: parsed.get("process").map(PathBuf::from),
        args: command.to_vec(),
        tty: parsed.has("tty"),
        console_socket: parsed.get("console-socket").map(PathBuf::from),
        detach: parsed.has("detach"),
        pid_file: parsed.get("pid-file").map(PathBuf::from),
        cwd: parsed.get("cwd").map(PathBuf::from),
        env: parsed.all("env").to_vec(),
        user: parsed.get("user").map(str::to_string),
        additional_gids: parsed
            .all("additional-gids")
            .iter()
            .map(|g| number("additional-gids", g))
            .collect::<Result<_>>()?,
        caps: parsed.all("cap").to_vec(),
        no_new_privs: parsed.has("no-new-privs"),
        preserve_fds: parsed
            .get("preserve-fds")
            .map(|n| number("preserve-fds", n))
            .transpose()?
            .unwrap_or(0) as i32,
    };
    container::exec::exec(global, id, &opts)
}

fn cmd_update(global: &Global, rest: &[String]) -> Result<i32> {
    let mut specs: Vec<FlagSpec> = container::update::FLAG_PATHS
        .iter()
        .map(|(name, _, _)| value(std::slice::from_ref(name)))
        .collect();
    specs.push(value(&["resources", "r"]));
    specs.push(value(&["kernel-memory"]));
    specs.push(value(&["kernel-memory-tcp"]));
    let (id, parsed) = one_id(rest, &specs)?;
    let file_text = match parsed.get("resources") {
        Some("-") => {
            Some(std::io::read_to_string(std::io::stdin()).map_err(|e| Error::Usage(format!("--resources -: {e}")))?)
        }
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("--resources {path}: {e}")))?)
        }
        None => None,
    };
    let flags: Vec<(&str, &str)> = container::update::FLAG_PATHS
        .iter()
        .filter_map(|(name, _, _)| parsed.get(name).map(|v| (*name, v)))
        .collect();
    let resources = container::update::resources_from(file_text.as_deref(), &flags)?;
    container::update::update(global, &id, &resources)?;
    Ok(0)
}

fn cmd_events(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, parsed) = one_id(rest, &[switch(&["stats"]), value(&["interval"])])?;
    let interval = parsed.get("interval").unwrap_or("5s");
    let interval = container::events::parse_interval(interval)
        .ok_or_else(|| Error::Usage(format!("--interval: {interval:?} is not a duration like 5s")))?;
    container::events::events(global, &id, interval, parsed.has("stats"))?;
    Ok(0)
}

fn cmd_state(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, _) = one_id(rest, &[])?;
    let state = container::state::state(global, &id)?;
    println!("{}", serde_json::to_string_pretty(&state).unwrap_or_default());
    Ok(0)
}

fn cmd_kill(global: &Global, rest: &[String]) -> Result<i32> {
    let parsed = parse(rest, &[switch(&["all", "a"])], false)?;
    let (id, signal) = match parsed.positional.as_slice() {
        [id] => (id, "SIGTERM"),
        [id, signal] => (id, signal.as_str()),
        _ => return Err(Error::Usage("usage: husk kill ID [SIGNAL] [--all]".into())),
    };
    container::kill::kill(global, id, signal, parsed.has("all"))?;
    Ok(0)
}

fn cmd_delete(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, parsed) = one_id(rest, &[switch(&["force", "f"])])?;
    container::delete::delete(global, &id, parsed.has("force"))?;
    Ok(0)
}

fn cmd_list(global: &Global, rest: &[String]) -> Result<i32> {
    let parsed = parse(rest, &[value(&["format", "f"]), switch(&["quiet", "q"])], false)?;
    let states = container::list::list(global)?;
    if parsed.has("quiet") {
        states.iter().for_each(|s| println!("{}", s.id));
    } else if parsed.get("format") == Some("json") {
        println!("{}", serde_json::to_string(&states).unwrap_or_default());
    } else {
        print!("{}", container::list::render_table(&states));
    }
    Ok(0)
}

fn cmd_ps(global: &Global, rest: &[String]) -> Result<i32> {
    let (id, parsed) = one_id(rest, &[value(&["format", "f"])])?;
    let pids = container::pause::pids(global, &id)?;
    if parsed.get("format") == Some("json") {
        println!("{}", serde_json::to_string(&pids).unwrap_or_default());
    } else {
        let out = std::process::Command::new("ps")
            .arg("-o")
            .arg("uid,pid,ppid,c,stime,tty,time,cmd")
            .arg("-p")
            .arg(pids.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
            .output();
        match out {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(_) => pids.iter().for_each(|p| println!("{p}")),
        }
    }
    Ok(0)
}

fn cmd_spec(rest: &[String]) -> Result<i32> {
    let parsed = parse(rest, &[value(&["bundle", "b"]), switch(&["rootless"])], false)?;
    if parsed.has("rootless") {
        return Err(Error::Unsupported("spec --rootless"));
    }
    container::spec::write_spec(&PathBuf::from(parsed.get("bundle").unwrap_or(".")))?;
    Ok(0)
}
