//! `containerd-shim-husk-v2`: the containerd runtime v2 shim for `io.containerd.husk.v2`.
//! Argument parsing and the daemon's plumbing belong to the containerd-shim crate; this file
//! only answers `-v` (which the crate leaves to the binary) and hands over.

mod console;
mod container;
mod daemon;
mod error;
mod events;
mod logbinary;
mod logger;
mod mainloop;
mod mount;
mod oom;
mod options;
mod process;
mod pump;
mod reaper;
mod rpc;
mod runtime;
mod server;
mod service;
mod shim;
mod stats;
mod stats_v1;
mod stats_v2;
mod stdin;
mod stdio;

const RUNTIME_ID: &str = "io.containerd.husk.v2";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| a == "-v" || a == "--v" || a == "-version" || a == "--version")
    {
        println!(
            "containerd-shim-husk-v2:\n  Runtime: {RUNTIME_ID}\n  Version: {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    match containerd_shim::parse(&args) {
        // No action: the long-lived daemon, which must serve containerd 1.6's task API too.
        Ok(flags) if flags.action.is_empty() && !flags.info => {
            if let Err(err) = daemon::run(flags) {
                eprintln!("{RUNTIME_ID}: {err}");
                std::process::exit(1);
            }
        }
        _ => containerd_shim::run::<shim::HuskShim>(RUNTIME_ID, None),
    }
}
