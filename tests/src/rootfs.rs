//! A minimal busybox root filesystem, described once and written either to a directory
//! (bundles) or to a tar layer (the OCI image), so both are the same tree.

use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Debian's busybox-static: a static binary, so the rootfs needs no libraries.
pub const BUSYBOX: &str = "/bin/busybox";

pub(crate) enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: &'static [u8],
    },
    Symlink {
        path: String,
        target: String,
    },
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    user:x:1000:1000:user:/home/user:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// The rootfs, parents before children, in a fixed order (the image must be deterministic).
pub(crate) fn layout() -> io::Result<&'static [Entry]> {
    static LAYOUT: OnceLock<Vec<Entry>> = OnceLock::new();
    if let Some(l) = LAYOUT.get() {
        return Ok(l);
    }
    let built = build_layout()?;
    Ok(LAYOUT.get_or_init(|| built))
}

fn build_layout() -> io::Result<Vec<Entry>> {
    let binary: &'static [u8] = Box::leak(std::fs::read(BUSYBOX)?.into_boxed_slice());
    let mut entries: Vec<Entry> = ["bin", "dev", "etc", "home", "home/user", "proc", "root", "sys", "tmp"]
        .iter()
        .map(|d| Entry::Dir {
            path: d.to_string(),
            mode: if *d == "tmp" { 0o1777 } else { 0o755 },
        })
        .collect();
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        data: binary,
    });
    for applet in applets()? {
        if applet != "busybox" {
            entries.push(Entry::Symlink {
                path: format!("bin/{applet}"),
                target: "busybox".into(),
            });
        }
    }
    entries.push(Entry::File {
        path: "etc/passwd".into(),
        mode: 0o644,
        data: PASSWD.as_bytes(),
    });
    entries.push(Entry::File {
        path: "etc/group".into(),
        mode: 0o644,
        data: GROUP.as_bytes(),
    });
    Ok(entries)
}

fn applets() -> io::Result<Vec<String>> {
    let out = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{BUSYBOX} --list failed: {}", out.status)));
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // An applet name with a slash would escape bin/.
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Write a minimal busybox rootfs into `dir` (created if missing): bin/busybox and a
/// symlink per applet, /etc/passwd and /etc/group (root, user 1000, nobody), and empty
/// proc sys dev tmp. The binary is a copy, never a hardlink: a container that writes
/// to its rootfs must not reach the host's /bin/busybox.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in layout()? {
        match entry {
            Entry::Dir { path, mode } => {
                let p = dir.join(path);
                std::fs::create_dir_all(&p)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
            }
            Entry::File { path, mode, data } => {
                let p = dir.join(path);
                std::fs::write(&p, data)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
            }
            Entry::Symlink { path, target } => symlink(target, dir.join(path))?,
        }
    }
    Ok(())
}
