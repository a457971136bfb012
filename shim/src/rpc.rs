//! The Task API's methods by name: decode the request, call the service, encode the reply.
//! containerd 1.6 calls `containerd.task.v2.Task`, 1.7+ `containerd.task.v3.Task`: same
//! messages, so both names land here. Wait is the one method that may not answer at once.

use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::shim::*;
use containerd_shim::protos::ttrpc::proto::{Code, Status};
use containerd_shim::protos::ttrpc::{self, get_status};
use containerd_shim::protos::types::empty::Empty;

use crate::error::{Error, Result};
use crate::process::Transition;
use crate::service::Service;

const SERVICES: [&str; 2] = ["containerd.task.v2.Task", "containerd.task.v3.Task"];

/// What a request comes to: a reply now, or a Wait to ask again after the next event.
pub enum Outcome {
    Reply(std::result::Result<Vec<u8>, Status>),
    Wait(WaitRequest),
}

fn status_of(err: Error) -> Status {
    match ttrpc::Error::from(err) {
        ttrpc::Error::RpcStatus(status) => status,
        other => get_status(Code::INTERNAL, other),
    }
}

fn encode(reply: Result<impl Message>) -> std::result::Result<Vec<u8>, Status> {
    reply
        .map_err(status_of)?
        .write_to_bytes()
        .map_err(|e| get_status(Code::INTERNAL, e))
}

fn call<Req: Message, Resp: Message>(payload: &[u8], handler: impl FnOnce(Req) -> Result<Resp>) -> Outcome {
    match Req::parse_from_bytes(payload) {
        Ok(req) => Outcome::Reply(encode(handler(req))),
        Err(e) => Outcome::Reply(Err(get_status(Code::INVALID_ARGUMENT, e))),
    }
}

/// The answer to a pending Wait: None while the process still runs.
pub fn wait_reply(service: &Service, req: &WaitRequest) -> Option<std::result::Result<Vec<u8>, Status>> {
    match service.try_wait(req) {
        Ok(None) => None,
        Ok(Some(resp)) => Some(encode(Ok(resp))),
        Err(err) => Some(Err(status_of(err))),
    }
}

pub fn dispatch(service: &Service, name: &str, method: &str, payload: &[u8]) -> Outcome {
    if !SERVICES.contains(&name) {
        let msg = format!("{name}: service not found");
        return Outcome::Reply(Err(get_status(Code::UNIMPLEMENTED, msg)));
    }
    let s = service;
    match method {
        "Create" => call(payload, |r: CreateTaskRequest| s.do_create(r)),
        "Start" => call(payload, |r: StartRequest| s.do_start(r)),
        "Delete" => call(payload, |r: DeleteRequest| s.do_delete(r)),
        "Exec" => call(payload, |r: ExecProcessRequest| s.do_exec(r).map(|()| Empty::new())),
        "State" => call(payload, |r: StateRequest| s.do_state(r)),
        "Kill" => call(payload, |r: KillRequest| {
            s.settled_container(&r.id)?.kill(&r.exec_id, r.signal, r.all)?;
            Ok(Empty::new())
        }),
        "Pause" => call(payload, |r: PauseRequest| {
            s.do_freeze(&r.id, Transition::Pause).map(|()| Empty::new())
        }),
        "Resume" => call(payload, |r: ResumeRequest| {
            s.do_freeze(&r.id, Transition::Resume).map(|()| Empty::new())
        }),
        "Pids" => call(payload, |r: PidsRequest| s.do_pids(r)),
        "CloseIO" => call(payload, |r: CloseIORequest| {
            s.container(&r.id)?.close_stdin(&r.exec_id)?;
            Ok(Empty::new())
        }),
        "ResizePty" => call(payload, |r: ResizePtyRequest| {
            s.container(&r.id)?.resize_pty(&r.exec_id, r.width, r.height)?;
            Ok(Empty::new())
        }),
        "Checkpoint" => call(payload, |_: CheckpointTaskRequest| -> Result<Empty> {
            Err(Error::Unimplemented("checkpoint (no criu support yet)"))
        }),
        "Update" => call(payload, |r: UpdateTaskRequest| s.do_update(r).map(|()| Empty::new())),
        "Stats" => call(payload, |r: StatsRequest| s.do_stats(r)),
        "Connect" => call(payload, |r: ConnectRequest| Ok(connect(s, &r))),
        "Shutdown" => call(payload, |_: ShutdownRequest| {
            s.do_shutdown();
            Ok(Empty::new())
        }),
        "Wait" => match WaitRequest::parse_from_bytes(payload) {
            Ok(req) => Outcome::Wait(req),
            Err(e) => Outcome::Reply(Err(get_status(Code::INVALID_ARGUMENT, e))),
        },
        _ => {
            let msg = format!("/{name}/{method}: method not found");
            Outcome::Reply(Err(get_status(Code::UNIMPLEMENTED, msg)))
        }
    }
}

fn connect(s: &Service, req: &ConnectRequest) -> ConnectResponse {
    let task_pid = s.container(&req.id).map(|c| c.init_pid()).unwrap_or_default();
    ConnectResponse {
        shim_pid: std::process::id(),
        task_pid,
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}
