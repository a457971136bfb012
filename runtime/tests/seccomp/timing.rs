//! What a Docker-sized profile costs at container start.

use std::fs;
use std::time::Instant;

use husk::seccomp::{self};
use nix::errno::Errno;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

use crate::support::*;

/// A profile the size of Docker's default: every x86_64 syscall libseccomp knows allowed but a
/// handful, default ERRNO, three architectures and argument rules for personality and clone.
fn docker_sized_profile() -> LinuxSeccomp {
    let denied = [
        "mount",
        "umount2",
        "reboot",
        "kexec_load",
        "init_module",
        "personality",
        "clone",
    ];
    let names: Vec<String> = (0..500)
        .filter_map(|nr| {
            let syscall = libseccomp::ScmpSyscall::from_raw_syscall(nr);
            syscall.get_name_by_arch(libseccomp::ScmpArch::native()).ok()
        })
        .filter(|name| !denied.contains(&name.as_str()))
        .collect();
    let personas: Vec<Value> = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
        .iter()
        .map(|v| json!({"index": 0, "value": v, "op": "SCMP_CMP_EQ"}))
        .collect();
    profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": personas},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }))
}

#[test]
fn docker_sized_profile_prepared_in_the_parent_loads_in_one_syscall() {
    let profile = docker_sized_profile();
    let dir = TempDir::new("timing");
    let cache = dir.0.join("cache");
    let start = Instant::now();
    let program = seccomp::prepare_cached(&profile, &cache).expect("prepare (cache miss)");
    let miss = start.elapsed();
    let start = Instant::now();
    let cached = seccomp::prepare_cached(&profile, &cache).expect("prepare (cache hit)");
    let hit = start.elapsed();
    assert_eq!(cached, program);
    let report = dir.0.join("load-micros");
    Child::spawn(|| {
        let start = Instant::now();
        program.load().map_err(|e| format!("load: {e}"))?;
        let micros = start.elapsed().as_micros().to_string();
        expect_errno("umount2", nix::mount::umount("/nonexistent-husk"), Errno::EPERM)?;
        expect_errno("personality(1)", raw_syscall(libc::SYS_personality, 1), Errno::EPERM)?;
        raw_syscall(libc::SYS_getppid, 0).map_err(|e| format!("getppid is allowed: {e}"))?;
        fs::write(&report, micros).map_err(|e| format!("write timing: {e}"))
    })
    .expect_success();
    let load_micros: u128 = fs::read_to_string(&report).expect("timing").parse().expect("number");
    println!(
        "docker-sized profile, {} BPF instructions: prepare {} us (cache miss), {} us (cache hit), load {} us",
        program.instructions(),
        miss.as_micros(),
        hit.as_micros(),
        load_micros
    );
    assert!(hit < miss, "a cache hit must be cheaper than compiling");
}
