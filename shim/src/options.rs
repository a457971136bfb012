//! Runtime options: containerd's runc options (`containerd.runc.v1.Options`, as the Go runc shim
//! reads them) or CRI's generic `runtimeoptions.v1.Options` whose `ConfigPath` names a TOML file
//! with the same keys (the only way containerd 1.6's `ctr` and CRI pass options to a non-runc
//! runtime). The options are saved in the bundle so `shim delete` finds the same runtime.

use std::fs;
use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::rt::WireType;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{CodedInputStream, Message};
use containerd_shim::protos::shim::oci::Options as RuncOptions;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const OPTIONS_FILE: &str = "husk-options.json";
const RUNC_OPTIONS_TYPES: [&str; 2] = ["containerd.runc.v1.Options", "io.containerd.runc.v1.Options"];
const GENERIC_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";
/// What containerd 1.6's client sends for a runtime whose name does not start with
/// `io.containerd.runc` (`WithNoPivotRoot`, `WithShimCgroup`, `WithUIDOwner`, ...).
const LEGACY_OPTIONS_TYPE: &str = "containerd.linux.runc.CreateOptions";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeOptions {
    /// Runtime binary name or path; empty means `husk`.
    pub binary_name: String,
    /// Runtime state root; empty means `/run/containerd/<binary>/<namespace>`.
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub io_uid: u32,
    pub io_gid: u32,
    pub shim_cgroup: String,
}

