//! Events to containerd, published in the order they are queued by one thread: every handler
//! queues under the container lock, so TaskStart always precedes the TaskExit of that process.
//! The thread exists only while there is something to send: it starts on the first event of a
//! burst and ends after `IDLE` without one, so a running container costs no publisher thread.
//! At most one runs at a time (the `running` flag, under the queue's lock), which keeps order.
//!
//! The thread speaks ttrpc itself: one `Events.Forward` request per event on a plain unix
//! socket (10-byte frame header, then the protobuf `Request`; the reply is a `Response`).
//! The crate's ttrpc client would add two threads per shim for a call made a few times per
//! container, and it never reconnects after containerd restarts; this one reconnects.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
#[cfg(test)]
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{
    self as protobuf, CodedOutputStream, Message, MessageDyn, MessageField, MessageFull,
};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::proto::{Request, Response};
use containerd_shim::util::timestamp;

const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
/// Retry for about 20 s: long enough for containerd to restart.
const ATTEMPTS: u32 = 12;
/// How long the publisher thread outlives its last event (one thread for a Create/Start burst;
/// the connection to containerd is kept across threads).
const IDLE: Duration = Duration::from_millis(100);
/// Encoding and a unix socket write need little: keep the thread's mapping small.
const STACK: usize = 128 * 1024;

pub struct Event {
    pub topic: &'static str,
    /// The Any type URL, without protobuf reflection: building the descriptors for one
    /// `descriptor_dyn()` call costs ~200 KiB of heap that stays for the shim's life.
    type_url: String,
    pub message: Box<dyn MessageDyn>,
}

/// Every event the shim publishes is in containerd's `containerd.events` package.
const EVENTS_PACKAGE: &str = "containerd.events";

fn type_url<M: Message>() -> String {
    format!("{EVENTS_PACKAGE}.{}", M::NAME)
}

#[derive(Clone)]
pub struct EventSender {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    Publisher(Arc<Publisher>),
    #[cfg(test)]
    Test(Sender<Event>),
}

struct Publisher {
    address: String,
    namespace: String,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Signalled when the queue is empty and nothing is being published.
    drained: Condvar,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    running: bool,
    /// An event taken from the queue is being sent.
    publishing: bool,
    /// Kept between threads so a burst does not reconnect.
    conn: Option<Connection>,
}

impl EventSender {
    pub fn send<M: MessageFull>(&self, topic: &'static str, message: M) {
        let event = Event {
            topic,
            type_url: type_url::<M>(),
            message: Box::new(message),
        };
        match &self.sink {
            Sink::Publisher(p) => p.push(event),
            #[cfg(test)]
            Sink::Test(tx) => {
                let _ = tx.send(event);
            }
        }
    }

    /// Waits up to `limit` until every event sent so far is published (or given up on), as
    /// containerd's shim waits for its publisher before it exits: a TaskDelete or TaskExit
    /// queued just before Shutdown must still reach containerd. False when `limit` ran out.
    pub fn flush(&self, limit: Duration) -> bool {
        match &self.sink {
            Sink::Publisher(p) => p.wait_drained(limit),
            #[cfg(test)]
            Sink::Test(_) => true,
        }
    }
}

#[cfg(test)]
impl EventSender {
    /// A sender whose events the test reads back instead of publishing.
    pub fn for_test() -> (EventSender, Receiver<Event>) {
        let (tx, rx) = channel();
        (EventSender { sink: Sink::Test(tx) }, rx)
    }
}

pub fn start_publisher(address: String, namespace: String) -> EventSender {
    let publisher = Publisher {
        address,
        namespace,
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        drained: Condvar::new(),
    };
    EventSender {
        sink: Sink::Publisher(Arc::new(publisher)),
    }
}

impl Publisher {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(self: &Arc<Self>, event: Event) {
        let mut q = self.lock();
        q.events.push_back(event);
        if q.running {
            self.ready.notify_one();
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(STACK)
            .spawn(move || me.run());
        match spawned {
            Ok(_) => q.running = true,
            Err(err) => log::error!("failed to start the event publisher: {err}"),
        }
    }

