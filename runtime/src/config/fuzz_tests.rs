//! A structure-aware fuzz pass over config parsing and validation (issue 15 item 8): seed configs
//! are mutated at random (values swapped for hostile ones, keys added or dropped, bytes of the
//! text flipped or cut), then parsed, validated, and fed to the pure helpers that turn a config
//! into kernel input (device rules, mount options, sysctl checks). Nothing may panic.
//!
//! Runs for `HUSK_FUZZ_SECS` seconds (2 by default, so the unit suite stays fast; CI runs
//! `HUSK_FUZZ_SECS=60 cargo test -p husk-runtime --lib fuzz_config`); `HUSK_FUZZ_SEED` replays
//! a run. No crate is needed: a xorshift generator and serde_json are enough offline.

use super::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Value> {
    let base = serde_json::to_value(Spec::default()).expect("default spec serializes");
    let mut rich = base.clone();
    rich["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]});
    rich["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"});
    rich["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 65536}]);
    rich["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 65536}]);
    rich["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    rich["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    rich["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]);
    rich["process"]["user"]["additionalGids"] = json!([1, 2]);
    vec![base, rich]
}

fn hostile(rng: &mut Rng) -> Value {
    let pick = [
        json!(u32::MAX),
        json!(1u64 << 31),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(""),
        json!("/proc/self/fd/5"),
        json!("../../etc"),
        json!("/proc"),
        json!("rwmx"),
        json!("mwr"),
        json!("a"),
        json!("\u{0}"),
        json!("é/ü"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([{"type": "network", "path": "/proc/1/ns/net"}]),
        json!({"destination": "/proc/sys", "type": "bind", "source": "/", "options": ["rbind", "ro"]}),
        json!({"allow": true, "type": "p", "access": ""}),
    ];
    pick[rng.below(pick.len())].clone()
}

const KEYS: [&str; 16] = [
    "sysctl",
    "devices",
    "uidMappings",
    "gidMappings",
    "namespaces",
    "resources",
    "mounts",
    "cwd",
    "uid",
    "gid",
    "additionalGids",
    "timeOffsets",
    "rootfsPropagation",
    "maskedPaths",
    "personality",
    "seccomp",
];

fn mutate(v: &mut Value, rng: &mut Rng, depth: u32) {
    match v {
        Value::Object(map) if !map.is_empty() && depth < 8 => {
            let choice = rng.below(10);
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
            match choice {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(KEYS[rng.below(KEYS.len())].to_string(), hostile(rng));
                }
                _ => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate(child, rng, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 8 => {
            let i = rng.below(items.len());
            match rng.below(6) {
                0 => {
                    items.remove(i);
                }
                1 => items.push(items[i].clone()),
                _ => mutate(&mut items[i], rng, depth + 1),
            }
        }
        other => *other = hostile(rng),
    }
}

/// Everything husk does with a config before touching the system.
fn exercise(text: &str) {
    let Ok(spec) = serde_json::from_str::<Spec>(text) else {
        return;
    };
    let _ = validate(&spec);
    let _ = rootfs_path(Path::new("/b"), &spec);
    if let Some(linux) = spec.linux() {
        let rules = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        for rule in crate::rootfs::devices::cgroup_rules(&rules) {
            let _ = crate::rootfs::devices::check_cgroup_rule(&rule);
            let _ = crate::cgroups::resources_v1::device_line(&rule);
        }
        let _ = crate::cgroups::devices_bpf::DeviceFilter::from_spec(&rules);
    }
    for m in spec.mounts().iter().flatten() {
        let _ = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default(), m.typ().as_deref());
        let _ = security::check_proc_mount(m.destination(), m.typ().as_deref());
    }
}

#[test]
fn fuzz_config_parse_and_validate_never_panics() {
    let secs = std::env::var("HUSK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed = std::env::var("HUSK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut rng = Rng(seed);
    let seeds = seeds();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let mut v = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(6) {
            mutate(&mut v, &mut rng, 0);
        }
        let mut text = v.to_string();
        if rng.below(8) == 0 {
            // Byte-level damage: cut, or flip one byte (kept valid UTF-8 by replacing).
            let mut bytes = text.into_bytes();
            let at = rng.below(bytes.len());
            if rng.below(2) == 0 {
                bytes.truncate(at);
            } else {
                bytes[at] = (rng.next() & 0x7f) as u8;
            }
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let result = std::panic::catch_unwind(|| exercise(&text));
        assert!(result.is_ok(), "panic (HUSK_FUZZ_SEED={seed}) on config: {text}");
        runs += 1;
    }
    eprintln!("fuzz_config: {runs} configs in {secs} s, seed {seed}, no panic");
}
