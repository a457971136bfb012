//! CVE-2019-5736: a container must never execute or open the on-disk husk binary.
//!
//! The container's init and an exec'd process are forks of `husk`; until they execve, their
//! /proc/PID/exe is whatever husk runs from. If that is the file on disk, a process in the
//! container that execs `/proc/self/exe` (or a `#!/proc/self/exe` script) runs husk's own
//! inode, and an ld.so.preload payload can reopen it for writing once husk exits. So the
//! commands that spawn into a container (create, run, exec) first re-exec husk from a sealed
//! view of itself, as runc does: every child then runs from, and /proc/PID/exe names, a file
//! that nobody can write, shrink or grow.
//!
//! Two ways, tried in this order (runc 1.2's libcontainer/exeseal):
//! - a read-only overlayfs over the binary's directory, detached (overlay.rs): no copy; exec
//!   maps the page cache of the binary itself;
//! - a sealed memfd copy (runc 1.1's cloned_binary.c), where overlayfs or fsopen(2) is
//!   missing or refused (a user namespace): one copy of the binary into shmem per command.
//!
//! `HUSK_EXESEAL=overlay` or `=memfd` forces one of them (tests, and operators who want the
//! copy, as runc's `org.opencontainers.runc.clone-self-exe` annotation allows). The other
//! commands (start, state, kill, delete, ...) never re-exec.

mod overlay;

use crate::sys::{Context, SysError};
use nix::errno::Errno;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Writes, resizes and further seal changes are all refused once these are set.
const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// The commands whose children become visible inside a container. Matching any argument, not
/// only the command, can only cause a needless re-exec, never a missed one.
const SPAWNING_COMMANDS: &[&str] = &["create", "run", "exec"];

pub fn needed_for(argv: &[OsString]) -> bool {
    argv.iter()
        .skip(1)
        .any(|a| SPAWNING_COMMANDS.iter().any(|c| a.as_bytes() == c.as_bytes()))
}

/// Set by the re-exec from the overlay view: an overlay has no seals to read, unlike a memfd.
/// Removed at once so that nothing husk starts inherits it, and believed only when
/// /proc/self/exe really is on a read-only overlayfs.
const SEALED_MARKER: &str = "_HUSK_SEALED_EXE";

/// Picks the way: unset (overlay, else memfd), `overlay` (only), `memfd` (only).
const MODE_VAR: &str = "HUSK_EXESEAL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    OverlayElseMemfd,
    OverlayOnly,
    MemfdOnly,
}

pub fn mode_from(value: Option<&OsStr>) -> Result<SealMode, SysError> {
    match value.map(|v| v.as_bytes()) {
        None | Some(b"") => Ok(SealMode::OverlayElseMemfd),
        Some(b"overlay") => Ok(SealMode::OverlayOnly),
        Some(b"memfd") => Ok(SealMode::MemfdOnly),
        Some(other) => {
            let shown = format!("{MODE_VAR}={} (want overlay or memfd)", String::from_utf8_lossy(other));
            Err(SysError::new("use", shown, Errno::EINVAL))
        }
    }
}

/// Whether this process already runs from a view sealed by [`reexec_sealed`]. An error when
/// the marker says it should but the check does not agree: re-exec'ing again would loop.
pub fn running_from_sealed_copy() -> Result<bool, SysError> {
    let marked = std::env::var_os(SEALED_MARKER).is_some();
    std::env::remove_var(SEALED_MARKER);
    let exe = std::fs::File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    // SAFETY: F_GET_SEALS only reads the seals of a valid fd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    // An overlay alone proves nothing: husk may be installed on a read-only overlay root.
    let sealed = seals == SEALS || (marked && on_read_only_overlay(&exe));
    match (sealed, marked) {
        (true, _) => Ok(true),
        (false, false) => Ok(false),
        (false, true) => Err(SysError::new(
            "verify the sealed view of husk",
            "/proc/self/exe",
            Errno::EROFS,
        )),
    }
}

fn on_read_only_overlay(file: &std::fs::File) -> bool {
    use nix::sys::statfs::{fstatfs, OVERLAYFS_SUPER_MAGIC};
    use nix::sys::statvfs::FsFlags;
    fstatfs(file)
        .is_ok_and(|st| st.filesystem_type() == OVERLAYFS_SUPER_MAGIC && st.flags().contains(FsFlags::ST_RDONLY))
}

/// Replace this process with a sealed view of its own binary, same argv and environment.
/// Returns only on failure (of the last way tried).
pub fn reexec_sealed(argv: &[OsString]) -> SysError {
    let mode = match mode_from(std::env::var_os(MODE_VAR).as_deref()) {
        Ok(mode) => mode,
        Err(e) => return e,
    };
    if mode != SealMode::MemfdOnly {
        let err = match overlay::sealed_view() {
            Ok(view) => execveat_empty_path(&view, argv, Some(SEALED_MARKER)),
            Err(e) => e,
        };
        if mode == SealMode::OverlayOnly {
            return err;
        }
    }
    match sealed_copy() {
        Ok(memfd) => execveat_empty_path(&memfd, argv, None),
        Err(e) => e,
    }
}

