//! The device program generator, checked three ways: exact listings for known rule sets, a
//! small eBPF interpreter that runs the generated program on every probe and must agree with
//! `DeviceFilter::allows`, and an independent per-access-bit "last matching rule wins" model
//! that `allows` must match wherever v1's semantics coincide with it.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use super::*;

fn spec(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

fn rule(allow: bool, kind: Option<DeviceKind>, major: Option<u32>, minor: Option<u32>, access: u8) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access,
    }
}

const C: Option<DeviceKind> = Some(DeviceKind::Char);
const B: Option<DeviceKind> = Some(DeviceKind::Block);
const RW: u8 = ACC_READ | ACC_WRITE;

/// Runs `prog` on one access as the kernel would, checking what the verifier would reject
/// here: reads only from the context in r1, jumps only forward and inside the program.
fn run(prog: &[Insn], kind: DeviceKind, major: u32, minor: u32, access: u8) -> u64 {
    let ctx = [(u32::from(access) << 16) | kind as u32, major, minor];
    let mut reg = [0u64; 11];
    let mut r1_is_ctx = true;
    let mut pc = 0usize;
    loop {
        let i = prog
            .get(pc)
            .copied()
            .unwrap_or_else(|| panic!("pc {pc} ran off the end"));
        pc += 1;
        let (d, s) = (usize::from(i.dst), usize::from(i.src));
        let jump = |taken: bool, pc: &mut usize| {
            assert!(i.off >= 0, "backward jump");
            if taken {
                *pc += i.off as usize;
                assert!(*pc < prog.len(), "jump past the end");
            }
        };
        match i.code {
            op::LDX_W => {
                assert!(
                    s == 1 && r1_is_ctx && i.off % 4 == 0 && (0..12).contains(&i.off),
                    "bad context load {i}"
                );
                reg[d] = u64::from(ctx[i.off as usize / 4]);
            }
            op::AND32_K => reg[d] = u64::from(reg[d] as u32 & i.imm as u32),
            op::RSH32_K => reg[d] = u64::from((reg[d] as u32) >> i.imm),
            op::MOV32_X => reg[d] = u64::from(reg[s] as u32),
            op::MOV32_K => reg[d] = u64::from(i.imm as u32),
            op::JNE_K => jump(reg[d] != i64::from(i.imm) as u64, &mut pc),
            op::JEQ_K => jump(reg[d] == i64::from(i.imm) as u64, &mut pc),
            op::JNE_X => jump(reg[d] != reg[s], &mut pc),
            op::EXIT => return reg[0],
            other => panic!("unexpected opcode {other:#x}"),
        }
        if d == 1 && !matches!(i.code, op::JNE_K | op::JEQ_K | op::JNE_X | op::EXIT) {
            r1_is_ctx = false;
        }
    }
}

#[test]
fn allow_all_is_the_prologue_and_return_1() {
    let f = DeviceFilter::from_spec(&[spec(true, LinuxDeviceType::A, None, None, "rwm")]).unwrap();
    assert!(f.allows_everything());
    assert_eq!(
        listing(&f.program()),
        "0: r2 = *(u32 *)(r1 + 0)\n1: w2 &= 0xffff\n2: r3 = *(u32 *)(r1 + 0)\n3: w3 >>= 16\n\
         4: r4 = *(u32 *)(r1 + 4)\n5: r5 = *(u32 *)(r1 + 8)\n6: w0 = 1\n7: exit\n"
    );
}

