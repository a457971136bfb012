//! A container: its init process, its execs and the runtime that drives them. Each verb takes
//! the state lock only to check and apply a transition, never across a runtime call.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use containerd_shim::protos::shim::shim::CreateTaskRequest;

use crate::error::{Error, Result};
use crate::options::RuntimeOptions;
use crate::process::{Process, ProcessState, Transition};
use crate::runtime::{CreateArgs, ExecArgs, Runtime};
use crate::stdio::{PreparedIo, ProcessIo, StdioPaths};

pub struct Processes {
    pub init: Process,
    pub execs: HashMap<String, Process>,
}

impl Processes {
    pub fn get(&self, id: &str, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| Error::ProcessNotFound {
            id: id.into(),
            exec_id: exec_id.into(),
        })
    }

    pub fn get_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs.get_mut(exec_id).ok_or_else(|| Error::ProcessNotFound {
            id: id.into(),
            exec_id: exec_id.into(),
        })
    }
}

pub struct Container {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub options: RuntimeOptions,
    pub rootfs_mounted: bool,
    /// The spec creates no pid namespace of its own: when the init exits, what it leaves in the
    /// cgroup is killed (containerd's runc shim: ShouldKillAllOnExit).
    pub kill_all_on_exit: bool,
    /// The init's cgroups, read at create: Stats still finds them once the init has exited.
    pub cgroups: Option<crate::stats::CgroupPaths>,
    processes: Mutex<Processes>,
    /// Held across the init's lifecycle calls (start, delete, pause, resume), which run on
    /// worker threads: one at a time per container, as the Go shim's process mutex does.
    lifecycle: Mutex<()>,
    /// The OOM watcher, once the init has started.
    pub oom: Mutex<Option<std::sync::Arc<crate::oom::OomWatch>>>,
}

/// What `Container::create` made: the container and its init's pid.
pub struct Created {
    pub container: Container,
    pub pid: u32,
}

pub fn read_pid_file(path: &Path) -> Result<u32> {
    let text = fs::read_to_string(path).map_err(Error::io("read pid file", path))?;
    text.trim()
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("pid file {} holds {text:?}", path.display())))
}

/// True unless config.json asks for a new pid namespace (a `pid` entry without a path): a
/// container in the host's or another container's pid namespace does not lose its processes when
/// its init exits. An unreadable spec counts as "kill all", as in containerd's runc shim.
pub fn kill_all_on_exit(bundle: &Path) -> bool {
    let spec = fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let namespaces = spec
        .as_ref()
        .and_then(|s| s.pointer("/linux/namespaces")?.as_array().cloned());
    !namespaces.unwrap_or_default().iter().any(|ns| {
        ns.get("type").and_then(|t| t.as_str()) == Some("pid")
            && ns.get("path").and_then(|p| p.as_str()).unwrap_or_default().is_empty()
    })
}

/// The exec's process json with `terminal` set from the request, whatever the spec said: the
/// shim made a console socket (or pipes) from the request's flag, and the runtime must agree.
fn exec_spec_with_terminal(spec: &[u8], terminal: bool) -> Result<Vec<u8>> {
    let json = |source| Error::Json {
        what: "exec process",
        source,
    };
    let mut process: serde_json::Value = serde_json::from_slice(spec).map_err(json)?;
    if let Some(obj) = process.as_object_mut() {
        obj.insert("terminal".into(), serde_json::Value::Bool(terminal));
    }
    serde_json::to_vec(&process).map_err(json)
}

