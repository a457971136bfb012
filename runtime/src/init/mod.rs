//! The container's init: the child of `husk create`, born by clone3 in its new namespaces.
//! It runs the set-up in the order the kernel needs, tells the parent `Ready`, blocks on
//! exec.fifo until `husk start`, then execs the container's process.
//! It never panics across the boundary: every failure becomes `FromChild::Failed` and exit(1).

pub mod console;
pub mod container_hooks;
pub mod created_signals;
pub mod creds;
pub mod env;
pub mod exec;
pub mod exec_child;
pub mod rlimits;
pub mod sched;
pub mod stage1;

use crate::capabilities;
use crate::namespaces;
use crate::rootfs::{self, RootfsPlan};
use crate::sync::{Channel, FromChild, ToChild};
use crate::sys::{Context, SysError};
use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Everything the init needs, prepared by the parent before clone3.
pub struct InitPlan {
    pub id: String,
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The container's cgroup path inside each hierarchy (for the cgroup bind mounts).
    pub cgroup_paths: Vec<(PathBuf, PathBuf)>,
    /// The parent makes the cgroup directories while it joins them (the systemd driver: systemd
    /// creates the scope), not before clone: a bind of them must wait for CgroupJoined.
    pub cgroup_dirs_made_in_join: bool,
    /// O_PATH fd of the state dir, to reach exec.fifo after pivot_root without /proc.
    pub state_dir: OwnedFd,
    /// The state-dir lock the parent holds: the init must not keep a copy of it.
    pub lock_fd: RawFd,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Hooks need the RunHooks/HooksDone step: the parent's run then, the init's need the state.
    pub hooks_handshake: bool,
    /// `husk run` in the foreground execs at once, without waiting on exec.fifo.
    pub wait_for_start: bool,
    /// --trace: report the init's phases to the parent before Ready.
    pub trace: bool,
    /// The seccomp BPF program, compiled by the parent (libseccomp takes tens of ms; the
    /// init only makes one seccomp(2) call).
    pub seccomp: Option<crate::seccomp::Program>,
    /// AppArmor profile / SELinux label for the process, checked against the host by the parent.
    pub exec_labels: crate::lsm::ExecLabels,
    /// With a new user namespace: every bind source, cloned by the parent (by mount index).
    pub bind_sources: Vec<Option<OwnedFd>>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Caps(#[from] capabilities::CapError),
    #[error("failed to load seccomp profile: {0}")]
    Seccomp(String),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Env(#[from] env::EnvError),
    #[error("the parent went away before the container was ready")]
    ParentGone,
    #[error("unexpected message from the parent: {0:?}")]
    Unexpected(ToChild),
}

/// The child's entry point; never returns.
pub fn run(plan: InitPlan, mut chan: Channel) -> ! {
    let err = match setup(&plan, &mut chan) {
        Ok(prepared) => exec_after_start(&plan, chan, prepared),
        // setup sent it to the parent, which prints it: a second line here would repeat it.
        // SAFETY: as below.
        Err(_) => unsafe { libc::_exit(1) },
    };
    // A startContainer hook's (or the late seccomp load's) failure went to `husk start`
    // through exec.fifo, which prints it: a second copy here would land in the same log.
    if plan.wait_for_start && matches!(err, InitError::Hook(_) | InitError::Seccomp(_)) {
        // SAFETY: as below.
        unsafe { libc::_exit(1) }
    }
    // exec_after_start failed after Ready, when the parent no longer listens: stderr is all
    // there is.
    eprintln!("husk: container {}: {err}", plan.id);
    // SAFETY: _exit skips atexit handlers and destructors that belong to the parent's state.
    unsafe { libc::_exit(1) }
}

pub(crate) fn expect(chan: &mut Channel, want: ToChild) -> Result<(), InitError> {
    match chan.recv::<ToChild>()? {
        Some(msg) if msg == want => Ok(()),
        Some(other) => Err(InitError::Unexpected(other)),
        None => Err(InitError::ParentGone),
    }
}

/// What the set-up leaves for the last steps: the program to exec and the state the
/// startContainer hooks receive (when the config has hooks).
struct Prepared {
    launch: Launch,
    hook_state: Option<String>,
}

/// All set-up up to the point where only start and exec remain.
fn setup(plan: &InitPlan, chan: &mut Channel) -> Result<Prepared, InitError> {
    if plan.lock_fd >= 0 {
        // SAFETY: closing our copy of the parent's lock fd (see InitPlan::lock_fd).
        unsafe { libc::close(plan.lock_fd) };
    }
    // CVE-2019-5736: nothing in the container may open /proc/<init>/exe while it is still husk.
    let mut joined = false;
    let result = nix::sys::prctl::set_dumpable(false)
        .ctx("set", "PR_SET_DUMPABLE")
        .map_err(InitError::from)
        .and_then(|()| expect(chan, ToChild::Proceed))
        .and_then(|()| setup_after_proceed(plan, chan, &mut joined));
    if let Err(ref err) = result {
        if !joined && !matches!(err, InitError::ParentGone | InitError::Unexpected(_)) {
            // The parent sends CgroupJoined whatever happens here (or closes the channel).
            // Exiting with it unread would reset the connection, and the parent would report
            // "connection reset by peer" instead of this error.
            let _ = expect(chan, ToChild::CgroupJoined);
        }
        // Report here, while the channel is ours; run() then only exits.
        let _ = chan.send(&FromChild::Failed { msg: err.to_string() });
    }
    result
}

/// Whether the config's `cgroup` mount will bind-mount cgroup directories that the parent makes
/// only in the join. With a new cgroup namespace each hierarchy is mounted afresh instead.
fn binds_cgroup_dirs_made_in_join(plan: &InitPlan, new_cgroupns: bool) -> bool {
    let has_cgroup_mount = || {
        let mounts = plan.spec.mounts().as_deref().unwrap_or_default();
        mounts
            .iter()
            .any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
    };
    plan.cgroup_dirs_made_in_join && !new_cgroupns && has_cgroup_mount()
}

/// Waits until the parent has put the init in every cgroup (sync.rs: CgroupJoined). The
/// parent sends it once: a second call returns at once.
fn await_cgroup_joined(chan: &mut Channel, joined: &mut bool) -> Result<(), InitError> {
    if !*joined {
        expect(chan, ToChild::CgroupJoined)?;
        *joined = true;
    }
    Ok(())
}

fn setup_after_proceed(plan: &InitPlan, chan: &mut Channel, joined: &mut bool) -> Result<Prepared, InitError> {
    let spec = &plan.spec;
    let linux = spec.linux().as_ref();
    let ns_list = linux.and_then(|l| l.namespaces().clone()).unwrap_or_default();
    // A joined user namespace was entered by stage 1, before we were born.
    let userns = ns_list.iter().any(|ns| ns.typ() == LinuxNamespaceType::User);
    if userns {
        // Become the namespace's root (as runc's nsexec does): the maps are written, and files
        // made on a filesystem mounted inside (a tmpfs /dev) need an owner mapped there.
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx("setresgid", "0 in the user namespace")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx("setresuid", "0 in the user namespace")?;
    }
    let mut trace = crate::trace::Trace::new(plan.trace);
    if !namespaces::joins_before_clone(&ns_list) {
        join_namespaces(&ns_list)?;
    }
    let new_cgroupns = namespaces::creates(&ns_list, LinuxNamespaceType::Cgroup);
    if new_cgroupns {
        // Rooted at the container's cgroup: only once the parent has put us there.
        await_cgroup_joined(chan, joined)?;
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx("unshare", "cgroup namespace")?;
    }
    set_names(spec, &ns_list)?;
    nix::unistd::setsid().ctx("setsid", "container init")?;
    trace.mark("namespaces");
    let new_mountns = namespaces::creates(&ns_list, LinuxNamespaceType::Mount);
    if new_mountns && binds_cgroup_dirs_made_in_join(plan, new_cgroupns) {
        // The cgroup mount binds the container's own cgroup directories, which do not exist
        // until the join has made them: no overlap here (seen on v1 + systemd through CRI).
        await_cgroup_joined(chan, joined)?;
    }
    if new_mountns {
        rootfs::prepare(&RootfsPlan {
            spec,
            rootfs: &plan.rootfs,
            bundle: &plan.bundle,
            cgroup_paths: &plan.cgroup_paths,
            new_cgroupns,
            new_netns: namespaces::creates(&ns_list, LinuxNamespaceType::Network),
            userns,
            bind_sources: &plan.bind_sources,
        })?;
        trace.mark("mounts and devices");
    }
    if !new_cgroupns {
        // The mounts ran while the parent joined the cgroups; from here on (hooks, execve)
        // the init must be in them.
        await_cgroup_joined(chan, joined)?;
    }
    let mut hook_state = None;
    if plan.hooks_handshake {
        chan.send(&FromChild::RunHooks)?;
        let state = expect_hooks_done(chan)?;
        // runc runs them from the rootfs: a relative hook path is found there.
        nix::unistd::chdir(&plan.rootfs).ctx("chdir into", plan.rootfs.display())?;
        container_hooks::create_container(spec, &state)?;
        hook_state = Some(state);
        trace.mark("prestart/createRuntime/createContainer hooks");
    }
    if new_mountns {
        if plan.no_pivot {
            rootfs::pivot::move_root(&plan.rootfs)?;
        } else {
            rootfs::pivot::pivot(&plan.rootfs)?;
        }
        // Before finish: readonlyPaths usually holds /proc/sys (runc's order too).
        write_sysctls(spec)?;
        rootfs::finish(spec)?;
    } else {
        nix::unistd::chroot(&plan.rootfs).ctx("chroot into", plan.rootfs.display())?;
        write_sysctls(spec)?;
    }
    trace.mark("pivot_root, masked and read-only paths, sysctl");
    // Before prepare_process: without no_new_privs it loads the seccomp filter, which may
    // refuse close_range (every fd opened after this is O_CLOEXEC).
    let keep: Vec<i32> = (3..3 + plan.preserve_fds)
        .chain([chan.raw_fd(), plan.state_dir.as_raw_fd()])
        .collect();
    exec::cloexec_from(3, &keep)?;
    let launch = prepare_process(plan, chan)?;
    trace.mark("process: console, rlimits, creds, caps, seccomp");
    if trace.enabled() {
        chan.send(&FromChild::Timings {
            phases: trace.phases().to_vec(),
        })?;
    }
    Ok(Prepared { launch, hook_state })
}

fn expect_hooks_done(chan: &mut Channel) -> Result<String, InitError> {
    match chan.recv::<ToChild>()? {
        Some(ToChild::HooksDone { state }) => Ok(state),
        Some(other) => Err(InitError::Unexpected(other)),
        None => Err(InitError::ParentGone),
    }
}

pub(crate) fn join_namespaces(ns_list: &[oci_spec::runtime::LinuxNamespace]) -> Result<(), SysError> {
    // pid and time were entered by the parent, for us, before clone3.
    let own: Vec<_> = ns_list
        .iter()
        .filter(|ns| !matches!(ns.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::Time))
        .cloned()
        .collect();
    join_every_namespace(&own)
}

/// setns into every namespace of `ns_list` that has a path, user first (it grants the rights
/// for the others), mount last; pid and time apply to the next child only. Every file is
/// opened before the first join: after the mount join, /proc/<pid>/ns is the container's.
pub(crate) fn join_every_namespace(ns_list: &[oci_spec::runtime::LinuxNamespace]) -> Result<(), SysError> {
    let mut joins: Vec<_> = ns_list.iter().filter(|ns| ns.path().is_some()).collect();
    joins.sort_by_key(|ns| crate::config::namespace_order(ns.typ()));
    let files = joins
        .iter()
        .map(|ns| {
            namespaces::open(
                ns.typ(),
                ns.path().as_deref().unwrap_or_else(|| std::path::Path::new("")),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    for file in &files {
        namespaces::join(file)?;
    }
    Ok(())
}

fn set_names(spec: &Spec, ns_list: &[oci_spec::runtime::LinuxNamespace]) -> Result<(), SysError> {
    if !ns_list.iter().any(|ns| ns.typ() == LinuxNamespaceType::Uts) {
        return Ok(());
    }
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(name).ctx("sethostname", name)?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: setdomainname reads len bytes of a valid buffer.
        if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } != 0 {
            return Err(SysError::new("setdomainname", name, nix::errno::Errno::last()));
        }
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<(), SysError> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).ctx("write sysctl", &path)?;
    }
    Ok(())
}

/// Console, cwd, rlimits, keyring, user, capabilities, no_new_privs; the program's path.
fn prepare_process(plan: &InitPlan, chan: &mut Channel) -> Result<Launch, InitError> {
    let Some(process) = plan.spec.process().as_ref() else {
        return Err(SysError::new("read", "process", nix::errno::Errno::EINVAL).into());
    };
    let in_userns = plan.spec.linux().as_ref().is_some_and(|l| {
        l.namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::User)
    });
    if let Some(personality) = plan.spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        sched::set_personality(personality)?;
    }
    let console = plan.console_socket.as_ref().map(|s| s.as_raw_fd());
    let keyring = (!plan.no_new_keyring).then_some(plan.id.as_str());
    prepare_credentials(process, console, keyring, in_userns, plan.seccomp.as_ref(), chan, true)
}

