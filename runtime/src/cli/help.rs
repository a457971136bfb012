//! `husk --help`, `husk help CMD`, `husk CMD --help` and `husk --version`, laid out as runc's
//! urfave/cli prints them (NAME, USAGE, ..., OPTIONS), so people and tools find the same thing.

use super::args::FlagSpec;
use super::table::{Command, COMMANDS, GLOBAL_FLAGS};

pub(super) const ABOUT: &str = "husk is a command line client for running applications packaged according to
the Open Container Initiative (OCI) format and is a compliant implementation of the
Open Container Initiative specification. It accepts runc's commands and flags.

Containers are configured using bundles. A bundle for a container is a directory
that includes a specification file named \"config.json\" and a root filesystem.
The root filesystem contains the contents of the container.

To start a new instance of a container:

    # husk run [ -b bundle ] <container-id>

Where \"<container-id>\" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host. Providing the bundle directory using \"-b\" is optional. The default
value for \"bundle\" is the current directory.";

/// `husk version X`, `commit: SHA`, `spec: V`, `libseccomp: X.Y.Z` (runc's lines but `go:`).
pub fn version() -> String {
    let mut lines = vec![
        format!("husk version {}", env!("CARGO_PKG_VERSION")),
        format!("commit: {}", env!("HUSK_COMMIT")),
        format!("spec: {}", crate::state::OCI_VERSION),
    ];
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        lines.push(format!("libseccomp: {}.{}.{}", v.major, v.minor, v.micro));
    }
    lines.join("\n")
}

pub fn app_help() -> String {
    let version = version();
    let version = version.strip_prefix("husk version ").unwrap_or(&version);
    let width = COMMANDS
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("help, h".len());
    let mut commands: Vec<String> = COMMANDS
        .iter()
        .map(|c| format!("   {:<width$}  {}", c.name, c.summary))
        .collect();
    commands.push(format!(
        "   {:<width$}  Shows a list of commands or help for one command",
        "help, h"
    ));
    format!(
        "NAME:\n   husk - Open Container Initiative runtime\n\n{ABOUT}\n\nUSAGE:\n   husk [global options] command \
         [command options] [arguments...]\n\nVERSION:\n   {version}\n\nCOMMANDS:\n{}\n\nGLOBAL OPTIONS:\n{}",
        commands.join("\n"),
        options(GLOBAL_FLAGS)
    )
}

pub fn command_help(cmd: &Command) -> String {
    let mut out = format!(
        "NAME:\n   husk {} - {}\n\nUSAGE:\n   husk {}",
        cmd.name, cmd.summary, cmd.name
    );
    if !cmd.flags.is_empty() {
        out.push_str(" [command options]");
    }
    out.push(' ');
    out.push_str(if cmd.args_usage.is_empty() {
        "[arguments...]"
    } else {
        cmd.args_usage
    });
    if !cmd.description.is_empty() {
        out.push_str("\n\nDESCRIPTION:\n   ");
        out.push_str(cmd.description);
    }
    if !cmd.flags.is_empty() {
        out.push_str("\n\nOPTIONS:\n");
        out.push_str(&options(cmd.flags));
    }
    out
}

/// `   --bundle value, -b value  help`, one flag a line, help texts aligned; hidden flags skipped.
fn options(flags: &[FlagSpec]) -> String {
    let shown: Vec<(String, &str)> = flags
        .iter()
        .filter(|f| !f.is_hidden())
        .map(|f| (flag_names(f), f.help))
        .collect();
    let width = shown.iter().map(|(names, _)| names.len()).max().unwrap_or(0);
    shown
        .iter()
        .map(|(names, help)| format!("   {names:<width$}  {help}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn flag_names(flag: &FlagSpec) -> String {
    flag.shown_names()
        .map(|n| {
            let placeholder = if flag.takes_value { " value" } else { "" };
            format!("{}{placeholder}", FlagSpec::dashed(n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_help_names_its_flags_and_usage() {
        for cmd in COMMANDS {
            let text = command_help(cmd);
            assert!(text.starts_with(&format!("NAME:\n   husk {} - ", cmd.name)), "{text}");
            for flag in cmd.flags.iter().filter(|f| !f.help.is_empty()) {
                assert!(text.contains(&format!("--{}", flag.names[0])), "{text}");
            }
        }
        let exec = command_help(super::super::table::find("exec").unwrap());
        assert!(exec.contains("   --env value, -e value  "), "{exec}");
    }

    #[test]
    fn version_has_runcs_lines() {
        let v = version();
        assert!(v.starts_with("husk version "), "{v}");
        assert!(v.contains("\ncommit: ") && v.contains("\nspec: "), "{v}");
    }
}
