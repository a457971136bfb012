//! Help where operators look: the man pages and bash/zsh/fish completions that husk generates
//! from its command table (`husk --generate-man DIR`, `husk --generate-completion SHELL`), and
//! `packaging/install.sh`, which installs them with both binaries for source installs.
//!
//! The source of truth in these tests is what the binaries say: `husk --help` and
//! `husk CMD --help`. runc is the control where it has the same thing — every flag runc's help
//! lists is in husk's page, and every command and flag Debian's bash completion for runc offers,
//! husk's offers too (save runc's completion bugs, named below); containerd's Go shim is the
//! control for the shim's page (its `-h`). runc has no man page generator, no zsh or fish
//! completion and no install script, so those checks run on husk alone. Each shell runs its
//! real completion machinery: bash the function it registered, zsh compinit in a pty, fish
//! `complete -C`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use husk_e2e::{husk_bin, output_text, run_with_timeout, shim_bin, target_dir, Bundle, Runtime, TempDir};

fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd.stdin(Stdio::null()), Duration::from_secs(60))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn husk_help(args: &[&str]) -> String {
    run_ok(Command::new(husk_bin()).args(args).arg("--help"))
}

/// The command names of `husk --help`'s COMMANDS section (not `help, h`).
fn help_commands() -> Vec<String> {
    let help = husk_help(&[]);
    let section = help.split("COMMANDS:").nth(1).expect("COMMANDS: in husk --help");
    section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help,")
        .map(str::to_string)
        .collect()
}

/// The flags (`--bundle`, `-b`) named in the option lines after `heading` in a help text.
fn help_flags(help: &str, heading: &str) -> BTreeSet<String> {
    let Some(section) = help.split(heading).nth(1) else {
        return BTreeSet::new();
    };
    section
        .lines()
        .filter_map(|l| l.trim_start().split("  ").next())
        .flat_map(|names| names.split([' ', ',']))
        .filter(|w| is_flag(w))
        .map(str::to_string)
        .collect()
}

fn is_flag(word: &str) -> bool {
    let name = word.trim_start_matches('-');
    word.starts_with('-') && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whole words of a rendered page (flags are followed by a comma or a space).
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(str::to_string)
        .collect()
}

