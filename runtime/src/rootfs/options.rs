//! Mount options of config.json turned into mount(2) flags, propagation and fs data. Pure.

use nix::mount::MsFlags;

/// A mount's options, split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (and for the read-only etc. remount of a bind mount).
    pub flags: MsFlags,
    /// Flags to clear (e.g. `rw` after a default of `ro`); kept to compute remounts.
    pub cleared: MsFlags,
    /// MS_SHARED / MS_PRIVATE / ... each applied with its own mount(2) call.
    pub propagation: Vec<MsFlags>,
    /// Anything mount(2) does not know as a flag: passed as the fs data string.
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: false,
        }
    }
}

impl MountOptions {
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }

    /// Flags that a bind mount only gets by a second, remounting call.
    pub fn needs_bind_remount(&self) -> bool {
        let remount_bits = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOATIME
            | MsFlags::MS_NODIRATIME
            | MsFlags::MS_RELATIME
            | MsFlags::MS_STRICTATIME;
        self.bind && self.flags.intersects(remount_bits)
    }
}

/// (name, flag, whether the option sets the flag or clears it)
const FLAGS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("remount", MsFlags::MS_REMOUNT, true),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("atime", MsFlags::MS_NOATIME, false),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("lazytime", MsFlags::MS_LAZYTIME, true),
    ("nolazytime", MsFlags::MS_LAZYTIME, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("loud", MsFlags::MS_SILENT, false),
];

pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

pub fn parse(options: &[String], typ: Option<&str>) -> MountOptions {
    let mut out = MountOptions {
        bind: typ == Some("bind"),
        ..Default::default()
    };
    for opt in options {
        let opt = opt.as_str();
        if let Some(&(_, flag, set)) = FLAGS.iter().find(|(name, _, _)| *name == opt) {
            if set {
                out.flags |= flag;
                out.cleared &= !flag;
            } else {
                out.flags &= !flag;
                out.cleared |= flag;
            }
        } else if let Some(flag) = propagation_flag(opt) {
            out.propagation.push(flag);
        } else if opt == "bind" {
            out.bind = true;
        } else if opt == "rbind" {
            out.bind = true;
            out.recursive = true;
        } else if opt == "tmpcopyup" {
            // crun's extension; copying the image's content up is not done, the tmpfs is empty.
        } else {
            out.data.push(opt.to_string());
        }
    }
    if out.bind && typ == Some("bind") && options.iter().any(|o| o == "rbind") {
        out.recursive = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_propagation_and_data_are_split() {
        let o = parse(
            &opts(&["nosuid", "strictatime", "mode=755", "size=65536k", "rprivate"]),
            Some("tmpfs"),
        );
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_option_wins() {
        let o = parse(&opts(&["ro", "rw"]), None);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn rbind_is_a_recursive_bind_needing_remount_for_ro() {
        let o = parse(&opts(&["rbind", "ro"]), Some("none"));
        assert!(o.bind && o.recursive && o.needs_bind_remount());
        let plain = parse(&opts(&["bind"]), Some("none"));
        assert!(plain.bind && !plain.recursive && !plain.needs_bind_remount());
    }
}
