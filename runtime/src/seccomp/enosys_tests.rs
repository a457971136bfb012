//! The stub run through a small cBPF interpreter, so every path is checked without a kernel.

use super::*;
use serde_json::json;

const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xc000_00b7;
/// What the interpreter returns when the stub falls through to libseccomp's program.
const MAIN: u32 = 0xdead_beef;
const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn profile(value: serde_json::Value) -> LinuxSeccomp {
    super::super::parse_profile(&value).expect("valid profile")
}

/// Runs `program` on (nr, arch); jumping to the end means "libseccomp's program" (MAIN).
fn run(program: &[u64], nr: u32, arch: u32) -> u32 {
    let mut pc = 0usize;
    let mut acc = 0u32;
    while pc < program.len() {
        let bytes = program[pc].to_ne_bytes();
        let code = u16::from_ne_bytes([bytes[0], bytes[1]]);
        let (jt, jf) = (usize::from(bytes[2]), usize::from(bytes[3]));
        let k = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let jump = |taken: bool| if taken { jt } else { jf };
        pc += 1 + match code {
            LD_W_ABS => {
                acc = if k == DATA_NR { nr } else { arch };
                0
            }
            JMP_JA => k as usize,
            JMP_JEQ_K => jump(acc == k),
            JMP_JGT_K => jump(acc > k),
            JMP_JSET_K => jump(acc & k != 0),
            RET_K => return k,
            other => panic!("unexpected opcode {other:#x}"),
        };
    }
    assert_eq!(pc, program.len(), "jumped past the end of the stub");
    MAIN
}

fn nr(name: &str, arch: ScmpArch) -> u32 {
    ScmpSyscall::from_name_by_arch(name, arch)
        .expect("known syscall")
        .as_raw_syscall() as u32
}

#[test]
fn allow_like_defaults_need_no_stub() {
    for action in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
        let p = profile(json!({"defaultAction": action,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}));
        assert!(stub(&p).is_empty(), "{action}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn newer_syscalls_get_enosys_per_architecture() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "write", "openat"], "action": "SCMP_ACT_ALLOW"}]}));
    let program = stub(&p);
    let max64 = nr("openat", ScmpArch::X8664);
    let max32 = nr("openat", ScmpArch::X32);
    let max386 = nr("openat", ScmpArch::X86);
    assert_eq!(
        run(&program, max64, AUDIT_ARCH_X86_64),
        MAIN,
        "the newest named one passes"
    );
    assert_eq!(run(&program, 0, AUDIT_ARCH_X86_64), MAIN, "older ones get the profile");
    assert_eq!(run(&program, max64 + 1, AUDIT_ARCH_X86_64), ENOSYS);
    assert_eq!(run(&program, nr("clone3", ScmpArch::X8664), AUDIT_ARCH_X86_64), ENOSYS);
    assert_eq!(
        run(&program, max32, AUDIT_ARCH_X86_64),
        MAIN,
        "x32 compared with its own max"
    );
    assert_eq!(run(&program, max32 + 1, AUDIT_ARCH_X86_64), ENOSYS);
    assert_eq!(run(&program, max386, I386), MAIN);
    assert_eq!(run(&program, max386 + 1, I386), ENOSYS);
    assert_eq!(
        run(&program, 9999, AARCH64),
        MAIN,
        "an arch outside the filter is libseccomp's"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_numbers_are_left_alone_when_x32_is_not_in_the_filter() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}));
    let program = stub(&p);
    assert_eq!(run(&program, X32_SYSCALL_BIT | 500, AUDIT_ARCH_X86_64), MAIN);
    assert_eq!(
        run(&program, 1, AUDIT_ARCH_X86_64),
        ENOSYS,
        "write (1) is newer than read (0)"
    );
    assert_eq!(run(&program, 0, AUDIT_ARCH_X86_64), MAIN);
}

#[test]
fn profile_naming_no_known_syscall_gets_no_stub() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["no_such_syscall_husk"], "action": "SCMP_ACT_ALLOW"}]}));
    assert!(stub(&p).is_empty());
    let bare = profile(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
    assert!(stub(&bare).is_empty());
}

#[test]
fn s390_multiplexer_gets_enosys() {
    let group = ArchGroup {
        audit_arch: 0x8000_0016,
        max: Some(100),
        x32_max: None,
        s390: true,
    };
    let program = assemble(&[group]);
    assert_eq!(run(&program, 0, 0x8000_0016), ENOSYS);
    assert_eq!(run(&program, 50, 0x8000_0016), MAIN);
    assert_eq!(run(&program, 101, 0x8000_0016), ENOSYS);
}
