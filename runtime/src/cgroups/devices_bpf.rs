//! Device rules on cgroup v2: v2 has no devices.allow/deny files, so, like runc and crun, husk
//! turns `linux.resources.devices` into a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to
//! the container's cgroup. The kernel runs it on every open/mknod of a device node by a task in
//! that cgroup (or below) and refuses the access with EPERM when it returns 0.
//!
//! The rules keep v1's meaning (runc's emulator does the same): they are applied in order to a
//! default-deny state; a type `a` rule resets the state to allow-all or deny-all, any other rule
//! adds or removes access bits on the exception of exactly its (type, major, minor); removing
//! bits that a wildcard exception still grants is refused (v1 would silently ignore it).
//! The final state (default + exceptions) becomes the program; the loading and attaching
//! live in `devices_bpf_sys`.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

pub use super::devices_bpf_sys::{
    attach_device_filter, attached_device_programs, detach_device_programs, load_program, DeviceFilterError,
};

/// Access bits, as the kernel passes them in the upper half of `access_type`.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// A device type a rule can name (BPF_DEVCG_DEV_BLOCK = 1, BPF_DEVCG_DEV_CHAR = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    Block = 1,
    Char = 2,
}

/// One `linux.resources.devices` entry, checked. `kind: None` is type `a` (every device);
/// `None` major or minor is the wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: Option<DeviceKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits, never 0.
    pub access: u8,
}

/// Why a rule list cannot become a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("failed to use device rule {index}: {reason}")]
    Invalid { index: usize, reason: String },

    #[error("failed to use device rule {index}: it removes {access} from {kind} {major}:{minor}, which the wildcard rule {wildcard} still grants; cgroup v1 would ignore such a rule, so it is refused")]
    HoleInWildcard {
        index: usize,
        kind: char,
        major: String,
        minor: String,
        access: String,
        wildcard: String,
    },
}

fn access_string(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

fn number_string(n: Option<u32>) -> String {
    n.map_or("*".to_string(), |n| n.to_string())
}

fn kind_char(kind: DeviceKind) -> char {
    match kind {
        DeviceKind::Block => 'b',
        DeviceKind::Char => 'c',
    }
}

impl DeviceRule {
    /// Checks one spec entry (`index` is its place in the list, for the error).
    pub fn from_spec(index: usize, rule: &LinuxDeviceCgroup) -> Result<DeviceRule, RuleError> {
        let invalid = |reason: String| RuleError::Invalid { index, reason };
        let kind = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DeviceKind::Block),
            // 'u' (unbuffered character device) is a character device to the kernel.
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DeviceKind::Char),
            LinuxDeviceType::P => return Err(invalid("type p (fifo) cannot be used in a device cgroup rule".into())),
        };
        // The program compares with 32-bit immediates that the kernel sign-extends: numbers
        // above i32::MAX could never match (real majors have 12 bits, minors 20).
        let number = |n: Option<i64>| match n {
            None | Some(-1) => Ok(None),
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
            Some(n) => Err(invalid(format!(
                "device number {n} is out of range (-1 for any, else 0..={})",
                i32::MAX
            ))),
        };
        let text = rule.access().as_deref().unwrap_or("rwm");
        let mut access = 0;
        for c in text.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            };
        }
        if access == 0 || !text.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(invalid(format!("access {text:?} must be made of r, w and m")));
        }
        Ok(DeviceRule {
            allow: rule.allow(),
            kind,
            major: number(rule.major())?,
            minor: number(rule.minor())?,
            access,
        })
    }
}

/// What an exception matches. The derived order (by major, minor, kind; wildcards before
/// numbers) keeps the program the same for the same rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceMatch {
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub kind: DeviceKind,
}

impl fmt::Display for DeviceMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{}",
            kind_char(self.kind),
            number_string(self.major),
            number_string(self.minor)
        )
    }
}

/// The state a rule list leaves, as v1's devices cgroup would hold it: a default and the
/// exceptions to it (match -> access bits that get the opposite verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    pub default_allow: bool,
    pub exceptions: BTreeMap<DeviceMatch, u8>,
}

impl DeviceFilter {
    /// Applies the spec's rules in order to a deny-all start.
    pub fn from_spec(rules: &[LinuxDeviceCgroup]) -> Result<DeviceFilter, RuleError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| DeviceRule::from_spec(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_rules(&rules)
    }

