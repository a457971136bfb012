//! The Task service: the handlers (rpc.rs decodes and dispatches) that look up the container and translate requests,
//! plus the exit path (reaper → router → exit worker → process → TaskExit after its output is
//! copied).
//!
//! Handlers run concurrently (server.rs gives each runtime call a thread), so the service keeps
//! containerd's Go shim's guarantees itself: an id being created is reserved (a second Create
//! of it fails, Shutdown waits for it); a container's init lifecycle (start, delete, pause,
//! resume) runs one at a time (`Container::lifecycle`); exits are handled one at a time, in
//! reaping order, by a worker thread that exists only while exits are queued (the init's exit
//! may run `kill --all` and wait for output, which must not hold up the loop).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim::shim::*;
use containerd_shim::protos::topics::*;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events::EventSender;
use crate::options::RuntimeOptions;
use crate::process::{ExitInfo, Process, Transition};
use crate::reaper::{ExitRouter, Owner};
use crate::stdio::StdioPaths;

/// The exit worker runs `kill --all` and publishes; see server.rs's WORKER_STACK.
const EXIT_WORKER_STACK: usize = 512 * 1024;
/// How long an exit waits for its output to drain before TaskExit goes out anyway.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

pub struct Service {
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Ids whose Create is in flight (lock order: `containers`, then this), and its signal.
    creating: Mutex<HashSet<String>>,
    created: Condvar,
    router: Arc<ExitRouter>,
    events: EventSender,
    hooks: DaemonHooks,
    exits: Mutex<ExitQueue>,
}

/// Exits waiting for the exit worker, and whether it runs.
#[derive(Default)]
struct ExitQueue {
    pending: VecDeque<(Owner, i32)>,
    worker: bool,
}

/// An id reserved for a Create in flight; released when the Create is over.
struct Reservation<'a> {
    service: &'a Service,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(&self.service.creating).remove(&self.id);
        self.service.created.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the service asks of the process around it.
pub struct DaemonHooks {
    /// Ends the daemon (Shutdown with no container left).
    pub shutdown: Box<dyn Fn() + Send + Sync>,
    /// Takes a started container's OOM eventfd to wait on.
    pub watch_oom: Box<dyn Fn(std::fs::File, Arc<crate::oom::OomWatch>) + Send + Sync>,
    /// An exit was handled off the loop: pending Waits may be answered now.
    pub exit_handled: Box<dyn Fn() + Send + Sync>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

impl Service {
    pub fn new(namespace: &str, events: EventSender, hooks: DaemonHooks) -> Arc<Service> {
        Arc::new(Service {
            namespace: namespace.to_string(),
            containers: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            created: Condvar::new(),
            router: Arc::new(ExitRouter::default()),
            events,
            hooks,
            exits: Mutex::new(ExitQueue::default()),
        })
    }

    /// Every reaped child comes here from the daemon's main loop. Routing is immediate (a
    /// Create or exec start in flight may be watching for the pid); the rest is queued for the
    /// exit worker.
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: i32) {
        let Some(owner) = self.router.route(pid, status) else {
            return;
        };
        lock(&self.exits).pending.push_back((owner, status));
        self.kick_exits();
    }

    /// Starts the exit worker if exits are queued and none runs. The loop calls it on every
    /// turn too: if a thread could not be started, the exits wait for the next try, not for
    /// the next exit.
    pub fn kick_exits(self: &Arc<Self>) {
        let mut queue = lock(&self.exits);
        if queue.worker || queue.pending.is_empty() {
            return;
        }
        let service = Arc::clone(self);
        match std::thread::Builder::new()
            .name("exits".into())
            .stack_size(EXIT_WORKER_STACK)
            .spawn(move || service.handle_exits())
        {
            Ok(_) => queue.worker = true,
            Err(err) => log::error!("failed to start the exit thread: {err}"),
        }
    }

