//! One process of a container (its init or an exec) and the one place where its state changes.
//!
//! ```text
//!   Created ──start──▶ Running ──pause──▶ Paused      (pause/resume: init only)
//!      │                 │  ▲──resume──────┘ │
//!      │                 exit              exit
//!      └────exit───────▶ Stopped ◀──────────┘
//!   Created | Stopped ──delete──▶ Deleted
//! ```

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::types::task::Status;

use crate::error::{Error, Result};
use crate::stdio::{ProcessIo, StdioPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Created,
    Running,
    Paused,
    Stopped,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Exit,
    Delete,
}

impl Transition {
    fn name(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Exit => "exit",
            Transition::Delete => "delete",
        }
    }
}

impl ProcessState {
    pub fn name(self) -> &'static str {
        match self {
            ProcessState::Created => "created",
            ProcessState::Running => "running",
            ProcessState::Paused => "paused",
            ProcessState::Stopped => "stopped",
            ProcessState::Deleted => "deleted",
        }
    }

    /// The state after `t`, or None when `t` is illegal from here.
    pub fn next(self, t: Transition) -> Option<ProcessState> {
        use ProcessState::*;
        use Transition as T;
        match (self, t) {
            (Created, T::Start) => Some(Running),
            (Running, T::Pause) => Some(Paused),
            (Paused, T::Resume) => Some(Running),
            (Created | Running | Paused, T::Exit) => Some(Stopped),
            (Created | Stopped, T::Delete) => Some(Deleted),
            _ => None,
        }
    }

    pub fn status(self) -> Status {
        match self {
            ProcessState::Created => Status::CREATED,
            ProcessState::Running => Status::RUNNING,
            ProcessState::Paused => Status::PAUSED,
            ProcessState::Stopped | ProcessState::Deleted => Status::STOPPED,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExitInfo {
    pub status: u32,
    pub at: Timestamp,
}

pub struct Process {
    pub id: String,
    pub exec_id: String,
    pub pid: u32,
    pub state: ProcessState,
    pub stdio: StdioPaths,
    pub exit: Option<ExitInfo>,
    pub io: Option<ProcessIo>,
    /// The exec's `specs.Process` as json (containerd sends it in an Any).
    pub spec: Option<Any>,
    /// A Start is between the runtime call and publishing TaskStart: an exit that arrives
    /// now is held back so containerd always sees start before exit.
    pub starting: bool,
    pub exit_held: bool,
}

impl Process {
    pub fn new(id: &str, exec_id: &str, stdio: StdioPaths) -> Process {
        Process {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid: 0,
            state: ProcessState::Created,
            stdio,
            exit: None,
            io: None,
            spec: None,
            starting: false,
            exit_held: false,
        }
    }

    fn name(&self) -> String {
        if self.exec_id.is_empty() {
            self.id.clone()
        } else {
            format!("{}/{}", self.id, self.exec_id)
        }
    }

    /// Checks that `t` is legal now, without changing anything.
    pub fn check(&self, t: Transition) -> Result<()> {
        match self.state.next(t) {
            Some(_) => Ok(()),
            None => Err(Error::InvalidTransition {
                id: self.name(),
                action: t.name(),
                state: self.state.name(),
            }),
        }
    }

    /// The only place a process changes state.
    pub fn apply(&mut self, t: Transition) -> Result<()> {
        self.check(t)?;
        if let Some(next) = self.state.next(t) {
            self.state = next;
        }
        Ok(())
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state, ProcessState::Stopped | ProcessState::Deleted)
    }

    pub fn exit_status(&self) -> (u32, Timestamp) {
        self.exit.as_ref().map(|e| (e.status, e.at.clone())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_legal_transitions_change_state() {
        let mut p = Process::new("c", "", StdioPaths::default());
        assert!(p.apply(Transition::Pause).is_err());
        p.apply(Transition::Start).unwrap();
        p.apply(Transition::Pause).unwrap();
        assert!(
            p.apply(Transition::Delete).is_err(),
            "a paused process cannot be deleted"
        );
        p.apply(Transition::Exit).unwrap();
        assert!(p.apply(Transition::Start).is_err());
        let err = p.apply(Transition::Resume).unwrap_err().to_string();
        assert_eq!(err, "process c: cannot resume a stopped process");
        p.apply(Transition::Delete).unwrap();
        assert_eq!(p.state.status(), Status::STOPPED);
    }

    #[test]
    fn a_created_process_can_exit_or_be_deleted() {
        assert_eq!(
            ProcessState::Created.next(Transition::Exit),
            Some(ProcessState::Stopped)
        );
        assert_eq!(
            ProcessState::Created.next(Transition::Delete),
            Some(ProcessState::Deleted)
        );
        assert_eq!(ProcessState::Running.next(Transition::Delete), None);
    }
}
