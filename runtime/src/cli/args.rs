//! A small parser for runc's command-line style: `--flag value`, `--flag=value`, `-flag value`
//! (urfave/cli accepts one dash too), boolean flags, and positional arguments in any order.

use crate::error::Error;
use std::collections::HashMap;

/// What a command accepts: flag names (with aliases), whether each takes a value, and its
/// line in `--help` (empty: accepted but hidden, like runc's obsolete flags).
pub struct FlagSpec {
    pub names: &'static [&'static str],
    pub takes_value: bool,
    pub help: &'static str,
}

impl FlagSpec {
    /// Hidden flags (runc's obsolete ones) are accepted but listed nowhere: not in `--help`,
    /// the man pages or the completions.
    pub fn is_hidden(&self) -> bool {
        self.help.is_empty()
    }

    /// The names `--help`, the man pages and the completions show: the canonical name and the
    /// one-letter aliases; later long names are husk's older spellings, accepted but not shown.
    pub fn shown_names(&self) -> impl Iterator<Item = &'static str> {
        self.names
            .iter()
            .enumerate()
            .filter(|(i, n)| *i == 0 || n.len() == 1)
            .map(|(_, n)| *n)
    }

    /// `--name` or `-n`: two dashes for long names, one for letters, as urfave/cli prints them.
    pub fn dashed(name: &str) -> String {
        let dashes = if name.len() == 1 { "-" } else { "--" };
        format!("{dashes}{name}")
    }
}

pub const fn value(names: &'static [&'static str], help: &'static str) -> FlagSpec {
    FlagSpec {
        names,
        takes_value: true,
        help,
    }
}

pub const fn switch(names: &'static [&'static str], help: &'static str) -> FlagSpec {
    FlagSpec {
        names,
        takes_value: false,
        help,
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// By the flag's first (canonical) name; a repeated flag keeps every value in order.
    pub values: HashMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
    /// `--help` / `-h` was given where a flag may stand (urfave/cli's implicit help flag).
    pub help: bool,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

/// Parse `args` against `specs`. With `stop_at_positional`, the first positional argument and
/// everything after it are left unparsed (for the global flags before the command).
pub fn parse(args: &[String], specs: &[FlagSpec], stop_at_positional: bool) -> Result<Parsed, Error> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            out.positional.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            if stop_at_positional {
                out.positional.extend(args[i..].iter().cloned());
                break;
            }
            out.positional.push(arg.clone());
            i += 1;
            continue;
        }
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.names.contains(&name)) else {
            if name == "help" || name == "h" {
                out.help = true;
                i += 1;
                continue;
            }
            // urfave/cli's wording, which scripts written for runc may match.
            return Err(Error::Usage(format!("flag provided but not defined: -{name}")));
        };
        let value = if !spec.takes_value {
            inline.unwrap_or_else(|| "true".to_string())
        } else if let Some(v) = inline {
            v
        } else {
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("flag needs an argument: {arg}")))?
        };
        out.values.entry(spec.names[0]).or_default().push(value);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const SPECS: &[FlagSpec] = &[
        value(&["bundle", "b"], ""),
        value(&["pid-file"], ""),
        switch(&["detach", "d"], ""),
    ];

    #[test]
    fn all_runc_flag_styles_parse() {
        let p = parse(&strings(&["--bundle", "/b", "-pid-file=/p", "-d", "id1"]), SPECS, false).unwrap();
        assert_eq!(p.get("bundle"), Some("/b"));
        assert_eq!(p.get("pid-file"), Some("/p"));
        assert!(p.has("detach"));
        assert_eq!(p.positional, vec!["id1"]);
    }

    #[test]
    fn flags_after_the_id_and_unknown_flags() {
        let p = parse(&strings(&["id1", "-b", "/b"]), SPECS, false).unwrap();
        assert_eq!(p.positional, vec!["id1"]);
        assert_eq!(p.get("bundle"), Some("/b"));
        assert!(parse(&strings(&["--nope"]), SPECS, false).is_err());
        assert!(parse(&strings(&["--bundle"]), SPECS, false).is_err());
    }

    #[test]
    fn help_is_implicit_everywhere_a_flag_may_stand() {
        assert!(parse(&strings(&["--help"]), SPECS, false).unwrap().help);
        assert!(parse(&strings(&["id1", "-h"]), SPECS, false).unwrap().help);
        assert!(!parse(&strings(&["id1", "sh", "-h"]), SPECS, true).unwrap().help);
    }

    #[test]
    fn global_parsing_stops_at_the_command() {
        let p = parse(&strings(&["-b", "x", "create", "--bundle", "y"]), SPECS, true).unwrap();
        assert_eq!(p.get("bundle"), Some("x"));
        assert_eq!(p.positional, vec!["create", "--bundle", "y"]);
    }
}
