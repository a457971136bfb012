//! `husk create`: everything up to the init waiting on exec.fifo. On any failure every
//! resource made so far is undone: child, cgroup, state dir.

use super::Global;
use crate::cgroups::Cgroup;
use crate::config;
use crate::error::{Error, Result};
use crate::hooks;
use crate::init::{self, InitPlan};
use crate::namespaces;
use crate::state::{process_start_time, SavedState, StateDir};
use crate::sync::{self, FromChild, ToChild};
use crate::sys::Context;
use husk_protocol::Status;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// A container whose init is waiting; `run` keeps the pidfd to wait on it.
pub struct Created {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub state_dir: StateDir,
    pub saved: SavedState,
    /// For a foreground `run` with a terminal: where the init sends the pty master.
    pub console_rx: Option<OwnedFd>,
}

/// Undo for a half-made container; disarmed once create has succeeded.
struct Undo {
    child: Option<(i32, OwnedFd)>,
    cgroup: Option<Cgroup>,
    state_dir: Option<StateDir>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cgroup) = &self.cgroup {
            // A frozen init cannot die of SIGKILL, and waitpid below would never return.
            let _ = cgroup.thaw();
        }
        if let Some((pid, _pidfd)) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.destroy();
        }
        if let Some(dir) = self.state_dir.take() {
            let _ = dir.remove();
        }
    }
}

/// The bind sources, cloned here while husk is root in the host's namespaces, when the init
/// will be root of a user namespace only (see `rootfs::mounts::open_bind_sources`).
fn bind_sources_for_userns(
    spec: &oci_spec::runtime::Spec,
    linux: &oci_spec::runtime::Linux,
    bundle: &std::path::Path,
) -> Vec<Option<std::os::fd::OwnedFd>> {
    // New or joined (podman's --userns pods): either way the init is root of it only.
    let ns_list = linux.namespaces().as_deref().unwrap_or_default();
    if !ns_list.iter().any(|ns| ns.typ() == LinuxNamespaceType::User) {
        return Vec::new();
    }
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    crate::rootfs::mounts::open_bind_sources(mounts, bundle)
}