/// The kernel names a process exec'd from an fd after the fd's number, or "memfd:husk"; `ps`, and anyone looking at
/// /proc/PID/comm, expect the name of the binary, as before the re-exec.
pub fn restore_name(argv: &[OsString]) {
    let Some(arg0) = argv.first() else { return };
    let base = std::path::Path::new(arg0).file_name().unwrap_or(arg0.as_os_str());
    let mut name: Vec<u8> = base.as_bytes().iter().copied().take(15).collect();
    name.push(0);
    // SAFETY: PR_SET_NAME reads at most 16 bytes of a NUL-terminated buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

fn sealed_copy() -> Result<OwnedFd, SysError> {
    let exe = std::fs::File::open("/proc/self/exe").ctx("open", "/proc/self/exe")?;
    let size = exe.metadata().ctx("stat", "/proc/self/exe")?.len();
    // SAFETY: memfd_create with a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::memfd_create(c"husk".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(SysError::new("memfd_create", "husk", Errno::last()));
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut left = size;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        // SAFETY: sendfile between two valid fds, with the input's own offset (NULL).
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), chunk) };
        match n {
            n if n > 0 => left -= n as u64,
            0 => return Err(SysError::new("copy", "/proc/self/exe into a memfd", Errno::EIO)),
            _ if Errno::last() == Errno::EINTR => {}
            _ => return Err(SysError::new("copy", "/proc/self/exe into a memfd", Errno::last())),
        }
    }
    // SAFETY: F_ADD_SEALS on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(SysError::new("seal", "the memfd copy of husk", Errno::last()));
    }
    Ok(memfd)
}

/// execveat(fd, "", AT_EMPTY_PATH), with `marker=1` added to the environment if given: the fd
/// is close-on-exec, which an ELF binary allows.
fn execveat_empty_path(exe: &OwnedFd, argv: &[OsString], marker: Option<&str>) -> SysError {
    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let args: Vec<CString> = argv.iter().map(|a| to_c(a.as_bytes())).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            to_c(&kv)
        })
        .chain(marker.map(|m| to_c(format!("{m}=1").as_bytes())))
        .collect();
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe.as_raw_fd(),
            c"".as_ptr(),
            argp.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    SysError::new("execveat", "the sealed view of husk", Errno::last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_spawning_commands_need_the_sealed_copy() {
        assert!(needed_for(&os(&[
            "husk", "--root", "/r", "create", "--bundle", "b", "id"
        ])));
        assert!(needed_for(&os(&["husk", "exec", "id", "sh"])));
        assert!(needed_for(&os(&["husk", "run", "id"])));
        assert!(!needed_for(&os(&["husk", "start", "id"])));
        assert!(!needed_for(&os(&["husk", "state", "id"])));
        // argv[0] is never the command.
        assert!(!needed_for(&os(&["exec", "kill", "id"])));
    }

    #[test]
    fn a_sealed_copy_refuses_writes_and_resizes() {
        let memfd = sealed_copy().unwrap();
        // SAFETY: F_GET_SEALS on a valid fd.
        assert_eq!(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS) }, SEALS);
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::Write;
        assert_eq!(file.write(b"x").unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(file.set_len(1).unwrap_err().raw_os_error(), Some(libc::EPERM));
        let ours = std::fs::metadata("/proc/self/exe").unwrap().len();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ours);
    }

    #[test]
    fn the_mode_variable_picks_the_way_or_is_refused() {
        assert_eq!(mode_from(None).unwrap(), SealMode::OverlayElseMemfd);
        assert_eq!(mode_from(Some(OsStr::new(""))).unwrap(), SealMode::OverlayElseMemfd);
        assert_eq!(mode_from(Some(OsStr::new("overlay"))).unwrap(), SealMode::OverlayOnly);
        assert_eq!(mode_from(Some(OsStr::new("memfd"))).unwrap(), SealMode::MemfdOnly);
        let err = mode_from(Some(OsStr::new("copy"))).unwrap_err().to_string();
        assert_eq!(
            err,
            "failed to use HUSK_EXESEAL=copy (want overlay or memfd): invalid argument"
        );
    }

    /// Needs root (overlayfs), as the e2e tests do.
    #[test]
    fn the_overlay_view_is_the_binary_read_only_and_detached() {
        let view = overlay::sealed_view().expect("overlayfs and fsopen are available here");
        let path = format!("/proc/self/fd/{}", view.as_raw_fd());
        let file = std::fs::File::open(&path).unwrap();
        assert!(on_read_only_overlay(&file));
        // The same bytes as the binary running, without a copy.
        assert!(std::fs::read(&path).unwrap() == std::fs::read("/proc/self/exe").unwrap());
        let write = std::fs::OpenOptions::new().write(true).open(&path);
        assert_eq!(write.unwrap_err().raw_os_error(), Some(libc::EROFS));
        // Detached: no mount of this process's namespace is an overlay of the binary.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let dir = exe.parent().unwrap().to_str().unwrap().to_owned();
        assert!(
            !mountinfo.lines().any(|l| l.contains(" overlay ") && l.contains(&dir)),
            "{mountinfo}"
        );
    }
}
