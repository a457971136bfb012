//! The service's ordering rules, without a runtime: exits that race ahead of a start.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::topics::{TASK_EXIT_EVENT_TOPIC, TASK_START_EVENT_TOPIC};

use super::*;
use crate::events::Event;

fn hooks(shutdown: Box<dyn Fn() + Send + Sync>) -> DaemonHooks {
    DaemonHooks {
        shutdown,
        watch_oom: Box::new(|_, _| {}),
        exit_handled: Box::new(|| {}),
    }
}

fn service_with(id: &str, pid: u32) -> (Arc<Service>, Arc<Container>, Receiver<Event>) {
    let (events, rx) = EventSender::for_test();
    let service = Service::new("test", events, hooks(Box::new(|| {})));
    let c = Arc::new(Container::for_test(id, pid));
    service.table().insert(id.to_string(), Arc::clone(&c));
    let owner = Owner {
        id: id.to_string(),
        exec_id: String::new(),
    };
    assert_eq!(service.router.register(service.router.watch(), pid as i32, owner), None);
    (service, c, rx)
}

fn topics(rx: &Receiver<Event>) -> Vec<&'static str> {
    rx.try_iter().map(|e| e.topic).collect()
}

fn exit_status_of(event: &dyn MessageDyn) -> u32 {
    event
        .downcast_ref::<TaskExit>()
        .map(|e| e.exit_status)
        .unwrap_or(u32::MAX)
}

#[test]
fn an_exit_during_start_is_published_after_task_start() {
    let (service, c, rx) = service_with("c1", 100);
    c.begin_start("").unwrap();
    // The reaper sees the init die while `runtime start` is still running.
    service.on_exit(100, 3);
    service.settle_exits();
    assert!(topics(&rx).is_empty(), "no TaskExit before TaskStart");
    assert!(c.lock().init.exit_held);
    service.finish_start(&c, "").unwrap();
    let events: Vec<Event> = rx.try_iter().collect();
    let order: Vec<&str> = events.iter().map(|e| e.topic).collect();
    assert_eq!(order, [TASK_START_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC]);
    assert_eq!(exit_status_of(events[1].message.as_ref()), 3);
    assert_eq!(c.try_wait("").unwrap().unwrap().status, 3);
}

#[test]
fn an_exit_after_start_is_published_at_once_and_only_once() {
    let (service, c, rx) = service_with("c2", 200);
    c.begin_start("").unwrap();
    service.finish_start(&c, "").unwrap();
    service.on_exit(200, 128 + 9);
    service.on_exit(200, 128 + 9);
    service.settle_exits();
    assert_eq!(topics(&rx), [TASK_START_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC]);
    assert_eq!(c.try_wait("").unwrap().unwrap().status, 137);
}

#[test]
fn an_exec_is_refused_once_the_init_has_exited() {
    let (service, c, _rx) = service_with("c3", 300);
    c.begin_start("").unwrap();
    service.finish_start(&c, "").unwrap();
    service.on_exit(300, 0);
    service.settle_exits();
    let req = ExecProcessRequest {
        id: "c3".into(),
        exec_id: "e1".into(),
        ..Default::default()
    };
    assert!(matches!(service.do_exec(req), Err(Error::InitExited(_))));
}

#[test]
fn calls_for_an_id_being_created_wait_for_the_create_and_shutdown_does_not_end_it() {
    let (events, _rx) = EventSender::for_test();
    let shut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&shut);
    let on_shutdown = Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let service = Service::new("test", events, hooks(on_shutdown));
    let reserved = service.reserve("c4").unwrap();
    assert!(matches!(service.reserve("c4"), Err(Error::ContainerExists(_))));
    // containerd's Delete for a Create its client cancelled, on a worker thread.
    let worker = {
        let service = Arc::clone(&service);
        std::thread::spawn(move || service.settled_container("c4").map(|c| c.id.clone()))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!worker.is_finished(), "the Delete must wait for the Create");
    // The loop's own lookups (State, Wait) never wait.
    assert!(matches!(service.container("c4"), Err(Error::ContainerNotFound(_))));
    service.do_shutdown();
    assert!(
        !shut.load(std::sync::atomic::Ordering::SeqCst),
        "Shutdown during a Create"
    );
    service
        .table()
        .insert("c4".into(), Arc::new(Container::for_test("c4", 400)));
    drop(reserved);
    assert_eq!(worker.join().unwrap().unwrap(), "c4");
}
