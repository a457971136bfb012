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
    /// mount_setattr(AT_RECURSIVE) attributes of the `r*` options (`rro`, `rnosuid`, ...):
    /// set and cleared on the mount and every mount below it.
    pub rec_set: u64,
    pub rec_clear: u64,
    /// `tmpcopyup`: the tmpfs starts with a copy of what the image has at the destination.
    pub tmpcopyup: bool,
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
            rec_set: 0,
            rec_clear: 0,
            tmpcopyup: false,
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
            | MsFlags::MS_STRICTATIME
            | MS_NOSYMFOLLOW;
        self.bind && self.flags.intersects(remount_bits)
    }

    /// Whether any recursive (`r*`) option asks for a mount_setattr.
    pub fn has_recursive_attrs(&self) -> bool {
        self.rec_set != 0 || self.rec_clear != 0
    }

    /// The `mode=` the options give the filesystem, if any.
    pub fn has_mode(&self) -> bool {
        self.data.iter().any(|d| d.starts_with("mode="))
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

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
    ("nosymfollow", MS_NOSYMFOLLOW, true),
    ("symfollow", MS_NOSYMFOLLOW, false),
    ("acl", MsFlags::MS_POSIXACL, true),
    ("noacl", MsFlags::MS_POSIXACL, false),
    ("iversion", MsFlags::MS_I_VERSION, true),
    ("noiversion", MsFlags::MS_I_VERSION, false),
];

/// The recursive options: (name, MOUNT_ATTR_* value, whether the option sets it or clears it).
/// The atime values are an enum in two bits, not flags: setting one means clearing the whole
/// MOUNT_ATTR__ATIME field, and "clearing" one (`ratime`, `rnostrictatime`) means going back
/// to the kernel's default, relatime. (runc 1.1.5 passes a partial clear and the kernel
/// answers EINVAL for `ratime` and `rnostrictatime`.) `rnorelatime` clears relatime's value,
/// 0, which changes nothing, as in runc.
pub const RECURSIVE: &[(&str, u64, bool)] = &[
    ("rro", libc::MOUNT_ATTR_RDONLY, true),
    ("rrw", libc::MOUNT_ATTR_RDONLY, false),
    ("rnosuid", libc::MOUNT_ATTR_NOSUID, true),
    ("rsuid", libc::MOUNT_ATTR_NOSUID, false),
    ("rnodev", libc::MOUNT_ATTR_NODEV, true),
    ("rdev", libc::MOUNT_ATTR_NODEV, false),
    ("rnoexec", libc::MOUNT_ATTR_NOEXEC, true),
    ("rexec", libc::MOUNT_ATTR_NOEXEC, false),
    ("rnosymfollow", libc::MOUNT_ATTR_NOSYMFOLLOW, true),
    ("rsymfollow", libc::MOUNT_ATTR_NOSYMFOLLOW, false),
    ("rnodiratime", libc::MOUNT_ATTR_NODIRATIME, true),
    ("rdiratime", libc::MOUNT_ATTR_NODIRATIME, false),
    ("rrelatime", libc::MOUNT_ATTR_RELATIME, true),
    ("rnorelatime", libc::MOUNT_ATTR_RELATIME, false),
    ("rnoatime", libc::MOUNT_ATTR_NOATIME, true),
    ("ratime", libc::MOUNT_ATTR_NOATIME, false),
    ("rstrictatime", libc::MOUNT_ATTR_STRICTATIME, true),
    ("rnostrictatime", libc::MOUNT_ATTR_STRICTATIME, false),
];

/// Options that are neither flags nor fs data: taken by husk itself.
pub const OWN: &[&str] = &["bind", "rbind", "tmpcopyup", "defaults"];

/// Every option name `husk features` lists (data options such as `mode=` aside).
pub fn all_names() -> Vec<&'static str> {
    let propagation = [
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
    ];
    let mut names: Vec<&str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
    names.extend(RECURSIVE.iter().map(|(n, _, _)| *n));
    names.extend(propagation);
    names.extend(OWN);
    names.sort_unstable();
    names
}

