//! Capability sets of the container's process, applied with the caps crate.

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error("capability {0} is unknown to this kernel")]
    Unknown(String),
    #[error(
        "capability {cap} is not in husk's bounding set, so the container cannot have it (is husk itself restricted?)"
    )]
    NotInBounding { cap: String },
    #[error("failed to set {set} capabilities: {why}")]
    Set { set: &'static str, why: String },
}

/// The sets of a process whose spec has no `capabilities`: all empty, so it runs with none, as
/// runc 1.1 (libcontainer/init_linux.go, finalizeNamespace) runs it. oci-spec's Default would
/// be its own default list instead.
pub fn none() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(None);
    caps.set_effective(None);
    caps.set_permitted(None);
    caps.set_inheritable(None);
    caps.set_ambient(None);
    caps
}

fn to_caps(set: &Option<Capabilities>) -> Result<CapsHashSet, CapError> {
    let mut out = CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = format!("CAP_{cap}");
        out.insert(Capability::from_str(&name).map_err(|_| CapError::Unknown(name))?);
    }
    Ok(out)
}

/// Drop from the bounding set everything the container may not have. Runs while husk is
/// still root with CAP_SETPCAP, before the switch to the container's user. Checks only the
/// kept capabilities and drops the rest without reading each first (a drop of one already
/// gone succeeds): 41 prctl calls fewer than reading the whole set.
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), CapError> {
    let keep = to_caps(caps.bounding())?;
    for cap in &keep {
        let held = caps::has_cap(None, CapSet::Bounding, *cap).map_err(|e| CapError::Set {
            set: "bounding",
            why: e.to_string(),
        })?;
        if !held {
            return Err(CapError::NotInBounding { cap: cap.to_string() });
        }
    }
    for cap in caps::all().difference(&keep) {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap.index()), 0, 0, 0) };
        let errno = Errno::last();
        // EINVAL: a capability newer than this kernel, so not in any set.
        if rc != 0 && errno != Errno::EINVAL {
            return Err(CapError::Set {
                set: "bounding",
                why: format!("failed to drop {cap}: {}", crate::sys::errno_text(errno)),
            });
        }
    }
    Ok(())
}

/// Set the effective, permitted, inheritable and ambient sets, after the uid switch (done with
/// PR_SET_KEEPCAPS so that the permitted set survives it).
pub fn apply(caps: &LinuxCapabilities) -> Result<(), CapError> {
    let permitted = to_caps(caps.permitted())?;
    let effective = to_caps(caps.effective())?;
    let inheritable = to_caps(caps.inheritable())?;
    let ambient = to_caps(caps.ambient())?;
    let set = |set: CapSet, name: &'static str, value: &CapsHashSet| {
        caps::set(None, set, value).map_err(|e| CapError::Set {
            set: name,
            why: e.to_string(),
        })
    };
    // Effective may only hold what permitted holds: shrink effective first, set permitted,
    // then widen effective to what was asked.
    set(
        CapSet::Effective,
        "effective",
        &effective.intersection(&permitted).copied().collect(),
    )?;
    set(CapSet::Permitted, "permitted", &permitted)?;
    set(CapSet::Effective, "effective", &effective)?;
    set(CapSet::Inheritable, "inheritable", &inheritable)?;
    // Ambient capabilities must be in both permitted and inheritable (else EPERM). runc's own
    // `runc spec` lists ambient caps without inheritable ones (CVE-2022-29162) and runc skips
    // them silently; do the same, or every such bundle would fail to start.
    caps::clear(None, CapSet::Ambient).map_err(|e| CapError::Set {
        set: "ambient",
        why: e.to_string(),
    })?;
    for cap in ambient
        .iter()
        .copied()
        .filter(|c| inheritable.contains(c) && permitted.contains(c))
    {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| CapError::Set {
            set: "ambient",
            why: e.to_string(),
        })?;
    }
    Ok(())
}
