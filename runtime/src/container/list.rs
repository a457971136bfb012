//! `husk list`: every container under --root.

use super::Global;
use crate::error::{Error, Result};
use crate::sys::Context;
use husk_protocol::ContainerState;

/// A --root that is missing or unreadable is an error: an empty table would hide a typo.
/// (runc creates a missing root as a side effect of loading its factory, then lists nothing.)
pub fn list(global: &Global) -> Result<Vec<ContainerState>> {
    let entries = std::fs::read_dir(&global.root).ctx("list", global.root.display())?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        // Only directories are containers; a --root shared with other files still lists.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match super::state::state(global, &id) {
            Ok(state) => out.push(state),
            // Gone or half-made meanwhile: not listed, as runc does.
            Err(Error::NotFound(_)) | Err(Error::InvalidId { .. }) => {}
            // One broken entry must not hide the others: runc warns and goes on.
            Err(e) => eprintln!("husk: warning: list: skipping {id}: {e}"),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// runc's table: ID, PID, STATUS, BUNDLE, CREATED, OWNER.
pub fn render_table(states: &[ContainerState]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for s in states {
        rows.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.clone(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("   ")
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}
