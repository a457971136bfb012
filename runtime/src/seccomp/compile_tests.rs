//! Translation tests: profiles compiled in memory and read back as libseccomp's PFC text.

use libseccomp::ScmpAction;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use serde_json::json;

use super::compile::{action, condition_sets};
use super::{compile, parse_profile};

fn profile(value: serde_json::Value) -> LinuxSeccomp {
    parse_profile(&value).expect("valid profile")
}

fn pfc(value: serde_json::Value) -> String {
    compile(&profile(value)).expect("compile").export_pfc().expect("pfc")
}

fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    serde_json::from_value(json!({"index": index, "value": value, "op": op})).expect("arg")
}

/// The PFC block for one syscall: from its comment line to the next syscall's comment.
fn block<'a>(pfc: &'a str, syscall: &str) -> &'a str {
    let marker = format!("# filter for syscall \"{syscall}\"");
    let start = pfc
        .find(&marker)
        .unwrap_or_else(|| panic!("{syscall} not in filter:\n{pfc}"));
    let rest = &pfc[start + marker.len()..];
    let end = rest
        .find("# filter for syscall")
        .or_else(|| rest.find("# default action"));
    &rest[..end.unwrap_or(rest.len())]
}

#[test]
fn actions_translate_with_eperm_as_default_errno() {
    let eperm = libc::EPERM;
    assert_eq!(action(LinuxSeccompAction::ScmpActErrno, None), ScmpAction::Errno(eperm));
    assert_eq!(
        action(LinuxSeccompAction::ScmpActErrno, Some(18)),
        ScmpAction::Errno(18)
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActTrace, None),
        ScmpAction::Trace(eperm as u16)
    );
    assert_eq!(action(LinuxSeccompAction::ScmpActKill, None), ScmpAction::KillThread);
    assert_eq!(
        action(LinuxSeccompAction::ScmpActKillThread, None),
        ScmpAction::KillThread
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActKillProcess, None),
        ScmpAction::KillProcess
    );
    assert_eq!(action(LinuxSeccompAction::ScmpActNotify, None), ScmpAction::Notify);
    assert_eq!(action(LinuxSeccompAction::ScmpActLog, None), ScmpAction::Log);
    assert_eq!(action(LinuxSeccompAction::ScmpActTrap, None), ScmpAction::Trap);
    assert_eq!(action(LinuxSeccompAction::ScmpActAllow, None), ScmpAction::Allow);
}

#[test]
fn every_action_reaches_the_filter() {
    let text = pfc(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18},
            {"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["sync"], "action": "SCMP_ACT_KILL"},
            {"names": ["syncfs"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["getppid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["acct"], "action": "SCMP_ACT_TRACE", "errnoRet": 3},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}
        ]
    }));
    assert!(block(&text, "mkdir").contains("action ERRNO(1);"), "{text}");
    assert!(block(&text, "rmdir").contains("action ERRNO(18);"), "{text}");
    assert!(block(&text, "chroot").contains("action KILL_PROCESS;"), "{text}");
    assert!(block(&text, "sync").contains("action KILL;"), "{text}");
    assert!(block(&text, "syncfs").contains("action KILL;"), "{text}");
    assert!(block(&text, "getppid").contains("action TRAP;"), "{text}");
    assert!(block(&text, "acct").contains("action TRACE(3);"), "{text}");
    assert!(block(&text, "getpid").contains("action LOG;"), "{text}");
    // libseccomp 2.5 prints NOTIFY as its raw value.
    assert!(block(&text, "mkdirat").contains("action 0x7fc00000;"), "{text}");
    assert!(text.contains("# default action\n  action ALLOW;"), "{text}");
}

#[test]
fn default_errno_ret_sets_the_default_action() {
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}));
    assert!(text.contains("# default action\n  action ERRNO(38);"), "{text}");
    assert!(block(&text, "getpid").contains("action ALLOW;"), "{text}");
}

#[test]
fn unknown_syscall_names_are_skipped_not_fatal() {
    let filter = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall_husk", "mkdir"], "action": "SCMP_ACT_ERRNO"}]})))
    .expect("compile");
    assert_eq!(filter.skipped_syscalls(), ["no_such_syscall_husk".to_string()]);
    assert!(block(&filter.export_pfc().expect("pfc"), "mkdir").contains("ERRNO(1)"));
}

