//! process.rlimits: validated up front, applied in the init before it drops privileges.

use crate::config::ConfigError;
use crate::sys::SysError;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

pub fn validate(rlimit: &PosixRlimit) -> Result<(), ConfigError> {
    if rlimit.soft() > rlimit.hard() {
        return Err(ConfigError::RlimitSoftAboveHard(rlimit.typ().to_string()));
    }
    Ok(())
}

fn resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(rlimits: &[PosixRlimit]) -> Result<(), SysError> {
    for rl in rlimits {
        let limit = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit reads a valid, initialised struct.
        if unsafe { libc::setrlimit(resource(rl.typ()), &limit) } != 0 {
            let errno = nix::errno::Errno::last();
            let mut op = format!("set {} to {}/{}", rl.typ(), rl.soft(), rl.hard());
            if errno == nix::errno::Errno::EPERM {
                op.push_str(" (raising a hard limit needs CAP_SYS_RESOURCE, which husk's bounding set lacks?)");
            }
            return Err(SysError::new("apply rlimit", op, errno));
        }
    }
    Ok(())
}