/// `man -l PAGE` as an operator reads it (wide, so that no flag is cut), and groff's
/// warnings with every category on (`-ww`); the warnings must be empty.
fn render(page: &Path) -> (String, String) {
    let text = run_ok(Command::new("man").arg("-l").arg(page).env("MANWIDTH", "200"));
    let out = run(Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(page));
    (text, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn generate_man() -> TempDir {
    let dir = TempDir::new("man");
    run_ok(Command::new(husk_bin()).arg("--generate-man").arg(dir.path()));
    dir
}

#[test]
fn man_pages_render_cleanly_and_name_every_command_and_flag_of_help() {
    let dir = generate_man();
    let commands = help_commands();
    let exec_flags = help_flags(&husk_help(&["exec"]), "OPTIONS:");
    assert!(
        exec_flags.contains("--env") && exec_flags.contains("-e"),
        "help parsing: {exec_flags:?}"
    );
    let mut expected: BTreeSet<String> = commands.iter().map(|c| format!("husk-{c}.8")).collect();
    expected.extend(["husk.8".to_string(), "containerd-shim-husk-v2.8".to_string()]);
    let written: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected);

    for name in &expected {
        let (_, warnings) = render(&dir.join(name));
        assert!(warnings.is_empty(), "groff -ww on {name}: {warnings}");
    }
    let (husk, _) = render(&dir.join("husk.8"));
    let husk_words = words(&husk);
    for cmd in &commands {
        assert!(
            husk_words.contains(&format!("husk-{cmd}(8)")),
            "husk(8) lacks husk-{cmd}(8):\n{husk}"
        );
    }
    for flag in help_flags(&husk_help(&[]), "GLOBAL OPTIONS:") {
        assert!(husk_words.contains(&flag), "husk(8) lacks global {flag}:\n{husk}");
    }
    for cmd in &commands {
        let (page, _) = render(&dir.join(format!("husk-{cmd}.8")));
        assert!(page.contains(&format!("husk-{cmd} - ")), "husk-{cmd}(8) NAME:\n{page}");
        let page_words = words(&page);
        for flag in help_flags(&husk_help(&[cmd]), "OPTIONS:") {
            assert!(page_words.contains(&flag), "husk-{cmd}(8) lacks {flag}:\n{page}");
        }
    }
}

/// runc as the control: every flag runc 1.1.5's help lists for a command is in husk's page.
#[test]
fn every_flag_runcs_help_lists_is_in_husks_man_pages() {
    let dir = generate_man();
    let runc = Runtime::runc();
    for cmd in help_commands().iter().filter(|c| !matches!(c.as_str(), "doctor")) {
        let runc_help = run_ok(Command::new(runc.bin()).args([cmd.as_str(), "--help"]));
        let (page, _) = render(&dir.join(format!("husk-{cmd}.8")));
        let page_words = words(&page);
        for flag in help_flags(&runc_help, "OPTIONS:") {
            assert!(
                page_words.contains(&flag),
                "runc {cmd} has {flag}; husk-{cmd}(8) lacks it"
            );
        }
    }
}

/// The shim's flags are parsed by the containerd-shim crate, not by husk's table: its page
/// must name every flag containerd's Go shim takes (the control, from its `-h`), and every
/// flag on the page must be one husk's shim binary accepts.
#[test]
fn shim_page_names_the_flags_the_shims_parse() {
    let dir = generate_man();
    let (page, _) = render(&dir.join("containerd-shim-husk-v2.8"));
    let options = page.split("\nOPTIONS\n").nth(1).expect("OPTIONS in the shim's page");
    let options = options.split("\nOPTIONS FILE\n").next().unwrap();
    let page_flags: BTreeSet<String> = options
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| is_flag(w))
        .map(str::to_string)
        .collect();

    let go = run(Command::new("containerd-shim-runc-v2").arg("-h"));
    let go_flags: BTreeSet<String> = String::from_utf8_lossy(&go.stderr)
        .lines()
        .filter(|l| l.starts_with("  -"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(go_flags.len() >= 8, "containerd-shim-runc-v2 -h: {}", output_text(&go));
    let missing: Vec<_> = go_flags.difference(&page_flags).collect();
    assert!(
        missing.is_empty(),
        "the Go shim takes {missing:?}; husk's shim page lacks them:\n{page}"
    );

    // Each flag alone, with an action no shim has: the parser accepts it and the crate stops
    // at the missing namespace or socket (or -v / -info answer and exit 0).
    let scratch = TempDir::new("shim-flags");
    let shim = |args: &[&str]| {
        let mut cmd = Command::new(shim_bin());
        cmd.args(args).current_dir(scratch.path()).env_remove("TTRPC_ADDRESS");
        let out = run(&mut cmd);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(shim(&["-no-such-flag", "x", "nothing"]).contains("flag provided but not defined"));
    for flag in &page_flags {
        let takes_value = options
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{flag} value")));
        let args: Vec<&str> = if takes_value {
            vec![flag, "x", "nothing"]
        } else {
            vec![flag, "nothing"]
        };
        let stderr = shim(&args);
        assert!(
            !stderr.contains("not defined"),
            "husk's shim refuses {args:?}: {stderr}"
        );
    }
}

/// Runs `_husk` (or another completion function) in bash for `words`, the last being the one
/// completed; returns COMPREPLY.
fn bash_complete(setup: &str, function: &str, words: &[&str]) -> BTreeSet<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "{setup}\nCOMP_WORDS=({})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\nCOMPREPLY=()\n{function}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" ")
    );
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", target_dir().display());
    let out = run_ok(Command::new("bash").arg("-c").arg(&script).env("PATH", path));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(',').to_string())
        .collect()
}

fn husk_completion(shell: &str) -> String {
    run_ok(Command::new(husk_bin()).args(["--generate-completion", shell]))
}

