//! Man pages in section 8, generated from the same table as `--help` (table.rs), so a flag
//! added there shows up in `husk(8)` and `husk-CMD(8)` without anyone remembering to:
//! `husk --generate-man DIR` writes `husk.8`, one `husk-<command>.8` per command and
//! `containerd-shim-husk-v2.8` (its flags in shim_page.rs, held to the shim's parser by a test).

use super::args::FlagSpec;
use super::help::ABOUT;
use super::shim_page;
use super::table::{Command, COMMANDS, GLOBAL_FLAGS};
use crate::error::Result;
use crate::sys::Context;
use std::path::{Path, PathBuf};

const SECTION: &str = "8";
const MANUAL: &str = "System Manager's Manual";

/// Write every page into `dir` (created if missing); returns the files written.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).ctx("create man page directory", dir.display())?;
    let mut pages = vec![("husk".to_string(), husk_page())];
    pages.extend(COMMANDS.iter().map(|c| (format!("husk-{}", c.name), command_page(c))));
    pages.push((shim_page::NAME.to_string(), shim_page::page()));
    let mut written = Vec::with_capacity(pages.len());
    for (name, text) in pages {
        let path = dir.join(format!("{name}.{SECTION}"));
        std::fs::write(&path, text).ctx("write man page", path.display())?;
        written.push(path);
    }
    Ok(written)
}

/// `husk(8)`: what husk is, the commands (each pointing to its page) and the global options.
pub fn husk_page() -> String {
    let mut page = header("husk", "Open Container Initiative runtime");
    page.push_str(".SH SYNOPSIS\n.B husk\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR] [\\fIarguments\\fR...]\n");
    page.push_str(".SH DESCRIPTION\n");
    page.push_str(&paragraphs(ABOUT, ".PP"));
    page.push_str(".SH COMMANDS\n");
    for cmd in COMMANDS {
        page.push_str(&format!(
            ".TP\n.BR husk\\-{} (8)\n{}\n",
            escape(cmd.name),
            escape_line(cmd.summary)
        ));
    }
    page.push_str(".TP\n.BR help \", \" h\nShows a list of commands or help for one command\n");
    page.push_str(".SH GLOBAL OPTIONS\n");
    page.push_str(&options(GLOBAL_FLAGS));
    page.push_str(HUSK_TAIL);
    page.push_str(&see_also(COMMANDS.iter().map(|c| format!("husk-{}", c.name))));
    page
}

