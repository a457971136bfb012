//! The process's env as runc 1.1's init builds it (libcontainer/init_linux.go): every entry
//! must be NAME=VALUE with a name, a name given twice keeps its first place and its last value
//! (Go's os.Setenv), and HOME is added when missing or empty (setupUser): the home of the uid
//! in the container's /etc/passwd, else "/". Shells and programs that look for ~ rely on HOME;
//! Docker sets it itself, `ctr` and CRI clients do not. A C program's getenv takes the first
//! of two entries, so `exec --env TERM=dumb` must replace the config's TERM, not follow it.

/// runc's default when /etc/passwd is missing or names no such uid (defaultExecUser.Home).
const DEFAULT_HOME: &str = "/";

/// An env entry runc refuses, in runc's words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("invalid environment variable: {0:?}")]
    NoEquals(String),
    #[error("environment variable name can't be empty: {0:?}")]
    EmptyName(String),
}

/// `env` checked and deduplicated, with HOME added for `uid`.
pub fn process_env(env: &[String], uid: u32) -> Result<Vec<String>, EnvError> {
    let mut merged: Vec<String> = Vec::with_capacity(env.len() + 1);
    for pair in env {
        let Some((name, _)) = pair.split_once('=') else {
            return Err(EnvError::NoEquals(pair.clone()));
        };
        if name.is_empty() {
            return Err(EnvError::EmptyName(pair.clone()));
        }
        let prefix = format!("{name}=");
        match merged.iter_mut().find(|kv| kv.starts_with(&prefix)) {
            Some(kv) => kv.clone_from(pair),
            None => merged.push(pair.clone()),
        }
    }
    Ok(env_with_home(merged, uid))
}

/// `env` with HOME set as runc's Go init does: `os.Getenv("HOME") == ""` reads the HOME
/// entry; `os.Setenv` replaces it in place or appends one.
fn env_with_home(mut env: Vec<String>, uid: u32) -> Vec<String> {
    let first = env.iter().position(|kv| kv.starts_with("HOME="));
    if first.is_some_and(|i| env[i] != "HOME=") {
        return env;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let home = format!("HOME={}", home_of(&passwd, uid).unwrap_or(DEFAULT_HOME));
    match first {
        Some(i) => env[i] = home,
        None => env.push(home),
    }
    env
}

/// The home field of the first passwd line for `uid`. runc looks the user up by "uid" as a
/// name or as a number (user.GetExecUser), and Go's Atoi leaves an unparsable uid field 0.
fn home_of(passwd: &str, uid: u32) -> Option<&str> {
    let wanted = uid.to_string();
    passwd
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let name = fields.first().copied().unwrap_or_default();
            let line_uid = fields.get(2).and_then(|u| u.parse::<i64>().ok()).unwrap_or(0);
            (name == wanted || line_uid == i64::from(uid)).then(|| fields.get(5).copied().unwrap_or_default())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\ndaemon:x:1:1::/usr/sbin:/bin/false\nshort:x:7\n";

    #[test]
    fn the_home_of_a_listed_uid() {
        assert_eq!(home_of(PASSWD, 0), Some("/root"));
        assert_eq!(home_of(PASSWD, 1), Some("/usr/sbin"));
    }

    #[test]
    fn a_line_without_a_home_field_gives_an_empty_home() {
        assert_eq!(home_of(PASSWD, 7), Some(""));
    }

    #[test]
    fn an_unlisted_uid_has_no_home() {
        assert_eq!(home_of(PASSWD, 1000), None);
        assert_eq!(home_of("", 0), None);
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_set_home_is_kept() {
        let env = strings(&["HOME=/mine"]);
        assert_eq!(process_env(&env, 0), Ok(env));
    }

    #[test]
    fn a_name_given_twice_keeps_its_first_place_and_last_value() {
        let env = strings(&["PATH=/bin", "TERM=xterm", "HOME=/h", "TERM=dumb", "A=1"]);
        let want = strings(&["PATH=/bin", "TERM=dumb", "HOME=/h", "A=1"]);
        assert_eq!(process_env(&env, 0), Ok(want));
    }

    #[test]
    fn entries_without_a_name_or_an_equals_sign_are_refused() {
        let refused = |entry: &str| process_env(&strings(&["PATH=/bin", entry]), 0);
        assert_eq!(refused("NOEQUALS"), Err(EnvError::NoEquals("NOEQUALS".into())));
        assert_eq!(refused("=x"), Err(EnvError::EmptyName("=x".into())));
        assert_eq!(
            process_env(&strings(&["EMPTY=", "HOME=/h"]), 0),
            Ok(strings(&["EMPTY=", "HOME=/h"]))
        );
    }
}
