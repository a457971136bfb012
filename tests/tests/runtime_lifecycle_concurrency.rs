//! Concurrent runtime commands, as root on the real kernel: parallel creates of different ids,
//! parallel deletes and creates of one id, and `state` racing a create. Each case runs on husk
//! and on runc 1.1.5, the control, where runc's result is stable (split from
//! runtime_lifecycle.rs).

mod runtime_support;

use husk_e2e::{assert_no_cgroup, output_text, Bundle, Runtime, TempDir};
use runtime_support::*;
use serde_json::Value;

/// A bundle dir with only a config.json whose rootfs is another bundle's (absolute path):
/// twenty busybox copies would cost more than the containers. Drop removes its cgroup.
struct SharedRootBundle {
    dir: TempDir,
    id: String,
    cgroup: String,
}

impl SharedRootBundle {
    fn new(base: &Bundle) -> SharedRootBundle {
        let dir = TempDir::new("shared");
        let id = husk_e2e::unique_id("p");
        let cgroup = format!("/husk-test/{id}");
        let mut config = base.config().clone();
        config["root"]["path"] = base.rootfs().to_str().unwrap().into();
        config["linux"]["cgroupsPath"] = cgroup.clone().into();
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        SharedRootBundle { dir, id, cgroup }
    }
}

impl Drop for SharedRootBundle {
    fn drop(&mut self) {
        husk_e2e::remove_cgroup(&self.cgroup);
    }
}

/// Run each husk command line at once, one thread each; their outputs in order.
fn run_in_parallel(rt: &Runtime, commands: &[Vec<&str>]) -> Vec<std::process::Output> {
    std::thread::scope(|s| {
        let handles: Vec<_> = commands.iter().map(|args| s.spawn(move || rt.run(args))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn twenty_parallel_creates_of_different_ids_all_succeed() {
    for rt in Runtime::husk_and_runc() {
        twenty_parallel_creates_on(&rt);
    }
}

fn twenty_parallel_creates_on(rt: &Runtime) {
    let name = rt.name();
    let base = Bundle::new(&["sleep", "100"]);
    let bundles: Vec<SharedRootBundle> = (0..20).map(|_| SharedRootBundle::new(&base)).collect();
    let creates: Vec<Vec<&str>> = bundles
        .iter()
        .map(|b| vec!["create", "--bundle", b.dir.path().to_str().unwrap(), &b.id])
        .collect();
    let outputs = run_in_parallel(rt, &creates);
    for (b, out) in bundles.iter().zip(&outputs) {
        assert!(out.status.success(), "{name}: create {}: {}", b.id, output_text(out));
        assert_eq!(status_of(rt, &b.id).as_deref(), Some("created"), "{name}");
    }
    let listed = rt.run_ok(&["list", "-q"]);
    assert_eq!(listed.lines().count(), 20, "{name}: {listed}");
    let deletes: Vec<Vec<&str>> = bundles.iter().map(|b| vec!["delete", &b.id]).collect();
    for (b, out) in bundles.iter().zip(run_in_parallel(rt, &deletes)) {
        assert!(out.status.success(), "{name}: delete {}: {}", b.id, output_text(&out));
    }
    assert!(rt.container_ids().is_empty(), "{name}: {:?}", rt.container_ids());
    for b in &bundles {
        assert_no_cgroup(&b.cgroup);
    }
}

#[test]
fn concurrent_deletes_of_one_id_are_serialized() {
    for rt in Runtime::husk_and_runc() {
        concurrent_deletes_of_one_id_on(&rt);
    }
}

fn concurrent_deletes_of_one_id_on(rt: &Runtime) {
    let name = rt.name();
    let bundle = Bundle::new(&["sleep", "100"]);
    create_ok(rt, &bundle);
    rt.run_ok(&["start", bundle.id()]);
    let outputs = run_in_parallel(rt, &vec![vec!["delete", "--force", bundle.id()]; 4]);
    // delete --force of a container that is gone succeeds (runc's rule): every one may pass,
    // but none may fail with anything but "does not exist".
    for out in outputs.iter().filter(|o| !o.status.success()) {
        assert_refused(rt, out, "does not exist");
    }
    assert_nothing_left(rt, bundle.id(), &bundle);

    let bundle = Bundle::new(&["sleep", "100"]);
    create_ok(rt, &bundle);
    let outputs = run_in_parallel(rt, &vec![vec!["delete", bundle.id()]; 4]);
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    assert!(winners >= 1, "{name}: no delete won");
    // husk only: husk serializes deletes on the container's lock, so exactly one wins; runc 1.1.5
    // takes no lock in delete.go (each loads the state, then destroys), and all 4 succeeded.
    if name == "husk" {
        assert_eq!(winners, 1, "{name}: exactly one delete wins");
    }
    for out in outputs.iter().filter(|o| !o.status.success()) {
        assert_refused(rt, out, "does not exist");
    }
    assert_nothing_left(rt, bundle.id(), &bundle);
}

#[test]
fn state_and_start_wait_for_a_create_in_progress() {
    // A `state` racing a create either sees nothing or the finished container, never a
    // half-made one (the create holds the lock until state.json is written).
    for rt in Runtime::husk_and_runc() {
        let name = rt.name();
        let bundle = Bundle::new(&["sleep", "100"]);
        let path = bundle.path().to_str().unwrap().to_string();
        std::thread::scope(|s| {
            let create = s.spawn(|| rt.run(&["create", "--bundle", &path, bundle.id()]));
            for _ in 0..50 {
                let out = rt.run(&["state", bundle.id()]);
                if out.status.success() {
                    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(state["status"], "created", "{name}: {state}");
                    break;
                }
                assert_refused(&rt, &out, "does not exist");
            }
            let out = create.join().unwrap();
            assert!(out.status.success(), "{name}: {}", output_text(&out));
        });
    }
}

/// husk only: runc 1.1.5's create is not atomic (libcontainer/factory_linux.go Create: Stat of
/// the state dir, then MkdirAll; the exec fifo made after). In 8 runs of these 4 parallel
/// creates on runc, once none won ("exec fifo ... already exists", "unable to store init state")
/// and once two did. husk takes the id's lock first, so exactly one wins.
#[test]
fn concurrent_creates_of_one_id_have_one_winner_whose_container_survives() {
    let rt = &Runtime::husk();
    let name = rt.name();
    let bundle = Bundle::new(&["sleep", "100"]);
    let path = bundle.path().to_str().unwrap();
    let outputs = run_in_parallel(rt, &vec![vec!["create", "--bundle", path, bundle.id()]; 4]);
    assert_eq!(outputs.iter().filter(|o| o.status.success()).count(), 1, "{name}");
    for out in outputs.iter().filter(|o| !o.status.success()) {
        assert_refused(rt, out, "already exists");
    }
    // The losers took nothing of the winner's away: its cgroup and init are intact.
    let pid = init_pid(rt, bundle.id());
    assert_eq!(status_of(rt, bundle.id()).as_deref(), Some("created"), "{name}");
    let procs_path = format!("/sys/fs/cgroup/pids{}/cgroup.procs", bundle.cgroups_path());
    let procs = std::fs::read_to_string(procs_path).unwrap();
    assert_eq!(procs.trim(), pid.to_string(), "{name}");
    rt.run_ok(&["start", bundle.id()]);
    rt.run_ok(&["delete", "--force", bundle.id()]);
    assert_nothing_left(rt, bundle.id(), &bundle);
}
