//! The CRI sandbox ("pause") image, built offline from packaging/pause/pause.c.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image::{image_archive, ImageFile};

/// What [`pause_image_archive`] is usually imported as; give it to CRI as `sandbox_image`.
pub const PAUSE_REF: &str = "registry.k8s.io/pause:husk";

/// The pause program's source in the repository.
pub fn pause_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/pause/pause.c")
}

/// Compile the pause program (static, so the image needs no libc) to `out`.
pub fn build_pause(out: &Path) -> io::Result<()> {
    let src = pause_source();
    let result = Command::new("gcc")
        .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .arg(&src)
        .output()?;
    if result.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "failed to compile {}: {}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    )))
}

/// Write an image archive holding only `/pause` (its entrypoint) to `path`, named
/// `reference`. The binary is compiled next to `path` and removed again.
pub fn pause_image_archive(path: &Path, reference: &str) -> io::Result<()> {
    let mut bin = path.as_os_str().to_owned();
    bin.push(".pause-bin");
    let bin = PathBuf::from(bin);
    build_pause(&bin)?;
    let data = std::fs::read(&bin);
    let _ = std::fs::remove_file(&bin);
    let data = data?;
    let files = [ImageFile {
        path: "pause",
        mode: 0o755,
        data: &data,
    }];
    image_archive(path, reference, &files, &["/pause"])
}
