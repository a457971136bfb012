//! Thin file helpers for cgroupfs: every error names the file.
//!
//! Files are opened without O_CREAT: cgroupfs refuses to create files (EACCES), and a missing
//! control file must surface as ENOENT so the caller can say which kernel feature is absent.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::CgroupError;

/// Writes `value` in a single write(2): cgroupfs parses each write as one command.
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        // cgroupfs ignores O_TRUNC; plain files (fake trees, tests) need it.
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

/// Reads a whole control file.
pub fn read(path: &Path, what: &'static str) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a control file, `None` when it does not exist (an optional kernel feature).
pub fn read_optional(path: &Path, what: &'static str) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            what,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a file holding one unsigned number; "max" means unlimited (u64::MAX).
pub fn read_u64(path: &Path, what: &'static str) -> Result<u64, CgroupError> {
    let text = read(path, what)?;
    parse_u64(text.trim()).ok_or_else(|| CgroupError::Parse {
        what,
        path: path.to_path_buf(),
        content: text,
    })
}

/// Like `read_u64`, `None` when the file does not exist.
pub fn read_u64_optional(path: &Path, what: &'static str) -> Result<Option<u64>, CgroupError> {
    match read_optional(path, what)? {
        None => Ok(None),
        Some(text) => parse_u64(text.trim()).map(Some).ok_or_else(|| CgroupError::Parse {
            what,
            path: path.to_path_buf(),
            content: text,
        }),
    }
}

/// "max" is unlimited; v1 reports unlimited as a huge number which we keep as it is.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Parses "key value" lines (memory.stat, cpu.stat, cgroup.events, ...) into pairs.
pub fn parse_flat_keyed(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = parse_u64(it.next()?)?;
            Some((key, value))
        })
        .collect()
}

/// The value of `key` in a flat-keyed file, if present.
pub fn flat_keyed_value(text: &str, key: &str) -> Option<u64> {
    parse_flat_keyed(text)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_parses_numbers_and_max() {
        let pairs = parse_flat_keyed("usage_usec 10\nnr_periods 2\nbad\nlimit max\n");
        assert_eq!(pairs, vec![("usage_usec", 10), ("nr_periods", 2), ("limit", u64::MAX)]);
        assert_eq!(flat_keyed_value("populated 1\nfrozen 0\n", "frozen"), Some(0));
    }

    #[test]
    fn write_refuses_to_create_missing_control_files() {
        let dir = std::env::temp_dir().join(format!("husk-fs-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = write(&dir.join("memory.max"), "1").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        fs::remove_dir_all(&dir).unwrap();
    }
}
