//! `husk spec`: a starting config.json, like `runc spec`.

use crate::error::{Error, Result};
use crate::sys::Context;
use oci_spec::runtime::Spec;
use std::path::Path;

/// runc's default: `sh` on a terminal, hostname "husk", read-only rootfs at `rootfs`,
/// the usual namespaces, mounts, masked and read-only paths and capabilities.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("husk".to_string()));
    spec.set_version(crate::state::OCI_VERSION.to_string());
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
    }
    // runc's spec denies every device; husk adds its default allow list at create either way.
    let mut deny_all = oci_spec::runtime::LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".to_string()));
    let mut resources = oci_spec::runtime::LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(Some(resources));
    }
    spec
}

pub fn write_spec(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; remove it first",
            path.display()
        )));
    }
    let text = serde_json::to_string_pretty(&default_spec())
        .map_err(|e| Error::Usage(format!("failed to encode the default spec: {e}")))?;
    std::fs::write(&path, text + "\n").ctx("write", path.display())?;
    Ok(())
}
