//! What husk's seccomp support covers, for `husk features` (runtime-spec features.md).

use libseccomp::ScmpVersion;
use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Seccomp};

use super::program::{FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_WAIT_KILLABLE_RECV};

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
pub(crate) const ARCHS: [Arch; 23] = [
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

/// The `linux.seccomp` object of `husk features` (runtime-spec features-linux.md).
pub fn features() -> Seccomp {
    let mut features = Seccomp::default();
    features
        .set_enabled(Some(true))
        .set_actions(Some(supported_actions()))
        .set_operators(Some(supported_operators().iter().map(ToString::to_string).collect()))
        .set_archs(Some(supported_archs()))
        .set_known_flags(Some(known_flags().iter().map(ToString::to_string).collect()))
        .set_supported_flags(Some(supported_flags().iter().map(ToString::to_string).collect()));
    features
}

/// The linked libseccomp's version, for the `io.github.seccomp.libseccomp.version` annotation
/// of `husk features`, as runc reports it.
pub fn libseccomp_version() -> Option<String> {
    let v = ScmpVersion::current().ok()?;
    Some(format!("{}.{}.{}", v.major, v.minor, v.micro))
}

/// The actions the running kernel implements (KILL_PROCESS and LOG since 4.14, NOTIFY since 5.0).
pub fn supported_actions() -> Vec<LinuxSeccompAction> {
    ACTIONS
        .into_iter()
        .filter(|&action| kernel_has_action(action))
        .collect()
}

/// seccomp(SECCOMP_GET_ACTION_AVAIL) answers 0 for an action the kernel knows; it compares the
/// bare action value, without the errno/trace data.
fn kernel_has_action(action: LinuxSeccompAction) -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
    let value: u32 = match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000,
        LinuxSeccompAction::ScmpActNotify => 0x7fc0_0000,
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000,
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
    };
    let flags: libc::c_ulong = 0;
    let value_ptr: *const u32 = &value;
    // SAFETY: the kernel only reads the u32 behind the pointer, which outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, flags, value_ptr) };
    rc == 0
}

pub fn supported_operators() -> Vec<LinuxSeccompOperator> {
    OPERATORS.to_vec()
}

/// The architectures the linked libseccomp recognizes (2.5 lacks e.g. LoongArch). A filter can
/// only hold architectures of the host's endianness; a profile naming another fails to compile.
pub fn supported_archs() -> Vec<Arch> {
    ARCHS.into_iter().filter(|&arch| libseccomp_recognizes(arch)).collect()
}

extern "C" {
    // libseccomp's own name lookup; the Rust binding maps names without asking the C library.
    fn seccomp_arch_resolve_name(arch_name: *const libc::c_char) -> u32;
}

/// libseccomp's C names are the spec's without the prefix, in lower case (SCMP_ARCH_X86_64: x86_64).
fn libseccomp_recognizes(arch: Arch) -> bool {
    let spec_name = arch.to_string();
    let name = spec_name.trim_start_matches("SCMP_ARCH_").to_ascii_lowercase();
    let Ok(name) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a NUL-terminated string that outlives the call; 0 means "unknown".
    unsafe { seccomp_arch_resolve_name(name.as_ptr()) != 0 }
}

/// The flags husk understands in a profile.
pub fn known_flags() -> Vec<LinuxSeccompFilterFlag> {
    FLAGS.to_vec()
}

/// The flags the running kernel supports (husk passes them to seccomp(2) itself, so the
/// libseccomp version does not matter).
pub fn supported_flags() -> Vec<LinuxSeccompFilterFlag> {
    FLAGS.into_iter().filter(|&flag| kernel_accepts(flag)).collect()
}

/// Asks the kernel whether it knows a filter flag without installing anything: with a NULL
/// program, a known flag fails with EFAULT (copying the program) and an unknown one with EINVAL.
pub(crate) fn kernel_accepts(flag: LinuxSeccompFilterFlag) -> bool {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let bits = match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
        // Only valid together with NEW_LISTENER.
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV | FLAG_NEW_LISTENER,
    };
    let bits = libc::c_ulong::from(bits);
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
        assert!(
            flags.contains(&"SECCOMP_FILTER_FLAG_SPEC_ALLOW".to_string()),
            "{flags:?}"
        );
    }

    #[test]
    fn features_object_serializes_like_the_spec() {
        let value = serde_json::to_value(features()).expect("serialize");
        assert_eq!(value["enabled"], true);
        assert!(value["actions"].as_array().is_some_and(|a| a.len() == 9), "{value}");
        assert!(value["operators"]
            .as_array()
            .is_some_and(|o| o.contains(&"SCMP_CMP_EQ".into())));
        assert!(value["knownFlags"].as_array().is_some_and(|f| f.len() == 4), "{value}");
        assert!(value["supportedFlags"].is_array(), "{value}");
        assert!(libseccomp_version().is_some_and(|v| v.starts_with("2.")));
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
        assert!(
            supported.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagTsync),
            "{supported:?}"
        );
        assert!(supported.iter().all(|f| known_flags().contains(f)));
    }
}
