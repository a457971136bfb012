//! Where a process's resident pages are: `/proc/PID/smaps` summed per mapping (the binary,
//! each shared library, the heap, thread stacks, anonymous memory), to see which part of a
//! shim's RSS and PSS to go after.

use std::collections::BTreeMap;

/// Rss and Pss (kB) of one group of mappings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pages {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub private_dirty_kb: u64,
}

/// The group a mapping belongs to: the file name and whether it is executable for file
/// mappings ("libc.so.6 r-x"), else "[heap]", "[stack]", "[anon]" and the like.
fn group_of(header: &str) -> String {
    let mut fields = header.split_whitespace();
    let perms = fields.nth(1).unwrap_or("");
    let name = fields.nth(3).unwrap_or("");
    let kind = if perms.contains('x') { "text" } else { "data" };
    match name {
        "" => "[anon]".to_string(),
        n if n.starts_with('[') => n.to_string(),
        n => format!("{} {kind}", n.rsplit('/').next().unwrap_or(n)),
    }
}

/// Parse smaps text into per-group totals, largest RSS first.
pub fn parse(text: &str) -> Vec<(String, Pages)> {
    let mut groups: BTreeMap<String, Pages> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            current = Some(group_of(line));
            continue;
        }
        let (Some(group), Some(value)) = (current.as_ref(), line.split_whitespace().nth(1)) else {
            continue;
        };
        let kb: u64 = value.parse().unwrap_or(0);
        let entry = groups.entry(group.clone()).or_default();
        match first {
            "Rss:" => entry.rss_kb += kb,
            "Pss:" => entry.pss_kb += kb,
            "Private_Dirty:" => entry.private_dirty_kb += kb,
            _ => {}
        }
    }
    let mut list: Vec<(String, Pages)> = groups.into_iter().filter(|(_, p)| p.rss_kb > 0).collect();
    list.sort_by_key(|(_, p)| std::cmp::Reverse(p.rss_kb));
    list
}

/// The per-mapping table of a live process, or None if it is gone.
pub fn of_pid(pid: i32) -> Option<(String, Vec<(String, Pages)>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let groups = parse(&text);
    Some((text, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_mappings_by_file_and_kind() {
        let text = "\
55d0-55d1 r--p 00000000 fe:01 123 /usr/bin/shim
Rss:                   8 kB
Pss:                   4 kB
Private_Dirty:         0 kB
55d1-55d2 r-xp 00001000 fe:01 123 /usr/bin/shim
Rss:                 100 kB
Pss:                  50 kB
55e0-55e1 rw-p 00000000 00:00 0 [heap]
Rss:                  12 kB
Pss:                  12 kB
Private_Dirty:        12 kB
7f00-7f01 rw-p 00000000 00:00 0
Rss:                   4 kB
Pss:                   4 kB
";
        let groups = parse(text);
        assert_eq!(groups[0].0, "shim text");
        assert_eq!(groups[0].1.pss_kb, 50);
        let heap = groups.iter().find(|(g, _)| g == "[heap]").expect("heap");
        assert_eq!(heap.1.private_dirty_kb, 12);
        assert!(groups.iter().any(|(g, p)| g == "[anon]" && p.rss_kb == 4));
        assert!(groups.iter().any(|(g, p)| g == "shim data" && p.rss_kb == 8));
    }
}