    fn handle_exits(&self) {
        loop {
            let (owner, status) = {
                let mut queue = lock(&self.exits);
                match queue.pending.pop_front() {
                    Some(exit) => exit,
                    None => {
                        queue.worker = false;
                        return;
                    }
                }
            };
            self.process_exited(&owner, status);
            (self.hooks.exit_handled)();
        }
    }

    /// Waits until the exit worker has handled every queued exit.
    #[cfg(test)]
    pub(crate) fn settle_exits(&self) {
        while lock(&self.exits).worker {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        lock(&self.containers)
    }

    /// The container, once a Create of its id in flight is over. For the handlers that run on
    /// worker threads: containerd answers a Create cancelled by its client with Delete and
    /// Shutdown at once, and that Delete must find (and delete) what the Create makes, as the
    /// Go shim's service lock ensures. Never called on the loop.
    pub(crate) fn settled_container(&self, id: &str) -> Result<Arc<Container>> {
        let mut creating = lock(&self.creating);
        while creating.contains(id) {
            creating = self.created.wait(creating).unwrap_or_else(|e| e.into_inner());
        }
        drop(creating);
        self.container(id)
    }

    fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let table = self.table();
        if table.contains_key(id) || !lock(&self.creating).insert(id.to_string()) {
            return Err(Error::ContainerExists(id.to_string()));
        }
        Ok(Reservation {
            service: self,
            id: id.to_string(),
        })
    }

