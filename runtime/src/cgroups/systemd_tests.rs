use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResourcesBuilder,
};

use super::super::systemd_props::{
    annotation_properties, device_properties, parse_gvariant, range_to_bits, resource_properties, PropValue,
};
use super::*;

fn parsed(path: &str) -> (String, String, PathBuf) {
    let p = parse_systemd_path(Some(path), "c1").unwrap();
    (p.unit.slice, p.unit.unit, p.cgroup)
}

#[test]
fn slices_expand_by_dashes_like_runc() {
    assert_eq!(expand_slice("system.slice").unwrap(), PathBuf::from("/system.slice"));
    assert_eq!(
        expand_slice("a-b-c.slice").unwrap(),
        PathBuf::from("/a.slice/a-b.slice/a-b-c.slice")
    );
    assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
    for bad in [
        "a",
        ".slice",
        "a/b.slice",
        "a--b.slice",
        "-a.slice",
        "a-.slice",
        "system.scope",
    ] {
        assert!(expand_slice(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn cgroups_path_is_slice_prefix_name_with_runc_defaults() {
    assert_eq!(
        parsed("system.slice:docker:abc"),
        (
            "system.slice".into(),
            "docker-abc.scope".into(),
            "system.slice/docker-abc.scope".into()
        )
    );
    assert_eq!(parsed(":crio:x").0, "system.slice");
    assert_eq!(
        parsed("kubepods-besteffort.slice:cri-containerd:x").2,
        PathBuf::from("kubepods.slice/kubepods-besteffort.slice/cri-containerd-x.scope")
    );
    assert_eq!(parsed("-.slice:p:n").2, PathBuf::from("p-n.scope"));
    assert_eq!(parsed("a.slice::a-b.slice").1, "a-b.slice");
    let default = parse_systemd_path(None, "c1").unwrap();
    assert_eq!(default.unit.unit, "husk-c1.scope");
    assert_eq!(default.cgroup, PathBuf::from("system.slice/husk-c1.scope"));
    assert_eq!(parse_systemd_path(Some(""), "c1").unwrap(), default);
}

#[test]
fn malformed_systemd_paths_are_refused() {
    for bad in [
        "a.slice:",
        "a.slice:p",
        "a:b:c:d",
        "/husk/x",
        "a/b.slice:p:n",
        "notaslice:p:n",
        "a.slice:p:",
        "a.slice:p:x/y",
    ] {
        let err = parse_systemd_path(Some(bad), "c1").unwrap_err().to_string();
        assert!(err.contains("failed to use systemd cgroups path"), "{bad}: {err}");
    }
}

#[test]
fn v2_properties_convert_like_runc() {
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .swap(96 << 20)
                .reservation(32 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(25_000)
                .period(50_000u64)
                .cpus("0-1,9")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
        .unified(HashMap::from([
            ("memory.high".to_string(), "max".to_string()),
            ("io.max".into(), "x".into()),
        ]))
        .build()
        .unwrap();
    let props: HashMap<_, _> = resource_properties(&res, true, 252).unwrap().into_iter().collect();
    assert_eq!(props["MemoryMax"], PropValue::U64(64 << 20));
    assert_eq!(props["MemorySwapMax"], PropValue::U64(32 << 20));
    assert_eq!(props["MemoryLow"], PropValue::U64(32 << 20));
    assert_eq!(props["MemoryHigh"], PropValue::U64(u64::MAX));
    assert_eq!(props["CPUWeight"], PropValue::U64(39));
    assert_eq!(props["CPUQuotaPeriodUSec"], PropValue::U64(50_000));
    assert_eq!(props["CPUQuotaPerSecUSec"], PropValue::U64(500_000));
    assert_eq!(props["AllowedCPUs"], PropValue::Bytes(vec![0b11, 0b10]));
    assert_eq!(props["TasksMax"], PropValue::U64(42));
    assert!(!props.contains_key("io.max"));
    // systemd 241 knows neither the period nor AllowedCPUs: cgroupfs alone gets them.
    let old: HashMap<_, _> = resource_properties(&res, true, 241).unwrap().into_iter().collect();
    assert!(!old.contains_key("CPUQuotaPeriodUSec") && !old.contains_key("AllowedCPUs"));
    let v1: HashMap<_, _> = resource_properties(&res, false, 252).unwrap().into_iter().collect();
    assert_eq!(v1["MemoryLimit"], PropValue::U64(64 << 20));
    assert_eq!(v1["CPUShares"], PropValue::U64(1024));
}

#[test]
fn cpu_quota_rounds_up_to_whole_percent() {
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().quota(12_345).build().unwrap())
        .build()
        .unwrap();
    let props: HashMap<_, _> = resource_properties(&res, true, 252).unwrap().into_iter().collect();
    assert_eq!(props["CPUQuotaPerSecUSec"], PropValue::U64(130_000));
    assert_eq!(range_to_bits("0").unwrap(), vec![1]);
    assert!(range_to_bits("3-1").is_err() && range_to_bits("x").is_err());
}

#[test]
fn device_rules_become_a_strict_allow_list_or_auto() {
    let rule = |allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access("rwm");
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    };
    let rules = vec![
        rule(false, LinuxDeviceType::A, None, None),
        rule(true, LinuxDeviceType::C, None, None),
        rule(true, LinuxDeviceType::C, Some(1), Some(3)),
        rule(true, LinuxDeviceType::C, None, Some(3)),
    ];
    let props: HashMap<_, _> = device_properties(&rules).into_iter().collect();
    assert_eq!(props["DevicePolicy"], PropValue::Str("strict".into()));
    let PropValue::Devices(list) = &props["DeviceAllow"] else {
        panic!()
    };
    assert_eq!(list[0], ("char-*".to_string(), "rwm".to_string()));
    assert_eq!(list[1].0, "/dev/char/1:3");
    assert_eq!(list.len(), 2, "*:n has no systemd spelling");
    let all = device_properties(&[rule(true, LinuxDeviceType::A, None, None)]);
    assert_eq!(all[0].1, PropValue::Str("auto".into()));
}

#[test]
fn annotations_become_properties_with_sec_in_usec() {
    let ann = HashMap::from([
        (
            "org.systemd.property.TimeoutStopSec".to_string(),
            "uint64 5".to_string(),
        ),
        ("org.systemd.property.CollectMode".into(), "'inactive-or-failed'".into()),
        ("org.systemd.property.CPUQuotaPerSecUSec".into(), "uint64 10000".into()),
        ("other".into(), "ignored".into()),
    ]);
    let props: HashMap<_, _> = annotation_properties(&ann).unwrap().into_iter().collect();
    assert_eq!(props["TimeoutStopUSec"], PropValue::U64(5_000_000));
    assert_eq!(props["CollectMode"], PropValue::Str("inactive-or-failed".into()));
    assert_eq!(props["CPUQuotaPerSecUSec"], PropValue::U64(10_000));
    assert_eq!(props.len(), 3);
    for (k, v) in [
        ("org.systemd.property.A1x", "1"),
        ("org.systemd.property.Ab", "1"),
        ("org.systemd.property.Foo", "[1]"),
    ] {
        let ann = HashMap::from([(k.to_string(), v.to_string())]);
        assert!(annotation_properties(&ann).is_err(), "{k}={v}");
    }
    assert_eq!(parse_gvariant("7").unwrap(), PropValue::I32(7));
    assert_eq!(parse_gvariant("true").unwrap(), PropValue::Bool(true));
    assert_eq!(parse_gvariant("int64 -1").unwrap(), PropValue::I64(-1));
}
