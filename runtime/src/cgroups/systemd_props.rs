//! Unit properties for the systemd driver, from the spec's resources and from its
//! `org.systemd.property.*` annotations, converted as runc 1.1 converts them. Pure but for
//! /proc/devices and /dev lookups for device rules.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::error::CgroupError;
use super::resources_v2::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};
use super::systemd::SystemdError;

/// A D-Bus value of the few types unit properties use.
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    /// "au" (PIDs).
    U32s(Vec<u32>),
    /// "ay" (AllowedCPUs, AllowedMemoryNodes: a little-endian bitmask).
    Bytes(Vec<u8>),
    /// "a(ss)" (DeviceAllow: path or group, permissions).
    Devices(Vec<(String, String)>),
}

pub type Property = (String, PropValue);

fn prop(name: &str, value: PropValue) -> Property {
    (name.to_string(), value)
}

/// runc's default CFS period, for a quota given without one.
const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// systemd versions that learned a property (runc checks the same).
const CPU_QUOTA_PERIOD_SINCE: u32 = 242;
const ALLOWED_CPUS_SINCE: u32 = 244;

/// The limits systemd knows, as unit properties: v2 names on a unified host, v1 names else.
/// Everything (these included) is written to cgroupfs afterwards anyway.
pub fn resource_properties(res: &LinuxResources, v2: bool, version: u32) -> Result<Vec<Property>, CgroupError> {
    let mut props = Vec::new();
    if let Some(rules) = res.devices() {
        props.extend(device_properties(rules));
    }
    if let Some(m) = res.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            props.push(prop(
                if v2 { "MemoryMax" } else { "MemoryLimit" },
                PropValue::U64(limit as u64),
            ));
        }
        if v2 {
            if let Some(low) = m.reservation().filter(|r| *r != 0) {
                props.push(prop("MemoryLow", PropValue::U64(low as u64)));
            }
            if let Some(swap) = swap_to_v2(limit, m.swap().unwrap_or(0))? {
                props.push(prop("MemorySwapMax", PropValue::U64(swap as u64)));
            }
        }
    }
    if let Some(cpu) = res.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            props.push(if v2 {
                prop("CPUWeight", PropValue::U64(shares_to_weight(shares)))
            } else {
                prop("CPUShares", PropValue::U64(shares))
            });
        }
        cpu_quota(&mut props, cpu.quota().unwrap_or(0), cpu.period().unwrap_or(0), version);
        if version >= ALLOWED_CPUS_SINCE {
            cpuset(&mut props, cpu.cpus().as_deref(), cpu.mems().as_deref())?;
        }
    }
    if let Some(weight) = res.block_io().as_ref().and_then(|b| b.weight()).filter(|w| *w != 0) {
        props.push(if v2 {
            prop("IOWeight", PropValue::U64(blkio_weight_to_io_weight(weight)))
        } else {
            prop("BlockIOWeight", PropValue::U64(u64::from(weight)))
        });
    }
    if let Some(pids) = res.pids().map(|p| p.limit()).filter(|l| *l > 0 || *l == -1) {
        props.push(prop("TasksMax", PropValue::U64(pids as u64)));
    }
    if v2 {
        if let Some(unified) = res.unified() {
            props.extend(unified_properties(unified, version)?);
        }
    }
    Ok(props)
}

/// CPUQuotaPerSecUSec is a per-second figure systemd keeps in whole percents: round up to the
/// next 10 ms, as runc does, so that the cpu.max husk writes afterwards is never above it.
fn cpu_quota(props: &mut Vec<Property>, quota: i64, period: u64, version: u32) {
    if period != 0 && version >= CPU_QUOTA_PERIOD_SINCE {
        props.push(prop("CPUQuotaPeriodUSec", PropValue::U64(period)));
    }
    if quota == 0 && period == 0 {
        return;
    }
    let mut per_sec = u64::MAX;
    if quota > 0 {
        let period = if period == 0 { DEFAULT_CPU_PERIOD } else { period };
        per_sec = (quota as u64).saturating_mul(1_000_000) / period;
        if per_sec % 10_000 != 0 {
            per_sec = (per_sec / 10_000 + 1) * 10_000;
        }
    }
    props.push(prop("CPUQuotaPerSecUSec", PropValue::U64(per_sec)));
}

fn cpuset(props: &mut Vec<Property>, cpus: Option<&str>, mems: Option<&str>) -> Result<(), CgroupError> {
    for (name, list) in [("AllowedCPUs", cpus), ("AllowedMemoryNodes", mems)] {
        if let Some(list) = list.filter(|l| !l.trim().is_empty()) {
            props.push(prop(name, PropValue::Bytes(range_to_bits(list)?)));
        }
    }
    Ok(())
}