    pub fn from_rules(rules: &[DeviceRule]) -> Result<DeviceFilter, RuleError> {
        let mut filter = DeviceFilter {
            default_allow: false,
            exceptions: BTreeMap::new(),
        };
        for (index, rule) in rules.iter().enumerate() {
            filter.apply(index, rule)?;
        }
        Ok(filter)
    }

    fn apply(&mut self, index: usize, rule: &DeviceRule) -> Result<(), RuleError> {
        // Type a resets everything, whatever its numbers and access say (as the v1 kernel does).
        let Some(kind) = rule.kind else {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return Ok(());
        };
        let key = DeviceMatch {
            major: rule.major,
            minor: rule.minor,
            kind,
        };
        if rule.allow != self.default_allow {
            *self.exceptions.entry(key).or_insert(0) |= rule.access;
            return Ok(());
        }
        // A rule with the default verdict removes bits from exactly its own exception. A
        // wildcard exception covering it would keep granting them: say so instead.
        let wildcards = [
            DeviceMatch { major: None, ..key },
            DeviceMatch { minor: None, ..key },
            DeviceMatch {
                major: None,
                minor: None,
                kind,
            },
        ];
        for w in wildcards.iter().filter(|w| **w != key) {
            let overlap = self.exceptions.get(w).copied().unwrap_or(0) & rule.access;
            if overlap != 0 {
                return Err(RuleError::HoleInWildcard {
                    index,
                    kind: kind_char(kind),
                    major: number_string(key.major),
                    minor: number_string(key.minor),
                    access: access_string(overlap),
                    wildcard: w.to_string(),
                });
            }
        }
        if let Some(bits) = self.exceptions.get_mut(&key) {
            *bits &= !rule.access;
            if *bits == 0 {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }

    /// The verdict for one access, as the v1 kernel gives it. `access` may hold several bits
    /// (an O_RDWR open asks for read and write at once): on a deny-all default one allow
    /// exception must grant all of them; on an allow-all default any denied bit denies.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        let matching = self.exceptions.iter().filter(|(m, _)| {
            m.kind == kind && m.major.is_none_or(|x| x == major) && m.minor.is_none_or(|x| x == minor)
        });
        let mut bits = matching.map(|(_, bits)| *bits);
        if self.default_allow {
            !bits.any(|b| b & access != 0)
        } else {
            bits.any(|b| access & !b == 0)
        }
    }

    /// Whether every access to every device is allowed (the program is "return 1").
    pub fn allows_everything(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The program: one block per exception, then the default verdict.
    pub fn program(&self) -> Vec<Insn> {
        let mut prog = prologue();
        for (m, bits) in &self.exceptions {
            exception_block(&mut prog, m, *bits, !self.default_allow);
        }
        prog.push(Insn::mov32_imm(R0, i32::from(self.default_allow)));
        prog.push(Insn::exit());
        prog
    }
}

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;

/// Opcodes used here: class | op | source (linux/bpf_common.h, linux/bpf.h).
pub mod op {
    /// BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
    pub const LDX_W: u8 = 0x61;
    /// BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm
    pub const AND32_K: u8 = 0x54;
    /// BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm
    pub const RSH32_K: u8 = 0x74;
    /// BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src
    pub const MOV32_X: u8 = 0xbc;
    /// BPF_ALU | BPF_MOV | BPF_K: dst = (u32)imm
    pub const MOV32_K: u8 = 0xb4;
    /// BPF_JMP | BPF_JNE | BPF_K: if dst != (s64)imm goto pc + 1 + off
    pub const JNE_K: u8 = 0x55;
    /// BPF_JMP | BPF_JNE | BPF_X: if dst != src goto pc + 1 + off
    pub const JNE_X: u8 = 0x5d;
    /// BPF_JMP | BPF_JEQ | BPF_K: if dst == (s64)imm goto pc + 1 + off
    pub const JEQ_K: u8 = 0x15;
    /// BPF_JMP | BPF_EXIT: return r0
    pub const EXIT: u8 = 0x95;
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }
    pub const fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(op::LDX_W, dst, src, off, 0)
    }
    pub const fn and32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(op::AND32_K, dst, 0, 0, imm)
    }
    pub const fn rsh32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(op::RSH32_K, dst, 0, 0, imm)
    }
    pub const fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(op::MOV32_X, dst, src, 0, 0)
    }
    pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(op::MOV32_K, dst, 0, 0, imm)
    }
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(op::JNE_K, dst, 0, off, imm)
    }
    pub const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(op::JNE_X, dst, src, off, 0)
    }
    pub const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(op::JEQ_K, dst, 0, off, imm)
    }
    pub const fn exit() -> Insn {
        Insn::new(op::EXIT, 0, 0, 0, 0)
    }

    /// The 8 bytes the kernel reads: code, dst_reg:4 | src_reg:4 (dst in the low nibble on
    /// little-endian machines), off, imm, in native byte order.
    pub fn encode(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0xf)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = regs;
        out[2..4].copy_from_slice(&self.off.to_ne_bytes());
        out[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        out
    }
}