    pub(crate) fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.table()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }

    /// Records an exit once the process's output has been copied, then publishes it, unless
    /// a Start is still in flight: then `finish_start` publishes it after TaskStart.
    fn process_exited(&self, owner: &Owner, status: i32) {
        let Ok(c) = self.container(&owner.id) else {
            return;
        };
        if owner.exec_id.is_empty() && c.kill_all_on_exit {
            // Without its own pid namespace the init's children outlive it: kill them before
            // the exit is published, as containerd's runc shim does (their output then ends too).
            if let Err(err) = c.runtime.kill(&c.id, libc::SIGKILL as u32, true) {
                log::warn!("failed to kill the processes left by the init of {}: {err}", c.id);
            }
        }
        let latch = match c.lock().get(&owner.id, &owner.exec_id) {
            Ok(p) => p.io.as_ref().map(|io| Arc::clone(&io.output)),
            Err(_) => return,
        };
        if let Some(latch) = latch {
            latch.wait(OUTPUT_DRAIN_LIMIT);
        }
        let oom = c.oom.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(oom) = oom {
            oom.check();
        }
        let mut procs = c.lock();
        let Ok(p) = procs.get_mut(&owner.id, &owner.exec_id) else {
            return;
        };
        if p.apply(Transition::Exit).is_err() {
            return;
        }
        p.exit = Some(ExitInfo {
            status: status as u32,
            at: now(),
        });
        if p.starting {
            p.exit_held = true;
        } else {
            self.events.send(TASK_EXIT_EVENT_TOPIC, exit_event(p));
        }
    }

    /// After a successful runtime start: the state change, TaskStart/TaskExecStarted, and any
    /// exit held back meanwhile, all under one lock so their order is fixed.
    fn finish_start(&self, c: &Container, exec_id: &str) -> Result<u32> {
        let mut procs = c.lock();
        let p = procs.get_mut(&c.id, exec_id)?;
        if p.check(Transition::Start).is_ok() {
            p.apply(Transition::Start)?;
        }
        p.starting = false;
        if exec_id.is_empty() {
            self.events.send(
                TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: c.id.clone(),
                    pid: p.pid,
                    ..Default::default()
                },
            );
        } else {
            let started = TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: exec_id.into(),
                pid: p.pid,
                ..Default::default()
            };
            self.events.send(TASK_EXEC_STARTED_EVENT_TOPIC, started);
        }
        if p.exit_held {
            p.exit_held = false;
            self.events.send(TASK_EXIT_EVENT_TOPIC, exit_event(p));
        }
        Ok(p.pid)
    }

    fn abort_start(&self, c: &Container, exec_id: &str) {
        let mut procs = c.lock();
        if let Ok(p) = procs.get_mut(&c.id, exec_id) {
            p.starting = false;
            if p.exit_held {
                p.exit_held = false;
                self.events.send(TASK_EXIT_EVENT_TOPIC, exit_event(p));
            }
        }
    }

    pub(crate) fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let _reserved = self.reserve(&req.id)?;
        let options = RuntimeOptions::from_any(req.options.as_ref())?;
        let watch = self.router.watch();
        let created = Container::create(&req, &self.namespace, options)?;
        let c = Arc::new(created.container);
        self.table().insert(req.id.clone(), Arc::clone(&c));
        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid: created.pid,
            ..Default::default()
        };
        self.events.send(TASK_CREATE_EVENT_TOPIC, event);
        let owner = Owner {
            id: req.id.clone(),
            exec_id: String::new(),
        };
        if let Some(status) = self.router.register(watch, created.pid as i32, owner.clone()) {
            self.process_exited(&owner, status);
        }
        Ok(CreateTaskResponse {
            pid: created.pid,
            ..Default::default()
        })
    }

    pub(crate) fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let c = self.settled_container(&req.id)?;
        if req.exec_id.is_empty() {
            let _lifecycle = c.lifecycle();
            c.begin_start("")?;
            if let Err(err) = c.runtime.start(&c.id) {
                self.abort_start(&c, "");
                return Err(err);
            }
            let pid = self.finish_start(&c, "")?;
            match crate::oom::watch(&c.id, pid, self.events.clone()) {
                Ok((watch, eventfd)) => {
                    *c.oom.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&watch));
                    (self.hooks.watch_oom)(eventfd, watch);
                }
                Err(err) => log::warn!("no oom events for {}: {err}", c.id),
            }
            return Ok(StartResponse {
                pid,
                ..Default::default()
            });
        }
        let (stdio, spec) = c.begin_start(&req.exec_id)?;
        let watch = self.router.watch();
        let (pid, io) = match c.run_exec(&req.exec_id, &stdio, &spec.unwrap_or_default()) {
            Ok(started) => started,
            Err(err) => {
                self.abort_start(&c, &req.exec_id);
                return Err(err);
            }
        };
        if let Ok(p) = c.lock().get_mut(&c.id, &req.exec_id) {
            p.pid = pid;
            p.io = Some(io);
        }
        let owner = Owner {
            id: c.id.clone(),
            exec_id: req.exec_id.clone(),
        };
        let early = self.router.register(watch, pid as i32, owner.clone());
        self.finish_start(&c, &req.exec_id)?;
        if let Some(status) = early {
            self.process_exited(&owner, status);
        }
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub(crate) fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let c = self.settled_container(&req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.delete_exec(&req.exec_id)?;
            self.router.forget(p.pid as i32);
            let (exit_status, at) = p.exit_status();
            return Ok(DeleteResponse {
                pid: p.pid,
                exit_status,
                exited_at: MessageField::some(at),
                ..Default::default()
            });
        }
        let lifecycle = c.lifecycle();
        c.delete_init()?;
        self.table().remove(&req.id);
        drop(lifecycle);
        let (pid, (exit_status, at)) = {
            let procs = c.lock();
            (procs.init.pid, procs.init.exit_status())
        };
        self.router.forget(pid as i32);
        let event = TaskDelete {
            container_id: c.id.clone(),
            pid,
            exit_status,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        };
        self.events.send(TASK_DELETE_EVENT_TOPIC, event);
        Ok(DeleteResponse {
            pid,
            exit_status,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    pub(crate) fn do_exec(&self, req: ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let mut procs = c.lock();
        if procs.init.is_stopped() {
            return Err(Error::InitExited(req.id));
        }
        if procs.execs.contains_key(&req.exec_id) {
            return Err(Error::ExecExists {
                id: req.id,
                exec_id: req.exec_id,
            });
        }
        let stdio = StdioPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        let mut p = Process::new(&req.id, &req.exec_id, stdio);
        p.spec = req.spec.into_option();
        procs.execs.insert(req.exec_id.clone(), p);
        let added = TaskExecAdded {
            container_id: req.id,
            exec_id: req.exec_id,
            ..Default::default()
        };
        self.events.send(TASK_EXEC_ADDED_EVENT_TOPIC, added);
        Ok(())
    }

    pub(crate) fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let c = self.container(&req.id)?;
        let procs = c.lock();
        let p = procs.get(&req.id, &req.exec_id)?;
        let (exit_status, at) = p.exit_status();
        Ok(StateResponse {
            id: p.id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: p.pid,
            status: p.state.status().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status,
            exited_at: MessageField::some(at),
            exec_id: p.exec_id.clone(),
            ..Default::default()
        })
    }

    pub(crate) fn do_freeze(&self, id: &str, t: Transition) -> Result<()> {
        let c = self.settled_container(id)?;
        let lifecycle = c.lifecycle();
        c.freeze(t)?;
        drop(lifecycle);
        if t == Transition::Pause {
            self.events.send(
                TASK_PAUSED_EVENT_TOPIC,
                TaskPaused {
                    container_id: id.into(),
                    ..Default::default()
                },
            );
        } else {
            self.events.send(
                TASK_RESUMED_EVENT_TOPIC,
                TaskResumed {
                    container_id: id.into(),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    pub(crate) fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let c = self.settled_container(&req.id)?;
        let pids = c.runtime.ps(&c.id)?;
        let execs: HashMap<u32, String> = c.lock().execs.values().map(|p| (p.pid, p.exec_id.clone())).collect();
        let processes = pids
            .into_iter()
            .map(|pid| crate::stats::process_info(pid, execs.get(&pid)))
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    /// Wait without blocking: None while the process runs (the server keeps the request
    /// pending and asks again after every event on its loop).
    pub(crate) fn try_wait(&self, req: &WaitRequest) -> Result<Option<WaitResponse>> {
        let c = self.container(&req.id)?;
        let Some(ExitInfo { status, at }) = c.try_wait(&req.exec_id)? else {
            return Ok(None);
        };
        Ok(Some(WaitResponse {
            exit_status: status,
            exited_at: MessageField::some(at),
            ..Default::default()
        }))
    }

    pub(crate) fn do_update(&self, req: UpdateTaskRequest) -> Result<()> {
        let c = self.settled_container(&req.id)?;
        let resources = req
            .resources
            .into_option()
            .ok_or_else(|| Error::InvalidArgument("update without resources".into()))?;
        c.runtime.update(&c.id, &resources.value)
    }

    pub(crate) fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let c = self.container(&req.id)?;
        let paths = match &c.cgroups {
            Some(paths) => paths.clone(),
            None => crate::stats::CgroupPaths::of_pid(c.init_pid(), &c.id)?,
        };
        let stats = crate::stats::metrics(&paths, &c.id)?;
        Ok(StatsResponse {
            stats: MessageField::some(stats),
            ..Default::default()
        })
    }

    pub(crate) fn do_shutdown(&self) {
        let table = self.table();
        if table.is_empty() && lock(&self.creating).is_empty() {
            (self.hooks.shutdown)();
        }
    }
}

fn exit_event(p: &Process) -> TaskExit {
    let (exit_status, at) = p.exit_status();
    TaskExit {
        container_id: p.id.clone(),
        id: if p.exec_id.is_empty() {
            p.id.clone()
        } else {
            p.exec_id.clone()
        },
        pid: p.pid,
        exit_status,
        exited_at: MessageField::some(at),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