pub fn create(global: &Global, id: &str, opts: &CreateOptions, wait_for_start: bool) -> Result<Created> {
    let mut trace = crate::trace::Trace::new(global.trace);
    crate::state::validate_id(id)?;
    let bundle = absolute(&opts.bundle)?;
    let mut spec = config::load(&bundle)?;
    if opts.console_socket.is_none() && !wait_for_start {
        // A foreground `run` proxies our own terminal (console_for below).
        super::tty_proxy::size_pty_like_our_terminal(&mut spec);
    }
    let rootfs = config::rootfs_path(&bundle, &spec)?;
    let rootfs = std::fs::canonicalize(&rootfs).ctx("resolve rootfs", rootfs.display())?;
    let linux = spec.linux().as_ref().ok_or(config::ConfigError::Missing("linux"))?;
    let exec_labels = crate::lsm::plan(&spec, crate::lsm::HostLsm::detect())?;
    let cgroups_path = linux.cgroups_path().as_ref().map(|p| p.display().to_string());
    let cgroup = Cgroup::for_driver(
        global.systemd_cgroup,
        cgroups_path.as_deref(),
        id,
        spec.annotations().as_ref(),
    )?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let (console_socket, console_rx) = console_for(opts.console_socket.as_deref(), terminal, wait_for_start)?;

    trace.mark("parse and validate config");
    let mut undo = Undo {
        child: None,
        cgroup: None,
        state_dir: None,
    };
    let state_path = make_container_resources(global, id, linux, &cgroup, wait_for_start, &mut undo)?;
    let state_dir_fd = nix::fcntl::open(
        &state_path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open state dir", state_path.display())?;
    let plan = InitPlan {
        id: id.to_string(),
        spec: spec.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        cgroup_paths: cgroup
            .hierarchies()
            .iter()
            .map(|h| (h.mount.clone(), h.path.clone()))
            .collect(),
        cgroup_dirs_made_in_join: cgroup.is_systemd(),
        state_dir: state_dir_fd,
        lock_fd: undo.state_dir.as_ref().map(StateDir::lock_fd).unwrap_or(-1),
        console_socket,
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        hooks_handshake: init::container_hooks::needs_handshake(&spec),
        wait_for_start,
        trace: global.trace,
        seccomp: seccomp_program(&global.root, Some(linux))?,
        exec_labels,
        bind_sources: bind_sources_for_userns(&spec, linux, &bundle),
    };
    trace.mark("state dir, cgroup, limits, exec.fifo, seccomp");
    let (mut parent_chan, child_chan) = sync::pair()?;
    let clone_target = cgroup.clone_target();
    let (pid, pidfd, born_in_cgroup) =
        super::spawn_init::spawn_init(linux, plan, &mut parent_chan, child_chan, clone_target)?;
    undo.child = Some((pid, pidfd));
    // Only after clone3: the init must not inherit the blocked mask.
    let interrupts = Interrupts::catch()?;
    trace.mark(if born_in_cgroup { "clone3 into cgroup" } else { "clone3" });

    let ns_list = linux.namespaces().clone().unwrap_or_default();
    if namespaces::creates(&ns_list, LinuxNamespaceType::User) {
        write_id_maps(
            pid,
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )?;
    }
    // Read now, while the child waits for Proceed: a foreground `run` may exec and exit at once.
    let pid_start_time = process_start_time(pid).ok_or_else(|| Error::Init("exited right after clone".into()))?;
    // The init sets up its mounts while we join the cgroups; it waits for CgroupJoined before
    // anything that depends on membership (its cgroup namespace, the hooks, execve).
    parent_chan.send(&ToChild::Proceed)?;
    if !born_in_cgroup {
        join_cgroup(&cgroup, id, pid, linux, &spec, &mut undo)?;
    }
    // A child that already failed has sent why: the handshake reads it, whatever this says.
    let _ = parent_chan.send(&ToChild::CgroupJoined);
    trace.mark("id maps, join cgroup");

    let saved = SavedState {
        id: id.to_string(),
        pid,
        pid_start_time,
        bundle,
        rootfs,
        created: super::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.clone(),
        hooks: spec.hooks().clone(),
        stopped: false,
        owner: owner_name(),
    };
    let init_phases = handshake(&mut parent_chan, &interrupts, &saved, &spec)?;
    trace.add_nested(init_phases);
    trace.mark("init set-up (until Ready)");
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    let state_dir = undo
        .state_dir
        .take()
        .ok_or_else(|| Error::Init("state dir vanished".into()))?;
    if let Err(e) = state_dir.save(&saved) {
        undo.state_dir = Some(state_dir);
        return Err(e);
    }
    let (pid, pidfd) = undo.child.take().ok_or_else(|| Error::Init("child vanished".into()))?;
    undo.cgroup = None;
    trace.mark("pid file, state.json");
    if trace.enabled() {
        let line = format!("husk trace {id}: create: {}", trace.render());
        eprintln!("{line}");
        crate::logging::info_in_log_file(&line);
    }
    Ok(Created {
        pid,
        pidfd,
        state_dir,
        saved,
        console_rx,
    })
}

/// The console socket the init sends its pty master to, and (for a foreground `run` without
/// --console-socket) our end of a socketpair on which husk receives it to proxy the terminal.
fn console_for(
    socket: Option<&Path>,
    terminal: bool,
    wait_for_start: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match (socket, terminal) {
        (Some(path), true) => Ok((Some(connect_console(path)?), None)),
        (None, true) if !wait_for_start => {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .ctx("create", "console socketpair")?;
            Ok((Some(theirs), Some(ours)))
        }
        (None, true) => Err(Error::Usage(
            "process.terminal is set: --console-socket is required".into(),
        )),
        _ => Ok((None, None)),
    }
}

/// State dir (locked), cgroup with its limits, exec.fifo: each registered in `undo` as made.
fn make_container_resources(
    global: &Global,
    id: &str,
    linux: &oci_spec::runtime::Linux,
    cgroup: &Cgroup,
    wait_for_start: bool,
    undo: &mut Undo,
) -> Result<PathBuf> {
    let state_dir = StateDir::create(&global.root, id)?;
    let state_path = state_dir.path.clone();
    undo.state_dir = Some(state_dir);
    // Only once the id is ours: a losing concurrent create must fail with "already exists",
    // not warn about the winner's process in the cgroup (runc checks the id first too).
    cgroup.check_before_create(linux.resources().as_ref())?;
    record_creating_cgroup(&state_path, cgroup)?;
    if !cgroup.is_systemd() {
        cgroup.create()?;
        undo.cgroup = Some(cgroup.clone());
        cgroup.apply(&resources_with_default_devices(linux))?;
    }
    if wait_for_start {
        let fifo = state_path.join(crate::state::EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622)).ctx("mkfifo", fifo.display())?;
        // mkfifo applies the caller's umask (conmon's 022 makes it 0600), and an init that
        // already switched to a non-root process.user must still open it for writing.
        std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .ctx("chmod", fifo.display())?;
    }
    Ok(state_path)
}

/// Where `delete -f` finds the cgroup if this create is killed before it writes state.json.
fn record_creating_cgroup(state_path: &Path, cgroup: &Cgroup) -> Result<()> {
    let file = state_path.join(crate::state::CREATING_CGROUP_FILE);
    let text = serde_json::to_string(cgroup).map_err(|e| Error::Init(format!("encode the cgroup: {e}")))?;
    std::fs::write(&file, text).ctx("write", file.display())?;
    Ok(())
}