#[test]
fn allow_list_program_has_one_block_per_exception_in_stable_order() {
    let rules = [
        spec(false, LinuxDeviceType::A, None, None, "rwm"),
        spec(true, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        spec(true, LinuxDeviceType::C, Some(136), None, "rw"),
        spec(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        spec(true, LinuxDeviceType::B, None, None, "m"),
    ];
    let prog = DeviceFilter::from_spec(&rules).unwrap().program();
    let blocks = "\
6: if r2 != 1 goto +5\n7: w1 = w3\n8: w1 &= 0x1\n9: if r1 != r3 goto +2\n10: w0 = 1\n11: exit\n\
12: if r2 != 2 goto +4\n13: if r4 != 1 goto +3\n14: if r5 != 3 goto +2\n15: w0 = 1\n16: exit\n\
17: if r2 != 2 goto +4\n18: if r4 != 1 goto +3\n19: if r5 != 5 goto +2\n20: w0 = 1\n21: exit\n\
22: if r2 != 2 goto +6\n23: w1 = w3\n24: w1 &= 0x6\n25: if r1 != r3 goto +3\n26: if r4 != 136 goto +2\n27: w0 = 1\n28: exit\n\
29: w0 = 0\n30: exit\n";
    assert!(listing(&prog).ends_with(blocks), "{}", listing(&prog));
    assert_eq!(prog.len(), 31);
}

#[test]
fn deny_exceptions_deny_on_any_requested_bit() {
    let rules = [
        spec(true, LinuxDeviceType::A, None, None, "rwm"),
        spec(false, LinuxDeviceType::C, Some(1), Some(3), "r"),
    ];
    let f = DeviceFilter::from_spec(&rules).unwrap();
    let prog = f.program();
    assert!(listing(&prog).contains("9: if r1 == 0 goto +4\n"), "{}", listing(&prog));
    for (access, allowed) in [(ACC_READ, false), (RW, false), (ACC_WRITE, true), (ACC_MKNOD, true)] {
        assert_eq!(f.allows(DeviceKind::Char, 1, 3, access), allowed, "access {access}");
        assert_eq!(
            run(&prog, DeviceKind::Char, 1, 3, access),
            u64::from(allowed),
            "access {access}"
        );
    }
}

#[test]
fn instructions_encode_as_struct_bpf_insn() {
    assert_eq!(Insn::load_u32(R2, R1, 4).encode(), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
    assert_eq!(Insn::jne_imm(R4, 136, 3).encode(), [0x55, 0x04, 3, 0, 136, 0, 0, 0]);
    assert_eq!(Insn::jne_reg(R1, R3, 2).encode(), [0x5d, 0x31, 2, 0, 0, 0, 0, 0]);
    assert_eq!(
        Insn::and32_imm(R2, 0xffff).encode(),
        [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]
    );
    assert_eq!(Insn::exit().encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn spec_entries_are_checked() {
    let ok = DeviceRule::from_spec(0, &spec(true, LinuxDeviceType::U, Some(-1), None, "mr")).unwrap();
    assert_eq!(ok, rule(true, C, None, None, ACC_MKNOD | ACC_READ));
    let default_access = LinuxDeviceCgroupBuilder::default().allow(false).build().unwrap();
    assert_eq!(
        DeviceRule::from_spec(0, &default_access).unwrap(),
        rule(false, None, None, None, ACC_ALL)
    );
    for (i, bad) in [
        spec(true, LinuxDeviceType::P, None, None, "rwm"),
        spec(true, LinuxDeviceType::C, None, None, ""),
        spec(true, LinuxDeviceType::C, None, None, "rx"),
        spec(true, LinuxDeviceType::C, Some(-2), None, "r"),
        spec(true, LinuxDeviceType::C, None, Some(1 << 31), "r"),
    ]
    .iter()
    .enumerate()
    {
        let err =
            DeviceFilter::from_spec(&[spec(false, LinuxDeviceType::A, None, None, "rwm"), bad.clone()]).unwrap_err();
        assert!(matches!(err, RuleError::Invalid { index: 1, .. }), "case {i}: {err}");
    }
}

#[test]
fn type_a_resets_whatever_its_numbers_and_access() {
    let rules = [
        rule(false, None, None, None, ACC_ALL),
        rule(true, C, Some(1), Some(3), ACC_ALL),
        rule(true, None, Some(9), None, ACC_READ),
    ];
    let f = DeviceFilter::from_rules(&rules).unwrap();
    assert!(f.default_allow && f.exceptions.is_empty());
}

#[test]
fn removing_bits_a_wildcard_grants_is_refused() {
    let rules = [
        rule(false, None, None, None, ACC_ALL),
        rule(true, C, Some(1), None, ACC_ALL),
        rule(false, C, Some(1), Some(3), ACC_WRITE),
    ];
    let err = DeviceFilter::from_rules(&rules).unwrap_err();
    assert!(matches!(err, RuleError::HoleInWildcard { index: 2, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("removes w from c 1:3, which the wildcard rule c 1:* still grants"),
        "{err}"
    );
    // Bits the wildcard does not grant may be removed.
    let ok = [
        rule(false, None, None, None, ACC_ALL),
        rule(true, C, Some(1), None, ACC_READ),
        rule(false, C, Some(1), Some(3), ACC_WRITE),
    ];
    assert!(DeviceFilter::from_rules(&ok).is_ok());
}

/// Where v1 (and so husk) differs from a naive "last matching rule wins" reading; pinned so
/// that a change is deliberate. See docs/cgroups.md.
#[test]
fn v1_semantics_where_last_match_would_differ() {
    // A wildcard deny removes only the wildcard exception, not narrower allows (runc alike).
    let f = DeviceFilter::from_rules(&[
        rule(false, None, None, None, ACC_ALL),
        rule(true, C, Some(1), Some(3), ACC_ALL),
        rule(false, C, None, None, ACC_ALL),
    ])
    .unwrap();
    assert!(f.allows(DeviceKind::Char, 1, 3, RW));
    // On a deny-all default one exception must grant every requested bit.
    let f = DeviceFilter::from_rules(&[
        rule(false, None, None, None, ACC_ALL),
        rule(true, C, Some(1), None, ACC_READ),
        rule(true, C, None, Some(3), ACC_WRITE),
    ])
    .unwrap();
    assert!(f.allows(DeviceKind::Char, 1, 3, ACC_READ) && f.allows(DeviceKind::Char, 1, 3, ACC_WRITE));
    assert!(!f.allows(DeviceKind::Char, 1, 3, RW));
    assert_eq!(run(&f.program(), DeviceKind::Char, 1, 3, RW), 0);
}

/// xorshift64*: reproducible pseudo-random rule lists without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const MAJORS: [Option<u32>; 3] = [None, Some(1), Some(4)];
const MINORS: [Option<u32>; 3] = [None, Some(3), Some(7)];

fn random_rule(rng: &mut Rng, wildcards: bool, any_access: bool) -> DeviceRule {
    let kind = rng.pick(&[None, C, B, C, B, C]);
    let (major, minor) = if wildcards {
        (rng.pick(&MAJORS), rng.pick(&MINORS))
    } else {
        (rng.pick(&MAJORS[1..]), rng.pick(&MINORS[1..]))
    };
    let access = if any_access {
        (rng.next() % 7 + 1) as u8
    } else {
        ACC_ALL
    };
    rule(rng.next().is_multiple_of(2), kind, major, minor, access)
}

/// Every (kind, major, minor, access) the random rules can tell apart, plus numbers they never name.
fn probes() -> Vec<(DeviceKind, u32, u32, u8)> {
    let mut out = Vec::new();
    for kind in [DeviceKind::Block, DeviceKind::Char] {
        for major in [1, 4, 9] {
            for minor in [3, 7, 0] {
                out.extend((1..=ACC_ALL).map(|access| (kind, major, minor, access)));
            }
        }
    }
    out
}

/// Per access bit, the last rule naming the device and that bit decides (type a: every device
/// and bit); all requested bits must be allowed.
fn last_match(rules: &[DeviceRule], kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
    [ACC_MKNOD, ACC_READ, ACC_WRITE]
        .iter()
        .filter(|bit| access & **bit != 0)
        .all(|bit| {
            let mut verdict = false;
            for r in rules {
                let Some(k) = r.kind else {
                    verdict = r.allow;
                    continue;
                };
                if k == kind
                    && r.major.is_none_or(|m| m == major)
                    && r.minor.is_none_or(|m| m == minor)
                    && r.access & bit != 0
                {
                    verdict = r.allow;
                }
            }
            verdict
        })
}

fn random_lists(seed: u64, wildcards: bool, any_access: bool, check_model: bool) {
    let mut rng = Rng(seed);
    let probes = probes();
    let mut checked = 0;
    for _ in 0..3000 {
        let len = (rng.next() % 7) as usize;
        let mut rules: Vec<DeviceRule> = (0..len).map(|_| random_rule(&mut rng, wildcards, any_access)).collect();
        if check_model && wildcards {
            only_add_exceptions(&mut rules);
        }
        // A hole in a wildcard is refused; whether it would be is the emulator's business.
        let Ok(f) = DeviceFilter::from_rules(&rules) else {
            continue;
        };
        let prog = f.program();
        for &(kind, major, minor, access) in &probes {
            let allowed = f.allows(kind, major, minor, access);
            assert_eq!(
                run(&prog, kind, major, minor, access) == 1,
                allowed,
                "{rules:?} on {kind:?} {major}:{minor} {access}\n{}",
                listing(&prog)
            );
            if check_model {
                assert_eq!(
                    last_match(&rules, kind, major, minor, access),
                    allowed,
                    "{rules:?} on {kind:?} {major}:{minor} {access}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 500, "only {checked} lists were usable");
}

/// Gives every rule the verdict opposite to the default the last type a rule set, so that rules
/// only add exceptions: removal never meets a wildcard, where v1 and last-match differ.
fn only_add_exceptions(rules: &mut [DeviceRule]) {
    let mut default = false;
    for r in rules {
        if r.kind.is_none() {
            default = r.allow;
        } else {
            r.allow = !default;
        }
    }
}

#[test]
fn program_agrees_with_the_filter_on_random_rule_lists() {
    random_lists(0x9e37_79b9_7f4a_7c15, true, true, false);
}

#[test]
fn filter_is_last_match_for_exact_devices_with_any_access() {
    random_lists(0x2545_f491_4f6c_dd1d, false, true, true);
}

#[test]
fn filter_is_last_match_for_wildcard_rwm_rules_that_add_exceptions() {
    random_lists(0x1234_5678_9abc_def1, true, false, true);
}

/// Where the rules go: a v1 devices hierarchy takes them as files; without one (v2, or a hybrid
/// host that left devices unmounted) they become a program on the unified cgroup, which a fake
/// tree cannot take (a plain directory is no cgroup: the kernel answers EBADF).
#[test]
fn rules_go_to_v1_devices_if_mounted_else_to_a_program_on_the_unified_cgroup() {
    use super::super::{Cgroup, CgroupError, Layout};
    use oci_spec::runtime::LinuxResourcesBuilder;
    let root = std::env::temp_dir().join(format!("husk-devbpf-fake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["memory", "unified", "devices/ctr"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("devices/ctr/devices.deny"), "").unwrap();
    let res = LinuxResourcesBuilder::default()
        .devices(vec![spec(false, LinuxDeviceType::A, None, None, "rwm")])
        .build()
        .unwrap();
    let with_v1 = Cgroup::with_root(&root, Layout::Hybrid, Some("/ctr"), "c").unwrap();
    with_v1.create().unwrap();
    let v1 = with_v1.apply(&res);
    std::fs::remove_dir_all(root.join("devices")).unwrap();
    let without_v1 = Cgroup::with_root(&root, Layout::Hybrid, Some("/ctr"), "c").unwrap();
    let program = without_v1.apply(&res);
    let _ = std::fs::remove_dir_all(&root);
    v1.unwrap();
    assert!(matches!(program, Err(CgroupError::DeviceFilter(_))), "{program:?}");
}
