//! Checks of a seccomp profile that need nothing from the system: run by `husk create` before it
//! makes anything, so a bad profile leaves no container half-built.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use libseccomp::{ScmpAction, ScmpFilterContext};

use super::compile::{arch_error, scmp_arch, MAX_ARGS};
use super::features::kernel_accepts;
use super::{libseccomp_error, SeccompError};

const FIELD: &str = "linux.seccomp";

/// Syscalls the runtime itself makes between loading the filter and handing the notify fd over
/// (the sync message carrying the fd, and runc's plain writes). A NOTIFY rule on one of them
/// would block the init on a notification nobody can answer yet. runc refuses `write` likewise.
const SYSCALLS_NEEDED_BEFORE_HANDOFF: &[&str] = &["write", "sendmsg"];

/// Rejects what the spec forbids or the kernel cannot do, without touching the system.
///
/// `listenerPath` without any NOTIFY rule is accepted: the spec says it is then ignored.
pub fn validate(profile: &LinuxSeccomp) -> Result<(), SeccompError> {
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyAsDefault);
    }
    check_errno_ret(
        format!("{FIELD}.defaultErrnoRet"),
        profile.default_action(),
        profile.default_errno_ret(),
    )?;
    if profile.listener_metadata().is_some() && profile.listener_path().is_none() {
        return Err(SeccompError::MetadataWithoutListener);
    }
    for &flag in profile.flags().iter().flatten() {
        if !kernel_accepts(flag) {
            let why = "the running kernel does not know it".to_string();
            return Err(SeccompError::UnsupportedFlag { flag, why });
        }
    }
    check_archs(profile.architectures().as_deref().unwrap_or_default())?;
    for (index, rule) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("{FIELD}.syscalls[{index}]");
        if rule.names().is_empty() {
            return Err(SeccompError::EmptyNames { field });
        }
        check_errno_ret(format!("{field}.errnoRet"), rule.action(), rule.errno_ret())?;
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            check_notify_rule(profile, &field, rule.names())?;
        }
        for (arg_index, arg) in rule.args().iter().flatten().enumerate() {
            if arg.index() >= MAX_ARGS {
                return Err(SeccompError::ArgIndexOutOfRange {
                    field: format!("{field}.args[{arg_index}].index"),
                    index: arg.index(),
                });
            }
        }
    }
    Ok(())
}

/// Tries the architectures on a scratch filter (memory only): an arch this libseccomp does not
/// know, or of the other byte order, fails here rather than in the container's init.
fn check_archs(archs: &[Arch]) -> Result<(), SeccompError> {
    if archs.is_empty() {
        return Ok(());
    }
    let mut scratch =
        ScmpFilterContext::new(ScmpAction::Allow).map_err(libseccomp_error("create a scratch seccomp filter"))?;
    for &arch in archs {
        scratch
            .add_arch(scmp_arch(arch))
            .map_err(|source| arch_error(arch, source))?;
    }
    Ok(())
}

fn check_notify_rule(profile: &LinuxSeccomp, field: &str, names: &[String]) -> Result<(), SeccompError> {
    if profile.listener_path().is_none() {
        return Err(SeccompError::NotifyWithoutListener {
            field: field.to_string(),
        });
    }
    match names
        .iter()
        .find(|name| SYSCALLS_NEEDED_BEFORE_HANDOFF.contains(&name.as_str()))
    {
        Some(name) => Err(SeccompError::NotifyOnRuntimeSyscall {
            field: field.to_string(),
            syscall: name.clone(),
        }),
        None => Ok(()),
    }
}