#[test]
fn bash_completion_offers_commands_flags_and_containers() {
    let dir = TempDir::new("bash-completion");
    let file = dir.join("husk");
    std::fs::write(&file, husk_completion("bash")).unwrap();
    let setup = format!(
        "source {}\ncomplete -p husk | grep -q -- '-F _husk husk$' || exit 9",
        file.display()
    );
    let complete = |words: &[&str]| bash_complete(&setup, "_husk", words);

    let mut commands: BTreeSet<String> = help_commands().into_iter().collect();
    commands.insert("help".into());
    assert_eq!(complete(&["husk", ""]), commands);
    assert_eq!(
        complete(&["husk", "kill", "--"]),
        BTreeSet::from(["--all".into(), "--help".into()])
    );
    assert!(complete(&["husk", "--log-format", ""]).contains("json"));
    for cmd in help_commands() {
        let offered = complete(&["husk", "--root", "/tmp", &cmd, "-"]);
        for flag in help_flags(&husk_help(&[&cmd]), "OPTIONS:") {
            assert!(offered.contains(&flag), "husk {cmd} -<TAB> lacks {flag}: {offered:?}");
        }
    }

    // Container ids come from `husk list -q` under the --root given on the command line.
    let husk = Runtime::husk();
    let bundle = Bundle::new(&["sleep", "1000"]);
    husk.run_ok(&["create", "--bundle", bundle.path().to_str().unwrap(), bundle.id()]);
    let root = husk.root().to_str().unwrap();
    assert_eq!(
        complete(&["husk", "--root", root, "kill", ""]),
        BTreeSet::from([bundle.id().to_string()])
    );
    assert!(complete(&["husk", "--root", root, "kill", bundle.id(), "K"]).contains("KILL"));
    assert!(
        complete(&["husk", "--root", root, "create", ""]).is_empty(),
        "create takes a new id"
    );
    husk.run_ok(&["delete", "--force", bundle.id()]);
}

/// Debian's bash completion for runc as the control: what it offers, husk's offers too.
/// runc's has three bugs husk's does not copy: `runc run --detatch` (a typo of --detach),
/// `runc delete --format` (delete has --force), and `runc kill --<TAB>` offering container
/// ids (its `case $prev in kill)` returns before the flags).
#[test]
fn husk_completion_offers_what_runcs_bash_completion_offers() {
    let runc_file = Path::new("/usr/share/bash-completion/completions/runc");
    assert!(
        runc_file.exists(),
        "install Debian's runc (it ships its bash completion)"
    );
    let runc_setup = format!(
        "source /usr/share/bash-completion/bash_completion\nsource {}",
        runc_file.display()
    );
    let dir = TempDir::new("bash-completion");
    let file = dir.join("husk");
    std::fs::write(&file, husk_completion("bash")).unwrap();
    let husk_setup = format!("source {}", file.display());
    let runc_bugs = ["--detatch", "--format"];

    let runc_commands = bash_complete(&runc_setup, "_runc", &["runc", ""]);
    let husk_commands = bash_complete(&husk_setup, "_husk", &["husk", ""]);
    for cmd in runc_commands
        .iter()
        .filter(|c| !matches!(c.as_str(), "checkpoint" | "restore" | "h"))
    {
        assert!(
            husk_commands.contains(cmd),
            "runc offers {cmd}, husk does not: {husk_commands:?}"
        );
        let runc_flags = bash_complete(&runc_setup, "_runc", &["runc", cmd, "--"]);
        let husk_flags = bash_complete(&husk_setup, "_husk", &["husk", cmd, "--"]);
        for flag in runc_flags.iter().filter(|f| f.starts_with("--")) {
            let runc_bug = runc_bugs.contains(&flag.as_str()) && matches!(cmd.as_str(), "run" | "delete");
            assert!(
                runc_bug || husk_flags.contains(flag),
                "runc {cmd} offers {flag}; husk: {husk_flags:?}"
            );
        }
    }
}