/// What execve gets: the program found on the process's PATH and the env, checked, deduplicated
/// and with HOME added, as runc's init builds it (see [`env`]).
pub struct Launch {
    pub program: PathBuf,
    pub env: Vec<String>,
}

/// What the init and an exec'd process share: from the terminal to no_new_privs, in the order
/// the kernel requires (bounding set while still root, caps after the uid switch).
pub fn prepare_credentials(
    process: &oci_spec::runtime::Process,
    console_socket: Option<RawFd>,
    session_keyring_for: Option<&str>,
    in_userns: bool,
    seccomp: Option<&crate::seccomp::Program>,
    chan: &mut Channel,
    make_cwd: bool,
) -> Result<Launch, InitError> {
    if process.terminal().unwrap_or(false) {
        if let Some(socket) = console_socket {
            let size = process.console_size().as_ref().map(|b| console::ConsoleSize {
                rows: b.height() as u16,
                cols: b.width() as u16,
            });
            console::setup(socket, size)?;
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx("write oom_score_adj (a negative value needs CAP_SYS_RESOURCE)", adj)?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    // Both need privileges the capability drop below may take away.
    if let Some(sched) = process.scheduler() {
        sched::set_scheduler(sched)?;
    }
    if let Some(prio) = process.io_priority() {
        sched::set_io_priority(prio)?;
    }
    if let Some(id) = session_keyring_for {
        join_session_keyring(id);
    }
    let no_caps = capabilities::none();
    let caps = process.capabilities().as_ref().unwrap_or(&no_caps);
    capabilities::drop_bounding(caps)?;
    if let (false, Some(profile)) = (loads_late(process, seccomp), seccomp) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while husk still
        // has it, as runc does. With no_new_privs it is loaded last, just before execve.
        let notify_fd = profile.load().map_err(|e| InitError::Seccomp(e.to_string()))?;
        if let Some(fd) = notify_fd {
            hand_off_notify_fd(chan, fd)?;
        }
    }
    let setgroups_allowed = !in_userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    // Resolved inside the root, made when missing for the init only (as runc does: images often
    // name a workdir they do not ship; an exec's missing cwd fails), and checked after the
    // chdir (CVE-2024-21626).
    crate::rootfs::cwd::enter(process.cwd(), make_cwd)?;
    // Read while still root, as runc does: /etc/passwd may not be readable by the user.
    let env = env::process_env(process.env().as_deref().unwrap_or_default(), process.user().uid())?;
    creds::give_stdio_to(process.user().uid())?;
    creds::switch_user(process.user(), setgroups_allowed)?;
    capabilities::apply(caps)?;
    if process.no_new_privileges().unwrap_or(false) {
        nix::sys::prctl::set_no_new_privs().ctx("set", "PR_SET_NO_NEW_PRIVS")?;
    }
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args.first().map(String::as_str).unwrap_or_default();
    let program = exec::find_program(arg0, &env)?;
    Ok(Launch { program, env })
}

/// Whether the seccomp filter is loaded just before execve rather than before the capability
/// drop: only with no_new_privs, and not with NOTIFY rules, whose fd must reach the parent
/// while the sync channel is still open.
pub(crate) fn loads_late(process: &oci_spec::runtime::Process, seccomp: Option<&crate::seccomp::Program>) -> bool {
    process.no_new_privileges().unwrap_or(false) && !seccomp.is_some_and(|p| p.uses_notify())
}

/// Right after the load: every syscall from here on may be notified, and only the agent can
/// answer, so nothing but the send (sendmsg, never NOTIFY: validate refuses it) comes before
/// the parent's ack that the agent has the fd.
fn hand_off_notify_fd(chan: &mut Channel, fd: OwnedFd) -> Result<(), InitError> {
    chan.send_with_fd(&FromChild::SeccompNotifyFd, fd.as_fd())?;
    drop(fd);
    expect(chan, ToChild::SeccompNotifyFdSent)
}

/// A fresh session keyring, so containers do not share the host's keys (as runc does).
/// Kernels without keyrings, or a seccomp'd host, refuse it: that is not fatal.
fn join_session_keyring(id: &str) {
    let Ok(name) = std::ffi::CString::new(format!("_ses.{id}")) else {
        return;
    };
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads a NUL-terminated name.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            1, /* KEYCTL_JOIN_SESSION_KEYRING */
            name.as_ptr(),
        )
    };
}

