//! `ps`: the container's processes. JSON is the array of host pids that
//! containerd parses; the table is `ps` (default `-ef`) filtered to those
//! pids, as runc does it.

use std::process::Command;

use super::Runtime;
use crate::error::{Error, Result};
use crate::state::ContainerDir;

impl Runtime {
    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        if st.cgroup.dirs.is_empty() {
            return Ok(super::nocgroup::pids(&st));
        }
        Ok(st.cgroup.pids()?)
    }

    /// The text `ps` prints: JSON (`null` when empty, as runc's Go encoder
    /// prints an empty list) or the filtered table.
    pub fn ps(&self, id: &str, json: bool, ps_args: &[String]) -> Result<String> {
        let pids = self.pids(id)?;
        if json {
            if pids.is_empty() {
                return Ok("null".into());
            }
            return serde_json::to_string(&pids)
                .map_err(|e| Error::Lifecycle(format!("encoding pids: {e}")));
        }
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| Error::Lifecycle(format!("running ps {}: {e}", args.join(" "))))?;
        if !out.status.success() {
            return Err(Error::Lifecycle(format!(
                "ps {}: {} ({})",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        filter_table(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

/// Keep the header and the lines whose PID column is one of `pids`.
pub fn filter_table(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|w| w == "PID")
        .ok_or_else(|| Error::Lifecycle("couldn't find PID field in ps output".into()))?;
    let mut out = String::from(header);
    out.push('\n');
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_filtered_by_pid_column() {
        let ps = "UID        PID  PPID  C STIME TTY          TIME CMD\n\
                  root         1     0  0 10:00 ?        00:00:01 init\n\
                  root      1111     1  0 14:30 ?        00:00:00 sleep 1000\n\
                  root      1112  1111  0 14:30 ?        00:00:00 sh\n";
        let t = filter_table(ps, &[1111, 4]).unwrap_or_default();
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.lines().nth(1).is_some_and(|l| l.contains("sleep 1000")));
        assert!(filter_table("USER COMMAND\n", &[]).is_err());
    }
}