impl fmt::Display for Insn {
    /// A compact listing in the kernel verifier's style, for tests and debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s, off, imm) = (self.dst, self.src, self.off, self.imm);
        match self.code {
            op::LDX_W => write!(f, "r{d} = *(u32 *)(r{s} + {off})"),
            op::AND32_K => write!(f, "w{d} &= {imm:#x}"),
            op::RSH32_K => write!(f, "w{d} >>= {imm}"),
            op::MOV32_X => write!(f, "w{d} = w{s}"),
            op::MOV32_K => write!(f, "w{d} = {imm}"),
            op::JNE_K => write!(f, "if r{d} != {imm} goto +{off}"),
            op::JNE_X => write!(f, "if r{d} != r{s} goto +{off}"),
            op::JEQ_K => write!(f, "if r{d} == {imm} goto +{off}"),
            op::EXIT => write!(f, "exit"),
            code => write!(f, "code {code:#04x} r{d} r{s} {off} {imm}"),
        }
    }
}

/// The whole program as one text listing, one numbered instruction a line.
pub fn listing(prog: &[Insn]) -> String {
    prog.iter()
        .enumerate()
        .map(|(i, insn)| format!("{i}: {insn}\n"))
        .collect()
}

/// r2 = type, r3 = access, r4 = major, r5 = minor, from struct bpf_cgroup_dev_ctx in r1
/// { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }.
fn prologue() -> Vec<Insn> {
    vec![
        Insn::load_u32(R2, R1, 0),
        Insn::and32_imm(R2, 0xffff),
        Insn::load_u32(R3, R1, 0),
        Insn::rsh32_imm(R3, 16),
        Insn::load_u32(R4, R1, 4),
        Insn::load_u32(R5, R1, 8),
    ]
}

/// Returns the exception's verdict when the device matches `m` and the access is one the
/// exception decides (allow: every requested bit is in `bits`; deny: any requested bit is, as
/// v1's match_exception_partial: runc checks "every bit" for deny too, so its deny of "r"
/// lets an O_RDWR open through). Otherwise falls through: each test jumps past the block.
fn exception_block(prog: &mut Vec<Insn>, m: &DeviceMatch, bits: u8, allow: bool) {
    let mut tests: Vec<Insn> = vec![Insn::jne_imm(R2, m.kind as i32, 0)];
    if bits != ACC_ALL {
        // r1 (the context pointer) is free once the prologue has read the context.
        tests.push(Insn::mov32_reg(R1, R3));
        tests.push(Insn::and32_imm(R1, i32::from(bits)));
        // allow: (access & bits) != access -> next; deny: (access & bits) == 0 -> next.
        tests.push(if allow {
            Insn::jne_reg(R1, R3, 0)
        } else {
            Insn::jeq_imm(R1, 0, 0)
        });
    }
    if let Some(major) = m.major {
        tests.push(Insn::jne_imm(R4, major as i32, 0));
    }
    if let Some(minor) = m.minor {
        tests.push(Insn::jne_imm(R5, minor as i32, 0));
    }
    let len = tests.len() + 2;
    for (i, insn) in tests.iter_mut().enumerate() {
        if matches!(insn.code, op::JNE_K | op::JNE_X | op::JEQ_K) {
            // Land on the first instruction after this block's exit.
            insn.off = (len - i - 1) as i16;
        }
    }
    prog.extend(tests);
    prog.push(Insn::mov32_imm(R0, i32::from(allow)));
    prog.push(Insn::exit());
}

#[cfg(test)]
#[path = "devices_bpf_tests.rs"]
mod tests;
