//! The hooks the init runs itself, in the container's namespaces (runtime-spec "POSIX-platform
//! Hooks"): their path resolves in the container namespace and they execute there.
//!
//! - createContainer: after the parent's createRuntime hooks, before pivot_root. The mount
//!   namespace is the container's, but its tree is still the host's copy (as in runc), so a
//!   host path such as /usr/bin/nvidia-hook still resolves.
//! - startContainer: after `husk start` released the init, before execve of the process; by
//!   then the root is the container's, so the path resolves inside the image.
//!
//! The parent sends the state (with the init's pid as the host sees it, which getpid() in a
//! new pid namespace cannot give) in `HooksDone`.

use crate::hooks::{self, HookError};
use husk_protocol::{ContainerState, Status};
use oci_spec::runtime::Spec;

/// The state a hook of `kind` receives: the parent's, with the status of that point.
fn state_for(state_json: &str, status: Status) -> Option<ContainerState> {
    let mut state: ContainerState = serde_json::from_str(state_json).ok()?;
    state.status = status;
    Some(state)
}

pub fn create_container(spec: &Spec, state_json: &str) -> Result<(), HookError> {
    let hooks = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref());
    run("createContainer", hooks, state_json, Status::Creating)
}

pub fn start_container(spec: &Spec, state_json: &str) -> Result<(), HookError> {
    let hooks = spec.hooks().as_ref().and_then(|h| h.start_container().as_ref());
    run("startContainer", hooks, state_json, Status::Created)
}

fn run(
    kind: &'static str,
    hooks: Option<&Vec<oci_spec::runtime::Hook>>,
    state_json: &str,
    status: Status,
) -> Result<(), HookError> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let state = state_for(state_json, status).ok_or(HookError::NoState { kind })?;
    hooks::run_all(kind, Some(hooks), &state)
}

/// Whether the config has any hook that needs the parent's help during create: the parent's
/// own (prestart, createRuntime) or the state for the init's (createContainer, startContainer).
pub fn needs_handshake(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keeps_the_parents_pid_and_takes_the_status_of_the_point() {
        let json = r#"{"ociVersion":"1.2.0","id":"c","status":"creating","pid":4242,"bundle":"/b"}"#;
        let state = state_for(json, Status::Created).unwrap();
        assert_eq!(state.pid, 4242);
        assert_eq!(state.status, Status::Created);
        assert!(state_for("not json", Status::Created).is_none());
    }

    #[test]
    fn only_listed_hooks_need_the_handshake() {
        let with = |hooks: serde_json::Value| -> Spec {
            let mut v = serde_json::to_value(Spec::default()).unwrap();
            v["hooks"] = hooks;
            serde_json::from_value(v).unwrap()
        };
        assert!(!needs_handshake(&Spec::default()));
        assert!(!needs_handshake(&with(
            serde_json::json!({"poststart": [{"path": "/bin/true"}]})
        )));
        assert!(needs_handshake(&with(
            serde_json::json!({"startContainer": [{"path": "/bin/true"}]})
        )));
        assert!(!needs_handshake(&with(serde_json::json!({"createContainer": []}))));
    }
}