/// Tell the parent we are ready, wait for `husk start`, load seccomp, run the startContainer
/// hooks, exec. The fds were marked close-on-exec before the set-up loaded any seccomp filter.
fn exec_after_start(plan: &InitPlan, mut chan: Channel, prepared: Prepared) -> InitError {
    if let Err(e) = chan.send(&FromChild::Ready) {
        return e.into();
    }
    drop(chan);
    if plan.wait_for_start {
        created_signals::die_like_go_on_fatal_signals();
    }
    if let Err(e) = released_by_start(plan, prepared.hook_state.as_deref()) {
        return e;
    }
    let process = plan.spec.process().as_ref();
    let args = process.and_then(|p| p.args().clone()).unwrap_or_default();
    exec::execve(&prepared.launch.program, &args, &prepared.launch.env).into()
}

/// The last steps before execve, in runc's order: the exec labels, the seccomp filter when it
/// is loaded late (with no_new_privs), then the startContainer hooks, which thus run under the
/// filter as in runc.
fn last_steps_before_exec(plan: &InitPlan, hook_state: Option<&str>) -> Result<(), InitError> {
    crate::lsm::apply_exec_labels(&plan.exec_labels)?;
    let process = plan.spec.process().as_ref();
    let late = process.is_some_and(|p| loads_late(p, plan.seccomp.as_ref()));
    if let (true, Some(seccomp)) = (late, plan.seccomp.as_ref()) {
        seccomp.load().map_err(|e| InitError::Seccomp(e.to_string()))?;
    }
    if let Some(state) = hook_state {
        container_hooks::start_container(&plan.spec, state)?;
    }
    Ok(())
}

/// Wait for `husk start` (a foreground run does not), take the last steps, then answer start
/// through exec.fifo: "0", or "1<error>" so that start fails with the error (a hook's, say)
/// while this init exits.
fn released_by_start(plan: &InitPlan, hook_state: Option<&str>) -> Result<(), InitError> {
    let fifo = match plan.wait_for_start {
        // Blocks until `husk start` opens the fifo for reading.
        true => Some(
            nix::fcntl::openat(
                plan.state_dir.as_fd(),
                crate::state::EXEC_FIFO,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx("open", "exec.fifo")?,
        ),
        false => None,
    };
    let steps = last_steps_before_exec(plan, hook_state);
    if let Some(fifo) = fifo {
        let mut reply = match &steps {
            Ok(()) => "0".to_string(),
            Err(e) => format!("1{e}"),
        };
        // One write below PIPE_BUF is atomic: start reads the whole answer at once.
        truncate_at_char(&mut reply, 4000);
        nix::unistd::write(&fifo, reply.as_bytes()).ctx("write", "exec.fifo")?;
    }
    steps
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