/// "0-2,7" onto systemd's bitmask: byte i holds cpus 8i..8i+7, lowest bit first.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>, CgroupError> {
    let invalid = || CgroupError::InvalidValue {
        resource: "cpu.cpus/cpu.mems",
        reason: format!("{list:?} is not a list like 0-2,7"),
    };
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: usize = lo.trim().parse().map_err(|_| invalid())?;
        let hi: usize = hi.trim().parse().map_err(|_| invalid())?;
        if lo > hi || hi >= 8192 {
            return Err(invalid());
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

fn parse_max(key: &str, value: &str) -> Result<u64, CgroupError> {
    if value == "max" {
        return Ok(u64::MAX);
    }
    value.parse().map_err(|_| CgroupError::InvalidValue {
        resource: "unified",
        reason: format!("{key}: {value:?} is not a number or \"max\""),
    })
}

/// The unified keys systemd has a property for; the others go only to cgroupfs.
fn unified_properties(unified: &HashMap<String, String>, version: u32) -> Result<Vec<Property>, CgroupError> {
    let mut props = Vec::new();
    let mut keys: Vec<_> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let value = unified[key].trim();
        let name = match key.as_str() {
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            "cpuset.cpus" | "cpuset.mems" if version >= ALLOWED_CPUS_SINCE => {
                let name = if key == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                props.push(prop(name, PropValue::Bytes(range_to_bits(value)?)));
                continue;
            }
            "cpu.max" => {
                let mut fields = value.split_whitespace();
                let quota = fields.next().map_or(Ok(u64::MAX), |q| parse_max(key, q))?;
                let period = fields.next().map_or(Ok(DEFAULT_CPU_PERIOD), |p| parse_max(key, p))?;
                let quota = if quota == u64::MAX { 0 } else { quota as i64 };
                cpu_quota(&mut props, quota, period, version);
                continue;
            }
            _ => continue,
        };
        props.push(prop(name, PropValue::U64(parse_max(key, value)?)));
    }
    Ok(props)
}

/// Device rules onto DevicePolicy/DeviceAllow, as runc: systemd only allow-lists, so a
/// deny-all start with allows becomes "strict" with the allows; allow-all is "auto"; an
/// allow-all with denies cannot be said and becomes a temporary deny-all. husk's own device
/// program (or v1 devices.* files), written next, is the exact rule set.
pub fn device_properties(rules: &[LinuxDeviceCgroup]) -> Vec<Property> {
    let mut allow_all = false;
    let mut denies_after_allow_all = false;
    let mut allowed: Vec<&LinuxDeviceCgroup> = Vec::new();
    let key = |r: &LinuxDeviceCgroup| (r.typ().unwrap_or(LinuxDeviceType::A), r.major(), r.minor());
    for rule in rules {
        let everything =
            matches!(rule.typ(), None | Some(LinuxDeviceType::A)) && rule.major().is_none() && rule.minor().is_none();
        if everything {
            allow_all = rule.allow();
            denies_after_allow_all = false;
            allowed.clear();
        } else if allow_all {
            denies_after_allow_all |= !rule.allow();
        } else if rule.allow() {
            allowed.push(rule);
        } else {
            allowed.retain(|a| key(a) != key(rule));
        }
    }
    if allow_all && !denies_after_allow_all {
        return vec![
            prop("DevicePolicy", PropValue::Str("auto".into())),
            prop("DeviceAllow", PropValue::Devices(vec![])),
        ];
    }
    let entries = if allow_all {
        vec![]
    } else {
        allowed.iter().filter_map(|r| device_allow_entry(r)).collect()
    };
    vec![
        prop("DevicePolicy", PropValue::Str("strict".into())),
        prop("DeviceAllow", PropValue::Devices(entries)),
    ]
}

/// One allow rule in systemd's words: "char-*" for every char device, "char-<group>" for a
/// major from /proc/devices, "/dev/char/M:m" for one device; `None` when systemd cannot say it.
fn device_allow_entry(rule: &LinuxDeviceCgroup) -> Option<(String, String)> {
    let (kind, group_prefix) = match rule.typ()? {
        LinuxDeviceType::C | LinuxDeviceType::U => ("char", "char-"),
        LinuxDeviceType::B => ("block", "block-"),
        _ => return None,
    };
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    let path = match (rule.major(), rule.minor()) {
        (None, None) => format!("{group_prefix}*"),
        (None, Some(_)) => return None,
        (Some(major), None) => format!("{group_prefix}{}", device_group(kind, major)?),
        (Some(major), Some(minor)) => {
            let path = format!("/dev/{kind}/{major}:{minor}");
            // systemd warns about a path that is missing; /sys/dev has it without udev.
            if !std::path::Path::new(&path).exists() && !std::path::Path::new(&format!("/sys{path}")).exists() {
                return None;
            }
            path
        }
    };
    Some((path, access))
}

