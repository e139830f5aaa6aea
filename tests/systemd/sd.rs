//! What the systemd VM lane's test files share: whether this is a systemd boot, and
//! systemd's and the kernel's view of units and cgroups.

#![allow(dead_code)] // each test file uses a different part

use crate::common::skip;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// systemd is PID 1 with its runtime dir, and the system bus is up.
pub fn under_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir() && Path::new("/run/dbus/system_bus_socket").exists()
}

/// Skip (counted) unless under systemd; true when skipping.
pub fn skip_without_systemd() -> bool {
    if under_systemd() {
        return false;
    }
    skip("not booted with systemd and a system bus (runs in the systemd VM lane)");
    true
}

pub fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `systemctl show UNIT -p P...` as a map (a repeated property keeps its last value).
pub fn show(unit: &str, props: &[&str]) -> HashMap<String, String> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", unit]);
    for p in props {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("run systemctl show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn prop(unit: &str, name: &str) -> String {
    show(unit, &[name]).remove(name).unwrap_or_default()
}

/// Every unit systemd knows (loaded, any state) whose name contains `needle`.
pub fn units_naming(needle: &str) -> Vec<String> {
    let out = Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .output()
        .expect("run systemctl list-units");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Cgroup directories anywhere under /sys/fs/cgroup whose name contains `needle`.
pub fn cgroup_dirs_naming(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, needle, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 6, &mut out);
    out
}

/// Nothing of container `id` left in systemd or the cgroup trees.
#[track_caller]
pub fn assert_no_unit_no_cgroup(id: &str) {
    let units = units_naming(id);
    assert!(units.is_empty(), "units left for {id}: {units:?}");
    let dirs = cgroup_dirs_naming(id);
    assert!(dirs.is_empty(), "cgroups left for {id}: {dirs:?}");
}

/// The unified (v2) cgroup path of `pid` ("0::" line), or systemd's named hierarchy on
/// a legacy layout.
pub fn proc_cgroup(pid: u32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    let line = |pre: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(pre))
            .map(str::to_owned)
    };
    line("0::")
        .filter(|p| p != "/")
        .or_else(|| line("1:name=systemd:"))
        .unwrap_or_default()
}

/// The directory of cgroup `rel` (a ControlGroup value) for `controller` ("" = unified
/// on v2; on v1 the controller's hierarchy).
pub fn cg_dir(controller: &str, rel: &str) -> PathBuf {
    let base = if v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    };
    base.join(rel.trim_start_matches('/'))
}

#[track_caller]
pub fn read_cg(controller: &str, rel: &str, file: &str) -> String {
    let p = cg_dir(controller, rel).join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Poll `f` until it holds, or panic with `what` after 10 s.
#[track_caller]
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A progress line straight to fd 2. libtest captures `eprintln!` inside a test, so a guest
/// killed at VM_TIMEOUT would otherwise show nothing of how far the test got.
pub fn progress(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Turns a hang into a failure that shows the guest's state. If the guard lives longer than
/// `limit`, a thread prints the processes with their kernel wait channels (and the kernel
/// stacks of those in D state or of a runtime), systemd's jobs and container units, the
/// journal's tail and the tails of the logs given to `watch`, then exits the test binary
/// with 124. Every dump command is bounded, so the dump itself cannot hang.
pub struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
    logs: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

impl Watchdog {
    pub fn start(what: &str, limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<PathBuf>::new()));
        let (what, shared) = (what.to_owned(), logs.clone());
        std::thread::spawn(move || {
            if rx.recv_timeout(limit) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return; // the guard was dropped: the test ended in time
            }
            progress(&format!(
                "WATCHDOG: {what} still running after {limit:?}; the guest's state:"
            ));
            let files = shared.lock().map(|l| l.clone()).unwrap_or_default();
            let mut script = String::from(
                "ps -eo pid,ppid,stat,wchan:32,etime,args --forest; \
                 for d in /proc/[0-9]*; do \
                   st=$(awk '{print $3}' $d/stat 2>/dev/null); \
                   if [ \"$st\" = D ] || grep -qaE 'capsa|runc|shim' $d/cmdline 2>/dev/null; then \
                     echo \"== $d ($st) $(tr '\\0' ' ' < $d/cmdline 2>/dev/null | cut -c1-120)\"; \
                     cat $d/stack 2>/dev/null; fi; done; \
                 systemctl list-jobs --no-pager; \
                 systemctl list-units --all --no-pager --plain --no-legend | grep -E 'scope|slice|docker|containerd'; \
                 journalctl -b -n 200 --no-pager; ",
            );
            for f in files {
                script.push_str(&format!(
                    "echo '==> {0} <=='; tail -n 80 '{0}'; ",
                    f.display()
                ));
            }
            let _ = Command::new("timeout")
                .args(["60", "sh", "-c", &script])
                .stdin(std::process::Stdio::null())
                .status();
            progress("WATCHDOG: exiting the test binary (124)");
            std::process::exit(124);
        });
        Watchdog { _cancel: tx, logs }
    }

    /// Include `log`'s tail in a dump.
    pub fn watch(&self, log: &Path) {
        if let Ok(mut l) = self.logs.lock() {
            l.push(log.to_owned());
        }
    }
}
