//! Shell completions for bash, zsh and fish, generated from the same table as `--help`
//! (table.rs): `husk --generate-completion bash|zsh|fish` prints one to standard output.
//! What a flag's value is (a directory, a file, one of a few words) is not in the table, so
//! [`value_hint`] says it by flag name; a flag it does not know completes nothing.

use super::args::FlagSpec;
use super::table::{Command, COMMANDS, GLOBAL_FLAGS};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueHint {
    Directory,
    File,
    Words(&'static str),
    /// Free text (a number, a user, an environment variable): nothing to offer.
    Anything,
}

/// How to complete the value of the flag `name` (its canonical name).
pub fn value_hint(name: &str) -> ValueHint {
    match name {
        "bundle" | "root" => ValueHint::Directory,
        "log" | "pid-file" | "console-socket" | "process" | "resources" | "criu" | "containerd-config"
        | "containerd-address" => ValueHint::File,
        "log-format" => ValueHint::Words("text json"),
        "format" => ValueHint::Words("table json"),
        "rootless" => ValueHint::Words("true false auto"),
        _ => ValueHint::Anything,
    }
}

/// Commands whose first argument is an existing container (create and run name a new one).
pub fn takes_existing_id(cmd: &Command) -> bool {
    cmd.args_usage.starts_with("<container-id>") && !matches!(cmd.name, "create" | "run")
}

/// The signals `husk kill` offers after the id (it also takes numbers and SIG-prefixed names).
const SIGNALS: &str = "TERM KILL INT HUP QUIT USR1 USR2 STOP CONT WINCH";

pub fn generate(shell: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash()),
        "zsh" => Some(zsh()),
        "fish" => Some(fish()),
        _ => None,
    }
}

fn shown(flags: &'static [FlagSpec]) -> impl Iterator<Item = &'static FlagSpec> {
    flags.iter().filter(|f| !f.is_hidden())
}

/// Every command takes `--help` / `-h` (urfave/cli's implicit flag, which husk's parser keeps).
const COMMAND_HELP: FlagSpec = super::args::switch(&["help", "h"], "show help");

/// A command's shown flags and its implicit `--help`.
fn command_flags(cmd: &Command) -> impl Iterator<Item = &'static FlagSpec> {
    shown(cmd.flags).chain(std::iter::once(&COMMAND_HELP))
}

