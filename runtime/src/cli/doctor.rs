//! `husk doctor [--json] [--containerd-config FILE] [--containerd-address SOCK] [--containerd-path PATH]`

use super::args::Parsed;
use crate::doctor::{examine, exit_code, render_json, render_text, DoctorOptions};
use crate::error::{Error, Result};
use std::path::PathBuf;

pub fn cmd_doctor(parsed: &Parsed) -> Result<i32> {
    if let Some(extra) = parsed.positional.first() {
        return Err(Error::Usage(format!("doctor takes no arguments, got {extra:?}")));
    }
    let mut opts = DoctorOptions::default();
    if let Some(config) = parsed.get("containerd-config") {
        opts.containerd_config = PathBuf::from(config);
    }
    opts.containerd_address = parsed.get("containerd-address").map(PathBuf::from);
    if let Some(path) = parsed.get("containerd-path") {
        opts.containerd_path = path.to_string();
    }
    let findings = examine(&opts);
    match parsed.has("json") {
        true => println!("{}", render_json(&findings)),
        false => print!("{}", render_text(&findings)),
    }
    Ok(exit_code(&findings))
}
