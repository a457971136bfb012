//! The container engines that would drive husk: containerd (the husk runtime registered, the
//! CRI plugin loaded, the shim on containerd's PATH, the options file and its BinaryName), and
//! whether Docker and podman know a husk runtime.

use super::{DoctorOptions, Finding, Verdict};
use std::path::{Path, PathBuf};
use std::process::Command;

const AREA: &str = "containerd";
const HUSK_TABLE: &str = ".containerd.runtimes.husk]";

pub fn examine(opts: &DoctorOptions) -> Vec<Finding> {
    let mut findings = containerd(opts);
    findings.push(docker());
    findings.push(podman());
    findings
}

fn run(cmd: &mut Command) -> Result<String, String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn containerd(opts: &DoctorOptions) -> Vec<Finding> {
    let version = match run(Command::new("containerd").arg("--version")) {
        Ok(v) => v.split_whitespace().nth(2).unwrap_or("unknown").to_string(),
        Err(_) => {
            return vec![
                Finding::new(AREA, "installed", Verdict::Info, "containerd is not installed")
                    .advise("husk still works on its own and under podman or Docker"),
            ]
        }
    };
    let mut findings = vec![Finding::new(AREA, "version", Verdict::Info, version)];
    let dump = match run(Command::new("containerd")
        .arg("--config")
        .arg(&opts.containerd_config)
        .args(["config", "dump"]))
    {
        Ok(dump) => dump,
        Err(e) => {
            findings.push(
                Finding::new(
                    AREA,
                    "config",
                    Verdict::Blocker,
                    format!("{}: {e}", opts.containerd_config.display()),
                )
                .advise("containerd cannot read its own config: it will not start"),
            );
            return findings;
        }
    };
    let registered = dump.contains(HUSK_TABLE);
    findings.push(match registered {
        true => Finding::new(AREA, "husk runtime", Verdict::Ok, "registered (CRI handler \"husk\")"),
        false => Finding::new(AREA, "husk runtime", Verdict::Warn, "not registered in the CRI config")
            .advise("run husk-register-containerd (packaging/containerd/register-husk.sh), then restart containerd"),
    });
    findings.push(shim_on_path(&opts.containerd_path, registered));
    if registered {
        findings.push(options_file(&dump));
    }
    let address = opts.containerd_address.clone().or_else(|| grpc_address(&dump));
    findings.push(cri_plugin(address.as_deref()));
    findings
}

fn shim_on_path(path: &str, registered: bool) -> Finding {
    let found = path
        .split(':')
        .map(|d| Path::new(d).join("containerd-shim-husk-v2"))
        .find(|p| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok());
    match (found, registered) {
        (Some(p), _) => Finding::new(AREA, "shim", Verdict::Ok, format!("{} on containerd's PATH", p.display())),
        (None, true) => Finding::new(AREA, "shim", Verdict::Blocker, format!("containerd-shim-husk-v2 not found in {path}"))
            .advise("containerd runs io.containerd.husk.v2 as containerd-shim-husk-v2 from its PATH: install it in /usr/bin or /usr/local/bin"),
        (None, false) => Finding::new(AREA, "shim", Verdict::Info, "containerd-shim-husk-v2 is not on containerd's PATH"),
    }
}

/// The husk runtime's ConfigPath file, and the BinaryName it names.
fn options_file(dump: &str) -> Finding {
    let husk = dump.split(HUSK_TABLE).nth(1).unwrap_or("");
    let config_path = toml_string(husk, "ConfigPath");
    let Some(config_path) = config_path else {
        return Finding::new(
            AREA,
            "options",
            Verdict::Info,
            "no ConfigPath: the shim runs the husk beside it, else on PATH",
        );
    };
    let text = match std::fs::read_to_string(&config_path) {
        Ok(text) => text,
        Err(e) => {
            return Finding::new(AREA, "options", Verdict::Blocker, format!("{config_path}: {e}"))
                .advise("the shim refuses to create containers without its options file")
        }
    };
    match toml_string(&text, "BinaryName") {
        Some(bin) if nix::unistd::access(Path::new(&bin), nix::unistd::AccessFlags::X_OK).is_err() => Finding::new(
            AREA,
            "options",
            Verdict::Blocker,
            format!("{config_path}: BinaryName {bin} is not executable"),
        )
        .advise("point BinaryName at the installed husk (/usr/bin/husk from the package)"),
        Some(bin) => Finding::new(AREA, "options", Verdict::Ok, format!("{config_path}: BinaryName {bin}")),
        None => Finding::new(
            AREA,
            "options",
            Verdict::Ok,
            format!("{config_path}: the shim runs the husk beside it"),
        ),
    }
}

