//! `exec --cgroup [controller:]path`: which cgroup directories the exec'd process joins.
//!
//! runc's rules: a path without a controller applies to every hierarchy (the only form on
//! cgroup v2) and wins over controller-specific ones; `cpu,cpuacct:path` names controllers of
//! v1 hierarchies. The result must stay inside the container's cgroup: `..` is refused with
//! runc's words, `... is not a sub cgroup path`. The sub-cgroup must already exist.

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::sys::Context;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The directory per hierarchy that the process joins: the container's own, or the sub-cgroups
/// asked for.
pub fn target_dirs(cgroup: &Cgroup, requests: &[String]) -> Result<Vec<PathBuf>> {
    let mut by_controller: HashMap<&str, &str> = HashMap::new();
    let mut everywhere = None;
    for request in requests {
        match request.split_once(':') {
            None => everywhere = Some(request.as_str()),
            Some((controllers, path)) => controllers.split(',').for_each(|c| {
                by_controller.insert(c, path);
            }),
        }
    }
    let hierarchies = cgroup.hierarchies();
    if everywhere.is_none() {
        if let Some(unknown) = by_controller
            .keys()
            .find(|c| !hierarchies.iter().any(|h| h.controllers.iter().any(|hc| hc == *c)))
        {
            return Err(Error::Usage(format!("unknown controller {unknown} in SubCgroupPaths")));
        }
    }
    hierarchies
        .iter()
        .map(|h| {
            let sub = everywhere.or_else(|| {
                h.controllers
                    .iter()
                    .find_map(|c| by_controller.get(c.as_str()).copied())
            });
            match sub {
                Some(sub) => sub_cgroup(&h.dir(), sub),
                None => Ok(h.dir()),
            }
        })
        .collect()
}

/// `base` joined with `sub` lexically (as Go's path.Join), refused unless it stays below `base`.
pub fn sub_cgroup(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut out = base.to_path_buf();
    for part in Path::new(sub).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if !out.starts_with(base) {
        return Err(Error::Usage(format!("{sub} is not a sub cgroup path")));
    }
    Ok(out)
}

/// Moves `pid` into each directory (cgroup.procs).
pub fn add_process(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).ctx(&format!("add pid {pid} to"), procs.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_cgroups_stay_below_the_containers() {
        let base = Path::new("/sys/fs/cgroup/cpu/husk/c1");
        assert_eq!(sub_cgroup(base, "a/b").unwrap(), base.join("a/b"));
        assert_eq!(sub_cgroup(base, "/").unwrap(), base);
        assert_eq!(sub_cgroup(base, "/x/../y").unwrap(), base.join("y"));
        let err = sub_cgroup(base, "..").unwrap_err().to_string();
        assert_eq!(err, ".. is not a sub cgroup path");
        // A sibling whose name starts like the container's is not inside it.
        assert!(sub_cgroup(base, "../c10").is_err());
    }
}
