//! Section 7: the size of the binaries on disk (what a node has to ship and page in).

use std::path::{Path, PathBuf};

use crate::ctrd::{GO_SHIM, HUSK_SHIM};
use crate::report::Report;

/// Size in bytes and whether the ELF still carries a symbol table.
fn size_of(path: &Path) -> Option<(u64, bool)> {
    let bytes = std::fs::read(path).ok()?;
    let stripped = !bytes.windows(8).any(|w| w == b".symtab\0");
    Some((bytes.len() as u64, stripped))
}

pub fn bench_sizes(report: &mut Report) {
    report.say("\n## 7. binary sizes");
    let target = husk_e2e::target_dir();
    let list: [(&str, PathBuf); 5] = [
        ("husk", target.join("husk")),
        ("containerd-shim-husk-v2", target.join(HUSK_SHIM)),
        ("runc", PathBuf::from("/usr/sbin/runc")),
        ("crun", PathBuf::from("/usr/bin/crun")),
        ("containerd-shim-runc-v2", PathBuf::from(GO_SHIM)),
    ];
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    for (name, path) in &list {
        match size_of(path) {
            Some((bytes, stripped)) => {
                report.raw("sizes", "bytes", name, 0, bytes as f64, "B");
                rows.push(vec![
                    name.to_string(),
                    format!("{:.2}", bytes as f64 / 1048576.0),
                    if stripped { "yes".into() } else { "no".into() },
                    path.display().to_string(),
                ]);
                sizes.push(Some(bytes));
            }
            None => {
                rows.push(vec![
                    name.to_string(),
                    "n/a: not found".into(),
                    String::new(),
                    path.display().to_string(),
                ]);
                sizes.push(None);
            }
        }
    }
    report.table("binary sizes", &["binary", "MiB", "stripped", "path"], &rows);
    if let (Some(h), Some(s), Some(r), Some(g)) = (sizes[0], sizes[1], sizes[2], sizes[4]) {
        report.say(&format!(
            "husk + its shim: {:.2} MiB; runc + Go shim: {:.2} MiB ({:.2}×)",
            (h + s) as f64 / 1048576.0,
            (r + g) as f64 / 1048576.0,
            (h + s) as f64 / (r + g) as f64
        ));
    }
}