impl RuntimeOptions {
    /// Options from a Create request's `options` field; none means defaults.
    pub fn from_any(any: Option<&Any>) -> Result<RuntimeOptions> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
            return Ok(RuntimeOptions::default());
        };
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        if RUNC_OPTIONS_TYPES.contains(&name) {
            let runc = RuncOptions::parse_from_bytes(&any.value).map_err(|source| Error::Decode {
                what: "runc options",
                source,
            })?;
            return Ok(RuntimeOptions::from(runc));
        }
        if name == GENERIC_OPTIONS_TYPE {
            let path = generic_config_path(&any.value)?;
            if path.is_empty() {
                return Ok(RuntimeOptions::default());
            }
            let text = fs::read_to_string(&path).map_err(Error::io("read runtime options", &path))?;
            return parse_toml_options(&text);
        }
        if name == LEGACY_OPTIONS_TYPE {
            return legacy_create_options(&any.value);
        }
        Err(Error::InvalidArgument(format!(
            "unsupported runtime options type {}",
            any.type_url
        )))
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join(OPTIONS_FILE);
        let json = serde_json::to_vec(self).map_err(|source| Error::Json {
            what: "options",
            source,
        })?;
        fs::write(&path, json).map_err(Error::io("write runtime options", path))
    }

    /// The options saved at Create; defaults when the bundle has none (Create never ran).
    pub fn load(bundle: &Path) -> RuntimeOptions {
        fs::read(bundle.join(OPTIONS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The runtime binary to run: `BinaryName`, else `husk` beside the shim, else `husk` on PATH.
    pub fn binary(&self) -> PathBuf {
        if !self.binary_name.is_empty() {
            return PathBuf::from(&self.binary_name);
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("husk")));
        match beside {
            Some(path) if path.is_file() => path,
            _ => PathBuf::from("husk"),
        }
    }

    /// The runtime's `--root`: the `Root` option, else `/run/containerd/<runtime>/<namespace>`.
    pub fn root(&self, namespace: &str) -> PathBuf {
        if !self.root.is_empty() {
            return Path::new(&self.root).join(namespace);
        }
        let binary = self.binary();
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("husk");
        Path::new("/run/containerd").join(name).join(namespace)
    }
}

impl From<RuncOptions> for RuntimeOptions {
    fn from(o: RuncOptions) -> Self {
        RuntimeOptions {
            binary_name: o.binary_name,
            root: o.root,
            systemd_cgroup: o.systemd_cgroup,
            no_pivot_root: o.no_pivot_root,
            no_new_keyring: o.no_new_keyring,
            io_uid: o.io_uid,
            io_gid: o.io_gid,
            shim_cgroup: o.shim_cgroup,
        }
    }
}

/// Field 2 (`config_path`) of `runtimeoptions.v1.Options`; the crate ships no type for it.
fn generic_config_path(bytes: &[u8]) -> Result<String> {
    let decode = |source| Error::Decode {
        what: "runtimeoptions",
        source,
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut path = String::new();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(decode)? {
        if tag >> 3 == 2 && tag & 7 == 2 {
            path = input.read_string().map_err(decode)?;
        } else {
            let wire_type =
                WireType::new(tag & 7).ok_or_else(|| Error::InvalidArgument("runtimeoptions: bad wire type".into()))?;
            input.skip_field(wire_type).map_err(decode)?;
        }
    }
    Ok(path)
}

/// `containerd.linux.runc.CreateOptions` (runtime/linux/runctypes/runc.proto): the fields a
/// shim honours are 1 no_pivot_root, 8 no_new_keyring, 9 shim_cgroup, 10 io_uid, 11 io_gid; the
/// checkpoint-only ones are skipped. The crate ships no type for it.
fn legacy_create_options(bytes: &[u8]) -> Result<RuntimeOptions> {
    let decode = |source| Error::Decode {
        what: "legacy runc create options",
        source,
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut opts = RuntimeOptions::default();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(decode)? {
        match (tag >> 3, tag & 7) {
            (1, 0) => opts.no_pivot_root = input.read_bool().map_err(decode)?,
            (8, 0) => opts.no_new_keyring = input.read_bool().map_err(decode)?,
            (9, 2) => opts.shim_cgroup = input.read_string().map_err(decode)?,
            (10, 0) => opts.io_uid = input.read_uint32().map_err(decode)?,
            (11, 0) => opts.io_gid = input.read_uint32().map_err(decode)?,
            (_, wire) => {
                let wire_type = WireType::new(wire)
                    .ok_or_else(|| Error::InvalidArgument("runc create options: bad wire type".into()))?;
                input.skip_field(wire_type).map_err(decode)?;
            }
        }
    }
    Ok(opts)
}

/// The TOML subset CRI uses for runtime option files: `Key = value` lines, comments, tables.
pub fn parse_toml_options(text: &str) -> Result<RuntimeOptions> {
    let mut opts = RuntimeOptions::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::InvalidArgument(format!("runtime options: bad line {line:?}")));
        };
        let value = value
            .split(" #")
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"')
            .to_string();
        let flag = || value == "true";
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| Error::InvalidArgument(format!("{key}: not a number")))
        };
        match key.trim() {
            "BinaryName" => opts.binary_name = value.clone(),
            "Root" => opts.root = value.clone(),
            "SystemdCgroup" => opts.systemd_cgroup = flag(),
            "NoPivotRoot" => opts.no_pivot_root = flag(),
            "NoNewKeyring" => opts.no_new_keyring = flag(),
            "IoUid" => opts.io_uid = number()?,
            "IoGid" => opts.io_gid = number()?,
            "ShimCgroup" => opts.shim_cgroup = value.clone(),
            other => return Err(Error::InvalidArgument(format!("runtime options: unknown key {other}"))),
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_any_selects_the_binary() {
        let runc = RuncOptions {
            binary_name: "/usr/sbin/runc".into(),
            no_pivot_root: true,
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let opts = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!(opts.binary(), PathBuf::from("/usr/sbin/runc"));
        assert!(opts.no_pivot_root);
        assert_eq!(opts.root("k8s.io"), PathBuf::from("/run/containerd/runc/k8s.io"));
    }

    #[test]
    fn toml_option_files_use_the_runc_option_keys() {
        let text =
            "# husk\n[options]\nBinaryName = \"crun\"\nRoot = \"/run/x\" # state\nNoNewKeyring = true\nIoUid = 1000\n";
        let opts = parse_toml_options(text).unwrap();
        assert_eq!(opts.binary_name, "crun");
        assert_eq!(opts.root("default"), PathBuf::from("/run/x/default"));
        assert!(opts.no_new_keyring);
        assert_eq!(opts.io_uid, 1000);
        assert!(parse_toml_options("Bogus = 1").is_err());
    }

    #[test]
    fn legacy_create_options_decode_the_fields_a_shim_honours() {
        // 1 no_pivot_root, 4 terminal (skipped), 6 empty_namespaces (skipped), 8 no_new_keyring,
        // 9 shim_cgroup "/s", 10 io_uid 1000, 11 io_gid 7
        let bytes = [
            0x08, 1, 0x20, 1, 0x32, 3, b'n', b'e', b't', 0x40, 1, 0x4a, 2, b'/', b's', 0x50, 0xe8, 0x07, 0x58, 7,
        ];
        let any = Any {
            type_url: "containerd.linux.runc.CreateOptions".into(),
            value: bytes.to_vec(),
            ..Default::default()
        };
        let opts = RuntimeOptions::from_any(Some(&any)).unwrap();
        let want = RuntimeOptions {
            no_pivot_root: true,
            no_new_keyring: true,
            shim_cgroup: "/s".into(),
            io_uid: 1000,
            io_gid: 7,
            ..Default::default()
        };
        assert_eq!(opts, want);
        assert_eq!(opts.binary_name, "");
    }

    #[test]
    fn generic_options_carry_a_config_path() {
        // field 1 type_url "x", field 2 config_path "/p"
        let bytes = [0x0a, 1, b'x', 0x12, 2, b'/', b'p'];
        assert_eq!(generic_config_path(&bytes).unwrap(), "/p");
    }
}