/// The name /proc/devices gives a major of `kind` ("char" or "block").
fn device_group(kind: &str, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let header = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.ends_with("devices:") {
            in_section = line == header;
            continue;
        }
        let mut fields = line.split_whitespace();
        if in_section && fields.next().and_then(|m| m.parse::<i64>().ok()) == Some(major) {
            return fields.next().map(str::to_string);
        }
    }
    None
}

const ANNOTATION_PREFIX: &str = "org.systemd.property.";

/// `org.systemd.property.<Name>=<value>` annotations as unit properties, as runc reads them: the
/// name is letters only; the value is a GVariant literal ("uint64 5", "true", "'text'", a bare
/// integer is int32); a name ending in a lowercase letter and "Sec" is given in seconds and
/// becomes "<...>USec" in microseconds (TimeoutStopSec=5 is TimeoutStopUSec=5000000).
pub fn annotation_properties(annotations: &HashMap<String, String>) -> Result<Vec<Property>, SystemdError> {
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let bad = |reason: &str| SystemdError::Annotation {
                key: key.clone(),
                reason: reason.to_string(),
            };
            let name = &key[ANNOTATION_PREFIX.len()..];
            if name.len() < 3 || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad("a property name is at least 3 letters, and letters only"));
            }
            let value = parse_gvariant(&annotations[key]).map_err(|e| bad(&e))?;
            match name.strip_suffix("Sec") {
                Some(stem) if stem.ends_with(|c: char| c.is_ascii_lowercase()) => {
                    let usec = seconds_to_usec(&value).ok_or_else(|| bad("a ...Sec property takes a number"))?;
                    Ok((format!("{stem}USec"), PropValue::U64(usec)))
                }
                _ => Ok((name.to_string(), value)),
            }
        })
        .collect()
}

fn seconds_to_usec(value: &PropValue) -> Option<u64> {
    const M: u64 = 1_000_000;
    match *value {
        PropValue::I32(v) => Some((v as u64).wrapping_mul(M)),
        PropValue::U32(v) => Some(u64::from(v) * M),
        PropValue::I64(v) => Some((v as u64).wrapping_mul(M)),
        PropValue::U64(v) => Some(v.wrapping_mul(M)),
        PropValue::F64(v) => Some((v * M as f64) as u64),
        _ => None,
    }
}

/// The scalar GVariant text forms systemd properties take; arrays and dicts are refused.
pub fn parse_gvariant(text: &str) -> Result<PropValue, String> {
    let text = text.trim();
    let number_err = |t: &str| format!("{t:?} is not a number of that type");
    let (kind, rest) = match text.split_once(char::is_whitespace) {
        Some((k, r)) => (k, r.trim()),
        None => ("", text),
    };
    let typed = |kind: &str, v: &str| -> Result<PropValue, String> {
        Ok(match kind {
            "uint64" | "@t" => PropValue::U64(v.parse().map_err(|_| number_err(v))?),
            "int64" | "@x" => PropValue::I64(v.parse().map_err(|_| number_err(v))?),
            "uint32" | "@u" => PropValue::U32(v.parse().map_err(|_| number_err(v))?),
            "int32" | "@i" => PropValue::I32(v.parse().map_err(|_| number_err(v))?),
            "double" | "@d" => PropValue::F64(v.parse().map_err(|_| number_err(v))?),
            "boolean" | "@b" => PropValue::Bool(match v {
                "true" => true,
                "false" => false,
                _ => return Err(format!("{v:?} is not true or false")),
            }),
            _ => return Err(format!("unsupported value type {kind:?}")),
        })
    };
    if !kind.is_empty() && !kind.starts_with(['\'', '"']) {
        return typed(kind, rest);
    }
    match text {
        "true" => return Ok(PropValue::Bool(true)),
        "false" => return Ok(PropValue::Bool(false)),
        _ => {}
    }
    for quote in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            if text.len() >= 2 {
                return Ok(PropValue::Str(inner.to_string()));
            }
        }
    }
    if let Ok(v) = text.parse::<i32>() {
        return Ok(PropValue::I32(v));
    }
    if text.contains('.') {
        if let Ok(v) = text.parse::<f64>() {
            return Ok(PropValue::F64(v));
        }
    }
    Err(format!(
        "{text:?} is not a value husk reads (uint64 N, int64 N, uint32 N, int32 N, double N, true, false, 'text')"
    ))
}