/// `key = "value"` from TOML text: the first line with that key (enough for the flat tables
/// of containerd's dump and the options file).
fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key)
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

fn grpc_address(dump: &str) -> Option<PathBuf> {
    let grpc = dump.split("\n[grpc]").nth(1)?;
    toml_string(grpc.split("\n[").next().unwrap_or(""), "address").map(PathBuf::from)
}

fn cri_plugin(address: Option<&Path>) -> Finding {
    let Some(address) = address.filter(|a| a.exists()) else {
        return Finding::new(
            AREA,
            "CRI plugin",
            Verdict::Warn,
            "containerd is not running: cannot tell whether CRI loads",
        )
        .advise("start containerd and run husk doctor again");
    };
    match run(Command::new("ctr").arg("--address").arg(address).args(["plugins", "ls"])) {
        Ok(list) => match list.lines().find(|l| l.split_whitespace().nth(1) == Some("cri")) {
            Some(line) if line.split_whitespace().last() == Some("ok") => {
                Finding::new(AREA, "CRI plugin", Verdict::Ok, "loaded")
            }
            Some(line) => Finding::new(AREA, "CRI plugin", Verdict::Blocker, format!("not loaded: {}", line.trim()))
                .advise("no pod can run on this node, runc's included: see `journalctl -u containerd | grep 'invalid plugin config'`"),
            None => Finding::new(AREA, "CRI plugin", Verdict::Warn, "not listed (disabled_plugins?)"),
        },
        Err(e) => Finding::new(AREA, "CRI plugin", Verdict::Warn, format!("ctr plugins ls: {e}")),
    }
}

fn docker() -> Finding {
    let Ok(text) = std::fs::read_to_string("/etc/docker/daemon.json") else {
        return Finding::new("engines", "docker", Verdict::Info, "no /etc/docker/daemon.json");
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let runtimes = json.get("runtimes").and_then(|r| r.as_object());
    match runtimes.and_then(|r| {
        r.iter()
            .find(|(_, v)| v["path"].as_str().is_some_and(|p| p.ends_with("husk")))
    }) {
        Some((name, _)) => Finding::new("engines", "docker", Verdict::Ok, format!("runtime {name:?} runs husk")),
        None => Finding::new("engines", "docker", Verdict::Info, "daemon.json names no husk runtime")
            .advise("add {\"runtimes\": {\"husk\": {\"path\": \"/usr/bin/husk\"}}} to use `docker run --runtime husk`"),
    }
}

fn podman() -> Finding {
    let confs = [
        "/etc/containers/containers.conf",
        "/usr/share/containers/containers.conf",
    ];
    let found = confs.iter().find(|c| {
        std::fs::read_to_string(c)
            .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("husk") && l.contains('=')))
    });
    match found {
        Some(conf) => Finding::new("engines", "podman", Verdict::Ok, format!("{conf} has a husk runtime")),
        None => Finding::new("engines", "podman", Verdict::Info, "no husk runtime in containers.conf")
            .advise("`podman --runtime /usr/bin/husk` works without one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_path_and_grpc_address_from_a_dump() {
        let dump = "version = 2\n[grpc]\n  address = \"/run/x/c.sock\"\n  uid = 0\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk]\n    runtime_type = \"io.containerd.husk.v2\"\n    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk.options]\n      ConfigPath = \"/etc/containerd/husk-options.toml\"\n";
        assert_eq!(grpc_address(dump), Some(PathBuf::from("/run/x/c.sock")));
        let husk = dump.split(HUSK_TABLE).nth(1).unwrap_or("");
        assert_eq!(
            toml_string(husk, "ConfigPath").as_deref(),
            Some("/etc/containerd/husk-options.toml")
        );
        assert_eq!(toml_string("BinaryName = \"\"\n", "BinaryName"), None);
    }
}