/// The resources husk applies: the config's, with the device rule list runc would write.
fn resources_with_default_devices(linux: &oci_spec::runtime::Linux) -> oci_spec::runtime::LinuxResources {
    // Device rules are always written, even without linux.resources: deny-all first, the
    // config's rules, then runc's default allow list (rootfs/devices.rs). linux.devices entries
    // are made as nodes, never allowed here.
    let mut resources = linux.resources().clone().unwrap_or_default();
    let config_rules = resources.devices().clone().unwrap_or_default();
    resources.set_devices(Some(crate::rootfs::devices::cgroup_rules(&config_rules)));
    resources
}

/// Puts the waiting init in its cgroup. The systemd driver makes the cgroup only now: systemd
/// creates the unit with the init's pid in it, then the limits are written (runc: Apply, Set).
fn join_cgroup(
    cgroup: &Cgroup,
    id: &str,
    pid: i32,
    linux: &oci_spec::runtime::Linux,
    spec: &Spec,
    undo: &mut Undo,
) -> Result<()> {
    if !cgroup.is_systemd() {
        return Ok(cgroup.add_process(pid)?);
    }
    undo.cgroup = Some(cgroup.clone());
    let resources = resources_with_default_devices(linux);
    Ok(cgroup.start_systemd_unit(id, pid, Some(&resources), spec.annotations().as_ref())?)
}

/// runc's `owner` column: the user who created the container.
fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Compile the container's seccomp profile, cached by content under <root>/seccomp-cache.
pub fn seccomp_program(
    root: &Path,
    linux: Option<&oci_spec::runtime::Linux>,
) -> Result<Option<crate::seccomp::Program>> {
    let Some(profile) = linux.and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    crate::seccomp::prepare_cached(profile, &root.join("seccomp-cache"))
        .map(Some)
        .map_err(|e| Error::Config(config::ConfigError::Seccomp(e.to_string())))
}

/// How long the init may stay silent between two messages before create gives up on it (an
/// init stuck in a freezer, or in D state on a dead mount). Generous: image set-up on a busy
/// host takes well under a second, and createContainer hooks (run by the init) get their own
/// timeouts added in `silence_limit`.
const INIT_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// INIT_SILENCE plus the createContainer hooks' timeouts (INIT_SILENCE for one without).
fn silence_limit(spec: &Spec) -> std::time::Duration {
    let hooks = spec.hooks().as_ref().and_then(|h| h.create_container().clone());
    hooks.unwrap_or_default().iter().fold(INIT_SILENCE, |sum, h| {
        sum + h
            .timeout()
            .map_or(INIT_SILENCE, |t| std::time::Duration::from_secs(t.max(0) as u64))
    })
}

/// SIGTERM, SIGINT and SIGHUP while create waits for its init: blocked and read from a signalfd,
/// so that a create killed by a timeout (or containerd giving up) still undoes everything
/// instead of leaving a half-made container. The old mask comes back on drop.
struct Interrupts {
    sfd: nix::sys::signalfd::SignalFd,
    old: nix::sys::signal::SigSet,
}

impl Interrupts {
    fn catch() -> Result<Interrupts> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        let mut mask = SigSet::empty();
        [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]
            .into_iter()
            .for_each(|s| mask.add(s));
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .ctx("block", "termination signals")?;
        let sfd = nix::sys::signalfd::SignalFd::with_flags(&mask, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
            .ctx("create", "signalfd")?;
        Ok(Interrupts { sfd, old })
    }

    /// Waits until `chan` has a message; an error on a termination signal or after `limit`.
    fn wait_readable(&self, chan: &sync::Channel, limit: std::time::Duration) -> Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::{AsFd, BorrowedFd};
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // SAFETY: the channel's fd stays open for this call.
            let chan_fd = unsafe { BorrowedFd::borrow_raw(chan.raw_fd()) };
            let mut fds = [
                PollFd::new(chan_fd, PollFlags::POLLIN),
                PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
            ];
            let millis = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, millis) {
                Ok(0) => {
                    return Err(Error::Init(format!(
                        "did not report for {} s; giving up on it (stuck in a frozen cgroup or uninterruptible sleep?)",
                        limit.as_secs()
                    )))
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(crate::sys::SysError::new("poll", "sync socket", errno).into()),
            }
            if fds[1].any().unwrap_or(false) {
                let signo = self.sfd.read_signal().ok().flatten().map_or(0, |i| i.ssi_signo);
                return Err(Error::Init(format!(
                    "create interrupted by signal {signo}; container removed"
                )));
            }
            return Ok(());
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        let _ = self.old.thread_set_mask();
    }
}

