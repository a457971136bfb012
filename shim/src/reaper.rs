//! Routes reaped exits (from the containerd-shim crate's SIGCHLD thread) to the process that
//! owns the pid. A pid becomes known only after `create`/`exec` returns, so a start first opens
//! a `Watch` that records every unowned exit; registering the pid then finds an exit that raced
//! ahead of the runtime returning. Unowned exits with no watch open (runtime commands, logging
//! binaries, orphans) are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub exec_id: String,
}

#[derive(Default)]
struct Routes {
    owners: HashMap<i32, Owner>,
    watches: HashMap<u64, Vec<(i32, i32)>>,
    next_watch: u64,
}

#[derive(Default)]
pub struct ExitRouter {
    routes: Mutex<Routes>,
}

pub struct Watch {
    router: Arc<ExitRouter>,
    id: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.router.lock().watches.remove(&self.id);
    }
}

impl ExitRouter {
    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn watch(self: &Arc<Self>) -> Watch {
        let mut routes = self.lock();
        let id = routes.next_watch;
        routes.next_watch += 1;
        routes.watches.insert(id, Vec::new());
        Watch {
            router: Arc::clone(self),
            id,
        }
    }

    /// Makes `owner` the owner of `pid`; returns its exit status if it already exited.
    pub fn register(&self, watch: Watch, pid: i32, owner: Owner) -> Option<i32> {
        let mut routes = self.lock();
        let early = routes
            .watches
            .get(&watch.id)
            .and_then(|seen| seen.iter().rev().find(|(p, _)| *p == pid).map(|(_, s)| *s));
        if early.is_none() {
            routes.owners.insert(pid, owner);
        }
        drop(routes);
        drop(watch);
        early
    }

    pub fn forget(&self, pid: i32) {
        self.lock().owners.remove(&pid);
    }

    /// Called for every reaped child: its owner, or None after noting it in the open watches.
    pub fn route(&self, pid: i32, status: i32) -> Option<Owner> {
        let mut routes = self.lock();
        if let Some(owner) = routes.owners.remove(&pid) {
            return Some(owner);
        }
        for seen in routes.watches.values_mut() {
            seen.push((pid, status));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(e: &str) -> Owner {
        Owner {
            id: "c".into(),
            exec_id: e.into(),
        }
    }

    #[test]
    fn exit_before_registration_is_returned_by_register() {
        let router = Arc::new(ExitRouter::default());
        let watch = router.watch();
        assert_eq!(router.route(42, 3), None);
        assert_eq!(router.register(watch, 42, owner("e1")), Some(3));
        assert_eq!(router.route(42, 3), None, "an early exit is not registered again");
    }

    #[test]
    fn registered_pids_route_to_their_owner_once() {
        let router = Arc::new(ExitRouter::default());
        let watch = router.watch();
        assert_eq!(router.register(watch, 7, owner("")), None);
        assert_eq!(router.route(7, 0), Some(owner("")));
        assert_eq!(router.route(7, 0), None);
        assert!(router.lock().watches.is_empty(), "watches close on registration");
    }
}