    fn wait_drained(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut q = self.lock();
        while !q.events.is_empty() || q.publishing {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self.drained.wait_timeout(q, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Publishes until the queue has stayed empty for `IDLE`, then ends.
    fn run(&self) {
        let mut q = self.lock();
        let mut conn = q.conn.take();
        loop {
            if let Some(event) = q.events.pop_front() {
                q.publishing = true;
                drop(q);
                publish(&self.address, &self.namespace, &mut conn, &event);
                q = self.lock();
                q.publishing = false;
                if q.events.is_empty() {
                    self.drained.notify_all();
                }
                continue;
            }
            let (guard, _) = self.ready.wait_timeout(q, IDLE).unwrap_or_else(|e| e.into_inner());
            q = guard;
            if q.events.is_empty() {
                q.conn = conn;
                q.running = false;
                return;
            }
        }
    }
}

/// One ttrpc connection to containerd, opened on demand.
struct Connection {
    stream: UnixStream,
    next_stream_id: u32,
}

pub(crate) fn frame(stream_id: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(10 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&stream_id.to_be_bytes());
    buf.extend_from_slice(&[kind, 0]);
    buf.extend_from_slice(payload);
    buf
}

impl Connection {
    fn open(address: &str) -> std::io::Result<Connection> {
        let stream = UnixStream::connect(address.strip_prefix("unix://").unwrap_or(address))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Connection {
            stream,
            next_stream_id: 1,
        })
    }

    fn call(&mut self, method: &str, payload: Vec<u8>) -> Result<(), String> {
        let request = Request {
            service: EVENTS_SERVICE.into(),
            method: method.into(),
            payload,
            ..Default::default()
        };
        let body = request.write_to_bytes().map_err(|e| e.to_string())?;
        // Client streams are odd.
        let id = self.next_stream_id;
        self.next_stream_id += 2;
        self.stream
            .write_all(&frame(id, TYPE_REQUEST, &body))
            .map_err(|e| e.to_string())?;
        loop {
            let mut header = [0u8; 10];
            self.stream.read_exact(&mut header).map_err(|e| e.to_string())?;
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let stream_id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).map_err(|e| e.to_string())?;
            if stream_id != id || header[8] != TYPE_RESPONSE {
                continue;
            }
            let response = Response::parse_from_bytes(&body).map_err(|e| e.to_string())?;
            return match response.status.as_ref() {
                Some(status) if status.code.value() != 0 => Err(status.message.clone()),
                _ => Ok(()),
            };
        }
    }
}

/// `write_to_bytes_dyn` without its `descriptor_dyn()` call (reflection, see `Event`).
fn encode(message: &dyn MessageDyn) -> protobuf::Result<Vec<u8>> {
    let size = message.compute_size_dyn();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut os = CodedOutputStream::vec(&mut bytes);
    message.write_to_with_cached_sizes_dyn(&mut os)?;
    os.flush()?;
    drop(os);
    Ok(bytes)
}

fn forward_payload(topic: &str, namespace: &str, event: &Event) -> Result<Vec<u8>, String> {
    let envelope = Envelope {
        timestamp: MessageField::some(timestamp().map_err(|e| e.to_string())?),
        namespace: namespace.into(),
        topic: topic.into(),
        event: MessageField::some(Any {
            type_url: event.type_url.clone(),
            value: encode(event.message.as_ref()).map_err(|e| e.to_string())?,
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = ForwardRequest {
        envelope: MessageField::some(envelope),
        ..Default::default()
    };
    req.write_to_bytes().map_err(|e| e.to_string())
}

fn publish(address: &str, namespace: &str, conn: &mut Option<Connection>, event: &Event) {
    let payload = match forward_payload(event.topic, namespace, event) {
        Ok(p) => p,
        Err(err) => {
            log::error!("failed to encode {}: {err}", event.topic);
            return;
        }
    };
    let mut delay = Duration::from_millis(10);
    for attempt in 0..ATTEMPTS {
        let result = match conn.as_mut() {
            Some(c) => c.call("Forward", payload.clone()),
            None => Connection::open(address).map_err(|e| e.to_string()).and_then(|mut c| {
                let r = c.call("Forward", payload.clone());
                *conn = Some(c);
                r
            }),
        };
        match result {
            Ok(()) => return,
            Err(err) if attempt + 1 == ATTEMPTS => {
                log::error!("failed to publish {}: {err}", event.topic)
            }
            Err(_) => {
                *conn = None;
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(4));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_match_the_descriptors_full_names() {
        use containerd_shim::protos::events::task::*;
        fn check<M: Message + MessageFull>() {
            assert_eq!(type_url::<M>(), M::descriptor().full_name());
        }
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskDelete>();
        check::<TaskExit>();
        check::<TaskOOM>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
    }

    #[test]
    fn events_encode_as_write_to_bytes_does() {
        let exit = containerd_shim::protos::events::task::TaskExit {
            container_id: "c".into(),
            pid: 7,
            exit_status: 137,
            ..Default::default()
        };
        assert_eq!(encode(&exit).unwrap(), exit.write_to_bytes().unwrap());
    }

    #[test]
    fn frames_carry_big_endian_length_stream_and_type() {
        let f = frame(3, TYPE_REQUEST, b"abc");
        assert_eq!(&f[..10], &[0, 0, 0, 3, 0, 0, 0, 3, 1, 0]);
        assert_eq!(&f[10..], b"abc");
    }

    /// A containerd events service that answers each Forward after `delay`; it counts them.
    fn slow_events_service(name: &str, delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = std::env::temp_dir().join(format!("husk-events-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("ttrpc.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let answered = std::sync::Arc::new(AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&answered);
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            loop {
                let mut header = [0u8; 10];
                if stream.read_exact(&mut header).is_err() {
                    return;
                }
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let mut body = vec![0u8; len];
                stream.read_exact(&mut body).unwrap();
                std::thread::sleep(delay);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                let reply = Response::new().write_to_bytes().unwrap();
                stream.write_all(&frame(id, TYPE_RESPONSE, &reply)).unwrap();
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        (path.to_string_lossy().into_owned(), answered)
    }

    #[test]
    fn flush_returns_once_a_queued_event_reached_containerd() {
        use std::sync::atomic::Ordering;
        let (address, answered) = slow_events_service("flushed", Duration::from_millis(300));
        let events = start_publisher(address.clone(), "default".into());
        let delete = containerd_shim::protos::events::task::TaskDelete {
            container_id: "c".into(),
            ..Default::default()
        };
        events.send("/tasks/delete", delete);
        assert!(events.flush(Duration::from_secs(5)), "not drained");
        assert_eq!(
            answered.load(Ordering::SeqCst),
            1,
            "flush returned before containerd had the event"
        );
        remove_socket_dir(&address);
    }

    fn remove_socket_dir(address: &str) {
        let _ = std::fs::remove_dir_all(std::path::Path::new(address).parent().unwrap());
    }

    #[test]
    fn flush_gives_up_after_its_limit() {
        let (address, _) = slow_events_service("limit", Duration::from_secs(2));
        let events = start_publisher(address.clone(), "default".into());
        events.send(
            "/tasks/exit",
            containerd_shim::protos::events::task::TaskExit::default(),
        );
        let started = std::time::Instant::now();
        assert!(!events.flush(Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(1));
        remove_socket_dir(&address);
    }
}