/// Drive the child through the handshake (see sync.rs) until it is Ready.
/// Returns the init's own phase timings when it sent them (--trace).
fn handshake(
    chan: &mut sync::Channel,
    interrupts: &Interrupts,
    saved: &SavedState,
    spec: &Spec,
) -> Result<Vec<(String, u64)>> {
    let pid = saved.pid;
    let limit = silence_limit(spec);
    let mut init_phases = Vec::new();
    loop {
        interrupts.wait_readable(chan, limit)?;
        match chan.recv_with_fd::<FromChild>()? {
            Some((FromChild::Ready, _)) => return Ok(init_phases),
            Some((FromChild::Timings { phases }, _)) => init_phases = phases,
            Some((FromChild::RunHooks, _)) => {
                let state = saved.to_oci(Status::Creating);
                let hooks = spec.hooks().as_ref();
                hooks::run_all("prestart", hooks.and_then(|h| h.prestart().as_ref()), &state)?;
                hooks::run_all("createRuntime", hooks.and_then(|h| h.create_runtime().as_ref()), &state)?;
                let state =
                    serde_json::to_string(&state).map_err(|e| Error::Init(format!("failed to encode state: {e}")))?;
                chan.send(&ToChild::HooksDone { state })?;
            }
            Some((FromChild::SeccompNotifyFd, fd)) => {
                hand_notify_fd_to_agent(spec, pid, &saved.to_oci(Status::Creating), fd)?;
                chan.send(&ToChild::SeccompNotifyFdSent)?;
            }
            Some((FromChild::Failed { msg }, _)) => return Err(Error::Init(msg)),
            // Only exec's intermediate child sends it.
            Some((FromChild::Spawned { .. }, _)) => return Err(Error::Init("unexpected message Spawned".into())),
            None => {
                let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(Error::Init(format!("exited before it was ready ({status:?})")));
            }
        }
    }
}

/// The seccomp notify fd the child loaded, with the process state, to the agent at
/// listenerPath (which resolves here, in the runtime's mount namespace). Then our copy closes.
pub(super) fn hand_notify_fd_to_agent(
    spec: &Spec,
    pid: i32,
    state: &husk_protocol::ContainerState,
    fd: Option<OwnedFd>,
) -> Result<()> {
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let (Some(profile), Some(fd)) = (profile, fd) else {
        return Err(Error::Init(
            "sent a seccomp notify message without a profile or fd".into(),
        ));
    };
    let Some(listener) = profile.listener_path() else {
        return Err(Error::Init(
            "has a seccomp notify fd but the profile has no listenerPath".into(),
        ));
    };
    let json = crate::seccomp::process_state_json(profile, pid, state)?;
    use std::os::fd::AsFd;
    crate::seccomp::send_notify_fd(listener, fd.as_fd(), &json)?;
    Ok(())
}

/// `path` made absolute and lexically clean, like Go's filepath.Abs: the working directory is
/// read only for a relative path. A shim serving a pod runs in its first container's bundle,
/// which is gone once that container is deleted; runc still creates the others from there.
fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ctx("get", "current directory")?.join(path)
    };
    let mut clean = PathBuf::from("/");
    for component in joined.components() {
        match component {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::Normal(c) => clean.push(c),
            _ => {}
        }
    }
    Ok(clean)
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let stream = std::os::unix::net::UnixStream::connect(path).ctx("connect to console socket", path.display())?;
    // The init uses it after exec.fifo-less set-up; it must not leak into the container.
    Ok(OwnedFd::from(stream))
}

/// uid_map and gid_map of the child's new user namespace, written from outside (the parent
/// holds the privileges for arbitrary maps).
fn write_id_maps(pid: i32, uid_maps: &[LinuxIdMapping], gid_maps: &[LinuxIdMapping]) -> Result<()> {
    let render = |maps: &[LinuxIdMapping]| -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    for (file, maps) in [("uid_map", uid_maps), ("gid_map", gid_maps)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, render(maps)).ctx("write", &path)?;
    }
    Ok(())
}

/// Written to a temp file and renamed: containerd reads it as soon as create returns.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = absolute(path)?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx("write pid file", tmp.display())?;
    std::fs::rename(&tmp, &path).ctx("rename pid file to", path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_limit_adds_the_create_container_hooks_timeouts() {
        let spec = |hooks: serde_json::Value| -> Spec {
            let mut v = serde_json::to_value(Spec::default()).unwrap();
            v["hooks"] = hooks;
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(silence_limit(&Spec::default()), INIT_SILENCE);
        let hooks = serde_json::json!({"createContainer": [
            {"path": "/bin/a", "timeout": 5},
            {"path": "/bin/b"}
        ]});
        assert_eq!(
            silence_limit(&spec(hooks)),
            INIT_SILENCE * 2 + std::time::Duration::from_secs(5)
        );
    }
}
