//! HOME as runc 1.1 sets it (libcontainer/init_linux.go, setupUser): when the process's env has
//! no HOME, or an empty one, the home of its uid in the container's /etc/passwd, else "/".
//! Shells and programs that look for ~ rely on it; Docker sets HOME itself, `ctr` and CRI
//! clients do not.

/// runc's default when /etc/passwd is missing or names no such uid (defaultExecUser.Home).
const DEFAULT_HOME: &str = "/";

/// `env` with HOME set as runc's Go init does: `os.Getenv("HOME") == ""` reads the first
/// HOME entry; `os.Setenv` replaces that entry in place or appends one.
pub fn env_with_home(env: &[String], uid: u32) -> Vec<String> {
    let mut env = env.to_vec();
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

    #[test]
    fn a_set_home_is_kept() {
        let env = vec!["HOME=/mine".to_string(), "HOME=".to_string()];
        assert_eq!(env_with_home(&env, 0), env);
    }
}
