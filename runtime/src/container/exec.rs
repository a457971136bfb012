//! `husk exec`: run a new process in a running container — its namespaces (joined by an
//! intermediate child the container cannot see, see init/exec_child.rs), its cgroup, the
//! process's creds and the container's seccomp profile. Waits and returns its exit status unless --detach.

use super::Global;
use crate::clone::{clone_into, clone_into_cgroup, Forked};
use crate::error::{Error, Result};
use crate::init::exec_child::{self, ExecPlan};
use crate::namespaces;
use crate::state::StateDir;
use crate::sync::{self, FromChild, ToChild};
use crate::sys::Context;
use husk_protocol::Status;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A process.json (runc's --process); else built from `args` and the flags below.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// "uid[:gid]"
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: i32,
    /// --ignore-paused: exec into a paused container; the process waits, frozen, for `resume`.
    pub ignore_paused: bool,
    /// --cgroup, `[controller:]path` each: start in a sub-cgroup of the container's.
    pub sub_cgroups: Vec<String>,
}

/// Every failure of exec is `exec failed: ...` and exit status 255, as with runc.
pub fn exec(global: &Global, id: &str, opts: &ExecOptions) -> Result<i32> {
    exec_in(global, id, opts).map_err(|e| Error::ExecFailed(Box::new(e)))
}

fn exec_in(global: &Global, id: &str, opts: &ExecOptions) -> Result<i32> {
    let dir = StateDir::open(&global.root, id)?;
    let saved = dir.load()?;
    let status = saved.status(&dir.path);
    let paused_ok = status == Status::Paused && opts.ignore_paused;
    if status == Status::Paused && !paused_ok {
        return Err(Error::Usage(
            "cannot exec in a paused container (use --ignore-paused to override)".into(),
        ));
    }
    let cgroup_dirs = super::exec_cgroup::target_dirs(&saved.cgroup, &opts.sub_cgroups)?;
    // In a paused container the new process waits, frozen, until `resume`, which takes the
    // container's lock: hold none (runc holds no lock across processes at all).
    let dir = (!paused_ok).then_some(dir);
    if !paused_ok && !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "exec in",
            status,
        });
    }
    let spec = crate::config::load(&saved.bundle)?;
    let mut process = build_process(&spec, opts)?;
    let exec_labels = crate::lsm::plan_process(&process, crate::lsm::HostLsm::detect())?;
    let (console_socket, console_rx) = console_for(opts, &mut process)?;
    let ns_list = container_namespaces(&spec, saved.pid);
    let linux = spec.linux().as_ref();
    let plan = ExecPlan {
        id: id.to_string(),
        process,
        in_userns: ns_list.iter().any(|ns| ns.typ() == LinuxNamespaceType::User),
        namespaces: ns_list.clone(),
        seccomp: super::create::seccomp_program(&global.root, linux)?,
        console_socket,
        preserve_fds: opts.preserve_fds,
        exec_labels,
        personality: linux.and_then(|l| l.personality().clone()),
    };
    let (mut chan, child_chan) = sync::pair()?;
    // On pure v2, stage 1 is born in the cgroup it would otherwise be moved into.
    let clone_target = match cgroup_dirs.as_slice() {
        [dir] => saved.cgroup.clone_target_in(dir),
        _ => None,
    };
    let (forked, born_in_cgroup) = match &clone_target {
        Some(fd) => clone_into_cgroup(CloneFlags::empty(), fd.as_fd())?,
        None => (clone_into(CloneFlags::empty())?, false),
    };
    let stage1 = match forked {
        Forked::Child => {
            drop(chan);
            exec_child::run(plan, child_chan)
        }
        Forked::Parent { pid, .. } => pid,
    };
    drop(child_chan);
    drop(plan);
    let attach_to: &[PathBuf] = if born_in_cgroup { &[] } else { &cgroup_dirs };
    let (pid, pidfd) = start_exec_process(&mut chan, stage1, attach_to, &saved, &spec, id)?;
    if let Some(pid_file) = &opts.pid_file {
        super::create::write_pid_file(pid_file, pid)?;
    }
    // The container may be deleted while this process runs: do not hold its lock.
    drop(dir);
    if opts.detach {
        return Ok(0);
    }
    match console_rx {
        Some(rx) => super::run::wait_proxying(pid, &pidfd, &super::tty_proxy::receive_master(&rx)?),
        None => super::run::wait_forwarding(pid, &pidfd),
    }
}

