//! What a created-but-not-started container holds on the host: its waiting
//! init gives capsa's own code pages back (they stay in the page cache), and
//! still runs the workload once started, also under a seccomp profile that
//! forbids the calls that do it.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::time::Duration;

/// KiB of the init's resident, non-writable mappings of its own executable
/// (its code and read-only data).
fn resident_own_code_kib(pid: i64) -> u64 {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("readlink exe");
    let exe = exe.to_string_lossy().into_owned();
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read smaps");
    let mut total = 0;
    let mut counting = false;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            let perms = fields.get(1).copied().unwrap_or("");
            counting = !perms.contains('w') && fields.get(5).copied() == Some(exe.as_str());
        } else if counting && fields.first() == Some(&"Rss:") {
            total += fields
                .get(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn init_pid(c: &Ctx) -> i64 {
    c.state(&c.id)["pid"].as_i64().expect("pid in state")
}

#[test]
fn waiting_init_does_not_hold_capsas_code() {
    if skip_unless_capsa("measures capsa's own executable in its init") {
        return;
    }
    let mut c = Ctx::new("idlecode");
    c.sh("echo started");
    let out = c.create_capturing();
    let kib = resident_own_code_kib(init_pid(&c));
    // Without the drop a release init holds ~1.6 MiB of it, a debug one more;
    // with it, the few 64 KiB fault-around windows it runs until it blocks.
    assert!(
        kib < 1024,
        "the waiting init holds {kib} KiB of capsa's code"
    );
    c.rt(&["start", &c.id]).ok();
    wait_for_text(&out, "started\n", Duration::from_secs(10));
}

#[test]
fn seccomp_killing_madvise_does_not_kill_the_waiting_init() {
    let mut c = Ctx::new("idleseccomp");
    c.sh("echo started");
    c.config["process"]["noNewPrivileges"] = json!(true);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let out = c.create_capturing();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.status(&c.id), "created");
    c.rt(&["start", &c.id]).ok();
    wait_for_text(&out, "started\n", Duration::from_secs(10));
}
