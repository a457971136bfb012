//! Events to containerd, published in the order they are queued by one thread: every handler
//! queues under the container lock, so TaskStart always precedes the TaskExit of that process.

use std::sync::mpsc::{channel, Receiver, Sender};

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

pub struct Event {
    pub topic: &'static str,
    pub message: Box<dyn MessageDyn>,
}

#[derive(Clone)]
pub struct EventSender {
    tx: Sender<Event>,
}

impl EventSender {
    pub fn send(&self, topic: &'static str, message: impl MessageDyn) {
        // The publisher thread lives as long as the process; a send error means shutdown.
        let _ = self.tx.send(Event {
            topic,
            message: Box::new(message),
        });
    }
}

pub fn start_publisher(publisher: RemotePublisher, namespace: String) -> EventSender {
    let (tx, rx) = channel();
    let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    std::thread::spawn(move || publish_loop(Some(publisher), &address, namespace, rx));
    EventSender { tx }
}

/// containerd may be restarting: its ttrpc connection is then gone, so reconnect and retry
/// for a while (about 20 s) before an event is given up.
fn publish_loop(
    mut publisher: Option<RemotePublisher>,
    address: &str,
    namespace: String,
    rx: Receiver<Event>,
) {
    for event in rx {
        let mut delay = std::time::Duration::from_millis(10);
        for attempt in 0..12 {
            if publisher.is_none() {
                publisher = RemotePublisher::new(address).ok();
            }
            let result = match &publisher {
                Some(p) => p
                    .publish(
                        Context::default(),
                        event.topic,
                        &namespace,
                        event.message.clone_box(),
                    )
                    .map_err(|e| e.to_string()),
                None => Err(format!("cannot connect to {address}")),
            };
            match result {
                Ok(()) => break,
                Err(err) if attempt == 11 => {
                    log::error!("failed to publish {}: {err}", event.topic)
                }
                Err(_) => {
                    publisher = None;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_secs(4));
                }
            }
        }
    }
}
