//! Translation of the OCI profile into a libseccomp filter context. Nothing here touches the
//! calling process: the filter is only built in memory, so it can be exported and inspected.

use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall};

use super::{libseccomp_error, validate, SeccompError};

/// The kernel passes six syscall arguments; libseccomp refuses an index beyond them.
pub(crate) const MAX_ARGS: usize = 6;

/// A profile's rules compiled into a libseccomp filter, for inspection and for [`super::Program`].
/// The profile's flags are not in it: the Program passes them to seccomp(2) itself.
pub struct Filter {
    ctx: ScmpFilterContext,
    notify_rules: usize,
    skipped: Vec<String>,
}

impl Filter {
    pub fn context(&self) -> &ScmpFilterContext {
        &self.ctx
    }

    pub fn into_context(self) -> ScmpFilterContext {
        self.ctx
    }

    /// Whether a SCMP_ACT_NOTIFY rule made it into the filter, so loading it yields a notify fd.
    /// False when every NOTIFY syscall was unknown on this architecture and skipped.
    pub fn uses_notify(&self) -> bool {
        self.notify_rules > 0
    }

    /// Syscall names the profile lists that libseccomp does not know on this architecture.
    /// Skipped like runc does: profiles name syscalls of newer kernels and other arches.
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }

    /// The filter in libseccomp's human-readable pseudo filter code, for tests and debugging.
    pub fn export_pfc(&self) -> Result<String, SeccompError> {
        let bytes = self.export("export seccomp filter as PFC", |ctx, file| ctx.export_pfc(file))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The filter as the raw BPF program the kernel would receive.
    pub fn export_bpf(&self) -> Result<Vec<u8>, SeccompError> {
        self.export("export seccomp filter as BPF", |ctx, file| ctx.export_bpf(file))
    }

    fn export(
        &self,
        op: &str,
        write: impl FnOnce(&ScmpFilterContext, &std::fs::File) -> Result<(), libseccomp::error::SeccompError>,
    ) -> Result<Vec<u8>, SeccompError> {
        let mut file = scratch_file()?;
        write(&self.ctx, &file).map_err(libseccomp_error(op))?;
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|source| SeccompError::Export { source })?;
        Ok(bytes)
    }
}

/// A memfd rather than a pipe: the export is written in one go and could exceed a pipe's buffer.
fn scratch_file() -> Result<std::fs::File, SeccompError> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"husk-seccomp-export", MFdFlags::MFD_CLOEXEC)
        .map_err(|errno| SeccompError::Export { source: errno.into() })?;
    Ok(std::fs::File::from(fd))
}

/// Builds the libseccomp filter for a profile after validating it.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    validate(profile)?;
    let default = action(profile.default_action(), profile.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(libseccomp_error("create seccomp filter"))?;
    // no_new_privs is the runtime's decision (process.noNewPrivileges), not a side effect of
    // loading the filter, should anyone load this context through libseccomp.
    ctx.set_ctl_nnp(false)
        .map_err(libseccomp_error("clear the seccomp filter's no_new_privs attribute"))?;
    for &arch in profile.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch))
            .map_err(|source| arch_error(arch, source))?;
    }
    let mut filter = Filter {
        ctx,
        notify_rules: 0,
        skipped: Vec::new(),
    };
    for (index, rule) in profile.syscalls().iter().flatten().enumerate() {
        add_rule(&mut filter, default, index, rule)?;
    }
    Ok(filter)
}

/// libseccomp answers EDOM when an architecture's byte order differs from the filter's: a filter
/// on x86_64 cannot hold s390x. Say so instead of "numerical argument out of domain".
pub(crate) fn arch_error(arch: Arch, source: libseccomp::error::SeccompError) -> SeccompError {
    if source.sysrawrc() == Some(-libc::EDOM) {
        return SeccompError::ForeignArch { arch };
    }
    libseccomp_error(format!("add architecture {arch} to the seccomp filter"))(source)
}

/// Adds one `syscalls[]` entry: one libseccomp rule per known name (more when args must split).
fn add_rule(filter: &mut Filter, default: ScmpAction, index: usize, rule: &LinuxSyscall) -> Result<(), SeccompError> {
    let act = action(rule.action(), rule.errno_ret());
    let condition_sets = condition_sets(rule.args().as_deref().unwrap_or_default());
    for name in rule.names() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            log::debug!("seccomp: syscall {name:?} unknown on this architecture, skipped");
            filter.skipped.push(name.clone());
            continue;
        };
        // libseccomp rejects a rule whose action is the default one; it would change nothing.
        if act == default {
            continue;
        }
        let op = || format!("add seccomp rule for {name} (linux.seccomp.syscalls[{index}])");
        if condition_sets.is_empty() {
            filter.ctx.add_rule(act, syscall).map_err(libseccomp_error(op()))?;
        }
        for conditions in &condition_sets {
            filter
                .ctx
                .add_rule_conditional(act, syscall, conditions)
                .map_err(libseccomp_error(op()))?;
        }
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            filter.notify_rules += 1;
        }
    }
    Ok(())
}

/// The argument conditions of one entry, as the list of rules to add (empty: one plain rule).
///
/// libseccomp ANDs the conditions of one rule but refuses two on the same argument index. Like
/// runc, an entry with a repeated index falls back to one rule per condition, which ORs them:
/// profiles such as Docker's default rely on that for e.g. `personality`.
pub(crate) fn condition_sets(args: &[LinuxSeccompArg]) -> Vec<Vec<ScmpArgCompare>> {
    if args.is_empty() {
        return Vec::new();
    }
    let mut seen = [false; MAX_ARGS];
    let repeated = args.iter().any(|arg| std::mem::replace(&mut seen[arg.index()], true));
    let conditions = args.iter().map(|arg| condition(*arg));
    if repeated {
        conditions.map(|c| vec![c]).collect()
    } else {
        vec![conditions.collect()]
    }
}

/// One argument comparison. For MASKED_EQ the spec's `value` is the mask and `valueTwo` the
/// datum (`(arg & value) == valueTwo`); the other operators ignore `valueTwo`, as runc does.
pub(crate) fn condition(arg: LinuxSeccompArg) -> ScmpArgCompare {
    let index = arg.index() as u32;
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            );
        }
    };
    ScmpArgCompare::new(index, op, arg.value())
}

/// The libseccomp action for an OCI action; `errno_ret` was range-checked by `validate`.
/// SCMP_ACT_ERRNO and SCMP_ACT_TRACE default to EPERM, as the spec and runc do.
pub(crate) fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    let errno = errno_ret.unwrap_or(libc::EPERM as u32);
    match action {
        // SCMP_ACT_KILL is libseccomp's old name for killing the thread.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno as u16 as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

pub(crate) fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}
