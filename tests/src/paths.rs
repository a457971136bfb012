//! Where the binaries under test live.

use std::path::PathBuf;

/// The cargo profile directory holding the workspace's binaries (`target/<profile>`).
///
/// `HUSK_TARGET_DIR` overrides it. Otherwise it is derived from the running test binary,
/// which cargo puts in `target/<profile>/deps/`, so it follows `CARGO_TARGET_DIR` and the
/// profile without being told.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUSK_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let dir = exe.parent().expect("test binary has a parent directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps/ has a parent directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The `husk` runtime binary. Panics with a hint when it has not been built: cargo builds
/// another package's binaries only for that package's own tests.
pub fn husk_bin() -> PathBuf {
    built("husk")
}

/// The `containerd-shim-husk-v2` binary (panics like [`husk_bin`] when it is missing).
pub fn shim_bin() -> PathBuf {
    built("containerd-shim-husk-v2")
}

fn built(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace` first (or set HUSK_TARGET_DIR)",
        path.display()
    );
    path
}