/// Where the exec'd process's pty master goes: to --console-socket, or (runc's foreground
/// `exec -t` without one) to husk itself, which relays it over its own stdio. Returns the fd
/// the child sends on and, when husk relays, the end husk receives on.
fn console_for(opts: &ExecOptions, process: &mut Process) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !process.terminal().unwrap_or(false) {
        return Ok((None, None));
    }
    match &opts.console_socket {
        Some(path) => Ok((
            Some(OwnedFd::from(
                std::os::unix::net::UnixStream::connect(path).ctx("connect to console socket", path.display())?,
            )),
            None,
        )),
        // runc's words; a detached exec has nobody to relay the terminal.
        None if opts.detach => Err(Error::Usage(
            "cannot allocate tty if husk will detach without setting console socket".into(),
        )),
        None => {
            super::tty_proxy::size_process_pty_like_our_terminal(process);
            let pair = super::tty_proxy::console_pair()?;
            Ok((Some(pair.theirs), Some(pair.ours)))
        }
    }
}

/// Drive both stages of the exec child (see sync.rs) until the process is Ready; on any
/// failure nothing is left running.
fn start_exec_process(
    chan: &mut sync::Channel,
    stage1: i32,
    cgroup_dirs: &[PathBuf],
    saved: &crate::state::SavedState,
    spec: &Spec,
    id: &str,
) -> Result<(i32, OwnedFd)> {
    let failed = |msg: String| Error::Exec {
        id: id.to_string(),
        msg,
    };
    // The cgroup (or the --cgroup sub-cgroup) is joined by stage 1, so stage 2 is born in it.
    let spawned = super::exec_cgroup::add_process(cgroup_dirs, stage1).and_then(|_| {
        chan.send(&ToChild::Proceed)?;
        match chan.recv_with_fd::<FromChild>()? {
            Some((FromChild::Spawned { pid }, Some(pidfd))) => Ok((pid, pidfd)),
            Some((FromChild::Failed { msg }, _)) => Err(failed(msg)),
            Some((other, _)) => Err(failed(format!("unexpected message {other:?}"))),
            None => Err(failed("the process exited before it was ready".into())),
        }
    });
    let stage1 = nix::unistd::Pid::from_raw(stage1);
    if spawned.is_err() {
        let _ = nix::sys::signal::kill(stage1, nix::sys::signal::Signal::SIGKILL);
    }
    // Stage 1 exits right after Spawned.
    let _ = nix::sys::wait::waitpid(stage1, None);
    let (pid, pidfd) = spawned?;
    let ready = chan
        .send(&ToChild::SpawnedSeen)
        .map_err(Error::from)
        .and_then(|_| loop {
            match chan.recv_with_fd::<FromChild>()? {
                Some((FromChild::Ready, _)) => return Ok(()),
                Some((FromChild::SeccompNotifyFd, fd)) => {
                    super::create::hand_notify_fd_to_agent(spec, pid, &saved.to_oci(Status::Running), fd)?;
                    chan.send(&ToChild::SeccompNotifyFdSent)?;
                }
                Some((FromChild::Failed { msg }, _)) => return Err(failed(msg)),
                Some((other, _)) => return Err(failed(format!("unexpected message {other:?}"))),
                None => return Err(failed("the process exited before it was ready".into())),
            }
        });
    if let Err(e) = ready {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    Ok((pid, pidfd))
}

/// Every namespace the container has, as /proc/<init>/ns/<kind>, to be joined.
fn container_namespaces(spec: &Spec, init_pid: i32) -> Vec<LinuxNamespace> {
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    listed
        .iter()
        .filter_map(|ns| {
            let path = PathBuf::from(format!("/proc/{init_pid}/ns/{}", namespaces::proc_name(ns.typ())));
            LinuxNamespaceBuilder::default().typ(ns.typ()).path(path).build().ok()
        })
        .collect()
}

/// runc's rules: --process replaces the process; otherwise the container's own process with
/// args, cwd, user, extra env and caps from the flags.
fn build_process(spec: &Spec, opts: &ExecOptions) -> Result<Process> {
    if let Some(path) = &opts.process_file {
        let text = std::fs::read_to_string(path).ctx("read process file", path.display())?;
        let process = parse_process_json(&text)
            .map_err(|e| Error::Usage(format!("{}: invalid process json: {e}", path.display())))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::Usage(format!(
                "{}: process.args must not be empty",
                path.display()
            )));
        }
        return Ok(process);
    }
    if opts.args.is_empty() {
        return Err(Error::Usage("exec needs a command, or --process".into()));
    }
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(opts.args.clone()));
    process.set_terminal(Some(opts.tty));
    if let Some(cwd) = &opts.cwd {
        process.set_cwd(cwd.clone());
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(opts.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(user) = &opts.user {
        let (uid, gid) = parse_user(user)?;
        process.user_mut().set_uid(uid);
        process.user_mut().set_gid(gid);
    }
    if !opts.additional_gids.is_empty() {
        process
            .user_mut()
            .set_additional_gids(Some(opts.additional_gids.clone()));
    }
    if opts.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    add_caps(&mut process, &opts.caps)?;
    Ok(process)
}

/// A process.json as runc reads it: a missing `user` is uid 0, gid 0 (Go's zero value), while
/// oci-spec requires the field.
fn parse_process_json(text: &str) -> serde_json::Result<Process> {
    let mut value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(fields) = value.as_object_mut() {
        fields
            .entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    serde_json::from_value(value)
}

fn parse_user(user: &str) -> Result<(u32, u32)> {
    let bad = || Error::Usage(format!("--user {user:?}: expected UID[:GID] as numbers"));
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    Ok((uid.parse().map_err(|_| bad())?, gid.parse().map_err(|_| bad())?))
}

/// `--cap` adds to the bounding, effective, permitted and ambient sets, never the inheritable
/// one: runc fixed CVE-2022-29162 in 1.1.2 (exec.go) by no longer adding it there, since a
/// non-empty inheritable set lets programs with file capabilities gain them. The ambient cap
/// is then raised only if the process's spec already makes it inheritable, as with runc.
fn add_caps(process: &mut Process, caps: &[String]) -> Result<()> {
    if caps.is_empty() {
        return Ok(());
    }
    let mut set = process.capabilities().clone().unwrap_or_default();
    for name in caps {
        let cap: oci_spec::runtime::Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|_| Error::Usage(format!("--cap: unknown capability {name:?}")))?;
        let add = |v: &Option<oci_spec::runtime::Capabilities>| {
            let mut v = v.clone().unwrap_or_default();
            v.insert(cap);
            Some(v)
        };
        set.set_bounding(add(set.bounding()));
        set.set_effective(add(set.effective()));
        set.set_permitted(add(set.permitted()));
        set.set_ambient(add(set.ambient()));
    }
    process.set_capabilities(Some(set));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_json_without_user_runs_as_root() {
        let process = parse_process_json(r#"{"args": ["true"], "cwd": "/"}"#).unwrap();
        assert_eq!((process.user().uid(), process.user().gid()), (0, 0));
        let process = parse_process_json(r#"{"args": ["true"], "cwd": "/", "user": {"uid": 7, "gid": 8}}"#).unwrap();
        assert_eq!((process.user().uid(), process.user().gid()), (7, 8));
    }
}
