//! The -ENOSYS stub, runc's answer to profiles older than the kernel and libc.
//!
//! A syscall the profile never names gets the default action, typically ERRNO(EPERM). For a
//! syscall newer than the profile that is wrong: libc tries e.g. `clone3` first and falls back to
//! `clone` only on ENOSYS, so glibc's pthread_create fails with EPERM. Like runc, husk prepends a
//! few BPF instructions that answer ENOSYS for any syscall number above the highest one the profile
//! names on that architecture; everything else falls through to libseccomp's program.
//!
//! ```text
//!       ld  arch
//!       jeq AUDIT_ARCH_A, 0, <skip block A>     one block per architecture in the filter
//!         ld  nr
//!         jgt max_A, ENOSYS, MAIN               (x86_64: split on the x32 bit first)
//!       jeq AUDIT_ARCH_B, ...
//!       ja  MAIN
//! ENOSYS: ret ERRNO(ENOSYS)
//! MAIN:   libseccomp's program, which loads what it needs itself
//! ```

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction};

use super::compile::scmp_arch;

// cBPF opcodes (linux/bpf_common.h) and the offsets of struct seccomp_data.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// x32 syscalls arrive on AUDIT_ARCH_X86_64 with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// On s390(x) syscall 0 multiplexes numbers the kernel does not know.
const S390_MULTIPLEXER: u32 = 0;

/// Where a jump goes: a number of instructions ahead within the stub, or one of its two exits.
#[derive(Clone, Copy, Debug)]
enum Target {
    Ahead(u8),
    Enosys,
    Main,
}

#[derive(Clone, Copy, Debug)]
enum Insn {
    Load(u32),
    Jump { code: u16, k: u32, jt: Target, jf: Target },
    Always(Target),
    ReturnEnosys,
}

/// One kernel architecture (AUDIT_ARCH_*) and the highest syscall numbers named per ABI.
#[derive(Debug, Default, PartialEq)]
struct ArchGroup {
    audit_arch: u32,
    max: Option<u32>,
    /// x86_64 only: the highest x32 syscall (bit 30 included).
    x32_max: Option<u32>,
    s390: bool,
}

/// The stub's instructions in sock_filter layout, empty when the profile needs none.
pub(crate) fn stub(profile: &LinuxSeccomp) -> Vec<u64> {
    // A default that lets syscalls through already lets libc see ENOSYS from the kernel; runc
    // counts TRACE in, since a tracer should handle new syscalls itself.
    if matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog | LinuxSeccompAction::ScmpActTrace
    ) {
        return Vec::new();
    }
    assemble(&arch_groups(profile))
}

/// The filter's architectures (the native one is always in it) with the highest numbers named.
fn arch_groups(profile: &LinuxSeccomp) -> Vec<ArchGroup> {
    let names: Vec<&str> = profile
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|rule| rule.names())
        .map(String::as_str)
        .collect();
    let mut archs = vec![ScmpArch::native()];
    archs.extend(
        profile
            .architectures()
            .iter()
            .flatten()
            .map(|&arch| resolve_native(arch)),
    );
    let mut groups: Vec<ArchGroup> = Vec::new();
    for arch in archs {
        let Some(audit_arch) = audit_arch(arch) else {
            continue;
        };
        let highest = names
            .iter()
            .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
            .filter_map(|nr| u32::try_from(nr.as_raw_syscall()).ok())
            .max();
        let index = match groups.iter().position(|g| g.audit_arch == audit_arch) {
            Some(index) => index,
            None => {
                let s390 = matches!(arch, ScmpArch::S390 | ScmpArch::S390X);
                groups.push(ArchGroup {
                    audit_arch,
                    s390,
                    ..ArchGroup::default()
                });
                groups.len() - 1
            }
        };
        let slot = if arch == ScmpArch::X32 {
            &mut groups[index].x32_max
        } else {
            &mut groups[index].max
        };
        *slot = highest;
    }
    groups.retain(|g| g.max.is_some() || g.x32_max.is_some());
    groups
}

fn resolve_native(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::native(),
        other => scmp_arch(other),
    }
}

