//! The ttrpc server for the Task API, run on the daemon's main loop instead of the ttrpc crate's
//! threaded server (listener, reaper, per-connection reader and writer, ≥ 2 workers).
//!
//! Wire format (containerd/ttrpc PROTOCOL.md): a 10-byte header — u32 BE payload length, u32 BE
//! stream id, u8 type (1 request, 2 response, 3 data), u8 flags — then a protobuf
//! `ttrpc.Request{service, method, payload, timeout_nano, metadata}`; the reply carries the same
//! stream id and a `ttrpc.Response{status, payload}`. Clients pipeline requests on odd ids.
//!
//! Requests that only read or change the shim's tables (State, Exec, CloseIO, ResizePty, Stats,
//! Connect, Shutdown) are answered at once on the loop. Those that run the runtime (Create,
//! Start, Delete, Kill, Pause, Resume, Pids, Update) each get a worker thread, spawned for the
//! request and gone with it: the reply comes back over a channel and the loop sends it, so a
//! slow `husk create` for one container (its hooks, a loaded host) never delays State, Kill or
//! Wait of another, nor reaping. Replies may therefore leave out of request order; ttrpc matches
//! them by stream id. Wait is kept pending and answered when its process has stopped
//! (`answer_waits` runs after every event).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::shim::WaitRequest;
use containerd_shim::protos::ttrpc::get_status;
use containerd_shim::protos::ttrpc::proto::{Code, Request, Response, Status};

use crate::events::frame;
use crate::rpc::{dispatch, wait_reply, Outcome};
use crate::service::Service;

const HEADER: usize = 10;
/// ttrpc's own limit on a message.
const MESSAGE_MAX: usize = 4 << 20;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
/// A worker's stack: a request's decoding, the runtime's spawn and a spec's json need far
/// less; the pages a thread touched stay resident in glibc's stack cache after it ends.
const WORKER_STACK: usize = 512 * 1024;
/// A client that stops reading its replies is dropped rather than stalling the loop.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    closed: bool,
}

struct PendingWait {
    conn: u64,
    stream_id: u32,
    req: WaitRequest,
}

/// A worker's answer: the connection and stream it is for.
struct Finished {
    conn: u64,
    stream_id: u32,
    reply: std::result::Result<Vec<u8>, Status>,
}

pub struct Server {
    listener: UnixListener,
    conns: Vec<Conn>,
    waits: Vec<PendingWait>,
    service: Arc<Service>,
    next_id: u64,
    finished_tx: Sender<Finished>,
    finished_rx: Receiver<Finished>,
    /// Wakes the loop after a worker queued its reply.
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// The methods that run the runtime binary (tens of ms, seconds with slow hooks): each runs
/// on a worker thread of its own.
fn runs_runtime(method: &str) -> bool {
    matches!(
        method,
        "Create" | "Start" | "Delete" | "Kill" | "Pause" | "Resume" | "Pids" | "Update"
    )
}

impl Conn {
    /// Reads what is there (poll said POLLIN) and returns the complete requests.
    fn read_requests(&mut self) -> Vec<(u32, Request)> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.closed = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => self.closed = true,
        }
        let mut requests = Vec::new();
        while self.buf.len() >= HEADER {
            let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            let len = len as usize;
            if len > MESSAGE_MAX {
                log::warn!("ttrpc message of {len} bytes: closing the connection");
                self.closed = true;
                break;
            }
            if self.buf.len() < HEADER + len {
                break;
            }
            let stream_id = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
            let kind = self.buf[8];
            let body: Vec<u8> = self.buf.drain(..HEADER + len).skip(HEADER).collect();
            if kind != TYPE_REQUEST {
                continue;
            }
            match Request::parse_from_bytes(&body) {
                Ok(req) => requests.push((stream_id, req)),
                Err(err) => log::warn!("bad ttrpc request on stream {stream_id}: {err}"),
            }
        }
        // A Create request (with its spec) is tens of KiB: do not keep that for a
        // connection that then idles for the container's life.
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        requests
    }

    fn reply(&mut self, stream_id: u32, reply: Result<Vec<u8>, Status>) {
        let response = match reply {
            Ok(payload) => Response {
                payload,
                ..Default::default()
            },
            Err(status) => Response {
                status: MessageField::some(status),
                ..Default::default()
            },
        };
        let sent = response
            .write_to_bytes()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|body| self.stream.write_all(&frame(stream_id, TYPE_RESPONSE, &body)));
        if let Err(err) = sent {
            log::warn!("failed to send ttrpc response: {err}");
            self.closed = true;
        }
    }
}

impl Server {
    pub fn new(
        listener: UnixListener,
        service: Arc<Service>,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Server> {
        listener.set_nonblocking(true)?;
        let (finished_tx, finished_rx) = channel();
        Ok(Server {
            listener,
            conns: Vec::new(),
            waits: Vec::new(),
            service,
            next_id: 0,
            finished_tx,
            finished_rx,
            wake: Arc::from(wake),
        })
    }

    /// The fds to poll for POLLIN, in the order `on_ready` expects: listener, connections.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.listener.as_fd()];
        fds.extend(self.conns.iter().map(|c| c.stream.as_fd()));
        fds
    }