/// The spec: an errnoRet on an action that returns no errno MUST fail; the kernel carries the
/// value in the 16-bit SECCOMP_RET_DATA, so larger values cannot be represented.
fn check_errno_ret(field: String, action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<(), SeccompError> {
    let Some(value) = errno_ret else {
        return Ok(());
    };
    match action {
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace => {}
        _ => return Err(SeccompError::ErrnoRetNotSupported { field, action }),
    }
    if value > u32::from(u16::MAX) {
        return Err(SeccompError::ErrnoRetOutOfRange { field, value });
    }
    Ok(())
}

/// Parses `linux.seccomp` from raw JSON, naming the exact field of any unknown action,
/// architecture, flag or operator (a plain serde error only says "unknown variant"), then
/// validates the result.
pub fn parse_profile(json: &Value) -> Result<LinuxSeccomp, SeccompError> {
    check_name::<LinuxSeccompAction>(json.get("defaultAction"), "defaultAction", "action")?;
    for (i, arch) in array(json, "architectures").iter().enumerate() {
        check_name::<Arch>(Some(arch), &format!("architectures[{i}]"), "architecture")?;
    }
    for (i, flag) in array(json, "flags").iter().enumerate() {
        check_name::<LinuxSeccompFilterFlag>(Some(flag), &format!("flags[{i}]"), "flag")?;
    }
    for (i, rule) in array(json, "syscalls").iter().enumerate() {
        let field = format!("syscalls[{i}]");
        check_name::<LinuxSeccompAction>(rule.get("action"), &format!("{field}.action"), "action")?;
        for (j, arg) in array(rule, "args").iter().enumerate() {
            let arg_field = format!("{field}.args[{j}].op");
            check_name::<LinuxSeccompOperator>(arg.get("op"), &arg_field, "operator")?;
        }
    }
    let profile: LinuxSeccomp = serde_json::from_value(json.clone()).map_err(SeccompError::Malformed)?;
    validate(&profile)?;
    Ok(profile)
}

fn array<'a>(json: &'a Value, key: &str) -> &'a [Value] {
    json.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A string that does not name a variant of `T` is an unknown name; anything else (absent,
/// wrong type) is left for serde to report with its position.
fn check_name<T: DeserializeOwned>(value: Option<&Value>, field: &str, kind: &'static str) -> Result<(), SeccompError> {
    let Some(Value::String(name)) = value else {
        return Ok(());
    };
    match serde_json::from_value::<T>(Value::String(name.clone())) {
        Ok(_) => Ok(()),
        Err(_) => Err(SeccompError::UnknownName {
            field: format!("{FIELD}.{field}"),
            kind,
            value: name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<LinuxSeccomp, SeccompError> {
        parse_profile(&value)
    }

    fn unknown(err: SeccompError) -> (String, &'static str, String) {
        match err {
            SeccompError::UnknownName { field, kind, value } => (field, kind, value),
            other => panic!("expected UnknownName, got {other:?}"),
        }
    }

    #[test]
    fn docker_like_profile_is_accepted() {
        let profile = parse(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }))
        .expect("valid profile");
        assert_eq!(profile.default_errno_ret(), Some(1));
        assert_eq!(profile.syscalls().as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn unknown_default_action_is_named() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_BOGUS"})).unwrap_err();
        let (field, kind, value) = unknown(err);
        assert_eq!(field, "linux.seccomp.defaultAction");
        assert_eq!(kind, "action");
        assert_eq!(value, "SCMP_ACT_BOGUS");
    }

    #[test]
    fn unknown_rule_action_arch_flag_and_operator_are_named() {
        let base = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let mut rule_action = base.clone();
        rule_action["syscalls"] = json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]);
        assert_eq!(
            unknown(parse(rule_action).unwrap_err()).0,
            "linux.seccomp.syscalls[0].action"
        );

        let mut arch = base.clone();
        arch["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]);
        let (field, kind, _) = unknown(parse(arch).unwrap_err());
        assert_eq!(
            (field.as_str(), kind),
            ("linux.seccomp.architectures[1]", "architecture")
        );

        let mut flag = base.clone();
        flag["flags"] = json!(["SECCOMP_FILTER_FLAG_BOGUS"]);
        assert_eq!(unknown(parse(flag).unwrap_err()).1, "flag");

        let mut op = base;
        op["syscalls"] = json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]);
        let (field, kind, value) = unknown(parse(op).unwrap_err());
        assert_eq!(field, "linux.seccomp.syscalls[0].args[0].op");
        assert_eq!((kind, value.as_str()), ("operator", "SCMP_CMP_ALMOST"));
    }

    #[test]
    fn malformed_profile_is_a_parse_error() {
        let err =
            parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]})).unwrap_err();
        assert!(matches!(err, SeccompError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn notify_cannot_be_the_default_action() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"})).unwrap_err();
        assert!(matches!(err, SeccompError::NotifyAsDefault), "{err:?}");
    }

    #[test]
    fn notify_rule_needs_a_listener_path() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
        .unwrap_err();
        match err {
            SeccompError::NotifyWithoutListener { field } => {
                assert_eq!(field, "linux.seccomp.syscalls[0]")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn notify_on_the_runtimes_own_syscalls_is_refused() {
        for name in ["write", "sendmsg"] {
            let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                "syscalls": [{"names": ["mkdir", name], "action": "SCMP_ACT_NOTIFY"}]}))
            .unwrap_err();
            assert!(matches!(err, SeccompError::NotifyOnRuntimeSyscall { ref syscall, .. } if syscall == name));
        }
    }

    #[test]
    fn listener_path_without_notify_rule_is_ignored_as_the_spec_says() {
        parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
        .expect("listenerPath alone is ignored");
    }

    #[test]
    fn listener_metadata_needs_listener_path() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"})).unwrap_err();
        assert!(matches!(err, SeccompError::MetadataWithoutListener), "{err:?}");
    }

    #[test]
    fn errno_ret_only_on_actions_that_return_one() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})).unwrap_err();
        assert!(
            matches!(err, SeccompError::ErrnoRetNotSupported { ref field, .. }
            if field == "linux.seccomp.defaultErrnoRet"),
            "{err:?}"
        );
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}))
        .unwrap_err();
        assert!(matches!(
            err,
            SeccompError::ErrnoRetNotSupported {
                action: LinuxSeccompAction::ScmpActKill,
                ..
            }
        ));
        parse(json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7})).expect("trace takes a value");
    }

    #[test]
    fn errno_ret_must_fit_sixteen_bits() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}))
        .unwrap_err();
        assert!(
            matches!(err, SeccompError::ErrnoRetOutOfRange { value: 70000, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_names_and_bad_arg_index_are_refused() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}))
        .unwrap_err();
        assert!(matches!(err, SeccompError::EmptyNames { .. }), "{err:?}");
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}))
        .unwrap_err();
        assert!(
            matches!(err, SeccompError::ArgIndexOutOfRange { index: 6, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn architecture_of_the_other_byte_order_is_refused_before_load() {
        #[cfg(target_endian = "little")]
        let foreign = "SCMP_ARCH_S390X";
        #[cfg(target_endian = "big")]
        let foreign = "SCMP_ARCH_X86_64";
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [foreign]})).unwrap_err();
        assert!(matches!(err, SeccompError::ForeignArch { .. }), "{err:?}");
    }

    #[test]
    fn error_messages_name_field_and_value() {
        let err = parse(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid seccomp profile: linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\""
        );
    }
}