impl Container {
    /// Mounts the rootfs, then `runtime create`; on failure nothing is left mounted.
    pub fn create(req: &CreateTaskRequest, namespace: &str, options: RuntimeOptions) -> Result<Created> {
        let bundle = PathBuf::from(&req.bundle);
        options.save(&bundle)?;
        let rootfs_mounted = crate::mount::mount_rootfs(&bundle, &req.rootfs)?;
        let runtime = Runtime {
            binary: options.binary(),
            root: options.root(namespace),
            log: bundle.join("log.json"),
            systemd_cgroup: options.systemd_cgroup,
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let undo = |err: Error| {
            if rootfs_mounted {
                crate::mount::unmount_rootfs(&bundle);
            }
            err
        };
        let mut prepared = PreparedIo::new(&stdio, options.io_uid, options.io_gid, &req.id, namespace).map_err(undo)?;
        let pid_file = bundle.join("init.pid");
        let args = CreateArgs {
            bundle: &bundle,
            pid_file: &pid_file,
            console_socket: prepared.console_socket.as_ref().map(|s| s.path()),
            no_pivot: options.no_pivot_root,
            no_new_keyring: options.no_new_keyring,
        };
        let child = std::mem::take(&mut prepared.child);
        runtime.create(&req.id, &args, child).map_err(undo)?;
        let started = read_pid_file(&pid_file).and_then(|pid| Ok((pid, prepared.start()?)));
        let (pid, io) = match started {
            Ok(ok) => ok,
            Err(err) => {
                let _ = runtime.delete(&req.id, true);
                return Err(undo(err));
            }
        };
        let kill_all_on_exit = kill_all_on_exit(&bundle);
        let mut init = Process::new(&req.id, "", stdio);
        init.pid = pid;
        init.io = Some(io);
        let processes = Mutex::new(Processes {
            init,
            execs: HashMap::new(),
        });
        let container = Container {
            id: req.id.clone(),
            namespace: namespace.to_string(),
            bundle,
            runtime,
            options,
            rootfs_mounted,
            kill_all_on_exit,
            cgroups: crate::stats::CgroupPaths::of_pid(pid, &req.id).ok(),
            processes,
            lifecycle: Mutex::new(()),
            oom: Mutex::new(None),
        };
        Ok(Created { container, pid })
    }

    /// A container whose init (pid `pid`) exists only in the shim's tables: for tests of the
    /// service's own logic, which must not run a runtime.
    #[cfg(test)]
    pub fn for_test(id: &str, pid: u32) -> Container {
        let mut init = Process::new(id, "", StdioPaths::default());
        init.pid = pid;
        Container {
            id: id.to_string(),
            namespace: "test".to_string(),
            bundle: PathBuf::from("/nonexistent"),
            runtime: Runtime {
                binary: "false".into(),
                root: "/nonexistent".into(),
                log: "/nonexistent".into(),
                systemd_cgroup: false,
            },
            options: RuntimeOptions::default(),
            rootfs_mounted: false,
            kill_all_on_exit: false,
            cgroups: None,
            processes: Mutex::new(Processes {
                init,
                execs: HashMap::new(),
            }),
            lifecycle: Mutex::new(()),
            oom: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Processes> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serialises the init's lifecycle calls; never taken by the state lock's holders.
    pub fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn init_pid(&self) -> u32 {
        self.lock().init.pid
    }

    /// Marks a start in flight after checking it is legal; returns the process's stdio and spec.
    pub fn begin_start(&self, exec_id: &str) -> Result<(StdioPaths, Option<Vec<u8>>)> {
        let mut procs = self.lock();
        if !exec_id.is_empty() && procs.init.is_stopped() {
            return Err(Error::InitExited(self.id.clone()));
        }
        let p = procs.get_mut(&self.id, exec_id)?;
        p.check(Transition::Start)?;
        if p.starting {
            return Err(Error::InvalidTransition {
                id: self.id.clone(),
                action: "start",
                state: "starting",
            });
        }
        p.starting = true;
        Ok((p.stdio.clone(), p.spec.as_ref().map(|s| s.value.clone())))
    }

    /// `runtime exec` for a created exec; returns its pid and stdio.
    pub fn run_exec(&self, exec_id: &str, stdio: &StdioPaths, spec: &[u8]) -> Result<(u32, ProcessIo)> {
        let process_file = self.bundle.join(format!("{exec_id}.json"));
        let pid_file = self.bundle.join(format!("{exec_id}.pid"));
        let spec = exec_spec_with_terminal(spec, stdio.terminal)?;
        fs::write(&process_file, spec).map_err(Error::io("write exec process", &process_file))?;
        let mut prepared = PreparedIo::new(
            stdio,
            self.options.io_uid,
            self.options.io_gid,
            &self.id,
            &self.namespace,
        )?;
        let args = ExecArgs {
            process_file: &process_file,
            pid_file: &pid_file,
            console_socket: prepared.console_socket.as_ref().map(|s| s.path()),
        };
        let child = std::mem::take(&mut prepared.child);
        let ran = self.runtime.exec(&self.id, &args, child);
        let _ = fs::remove_file(&process_file);
        ran?;
        let pid = read_pid_file(&pid_file)?;
        let _ = fs::remove_file(&pid_file);
        Ok((pid, prepared.start()?))
    }

    /// Sends a signal: init through the runtime (`kill --all` reaches every process), an exec
    /// directly by pid as containerd's runc shim does.
    pub fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let (state, pid) = {
            let procs = self.lock();
            let p = procs.get(&self.id, exec_id)?;
            (p.state, p.pid)
        };
        if matches!(state, ProcessState::Stopped | ProcessState::Deleted) {
            return Err(Error::ProcessFinished(self.id.clone()));
        }
        if exec_id.is_empty() {
            self.runtime
                .kill(&self.id, signal, all)
                .map_err(|err| err.process_gone(&self.id))?;
            // A frozen process cannot act on SIGKILL: thaw it so the kill lands.
            if state == ProcessState::Paused && signal == libc::SIGKILL as u32 {
                let _ = self.runtime.resume(&self.id);
            }
            return Ok(());
        }
        if pid == 0 {
            return Err(Error::InvalidTransition {
                id: exec_id.into(),
                action: "kill",
                state: "created",
            });
        }
        let sig = nix::sys::signal::Signal::try_from(signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("signal {signal}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).map_err(Error::sys("signal exec process"))
    }

    /// Pause or resume the init through the runtime, then record the transition.
    pub fn freeze(&self, t: Transition) -> Result<()> {
        self.lock().init.check(t)?;
        match t {
            Transition::Pause => self.runtime.pause(&self.id)?,
            _ => self.runtime.resume(&self.id)?,
        }
        let mut procs = self.lock();
        // The init may have exited meanwhile; then its state already says so.
        if procs.init.check(t).is_ok() {
            procs.init.apply(t)?;
        }
        Ok(())
    }

    /// Deletes the container in the runtime and unmounts its rootfs; the init must be
    /// created or stopped.
    pub fn delete_init(&self) -> Result<()> {
        self.lock().init.check(Transition::Delete)?;
        if let Err(err) = self.runtime.delete(&self.id, false) {
            // The runtime may have lost the container already (its init died with the shim's
            // state intact): force once, then report the first error only if that fails too. A
            // container the runtime no longer knows is deleted already (containerd's runc shim
            // ignores "does not exist" here).
            if let Err(forced) = self.runtime.delete(&self.id, true) {
                if !forced.is_gone() {
                    return Err(err.process_gone(&self.id));
                }
            }
        }
        let mut procs = self.lock();
        procs.init.apply(Transition::Delete)?;
        if let Some(io) = &procs.init.io {
            io.release();
        }
        drop(procs);
        if self.rootfs_mounted {
            crate::mount::unmount_rootfs(&self.bundle);
        }
        Ok(())
    }

    pub fn delete_exec(&self, exec_id: &str) -> Result<Process> {
        let mut procs = self.lock();
        procs.get_mut(&self.id, exec_id)?.apply(Transition::Delete)?;
        let p = procs.execs.remove(exec_id).ok_or_else(|| Error::ProcessNotFound {
            id: self.id.clone(),
            exec_id: exec_id.into(),
        })?;
        if let Some(io) = &p.io {
            io.release();
        }
        Ok(p)
    }

    pub fn resize_pty(&self, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let procs = self.lock();
        let p = procs.get(&self.id, exec_id)?;
        let console = p.io.as_ref().and_then(|io| io.console.as_ref());
        // A process without a tty has nothing to resize: containerd's runc shim says OK.
        match console {
            Some(console) => crate::console::resize(console, width, height),
            None => Ok(()),
        }
    }

    pub fn close_stdin(&self, exec_id: &str) -> Result<()> {
        let procs = self.lock();
        if let Some(io) = &procs.get(&self.id, exec_id)?.io {
            io.close_stdin();
        }
        Ok(())
    }

    /// The exit status and time once the process has stopped (and its exit is published).
    pub fn try_wait(&self, exec_id: &str) -> Result<Option<crate::process::ExitInfo>> {
        let procs = self.lock();
        let p = procs.get(&self.id, exec_id)?;
        if p.is_stopped() && !p.exit_held {
            let (status, at) = p.exit_status();
            return Ok(Some(crate::process::ExitInfo { status, at }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_terminal_follows_the_request_not_the_spec() {
        let spec = br#"{"terminal":false,"args":["sh"],"cwd":"/"}"#;
        let patched: serde_json::Value = serde_json::from_slice(&exec_spec_with_terminal(spec, true).unwrap()).unwrap();
        assert_eq!(patched["terminal"], serde_json::Value::Bool(true));
        assert_eq!(patched["args"][0], "sh");
        let spec = br#"{"terminal":true,"args":["sh"]}"#;
        let patched: serde_json::Value =
            serde_json::from_slice(&exec_spec_with_terminal(spec, false).unwrap()).unwrap();
        assert_eq!(patched["terminal"], serde_json::Value::Bool(false));
    }

    #[test]
    fn only_a_new_pid_namespace_spares_the_kill_all_on_exit() {
        let dir = std::env::temp_dir().join(format!("husk-killall-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let write = |namespaces: &str| {
            let spec = format!(r#"{{"linux":{{"namespaces":{namespaces}}}}}"#);
            fs::write(dir.join("config.json"), spec).unwrap();
        };
        write(r#"[{"type":"pid"},{"type":"mount"}]"#);
        assert!(!kill_all_on_exit(&dir));
        write(r#"[{"type":"pid","path":"/proc/1/ns/pid"}]"#);
        assert!(kill_all_on_exit(&dir));
        write(r#"[{"type":"mount"}]"#);
        assert!(kill_all_on_exit(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resize_of_a_process_without_a_tty_is_ok() {
        let c = Container::for_test("c1", 1);
        assert!(c.resize_pty("", 80, 24).is_ok());
    }
}
