//! husk's command line: parse, call the library, print. No container logic here.
//!
//! The parser is husk's own (args.rs), not clap: runc's clients pass urfave/cli v1 forms that
//! clap does not take cleanly (`-root` with one dash for long flags, flags after the container
//! id, `-flag=value`), and it adds nothing measurable to start-up (figures in its commit).

pub mod args;
pub mod completion;
mod doctor;
pub mod help;
pub mod manpage;
mod shim_page;
pub mod table;
mod verbs;

use crate::container::Global;
use crate::error::{Error, Result};
use args::parse;
use std::path::PathBuf;
use table::GLOBAL_FLAGS;

/// urfave/cli's exit code for an unknown command or help topic, which runc keeps.
const EXIT_NO_HELP_TOPIC: i32 = 3;

/// Runs the command line and returns the process's exit code.
pub fn main(argv: Vec<String>) -> i32 {
    match dispatch(&argv) {
        Ok(code) => code,
        Err(e) => {
            crate::logging::error(&e.to_string());
            e.exit_code()
        }
    }
}

fn dispatch(argv: &[String]) -> Result<i32> {
    if let Some(result) = generate_docs(argv) {
        return result;
    }
    let global_args = parse(argv, GLOBAL_FLAGS, true)?;
    crate::logging::init(
        global_args.get("log").map(std::path::Path::new),
        global_args.get("log-format"),
        global_args.has("debug"),
    )?;
    if global_args.has("version") {
        println!("{}", help::version());
        return Ok(0);
    }
    let Some((command, rest)) = global_args.positional.split_first() else {
        // runc prints its help and succeeds when given no command.
        println!("{}", help::app_help());
        return Ok(0);
    };
    if global_args.has("help") {
        println!("{}", help::app_help());
        return Ok(0);
    }
    let trace = global_args.has("trace") || std::env::var_os("HUSK_TRACE").is_some_and(|v| v == "1");
    let global = Global {
        root: PathBuf::from(global_args.get("root").unwrap_or("/run/husk")),
        trace,
        systemd_cgroup: global_args.has("systemd-cgroup"),
    };
    match command.as_str() {
        "help" | "h" => show_help(rest),
        // husk's own spelling, kept for scripts that used it.
        "version" => {
            println!("{}", help::version());
            Ok(0)
        }
        name => match table::find(name) {
            Some(cmd) => {
                log::debug!("husk {name} {}", rest.join(" "));
                verbs::run(cmd, &global, rest)
            }
            None => Ok(no_help_topic(name)),
        },
    }
}

/// Hidden, for packaging: `husk --generate-man DIR` and `husk --generate-completion SHELL`.
/// Listed nowhere (runc has neither and its clients never pass them), and only as the whole
/// command line, so they cannot change how any runc command line parses.
fn generate_docs(argv: &[String]) -> Option<Result<i32>> {
    let (flag, rest) = argv.split_first()?;
    let generate = match flag.as_str() {
        "--generate-man" => |arg: &str| manpage::write_pages(std::path::Path::new(arg)).map(|_| 0),
        "--generate-completion" => |shell: &str| match completion::generate(shell) {
            Some(script) => {
                print!("{script}");
                Ok(0)
            }
            None => Err(Error::Usage(format!(
                "--generate-completion: unknown shell {shell:?} (bash, zsh or fish)"
            ))),
        },
        _ => return None,
    };
    Some(match rest {
        [arg] => generate(arg),
        _ => Err(Error::Usage(format!("{flag} takes exactly one argument"))),
    })
}

/// `husk help [COMMAND]`.
fn show_help(rest: &[String]) -> Result<i32> {
    match rest.first() {
        None => println!("{}", help::app_help()),
        Some(name) => match table::find(name) {
            Some(cmd) => println!("{}", help::command_help(cmd)),
            None => return Ok(no_help_topic(name)),
        },
    }
    Ok(0)
}

fn no_help_topic(name: &str) -> i32 {
    crate::logging::error(&format!("No help topic for '{name}'"));
    EXIT_NO_HELP_TOPIC
}