/// Every shown spelling of the flags, dashed, space-separated.
fn dashed_names<'a>(flags: impl Iterator<Item = &'a FlagSpec>) -> String {
    flags
        .flat_map(|f| f.shown_names().map(FlagSpec::dashed))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every spelling runc's parser takes for the value-taking flags (one or two dashes), so the
/// word scan skips their values however they were typed.
fn value_flag_spellings(flags: &[FlagSpec]) -> String {
    flags
        .iter()
        .filter(|f| f.takes_value)
        .flat_map(|f| f.names.iter().flat_map(|n| [format!("-{n}"), format!("--{n}")]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_line(help: &str) -> &str {
    help.lines().next().unwrap_or("")
}

const BASH_HEAD: &str = r#"# bash completion for husk(8). Generated from husk's command table by
# `husk --generate-completion bash`: do not edit, regenerate.

_husk_value() { # _husk_value HINT: complete the value of a flag
    case $1 in
    dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
    file) COMPREPLY=($(compgen -f -- "$cur")) ;;
    words:*) COMPREPLY=($(compgen -W "${1#words:}" -- "$cur")) ;;
    esac
}

_husk_containers() {
    local ids
    ids=$(husk ${root:+--root "$root"} list -q 2>/dev/null)
    COMPREPLY=($(compgen -W "$ids" -- "$cur"))
}

_husk() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local command= root= word i=1 positional=0
    COMPREPLY=()
    # bash splits `--flag=value` at the `=` (COMP_WORDBREAKS): complete the value all the same.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]]; then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
"#;

fn bash() -> String {
    let mut out = BASH_HEAD.to_string();
    let globals = value_flag_spellings(GLOBAL_FLAGS);
    let _ = writeln!(out, "    local global_values=\" {globals} \"");
    // Find the command: skip global flags and their values; remember --root for `husk list`.
    out.push_str(
        r#"    while ((i < COMP_CWORD)); do
        word=${COMP_WORDS[i]}
        if [[ $global_values == *" $word "* ]]; then
            [[ ${COMP_WORDS[i+1]} == = ]] && ((i += 1))
            [[ $word == -root || $word == --root ]] && root=${COMP_WORDS[i+1]}
            ((i += 2))
        elif [[ $word == -* ]]; then
            ((i += 1))
        else
            command=$word
            break
        fi
    done
    if [[ -z $command ]]; then
        case $prev in
"#,
    );
    bash_value_cases(&mut out, GLOBAL_FLAGS, "        ");
    let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).chain(["help"]).collect();
    let _ = write!(
        out,
        r#"        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "{}" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{}" -- "$cur"))
        fi
        return
    fi
    local flags= values=
    case $command in
"#,
        dashed_names(shown(GLOBAL_FLAGS)),
        names.join(" ")
    );
    for cmd in COMMANDS {
        let _ = writeln!(
            out,
            "    {})\n        flags=\"{}\" values=\" {} \"",
            cmd.name,
            dashed_names(command_flags(cmd)),
            value_flag_spellings(cmd.flags)
        );
        // Inside the command's arm: `--format` of list is not `--format` of another command.
        if cmd
            .flags
            .iter()
            .any(|f| f.takes_value && value_hint(f.names[0]) != ValueHint::Anything)
        {
            out.push_str("        case $prev in\n");
            bash_value_cases(&mut out, cmd.flags, "        ");
            out.push_str("        esac\n");
        }
        out.push_str("        ;;\n");
    }
    let _ = writeln!(
        out,
        "    help) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;",
        names.join(" ")
    );
    out.push_str("    *) return ;;\n");
    let existing: Vec<&str> = COMMANDS
        .iter()
        .filter(|c| takes_existing_id(c))
        .map(|c| c.name)
        .collect();
    let _ = write!(
        out,
        r#"    esac
    # A value flag with nothing to offer (a number, a user): complete nothing for its value.
    [[ $values == *" $prev "* ]] && return
    # How many arguments the command already has (flags and their values skipped).
    for ((i += 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if [[ $values == *" $word "* ]]; then
            [[ ${{COMP_WORDS[i+1]}} == = ]] && ((i += 1))
            ((i += 1))
        elif [[ $word != -* ]]; then
            ((positional += 1))
        fi
    done
    # exec and ps: what follows the id is the process's own command line, not husk's flags.
    [[ ($command == exec || $command == ps) && $positional -gt 0 ]] && return
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    case $command:$positional in
    {}) _husk_containers ;;
    kill:1) COMPREPLY=($(compgen -W "{SIGNALS}" -- "$cur")) ;;
    esac
}}

complete -F _husk husk
"#,
        existing
            .iter()
            .map(|n| format!("{n}:0"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out
}

/// `--flag | -f) _husk_value HINT ;;` for each value flag that has something to offer.
fn bash_value_cases(out: &mut String, flags: &[FlagSpec], indent: &str) {
    for flag in flags.iter().filter(|f| f.takes_value) {
        let hint = match value_hint(flag.names[0]) {
            ValueHint::Directory => "dir".to_string(),
            ValueHint::File => "file".to_string(),
            ValueHint::Words(words) => format!("'words:{words}'"),
            ValueHint::Anything => continue,
        };
        let spellings: Vec<String> = flag
            .names
            .iter()
            .flat_map(|n| [format!("-{n}"), format!("--{n}")])
            .collect();
        let _ = writeln!(out, "{indent}{}) _husk_value {hint}; return ;;", spellings.join(" | "));
    }
}

fn zsh_quote(text: &str) -> String {
    first_line(text)
        .replace('\\', "\\\\")
        .replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
}

/// One `_arguments` spec per flag: `'(--bundle -b)'{--bundle=,-b+}'[help]:bundle:_files -/'`.
fn zsh_flag_spec(flag: &FlagSpec) -> String {
    let names: Vec<&str> = flag.shown_names().collect();
    let spelled: Vec<String> = names
        .iter()
        .map(|n| {
            let dashed = FlagSpec::dashed(n);
            match (flag.takes_value, n.len()) {
                (false, _) => dashed,
                (true, 1) => format!("{dashed}+"),
                (true, _) => format!("{dashed}="),
            }
        })
        .collect();
    let repeat = if matches!(flag.names[0], "env" | "cap" | "additional-gids" | "cgroup") {
        "*"
    } else {
        ""
    };
    let help = format!("[{}]", zsh_quote(flag.help));
    let action = if flag.takes_value {
        let action = match value_hint(flag.names[0]) {
            ValueHint::Directory => "_files -/".to_string(),
            ValueHint::File => "_files".to_string(),
            ValueHint::Words(words) => format!("({words})"),
            ValueHint::Anything => " ".to_string(),
        };
        format!(":{}:{action}", flag.names[0])
    } else {
        String::new()
    };
    if spelled.len() == 1 {
        format!("'{repeat}{}{help}{action}'", spelled[0])
    } else {
        let exclusive = if repeat.is_empty() {
            format!(
                "'({})'",
                names.iter().map(|n| FlagSpec::dashed(n)).collect::<Vec<_>>().join(" ")
            )
        } else {
            "'*'".to_string()
        };
        format!("{exclusive}{{{}}}'{help}{action}'", spelled.join(","))
    }
}

fn zsh() -> String {
    let mut out = String::from(
        "#compdef husk\n# zsh completion for husk(8). Generated from husk's command table by\n\
         # `husk --generate-completion zsh`: do not edit, regenerate.\n\n\
         _husk_containers() {\n  local -a ids\n  ids=(${(f)\"$(_call_program containers husk list -q 2>/dev/null)\"})\n  \
         _describe -t containers 'container' ids\n}\n\n\
         _husk() {\n  local curcontext=$curcontext state line ret=1\n  typeset -A opt_args\n  _arguments -C \\\n",
    );
    for flag in shown(GLOBAL_FLAGS) {
        let _ = writeln!(out, "    {} \\", zsh_flag_spec(flag));
    }
    out.push_str("    '1:command:->command' \\\n    '*::argument:->argument' && ret=0\n  case $state in\n");
    out.push_str("  command)\n    local -a commands\n    commands=(\n");
    for cmd in COMMANDS {
        let _ = writeln!(
            out,
            "      '{}:{}'",
            cmd.name,
            zsh_quote(cmd.summary).replace("\\[", "[")
        );
    }
    out.push_str("    )\n    _describe -t commands 'husk command' commands && ret=0\n    ;;\n");
    out.push_str("  argument)\n    curcontext=${curcontext%:*:*}:husk-$words[1]:\n    case $words[1] in\n");
    for cmd in COMMANDS {
        let _ = writeln!(out, "    {})\n      _arguments \\", cmd.name);
        for flag in command_flags(cmd) {
            let _ = writeln!(out, "        {} \\", zsh_flag_spec(flag));
        }
        if takes_existing_id(cmd) {
            out.push_str("        '1:container:_husk_containers' \\\n");
        }
        if cmd.name == "kill" {
            let _ = writeln!(out, "        '2:signal:({SIGNALS})' \\");
        }
        out.push_str("        '*:: :' && ret=0\n      ;;\n");
    }
    out.push_str("    esac\n    ;;\n  esac\n  return ret\n}\n\n_husk \"$@\"\n");
    out
}

fn fish_quote(text: &str) -> String {
    format!("'{}'", first_line(text).replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `complete -c husk -n COND -l bundle -s b -r -a ... -d HELP` for each flag.
fn fish_flags<'a>(out: &mut String, condition: &str, flags: impl Iterator<Item = &'a FlagSpec>) {
    for flag in flags {
        let _ = write!(out, "complete -c husk -n {condition}");
        for name in flag.shown_names() {
            let kind = if name.len() == 1 { "-s" } else { "-l" };
            let _ = write!(out, " {kind} {name}");
        }
        if flag.takes_value {
            match value_hint(flag.names[0]) {
                // -x: a value, and no file names unless -F asks for them.
                ValueHint::Directory => out.push_str(" -x -a '(__fish_complete_directories)'"),
                ValueHint::File => out.push_str(" -r -F"),
                ValueHint::Words(words) => {
                    let _ = write!(out, " -x -a '{words}'");
                }
                ValueHint::Anything => out.push_str(" -x"),
            }
        }
        let _ = writeln!(out, " -d {}", fish_quote(flag.help));
    }
}

fn fish() -> String {
    let mut out = String::from(
        "# fish completion for husk(8). Generated from husk's command table by\n\
         # `husk --generate-completion fish`: do not edit, regenerate.\n\n\
         function __husk_containers\n    husk list -q 2>/dev/null\nend\n\n\
         complete -c husk -f\n",
    );
    fish_flags(&mut out, "__fish_use_subcommand", shown(GLOBAL_FLAGS));
    for cmd in COMMANDS {
        let _ = writeln!(
            out,
            "complete -c husk -n __fish_use_subcommand -a {} -d {}",
            cmd.name,
            fish_quote(cmd.summary)
        );
    }
    for cmd in COMMANDS {
        let condition = format!("'__fish_seen_subcommand_from {}'", cmd.name);
        fish_flags(&mut out, &condition, command_flags(cmd));
        if takes_existing_id(cmd) {
            let _ = writeln!(out, "complete -c husk -n {condition} -a '(__husk_containers)'");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zsh_specs_escape_brackets_and_quotes() {
        const F: FlagSpec = super::super::args::value(&["bundle", "b"], "it's [the] bundle");
        assert_eq!(
            zsh_flag_spec(&F),
            "'(--bundle -b)'{--bundle=,-b+}'[it'\\''s \\[the\\] bundle]:bundle:_files -/'"
        );
    }

    #[test]
    fn only_commands_on_existing_containers_complete_ids() {
        let with_ids: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| takes_existing_id(c))
            .map(|c| c.name)
            .collect();
        assert!(with_ids.contains(&"kill") && with_ids.contains(&"exec") && with_ids.contains(&"state"));
        assert!(!with_ids.contains(&"create") && !with_ids.contains(&"run") && !with_ids.contains(&"list"));
    }

    #[test]
    fn every_shell_names_every_command_and_flag() {
        for shell in ["bash", "zsh", "fish"] {
            let script = generate(shell).unwrap();
            for cmd in COMMANDS {
                assert!(script.contains(cmd.name), "{shell}: {}", cmd.name);
                for flag in shown(cmd.flags) {
                    assert!(
                        script.contains(flag.names[0]),
                        "{shell}: {} {}",
                        cmd.name,
                        flag.names[0]
                    );
                }
            }
        }
        assert!(generate("tcsh").is_none());
    }
}
