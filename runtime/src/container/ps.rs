//! `husk ps ID [ps options]`: the host's `ps` (default `-ef`) filtered to the container's pids,
//! as runc does: the header, then the rows whose PID column is a process in the cgroup.

use crate::error::{Error, Result};

pub fn table(pids: &[i32], ps_args: &[String]) -> Result<String> {
    let default = ["-ef".to_string()];
    let args = if ps_args.is_empty() { &default[..] } else { ps_args };
    let out = std::process::Command::new("ps")
        .args(args)
        .output()
        .map_err(|e| Error::Usage(format!("failed to run ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "ps {}: {}{}",
            args.join(" "),
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    filter(&text, pids)
}

/// Keep the header and the rows whose PID field is one of `pids`.
pub fn filter(ps_output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = ps_output.lines();
    let header = lines.next().unwrap_or_default();
    let pid_index = header
        .split_whitespace()
        .position(|title| title == "PID")
        .ok_or_else(|| Error::Usage("couldn't find PID field in ps output".into()))?;
    let mut table = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let field = line.split_whitespace().nth(pid_index).unwrap_or_default();
        let pid: i32 = field
            .parse()
            .map_err(|_| Error::Usage(format!("unable to parse pid: {field:?}")))?;
        if pids.contains(&pid) {
            table.push_str(line);
            table.push('\n');
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_are_kept_by_the_pid_column() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                  root           1       0  0 05:00 ?        00:00:01 /sbin/init\n\
                  root          42       1  0 05:00 ?        00:00:00 sleep 9\n";
        let got = super::filter(ps, &[42]).unwrap();
        assert_eq!(got.lines().count(), 2, "{got}");
        assert!(got.lines().nth(1).unwrap().contains("sleep 9"));
        assert!(super::filter("USER CMD\n", &[1]).is_err());
    }
}