/// Drives an interactive `zsh -f` in a pseudo-terminal (zsh/zpty): compinit with the
/// completion's directory on fpath, `compadd` wrapped to print each match as `<<match>>`, then
/// LINE and a TAB. Usage: `zsh -f capture.zsh DIR LINE`.
const ZSH_CAPTURE: &str = r#"
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PROMPT=; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a hits; builtin compadd -A hits "$@"; local ret=$?
  local h; for h in $hits; do print -r -- "<<$h>>"; done; builtin compadd "$@"; return ret
}'
zpty -w z 'zstyle ":completion:*" menu no; print -r -- "==READY""=="'
local line out=""
while zpty -r z line; do [[ $line == *==READY==* ]] && break; done
zpty -w -n z "$2"$'\t'
# Read until the output has been quiet for half a second (at most 15 s).
local quiet=0 i
for ((i = 0; i < 150 && quiet < 5; i++)); do
  if zpty -r -t z line; then out+=$line; quiet=0; else sleep 0.1; ((quiet += 1)); fi
done
print -r -- "$out"
zpty -d z
"#;

#[test]
fn zsh_completion_parses_and_offers_commands_flags_and_values() {
    let dir = TempDir::new("zsh-completion");
    std::fs::write(dir.join("_husk"), husk_completion("zsh")).unwrap();
    std::fs::write(dir.join("capture.zsh"), ZSH_CAPTURE).unwrap();
    run_ok(Command::new("zsh").arg("-n").arg(dir.join("_husk")));
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", target_dir().display());
    let complete = |line: &str| -> BTreeSet<String> {
        let mut cmd = Command::new("zsh");
        cmd.arg("-f").arg(dir.join("capture.zsh")).arg(dir.path()).arg(line);
        let out = run_ok(cmd.env("PATH", &path).current_dir(dir.path()));
        out.split("<<")
            .skip(1)
            .filter_map(|s| s.split_once(">>").map(|(m, _)| m.to_string()))
            .collect()
    };
    let commands: BTreeSet<String> = help_commands().into_iter().collect();
    assert_eq!(complete("husk "), commands);
    let kill = complete("husk kill --");
    assert!(kill.contains("--all") && kill.contains("--help"), "{kill:?}");
    let exec = complete("husk exec --");
    for flag in help_flags(&husk_help(&["exec"]), "OPTIONS:")
        .iter()
        .filter(|f| f.starts_with("--"))
    {
        assert!(exec.contains(flag), "zsh: husk exec --<TAB> lacks {flag}: {exec:?}");
    }
    assert_eq!(
        complete("husk list --format "),
        BTreeSet::from(["json".into(), "table".into()])
    );
}

#[test]
fn fish_completion_parses_and_offers_commands_flags_and_values() {
    let dir = TempDir::new("fish-completion");
    let file = dir.join("husk.fish");
    std::fs::write(&file, husk_completion("fish")).unwrap();
    run_ok(Command::new("fish").arg("-n").arg(&file));
    let fish = |line: &str| -> BTreeSet<String> {
        let script = format!("source {}; complete -C '{line}'", file.display());
        let out = run_ok(Command::new("fish").args(["--no-config", "-c", &script]));
        out.lines()
            .filter_map(|l| l.split('\t').next())
            .map(str::to_string)
            .collect()
    };
    let kill = fish("husk kill --");
    assert!(kill.contains("--all") && kill.contains("--help"), "{kill:?}");
    let commands = fish("husk ");
    for cmd in help_commands() {
        assert!(commands.contains(&cmd), "fish: husk <TAB> lacks {cmd}: {commands:?}");
    }
    assert_eq!(
        fish("husk list --format "),
        BTreeSet::from(["json".into(), "table".into()])
    );
}

