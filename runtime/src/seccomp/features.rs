//! What husk's seccomp support covers, for `husk features` (runtime-spec features.md).

use libseccomp::{ScmpAction, ScmpFilterContext, ScmpVersion};
use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use super::compile::scmp_arch;
use super::SeccompError;

const ACTIONS: [LinuxSeccompAction; 9] = [
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActTrap,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActNotify,
];

const OPERATORS: [LinuxSeccompOperator; 7] = [
    LinuxSeccompOperator::ScmpCmpNe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
];

/// Every architecture name the spec knows; which of them this libseccomp handles is probed.
const ARCHS: [Arch; 23] = [
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

const FLAGS: [LinuxSeccompFilterFlag; 4] = [
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

pub fn supported_actions() -> Vec<LinuxSeccompAction> {
    ACTIONS.to_vec()
}

pub fn supported_operators() -> Vec<LinuxSeccompOperator> {
    OPERATORS.to_vec()
}

/// The architectures the linked libseccomp can add to a filter (2.5 lacks e.g. LoongArch).
pub fn supported_archs() -> Vec<Arch> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHS.into_iter().filter(|&arch| ctx.add_arch(scmp_arch(arch)).is_ok()).collect()
}

/// The flags husk understands in a profile.
pub fn known_flags() -> Vec<LinuxSeccompFilterFlag> {
    FLAGS.to_vec()
}

/// The flags both the linked libseccomp and the running kernel support.
pub fn supported_flags() -> Vec<LinuxSeccompFilterFlag> {
    FLAGS
        .into_iter()
        .filter(|&flag| flag_supported_by_libseccomp(flag).is_ok() && kernel_accepts(flag))
        .collect()
}

/// The minimal libseccomp release that knows how to set the flag's filter attribute.
fn libseccomp_needed(flag: LinuxSeccompFilterFlag) -> (u32, u32) {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => (2, 6),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => (2, 5),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => (2, 4),
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => (2, 2),
    }
}

pub(crate) fn flag_supported_by_libseccomp(flag: LinuxSeccompFilterFlag) -> Result<(), SeccompError> {
    let (major, minor) = libseccomp_needed(flag);
    let version = ScmpVersion::current().map_err(|source| SeccompError::Libseccomp {
        op: "query the libseccomp version".to_string(),
        source,
    })?;
    if (version.major, version.minor) >= (major, minor) {
        return Ok(());
    }
    Err(SeccompError::UnsupportedFlag {
        flag,
        why: format!(
            "needs libseccomp {major}.{minor}, husk runs with {}.{}.{}",
            version.major, version.minor, version.micro
        ),
    })
}

/// Asks the kernel whether it knows a filter flag without installing anything: with a NULL
/// program, a known flag fails with EFAULT (copying the program) and an unknown one with EINVAL.
fn kernel_accepts(flag: LinuxSeccompFilterFlag) -> bool {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let bit: libc::c_ulong = match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
    };
    // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER (8).
    let bits = if bit == 32 { bit | 8 } else { bit };
    let null: *const libc::c_void = std::ptr::null();
    // SAFETY: a NULL program makes the kernel fail before it installs any filter.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, bits, null) };
    rc == -1 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_lists_use_the_spec_names() {
        let actions: Vec<String> = supported_actions().iter().map(|a| a.to_string()).collect();
        assert!(actions.contains(&"SCMP_ACT_KILL_PROCESS".to_string()), "{actions:?}");
        assert!(actions.contains(&"SCMP_ACT_NOTIFY".to_string()));
        let ops: Vec<String> = supported_operators().iter().map(|o| o.to_string()).collect();
        assert!(ops.contains(&"SCMP_CMP_MASKED_EQ".to_string()), "{ops:?}");
        let flags: Vec<String> = known_flags().iter().map(|f| f.to_string()).collect();
        assert!(flags.contains(&"SECCOMP_FILTER_FLAG_SPEC_ALLOW".to_string()), "{flags:?}");
    }

    #[test]
    fn native_architectures_are_supported() {
        let archs = supported_archs();
        #[cfg(target_arch = "x86_64")]
        for arch in [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32] {
            assert!(archs.contains(&arch), "{arch} missing from {archs:?}");
        }
        assert!(!archs.is_empty());
    }

    #[test]
    fn supported_flags_are_known_flags() {
        let supported = supported_flags();
        assert!(supported.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagTsync), "{supported:?}");
        assert!(supported.iter().all(|f| known_flags().contains(f)));
    }
}