/// `husk-NAME(8)`: the usage line, the argument notes and description, the options.
pub fn command_page(cmd: &Command) -> String {
    let mut page = header(&format!("husk-{}", cmd.name), cmd.summary);
    let (usage, notes) = cmd.args_usage.split_once('\n').unwrap_or((cmd.args_usage, ""));
    let usage = if usage.trim().is_empty() {
        "[arguments...]"
    } else {
        usage.trim()
    };
    let command_options = if cmd.flags.is_empty() {
        ""
    } else {
        "[\\fIcommand options\\fR] "
    };
    page.push_str(&format!(
        ".SH SYNOPSIS\n.B husk\n[\\fIglobal options\\fR]\n.B {}\n{command_options}{}\n",
        escape(cmd.name),
        escape_line(usage)
    ));
    let text = [notes.trim(), cmd.description.trim()]
        .iter()
        .filter(|t| !t.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n");
    page.push_str(".SH DESCRIPTION\n");
    page.push_str(&escape_line(cmd.summary));
    page.push('\n');
    if !text.is_empty() {
        page.push_str(".PP\n");
        page.push_str(&paragraphs(&text, ".PP"));
    }
    if cmd.flags.iter().any(|f| !f.is_hidden()) {
        page.push_str(".SH OPTIONS\n");
        page.push_str(&options(cmd.flags));
    }
    page.push_str(".PP\nThe global options of \\fBhusk\\fR(8) go before the command name.\n");
    page.push_str(&see_also(["husk".to_string()]));
    page
}

const HUSK_TAIL: &str = ".SH ENVIRONMENT
.TP
.B HUSK_TRACE=1
the same as \\fB\\-\\-trace\\fR: print where the start\\-up time goes, phase by phase.
.SH FILES
.TP
.I /run/husk/<container\\-id>/state.json
the state of each container (the directory is the \\fB\\-\\-root\\fR option).
.SH EXIT STATUS
0 on success; 1 on an error, with one line on standard error (and an \\fBerror\\fR line in the
\\fB\\-\\-log\\fR file); 255 when \\fBexec\\fR itself fails, so that it differs from the exit
status of the process run; 3 for an unknown command or help topic, as runc.
\\fBrun\\fR and \\fBexec\\fR without \\fB\\-\\-detach\\fR exit with the process's own status.
";

/// The `.TH` line and NAME section; no hyphenation and a ragged right margin, so that names
/// like io.containerd.husk.v2 are never split.
pub(super) fn header(name: &str, summary: &str) -> String {
    format!(
        ".TH \"{}\" \"{SECTION}\" \"\" \"husk {}\" \"{MANUAL}\"\n.nh\n.ad l\n.SH NAME\n{} \\- {}\n",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION"),
        escape(name),
        escape(summary)
    )
}

pub(super) fn see_also(pages: impl IntoIterator<Item = String>) -> String {
    let refs: Vec<String> = pages.into_iter().map(|p| format!(".BR {} (8)", escape(&p))).collect();
    format!(".SH SEE ALSO\n{}\n", refs.join(",\n"))
}

/// One `.TP` entry per shown flag: `--bundle value, -b value` in bold names and italic values.
pub(super) fn options(flags: &[FlagSpec]) -> String {
    let mut out = String::new();
    for flag in flags.iter().filter(|f| !f.is_hidden()) {
        let names: Vec<String> = flag
            .shown_names()
            .map(|n| {
                let value = if flag.takes_value { " \\fIvalue\\fR" } else { "" };
                format!("\\fB{}\\fR{value}", escape(&FlagSpec::dashed(n)))
            })
            .collect();
        out.push_str(&format!(".TP\n{}\n", names.join(", ")));
        out.push_str(&paragraphs(flag.help, ".IP"));
    }
    out
}

/// Plain text to roff: blank-line separated paragraphs joined by `sep` (`.PP`, or `.IP` inside
/// an option); a paragraph with indented lines (examples, JSON) is kept as it is, unfilled.
pub(super) fn paragraphs(text: &str, sep: &str) -> String {
    let mut out = String::new();
    for (i, block) in text.split("\n\n").map(|b| b.trim_matches('\n')).enumerate() {
        if block.trim().is_empty() {
            continue;
        }
        if i > 0 {
            out.push_str(sep);
            out.push('\n');
        }
        let preformatted = block.lines().any(|l| l.starts_with(' '));
        if preformatted {
            out.push_str(".nf\n");
        }
        for line in block.lines() {
            out.push_str(&escape_line(line));
            out.push('\n');
        }
        if preformatted {
            out.push_str(".fi\n");
        }
    }
    out
}

/// Text for inside a line: backslashes and hyphens escaped (`\-`, as man-pages(7) asks), so
/// that `--root` renders as two ASCII hyphens that can be pasted back into a shell wherever
/// groff would turn a bare `-` into a typographic hyphen.
pub(super) fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A whole text line: also keeps a leading `.` or `'` from being read as a request.
pub(super) fn escape_line(line: &str) -> String {
    let escaped = escape(line);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hyphens_backslashes_and_leading_dots() {
        assert_eq!(escape("--root a\\b"), "\\-\\-root a\\eb");
        assert_eq!(escape_line(".hidden"), "\\&.hidden");
        assert_eq!(escape_line("'quoted"), "\\&'quoted");
    }

    #[test]
    fn indented_paragraphs_stay_unfilled() {
        let roff = paragraphs("first line\nsecond\n\n    # husk run\n\nlast", ".PP");
        assert_eq!(roff, "first line\nsecond\n.PP\n.nf\n    # husk run\n.fi\n.PP\nlast\n");
    }

    #[test]
    fn every_command_page_names_its_shown_flags() {
        for cmd in COMMANDS {
            let page = command_page(cmd);
            assert!(page.starts_with(&format!(".TH \"HUSK-{}\" \"8\"", cmd.name.to_uppercase())));
            for flag in cmd.flags.iter().filter(|f| !f.is_hidden()) {
                assert!(page.contains(&format!("\\fB{}\\fR", escape(&FlagSpec::dashed(flag.names[0])))));
            }
        }
        let husk = husk_page();
        for cmd in COMMANDS {
            assert!(
                husk.contains(&format!(".BR husk\\-{} (8)", escape(cmd.name))),
                "{}",
                cmd.name
            );
        }
    }
}
