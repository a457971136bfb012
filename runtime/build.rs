//! HUSK_COMMIT for `husk --version`: the environment's value (packagers), else `git rev-parse`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HUSK_COMMIT");
    let commit = std::env::var("HUSK_COMMIT")
        .ok()
        .or_else(git_head)
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a commit or a checkout), not on every build.
    for what in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", what]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=HUSK_COMMIT={commit}");
}

fn git_head() -> Option<String> {
    git(&["rev-parse", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