fn apply_recursive(out: &mut MountOptions, attr: u64, set: bool) {
    let atime = attr & libc::MOUNT_ATTR__ATIME != 0 || attr == libc::MOUNT_ATTR_RELATIME;
    if atime {
        if !set && attr == libc::MOUNT_ATTR_RELATIME {
            return;
        }
        out.rec_clear |= libc::MOUNT_ATTR__ATIME;
        out.rec_set &= !libc::MOUNT_ATTR__ATIME;
        if set {
            out.rec_set |= attr;
        }
    } else if set {
        out.rec_set |= attr;
        out.rec_clear &= !attr;
    } else {
        out.rec_clear |= attr;
        out.rec_set &= !attr;
    }
}

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
        } else if let Some(&(_, attr, set)) = RECURSIVE.iter().find(|(name, _, _)| *name == opt) {
            apply_recursive(&mut out, attr, set);
        } else if let Some(flag) = propagation_flag(opt) {
            out.propagation.push(flag);
        } else if opt == "bind" {
            out.bind = true;
        } else if opt == "rbind" {
            out.bind = true;
            out.recursive = true;
        } else if opt == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if opt == "defaults" {
            // mount(8)'s "rw,suid,dev,exec,auto,nouser,async": the flags' defaults already.
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
    fn recursive_options_become_mount_attributes() {
        let o = parse(&opts(&["rbind", "rro", "rnosuid", "rexec"]), Some("bind"));
        assert_eq!(o.rec_set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
        assert_eq!(o.rec_clear, libc::MOUNT_ATTR_NOEXEC);
        assert!(o.data.is_empty() && o.has_recursive_attrs());
        let later = parse(&opts(&["rro", "rrw"]), Some("bind"));
        assert_eq!((later.rec_set, later.rec_clear), (0, libc::MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn recursive_atime_options_replace_the_whole_atime_field() {
        let noatime = parse(&opts(&["rnoatime"]), None);
        assert_eq!(noatime.rec_set, libc::MOUNT_ATTR_NOATIME);
        assert_eq!(noatime.rec_clear, libc::MOUNT_ATTR__ATIME);
        let atime = parse(&opts(&["rstrictatime", "ratime"]), None);
        assert_eq!((atime.rec_set, atime.rec_clear), (0, libc::MOUNT_ATTR__ATIME));
        let relatime = parse(&opts(&["rrelatime"]), None);
        assert_eq!((relatime.rec_set, relatime.rec_clear), (0, libc::MOUNT_ATTR__ATIME));
        let norelatime = parse(&opts(&["rnorelatime"]), None);
        assert!(!norelatime.has_recursive_attrs());
    }

    #[test]
    fn nosymfollow_tmpcopyup_and_defaults_are_not_fs_data() {
        let o = parse(
            &opts(&["nosymfollow", "tmpcopyup", "defaults", "mode=700"]),
            Some("tmpfs"),
        );
        assert_eq!(o.flags, MS_NOSYMFOLLOW);
        assert!(o.tmpcopyup && o.has_mode());
        assert_eq!(o.data_string().as_deref(), Some("mode=700"));
    }

    #[test]
    fn features_list_every_option_once() {
        let names = all_names();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
        for want in [
            "rro",
            "rnosymfollow",
            "nosymfollow",
            "tmpcopyup",
            "rbind",
            "runbindable",
        ] {
            assert!(names.contains(&want), "{want}");
        }
    }

    #[test]
    fn rbind_is_a_recursive_bind_needing_remount_for_ro() {
        let o = parse(&opts(&["rbind", "ro"]), Some("none"));
        assert!(o.bind && o.recursive && o.needs_bind_remount());
        let plain = parse(&opts(&["bind"]), Some("none"));
        assert!(plain.bind && !plain.recursive && !plain.needs_bind_remount());
    }
}