/// libseccomp's architecture tokens are the kernel's AUDIT_ARCH values, except x32 (a libseccomp
/// invention: the kernel reports x32 as x86_64 with X32_SYSCALL_BIT in the number).
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    let token = oci_arch(arch)? as u32;
    Some(if arch == ScmpArch::X32 {
        AUDIT_ARCH_X86_64
    } else {
        token
    })
}

fn oci_arch(arch: ScmpArch) -> Option<Arch> {
    super::features::ARCHS.into_iter().find(|&a| scmp_arch(a) == arch)
}

/// The block for one group, entered with the arch matched; every path ends at ENOSYS or MAIN.
fn block(group: &ArchGroup) -> Vec<Insn> {
    let jgt = |max: u32| Insn::Jump {
        code: JMP_JGT_K,
        k: max,
        jt: Target::Enosys,
        jf: Target::Main,
    };
    let x32_bit = |jt, jf| Insn::Jump {
        code: JMP_JSET_K,
        k: X32_SYSCALL_BIT,
        jt,
        jf,
    };
    let mut insns = vec![Insn::Load(DATA_NR)];
    if group.s390 {
        let k = S390_MULTIPLEXER;
        insns.push(Insn::Jump {
            code: JMP_JEQ_K,
            k,
            jt: Target::Enosys,
            jf: Target::Ahead(0),
        });
    }
    match (group.max, group.x32_max) {
        (Some(max), Some(x32_max)) => {
            insns.push(x32_bit(Target::Ahead(1), Target::Ahead(0)));
            insns.push(jgt(max));
            insns.push(jgt(x32_max));
        }
        // Numbers of the ABI not in the filter are left to libseccomp (bad-arch action).
        (Some(max), None) if group.audit_arch == AUDIT_ARCH_X86_64 => {
            insns.push(x32_bit(Target::Main, Target::Ahead(0)));
            insns.push(jgt(max));
        }
        (None, Some(x32_max)) => {
            insns.push(x32_bit(Target::Ahead(0), Target::Main));
            insns.push(jgt(x32_max));
        }
        (Some(max), None) => insns.push(jgt(max)),
        (None, None) => return Vec::new(),
    }
    insns
}

fn assemble(groups: &[ArchGroup]) -> Vec<u64> {
    if groups.is_empty() {
        return Vec::new();
    }
    let mut insns = vec![Insn::Load(DATA_ARCH)];
    for group in groups {
        let body = block(group);
        // Blocks are a handful of instructions; a u8 skip is ample.
        let skip = Target::Ahead(body.len() as u8);
        insns.push(Insn::Jump {
            code: JMP_JEQ_K,
            k: group.audit_arch,
            jt: Target::Ahead(0),
            jf: skip,
        });
        insns.extend(body);
    }
    insns.push(Insn::Always(Target::Main));
    insns.push(Insn::ReturnEnosys);
    // Conditional jumps reach 255 instructions; a stub that long would mean a bug upstream.
    if insns.len() > usize::from(u8::MAX) {
        log::warn!("seccomp: ENOSYS stub of {} instructions dropped", insns.len());
        return Vec::new();
    }
    let enosys = insns.len() - 1;
    let main = insns.len();
    let offset = |at: usize, target: Target| -> u32 {
        match target {
            Target::Ahead(n) => u32::from(n),
            Target::Enosys => (enosys - at - 1) as u32,
            Target::Main => (main - at - 1) as u32,
        }
    };
    insns
        .iter()
        .enumerate()
        .map(|(at, insn)| match *insn {
            Insn::Load(off) => encode(LD_W_ABS, 0, 0, off),
            Insn::Jump { code, k, jt, jf } => encode(code, offset(at, jt) as u8, offset(at, jf) as u8, k),
            Insn::Always(target) => encode(JMP_JA, 0, 0, offset(at, target)),
            Insn::ReturnEnosys => encode(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        })
        .collect()
}

/// struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } in host byte order, as one u64.
fn encode(code: u16, jt: u8, jf: u8, k: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..2].copy_from_slice(&code.to_ne_bytes());
    bytes[2] = jt;
    bytes[3] = jf;
    bytes[4..].copy_from_slice(&k.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

#[cfg(test)]
#[path = "enosys_tests.rs"]
mod tests;