#[test]
fn rule_with_the_default_action_is_dropped() {
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]}));
    assert!(!text.contains("\"mkdir\""), "{text}");
    assert!(block(&text, "rmdir").contains("ERRNO(2)"), "{text}");
}

#[test]
fn argument_conditions_on_distinct_indexes_are_anded_in_one_rule() {
    let args = [
        arg(0, 1, LinuxSeccompOperator::ScmpCmpEq),
        arg(1, 2, LinuxSeccompOperator::ScmpCmpGt),
    ];
    assert_eq!(condition_sets(&args).len(), 1);
    assert_eq!(condition_sets(&args)[0].len(), 2);
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}]}));
    let rule = block(&text, "personality");
    assert!(
        rule.contains("$a0.lo32 == 8") && rule.contains("$a1.lo32 == 2"),
        "{text}"
    );
    assert_eq!(rule.matches("action ERRNO(1);").count(), 1, "{text}");
}

#[test]
fn repeated_argument_index_splits_into_one_rule_per_condition() {
    let args = [
        arg(0, 0, LinuxSeccompOperator::ScmpCmpEq),
        arg(0, 8, LinuxSeccompOperator::ScmpCmpEq),
    ];
    let sets = condition_sets(&args);
    assert_eq!(sets.len(), 2);
    assert!(sets.iter().all(|set| set.len() == 1));
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                     {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}));
    let rule = block(&text, "personality");
    assert!(
        rule.contains("$a0.lo32 == 0") && rule.contains("$a0.lo32 == 8"),
        "{text}"
    );
}

#[test]
fn every_operator_translates() {
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["setuid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_NE"}]},
        {"names": ["setgid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LT"}]},
        {"names": ["setfsuid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LE"}]},
        {"names": ["setfsgid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GE"}]},
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}]},
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 255, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}]}
    ]}));
    assert!(
        block(&text, "setuid").contains("$a0.lo32 == 5"),
        "NE is a negated EQ:\n{text}"
    );
    assert!(
        block(&text, "setgid").contains("$a0.lo32 >= 5"),
        "LT is a negated GE:\n{text}"
    );
    assert!(
        block(&text, "setfsuid").contains("$a0.lo32 > 5"),
        "LE is a negated GT:\n{text}"
    );
    assert!(block(&text, "setfsgid").contains("$a0.lo32 >= 5"), "{text}");
    assert!(block(&text, "umask").contains("$a0.lo32 > 5"), "{text}");
    // The spec's value is the mask, valueTwo the datum: (arg & 0xff) == 7.
    assert!(block(&text, "mkdirat").contains("$a2.lo32 & 0x000000ff == 7"), "{text}");
}

#[test]
fn architectures_are_added_to_the_filter() {
    let text = pfc(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}));
    #[cfg(target_arch = "x86_64")]
    for arch in ["x86_64", "x86 ", "x32"] {
        assert!(text.contains(&format!("# filter for arch {arch}")), "{arch}:\n{text}");
    }
}

#[test]
fn compiled_context_leaves_no_new_privs_to_the_runtime() {
    let filter = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).expect("compile");
    assert!(!filter.context().get_ctl_nnp().expect("nnp"));
}

#[test]
fn flags_the_kernel_knows_are_accepted() {
    let flags: Vec<String> = super::supported_flags().iter().map(ToString::to_string).collect();
    parse_profile(&json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags})).expect("every supported flag validates");
}

#[test]
fn notify_rules_are_counted_only_when_added() {
    let with = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    ))
    .expect("compile");
    assert!(with.uses_notify());
    let unknown_only = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["no_such_syscall_husk"], "action": "SCMP_ACT_NOTIFY"}]}),
    ))
    .expect("compile");
    assert!(!unknown_only.uses_notify());
}

#[test]
fn bpf_export_is_a_whole_number_of_instructions() {
    let filter = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})))
    .expect("compile");
    let bpf = filter.export_bpf().expect("bpf");
    // struct sock_filter is 8 bytes: u16 code, u8 jt, u8 jf, u32 k.
    assert!(!bpf.is_empty() && bpf.len().is_multiple_of(8), "{} bytes", bpf.len());
}