#[test]
fn generators_work_but_are_hidden_from_help_and_refuse_bad_arguments() {
    assert!(husk_completion("bash").contains("complete -F _husk husk"));
    let help = husk_help(&[]);
    assert!(!help.contains("generate"), "{help}");
    let dir = TempDir::new("generate");
    let out_dir = dir.join("pages");
    for args in [
        vec!["--generate-completion", "tcsh"],
        vec!["--generate-man"],
        vec!["--generate-man", out_dir.to_str().unwrap(), "extra"],
    ] {
        let out = run(Command::new(husk_bin()).args(&args));
        assert_eq!(out.status.code(), Some(1), "husk {args:?}: {}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "husk {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "husk {args:?}: {}", output_text(&out));
    }
    assert!(
        !out_dir.exists(),
        "a refused --generate-man wrote {}",
        out_dir.display()
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `packaging/install.sh` with DESTDIR, from the built binaries.
fn install_sh(destdir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("packaging/install.sh"))
        .args(["--bin-dir", target_dir().to_str().unwrap()])
        .args(args)
        .env("DESTDIR", destdir)
        .env_remove("PREFIX");
    run(&mut cmd)
}

/// Every path below `dir`, relative, files and directories.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn install_sh_installs_into_destdir_and_uninstall_removes_exactly_that() {
    let dest = TempDir::new("install");
    std::fs::create_dir_all(dest.join("usr/local/bin")).unwrap();
    std::fs::write(dest.join("usr/local/bin/other-tool"), "not husk's").unwrap();
    let before = tree(dest.path());

    let out = install_sh(dest.path(), &[]);
    assert!(out.status.success(), "install.sh: {}", output_text(&out));
    let prefix = dest.join("usr/local");
    for cmd in help_commands() {
        assert!(
            prefix.join(format!("share/man/man8/husk-{cmd}.8.gz")).is_file(),
            "husk-{cmd}.8.gz"
        );
    }
    for file in [
        "bin/husk",
        "bin/containerd-shim-husk-v2",
        "sbin/husk-register-containerd",
        "share/man/man8/husk.8.gz",
        "share/man/man8/containerd-shim-husk-v2.8.gz",
        "share/bash-completion/completions/husk",
        "share/zsh/site-functions/_husk",
        "share/fish/vendor_completions.d/husk.fish",
        "share/husk/kubernetes/runtimeclass.yaml",
    ] {
        assert!(prefix.join(file).is_file(), "install.sh did not install {file}");
    }
    assert_eq!(
        std::fs::read(prefix.join("bin/husk")).unwrap(),
        std::fs::read(husk_bin()).unwrap(),
        "bin/husk is not the built husk"
    );
    // man finds the installed (gzipped) pages, and bash-completion's loader the completion.
    let man_dir = prefix.join("share/man");
    let kill = run_ok(
        Command::new("man")
            .arg("-M")
            .arg(&man_dir)
            .arg("husk-kill")
            .env("MANWIDTH", "200"),
    );
    assert!(words(&kill).contains("--all"), "{kill}");
    let loader = "source /usr/share/bash-completion/bash_completion; __load_completion husk && complete -p husk";
    let loaded = run_ok(
        Command::new("bash")
            .args(["-c", loader])
            .env("XDG_DATA_DIRS", prefix.join("share")),
    );
    assert!(loaded.contains("-F _husk husk"), "{loaded}");

    // Again over itself: fine. Then --uninstall leaves exactly what was there before.
    let again = install_sh(dest.path(), &[]);
    assert!(again.status.success(), "second install.sh: {}", output_text(&again));
    let out = install_sh(dest.path(), &["--uninstall"]);
    assert!(out.status.success(), "install.sh --uninstall: {}", output_text(&out));
    assert_eq!(tree(dest.path()), before);
    let out = install_sh(dest.path(), &["--uninstall"]);
    assert!(
        !out.status.success(),
        "a second --uninstall must fail: {}",
        output_text(&out)
    );
}

#[test]
fn install_sh_refuses_to_replace_a_file_it_did_not_install() {
    let dest = TempDir::new("install");
    std::fs::create_dir_all(dest.join("usr/local/bin")).unwrap();
    std::fs::write(dest.join("usr/local/bin/husk"), "someone else's husk").unwrap();
    let before = tree(dest.path());
    let out = install_sh(dest.path(), &[]);
    assert!(
        !out.status.success(),
        "install.sh replaced a foreign file: {}",
        output_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        output_text(&out)
    );
    assert_eq!(tree(dest.path()), before, "a refused install left files behind");
    let out = install_sh(dest.path(), &["--prefix-typo"]);
    assert!(!out.status.success());
}
