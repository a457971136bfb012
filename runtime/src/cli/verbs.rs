//! One function per command: read its flags, call the library, print what runc prints.

use super::args::{parse, Parsed};
use super::table::Command;
use crate::container::{self, create::CreateOptions, Global};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Parse `rest` against `cmd`'s flags and run it; `--help` anywhere a flag may stand prints the
/// command's help instead.
pub fn run(cmd: &Command, global: &Global, rest: &[String]) -> Result<i32> {
    // exec and ps: everything after the id belongs to the command run (runc's SkipArgReorder).
    let stop_at_id = matches!(cmd.name, "exec" | "ps");
    let parsed = parse(rest, cmd.flags, stop_at_id)?;
    if parsed.help {
        println!("{}", super::help::command_help(cmd));
        return Ok(0);
    }
    match cmd.name {
        "create" => cmd_create(global, &parsed),
        "start" => container::start::start(global, one_id(&parsed, "start")?).map(|_| 0),
        "run" => cmd_run(global, &parsed),
        "state" => cmd_state(global, &parsed),
        "kill" => cmd_kill(global, &parsed),
        "delete" => container::delete::delete(global, one_id(&parsed, "delete")?, parsed.has("force")).map(|_| 0),
        "list" => cmd_list(global, &parsed),
        "exec" => cmd_exec(global, &parsed),
        "update" => cmd_update(global, &parsed),
        "events" => cmd_events(global, &parsed),
        "pause" => container::pause::pause(global, one_id(&parsed, "pause")?).map(|_| 0),
        "resume" => container::pause::resume(global, one_id(&parsed, "resume")?).map(|_| 0),
        "ps" => cmd_ps(global, &parsed),
        "spec" => cmd_spec(&parsed),
        "doctor" => super::doctor::cmd_doctor(&parsed),
        "features" => {
            println!("{}", container::features::features_json());
            Ok(0)
        }
        other => Err(Error::Usage(format!("No help topic for '{other}'"))),
    }
}

/// The single container id a command takes; runc's wording when it is missing or repeated.
fn one_id<'a>(parsed: &'a Parsed, command: &str) -> Result<&'a str> {
    match parsed.positional.as_slice() {
        [id] => Ok(id),
        _ => Err(Error::Usage(format!("\"{command}\" requires exactly 1 argument(s)"))),
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

fn cmd_create(global: &Global, parsed: &Parsed) -> Result<i32> {
    let id = one_id(parsed, "create")?;
    container::create::create(global, id, &create_options(parsed)?, true)?;
    Ok(0)
}

fn cmd_run(global: &Global, parsed: &Parsed) -> Result<i32> {
    let id = one_id(parsed, "run")?;
    let mode = container::run::RunMode {
        detach: parsed.has("detach"),
        keep: parsed.has("keep"),
    };
    container::run::run(global, id, &create_options(parsed)?, mode)
}

/// runc's form: flags, then the id, then the command and its own arguments untouched.
fn cmd_exec(global: &Global, parsed: &Parsed) -> Result<i32> {
    let Some((id, command)) = parsed.positional.split_first() else {
        return Err(Error::Usage("\"exec\" requires a minimum of 1 argument(s)".into()));
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
        ignore_paused: parsed.has("ignore-paused"),
        sub_cgroups: parsed.all("cgroup").to_vec(),
    };
    container::exec::exec(global, id, &opts)
}

fn cmd_update(global: &Global, parsed: &Parsed) -> Result<i32> {
    let id = one_id(parsed, "update")?;
    let resources = match parsed.get("resources") {
        // runc: with --resources, every other option is ignored.
        Some(source) => container::update::resources_from_json(&read_resources(source)?)?,
        None => {
            for obsolete in ["kernel-memory", "kernel-memory-tcp"] {
                if parsed.get(obsolete).is_some() {
                    log::warn!("Setting --{obsolete} is ignored and will be removed");
                }
            }
            container::update::check_rdt_flags(parsed.get("l3-cache-schema"), parsed.get("mem-bw-schema"))?;
            let flags: Vec<(&str, &str)> = container::update::FLAGS
                .iter()
                .filter_map(|flag| parsed.get(flag.name).map(|v| (flag.name, v)))
                .collect();
            container::update::resources_from_flags(&flags)?
        }
    };
    container::update::update(global, id, &resources)?;
    Ok(0)
}

fn read_resources(source: &str) -> Result<String> {
    let text = if source == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(source)
    };
    text.map_err(|e| Error::Usage(format!("--resources {source}: {e}")))
}

fn cmd_events(global: &Global, parsed: &Parsed) -> Result<i32> {
    let id = one_id(parsed, "events")?;
    let interval = parsed.get("interval").unwrap_or("5s");
    let interval = container::events::parse_interval(interval)
        .ok_or_else(|| Error::Usage(format!("--interval: {interval:?} is not a duration like 5s")))?;
    container::events::events(global, id, interval, parsed.has("stats"))?;
    Ok(0)
}

fn cmd_state(global: &Global, parsed: &Parsed) -> Result<i32> {
    let state = container::state::state(global, one_id(parsed, "state")?)?;
    println!("{}", serde_json::to_string_pretty(&state).unwrap_or_default());
    Ok(0)
}

fn cmd_kill(global: &Global, parsed: &Parsed) -> Result<i32> {
    let (id, signal) = match parsed.positional.as_slice() {
        [id] => (id, "SIGTERM"),
        [id, signal] => (id, signal.as_str()),
        _ => {
            return Err(Error::Usage(
                "\"kill\" requires a minimum of 1 and a maximum of 2 argument(s)".into(),
            ))
        }
    };
    container::kill::kill(global, id, signal, parsed.has("all"))?;
    Ok(0)
}

fn cmd_list(global: &Global, parsed: &Parsed) -> Result<i32> {
    let format = parsed.get("format").unwrap_or("table");
    if !matches!(format, "table" | "json") {
        return Err(Error::Usage("invalid format option".into()));
    }
    let states = container::list::list(global)?;
    if parsed.has("quiet") {
        states.iter().for_each(|s| println!("{}", s.id));
    } else if format == "json" {
        println!("{}", serde_json::to_string(&states).unwrap_or_default());
    } else {
        print!("{}", container::list::render_table(&states));
    }
    Ok(0)
}

fn cmd_ps(global: &Global, parsed: &Parsed) -> Result<i32> {
    let Some((id, ps_args)) = parsed.positional.split_first() else {
        return Err(Error::Usage("\"ps\" requires a minimum of 1 argument(s)".into()));
    };
    let pids = container::pause::pids(global, id)?;
    match parsed.get("format").unwrap_or("table") {
        "json" => println!("{}", serde_json::to_string(&pids).unwrap_or_default()),
        "table" => print!("{}", container::ps::table(&pids, ps_args)?),
        _ => return Err(Error::Usage("invalid format option".into())),
    }
    Ok(0)
}

fn cmd_spec(parsed: &Parsed) -> Result<i32> {
    let bundle = PathBuf::from(parsed.get("bundle").unwrap_or("."));
    container::spec::write_spec(&bundle, parsed.has("rootless"))?;
    Ok(0)
}
