//! process.scheduler (sched_setattr), process.ioPriority (ioprio_set) and linux.personality
//! (personality): each computed by a pure function that validate() also uses, so a bad value
//! is refused before anything is made, and applied in the init while it still holds
//! CAP_SYS_NICE / CAP_SYS_ADMIN (before the capability drop), inherited through execve.

use crate::config::ConfigError;
use crate::sys::SysError;
use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

/// `struct sched_attr` of sched_setattr(2), SCHED_ATTR_SIZE_VER1 (with the util clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SCHED_DEADLINE: u32 = 6;

fn policy_number(policy: LinuxSchedulerPolicy) -> Result<u32, ConfigError> {
    Ok(match policy {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER as u32,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO as u32,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR as u32,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH as u32,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE as u32,
        LinuxSchedulerPolicy::SchedDeadline => SCHED_DEADLINE,
        // Never merged into Linux.
        LinuxSchedulerPolicy::SchedIso => {
            return Err(ConfigError::BadScheduler("SCHED_ISO is not a Linux policy".into()))
        }
    })
}

fn flag_bit(flag: LinuxSchedulerFlag) -> u64 {
    match flag {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// The sched_attr for `sched`, or why the kernel would refuse it (the rules of sched(7)).
pub fn sched_attr(sched: &Scheduler) -> Result<SchedAttr, ConfigError> {
    let bad = |why: String| Err(ConfigError::BadScheduler(why));
    let policy = policy_number(*sched.policy())?;
    let nice = sched.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return bad(format!("nice {nice} is outside -20..19"));
    }
    let priority = sched.priority().unwrap_or(0);
    let realtime = matches!(
        sched.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    match (realtime, priority) {
        (true, 1..=99) | (false, 0) => {}
        (true, p) => return bad(format!("priority {p} of {} must be 1..99", sched.policy())),
        (false, p) => return bad(format!("priority {p} of {} must be 0", sched.policy())),
    }
    let (runtime, deadline, period) = (
        sched.runtime().unwrap_or(0),
        sched.deadline().unwrap_or(0),
        sched.period().unwrap_or(0),
    );
    if policy == SCHED_DEADLINE {
        // period 0 means "same as deadline" to the kernel.
        let period_or_deadline = if period == 0 { deadline } else { period };
        if runtime == 0 || runtime > deadline || deadline > period_or_deadline {
            return bad(format!(
                "SCHED_DEADLINE needs 0 < runtime ({runtime}) <= deadline ({deadline}) <= period ({period})"
            ));
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return bad(format!(
            "runtime, deadline and period are for SCHED_DEADLINE, not {}",
            sched.policy()
        ));
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags: sched.flags().iter().flatten().fold(0, |acc, f| acc | flag_bit(*f)),
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
        util_min: 0,
        util_max: 1024,
    })
}

pub fn set_scheduler(sched: &Scheduler) -> Result<(), SysError> {
    let attr = sched_attr(sched).map_err(|_| SysError::new("apply", "process.scheduler", Errno::EINVAL))?;
    // SAFETY: sched_setattr reads attr.size bytes of a valid sched_attr; pid 0 is the caller.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(SysError::new(
            "sched_setattr",
            format!("{} for the container process", sched.policy()),
            Errno::last(),
        ));
    }
    Ok(())
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;

/// The ioprio value of ioprio_set(2): class in the top bits, level 0..7 below.
pub fn ioprio_value(prio: &LinuxIOPriority) -> Result<u32, ConfigError> {
    let class = match prio.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = prio.priority();
    if !(0..=7).contains(&level) {
        return Err(ConfigError::BadIoPriority(level));
    }
    Ok((class << IOPRIO_CLASS_SHIFT) | level as u32)
}

pub fn set_io_priority(prio: &LinuxIOPriority) -> Result<(), SysError> {
    let value = ioprio_value(prio).map_err(|_| SysError::new("apply", "process.ioPriority", Errno::EINVAL))?;
    // SAFETY: ioprio_set takes three integers; who 0 is the caller.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc != 0 {
        return Err(SysError::new(
            "ioprio_set",
            format!("{} {}", prio.class(), prio.priority()),
            Errno::last(),
        ));
    }
    Ok(())
}

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// The persona of personality(2). The runtime-spec defines no flags yet: any is refused.
pub fn persona(personality: &LinuxPersonality) -> Result<libc::c_ulong, ConfigError> {
    if let Some(flag) = personality.flags().iter().flatten().next() {
        return Err(ConfigError::BadPersonalityFlag(flag.clone()));
    }
    Ok(match personality.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

pub fn set_personality(personality: &LinuxPersonality) -> Result<(), SysError> {
    let persona = persona(personality).map_err(|_| SysError::new("apply", "linux.personality", Errno::EINVAL))?;
    // SAFETY: personality takes one integer and returns the previous persona or -1.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(SysError::new("set personality", personality.domain(), Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: serde_json::Value) -> Scheduler {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn batch_with_nice_maps_to_its_attr() {
        let attr = sched_attr(&sched(
            serde_json::json!({"policy": "SCHED_BATCH", "nice": 7, "flags": ["SCHED_RESET_ON_FORK"]}),
        ))
        .unwrap();
        assert_eq!((attr.policy, attr.nice, attr.priority, attr.flags), (3, 7, 0, 1));
        assert_eq!(attr.size, 56);
    }

    #[test]
    fn realtime_needs_a_priority_and_others_refuse_one() {
        assert!(sched_attr(&sched(serde_json::json!({"policy": "SCHED_FIFO"}))).is_err());
        assert_eq!(
            sched_attr(&sched(serde_json::json!({"policy": "SCHED_RR", "priority": 10})))
                .unwrap()
                .priority,
            10
        );
        assert!(sched_attr(&sched(serde_json::json!({"policy": "SCHED_OTHER", "priority": 10}))).is_err());
        assert!(sched_attr(&sched(serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}))).is_err());
        assert!(sched_attr(&sched(serde_json::json!({"policy": "SCHED_ISO"}))).is_err());
    }

    #[test]
    fn deadline_needs_ordered_runtime_deadline_period() {
        let ok = serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10_000_000, "deadline": 20_000_000, "period": 30_000_000});
        assert_eq!(sched_attr(&sched(ok)).unwrap().policy, 6);
        let bad = serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 30_000_000, "deadline": 20_000_000});
        assert!(sched_attr(&sched(bad)).is_err());
        assert!(sched_attr(&sched(serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5}))).is_err());
    }

    #[test]
    fn ioprio_packs_class_and_level() {
        let p: LinuxIOPriority =
            serde_json::from_value(serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7})).unwrap();
        assert_eq!(ioprio_value(&p).unwrap(), (3 << 13) | 7);
        let bad: LinuxIOPriority =
            serde_json::from_value(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 8})).unwrap();
        assert_eq!(ioprio_value(&bad), Err(ConfigError::BadIoPriority(8)));
    }

    #[test]
    fn personality_domains_and_no_flags() {
        let p: LinuxPersonality = serde_json::from_value(serde_json::json!({"domain": "LINUX32"})).unwrap();
        assert_eq!(persona(&p).unwrap(), PER_LINUX32);
        let f: LinuxPersonality =
            serde_json::from_value(serde_json::json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).unwrap();
        assert!(persona(&f).is_err());
    }
}