    pub fn on_ready(&mut self, ready: &[bool]) {
        for i in 0..self.conns.len() {
            if !ready.get(i + 1).copied().unwrap_or(false) {
                continue;
            }
            for (stream_id, req) in self.conns[i].read_requests() {
                self.handle(i, stream_id, req);
            }
        }
        if ready.first().copied().unwrap_or(false) {
            self.accept();
        }
        // Create/Exec requests and runtime output are the shim's only big allocations: hand
        // the freed pages back instead of keeping them for the container's whole life.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        let closed: Vec<u64> = self.conns.iter().filter(|c| c.closed).map(|c| c.id).collect();
        self.conns.retain(|c| !c.closed);
        self.waits.retain(|w| !closed.contains(&w.conn));
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(err) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
                        log::warn!("failed to set a write timeout on a connection: {err}");
                    }
                    self.next_id += 1;
                    self.conns.push(Conn {
                        id: self.next_id,
                        stream,
                        buf: Vec::new(),
                        closed: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn handle(&mut self, conn: usize, stream_id: u32, req: Request) {
        if runs_runtime(&req.method) {
            return self.spawn_worker(self.conns[conn].id, stream_id, req);
        }
        match dispatch(&self.service, &req.service, &req.method, &req.payload) {
            Outcome::Reply(reply) => self.conns[conn].reply(stream_id, reply),
            Outcome::Wait(wait) => match wait_reply(&self.service, &wait) {
                Some(reply) => self.conns[conn].reply(stream_id, reply),
                None => self.waits.push(PendingWait {
                    conn: self.conns[conn].id,
                    stream_id,
                    req: wait,
                }),
            },
        }
    }

    /// Runs one request on a thread of its own; its reply goes back through the channel.
    fn spawn_worker(&mut self, conn: u64, stream_id: u32, req: Request) {
        let service = Arc::clone(&self.service);
        let (tx, wake) = (self.finished_tx.clone(), Arc::clone(&self.wake));
        let work = move || {
            let reply = match dispatch(&service, &req.service, &req.method, &req.payload) {
                Outcome::Reply(reply) => reply,
                // Only Wait waits, and Wait never comes here.
                Outcome::Wait(_) => Err(get_status(Code::INTERNAL, "wait on a worker")),
            };
            let _ = tx.send(Finished { conn, stream_id, reply });
            wake();
        };
        let spawned = std::thread::Builder::new()
            .name("rpc".into())
            .stack_size(WORKER_STACK)
            .spawn(work);
        if let Err(err) = spawned {
            log::error!("failed to start a thread for a request: {err}");
            let status = get_status(Code::RESOURCE_EXHAUSTED, format!("failed to start a thread: {err}"));
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                c.reply(stream_id, Err(status));
            }
        }
    }

    /// Sends the replies the workers have finished (to connections still open).
    pub fn collect_finished(&mut self) {
        while let Ok(done) = self.finished_rx.try_recv() {
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == done.conn) {
                c.reply(done.stream_id, done.reply);
            }
        }
    }

    /// Answers every pending Wait whose process has stopped (or is gone); retries starting the
    /// exit worker if that failed.
    pub fn answer_waits(&mut self) {
        self.service.kick_exits();
        let mut i = 0;
        while i < self.waits.len() {
            let Some(reply) = wait_reply(&self.service, &self.waits[i].req) else {
                i += 1;
                continue;
            };
            let w = self.waits.swap_remove(i);
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == w.conn) {
                c.reply(w.stream_id, reply);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_frame(stream_id: u32, kind: u8, method: &str) -> Vec<u8> {
        let req = Request {
            service: "containerd.task.v2.Task".into(),
            method: method.into(),
            ..Default::default()
        };
        frame(stream_id, kind, &req.write_to_bytes().unwrap())
    }

    #[test]
    fn pipelined_requests_are_split_and_data_frames_skipped() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut conn = Conn {
            id: 1,
            stream: ours,
            buf: Vec::new(),
            closed: false,
        };
        let mut bytes = request_frame(1, TYPE_REQUEST, "State");
        bytes.extend(request_frame(3, 3, "ignored"));
        bytes.extend(request_frame(5, TYPE_REQUEST, "Wait"));
        let tail = bytes.split_off(bytes.len() - 4);
        theirs.write_all(&bytes).unwrap();
        let got = conn.read_requests();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, got[0].1.method.as_str()), (1, "State"));
        theirs.write_all(&tail).unwrap();
        let got = conn.read_requests();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, got[0].1.method.as_str()), (5, "Wait"));
        conn.reply(5, Ok(b"x".to_vec()));
        let mut header = [0u8; HEADER];
        theirs.read_exact(&mut header).unwrap();
        assert_eq!(&header[4..9], &[0, 0, 0, 5, TYPE_RESPONSE]);
        drop(theirs);
        assert!(conn.read_requests().is_empty());
        assert!(conn.closed);
    }
}
