//! Lifecycle through the CLI: run/create/start/kill/delete, state JSON, pid files, list,
//! and the file descriptors a container gets.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A workload that exits 0 on SIGTERM (pid 1 ignores signals it has no handler for); it
/// prints "ready" once the handler is in place.
const TRAP_TERM: &str = "trap 'exit 0' TERM; echo ready; sleep 1000 & wait";

#[test]
fn run_returns_workload_exit_code() {
    let mut c = Ctx::new("exit0");
    c.args(&["true"]);
    assert_eq!(c.run().code, Some(0));
    c.assert_nothing_left(&c.id);

    let mut c = Ctx::new("exit3");
    c.sh("exit 3");
    let o = c.run();
    assert_eq!(o.code, Some(3), "{o}");
    c.assert_nothing_left(&c.id);
}

/// `run --keep` (runc's flag): the exit code as usual, but the container stays, stopped,
/// with its cgroup, until `delete`, which runs the poststop hooks then.
#[test]
fn run_keep_leaves_a_stopped_container_for_delete() {
    let mut c = Ctx::new("keep");
    let marker = c.scratch("poststop-ran");
    c.config["hooks"] = json!({"poststop": [{"path": "/bin/sh",
        "args": ["sh", "-c", format!("touch {}", marker.display())]}]});
    c.sh("exit 3");
    c.write_config();
    let b = c.bundle();
    let o = c.rt(&[
        "run",
        "--keep",
        "--bundle",
        b.to_str().expect("utf-8"),
        &c.id,
    ]);
    assert_eq!(o.code, Some(3), "{o}");
    let st = c.state(&c.id);
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(
        !cgroup_dirs_for(&c.id).is_empty(),
        "the cgroup went before delete"
    );
    assert!(!marker.exists(), "poststop ran before delete");
    c.rt(&["delete", &c.id]).ok();
    assert!(marker.exists(), "poststop did not run at delete");
    c.assert_nothing_left(&c.id);
}

#[test]
fn run_of_killed_init_returns_137() {
    let mut c = Ctx::new("exit137");
    c.args(&["sleep", "1000"]);
    c.write_config();
    std::thread::scope(|s| {
        let runner = s.spawn(|| c.run());
        // `run` has no pid file; poll `state` until the container is up.
        let start = std::time::Instant::now();
        loop {
            let o = c.rt(&["state", &c.id]);
            if o.success() && o.stdout.contains("\"running\"") {
                break;
            }
            assert!(start.elapsed() < WAIT, "container never ran: {o}");
            std::thread::sleep(Duration::from_millis(10));
        }
        c.rt(&["kill", &c.id, "KILL"]).ok();
        let o = runner.join().expect("runner thread");
        // runc reports a signal death as 128 + signal.
        assert_eq!(o.code, Some(137), "{o}");
    });
    c.assert_nothing_left(&c.id);
}

#[test]
fn stdout_and_stderr_pass_through() {
    let mut c = Ctx::new("stdio");
    c.sh("echo to-out; echo to-err >&2");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "to-out\n", "{o}");
    assert!(o.stderr.contains("to-err\n"), "{o}");
    assert!(!o.stdout.contains("to-err"), "{o}");
}

#[test]
fn state_fields_and_transitions() {
    let mut c = Ctx::new("state");
    c.args(&["sleep", "1000"]);
    c.config["annotations"] = json!({"org.capsa.test": "yes"});
    c.create();

    let s = c.state(&c.id);
    assert_eq!(s["id"], json!(c.id), "{s}");
    assert_eq!(s["status"], "created", "{s}");
    assert!(
        s["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{s}"
    );
    let pid = s["pid"].as_u64().expect("pid is a number");
    assert!(pid > 1, "{s}");
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "pid {pid} not alive"
    );
    let bundle = c.bundle();
    assert_eq!(
        s["bundle"],
        json!(bundle.to_str()),
        "bundle must be absolute: {s}"
    );
    assert_eq!(
        s["rootfs"],
        json!(c.rootfs().to_str()),
        "rootfs must be absolute: {s}"
    );
    let created = s["created"].as_str().expect("created is a string");
    assert!(
        looks_rfc3339(created),
        "created {created:?} is not RFC 3339"
    );
    assert!(s["owner"].is_string(), "owner: {s}");
    assert_eq!(s["annotations"], json!({"org.capsa.test": "yes"}), "{s}");

    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "running", WAIT);
    let s2 = c.state(&c.id);
    assert_eq!(s2["pid"], s["pid"], "pid changed across start");
    assert_eq!(s2["created"], s["created"], "created changed across start");

    c.rt(&["kill", &c.id, "KILL"]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    let s3 = c.state(&c.id);
    // runc reports pid 0 once the init is gone.
    assert_eq!(s3["pid"], json!(0), "{s3}");
    assert_eq!(s3["created"], s["created"], "{s3}");
    c.rt(&["delete", &c.id]).ok();
    c.rt(&["state", &c.id])
        .fails_with("container does not exist");
    c.assert_nothing_left(&c.id);
}

#[test]
fn state_follows_an_init_killed_behind_the_runtimes_back() {
    // The status comes from the kernel, not from what the runtime last wrote.
    let mut c = Ctx::new("extkill");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let pid = c.state(&c.id)["pid"].as_i64().expect("pid") as i32;
    // SAFETY: kill has no memory-safety preconditions; pid is the container's init,
    // which this test created.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    c.wait_status(&c.id, "stopped", WAIT);
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

#[test]
fn workload_waits_for_start() {
    let mut c = Ctx::new("gate");
    c.sh("echo started; sleep 1000");
    let out = c.create_capturing();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read_lossy(&out), "", "the workload ran before start");
    assert_eq!(c.status(&c.id), "created");
    c.rt(&["start", &c.id]).ok();
    wait_for_text(&out, "started\n", WAIT);
    assert_eq!(c.status(&c.id), "running");
}

#[test]
fn workload_exit_makes_container_stopped() {
    let mut c = Ctx::new("exitstop");
    c.args(&["true"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

#[test]
fn kill_of_created_container() {
    let mut c = Ctx::new("killcreated");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["kill", &c.id, "KILL"]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// `kill` with the default signal (SIGTERM) ends a created container, as with runc, whose
/// Go init handles every signal: the waiting init, pid 1 of its pid namespace, ignored it
/// for want of a handler (the container stayed "created").
#[test]
fn kill_term_of_created_container() {
    let mut c = Ctx::new("termcreated");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["kill", &c.id]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// `run --detach` of `sleep 1000`.
fn run_sleeper(tag: &str) -> Ctx {
    let mut c = Ctx::new(tag);
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    c.rt(&[
        "run",
        "--detach",
        "--bundle",
        b.to_str().expect("utf-8"),
        &c.id,
    ])
    .ok();
    c
}

#[test]
fn run_detach_leaves_it_running() {
    let c = run_sleeper("detach");
    assert_eq!(c.status(&c.id), "running");
    c.rt(&["delete", "--force", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// Engines run exec probes back to back: every one must work. (The exec'd
/// process's `Ready` could overtake its stage 1's report of its pid, which
/// capsa once took for a protocol error, a few times in a hundred.)
#[test]
fn exec_repeatedly_into_a_running_container() {
    let c = run_sleeper("execrep");
    for i in 0..60 {
        let o = c.rt(&["exec", &c.id, "/bin/true"]);
        assert!(o.success(), "exec #{i} failed: {o}");
    }
    c.rt(&["delete", "--force", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// `2026-11-23T14:09:46.427196631Z` or with an offset: date, `T`, time, zone.
fn looks_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let zone_ok = s.ends_with('Z') || s.rfind(['+', '-']).is_some_and(|i| i >= 19);
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && zone_ok
}

#[test]
fn rfc3339_checker() {
    assert!(looks_rfc3339("2026-11-23T14:09:46.427196631Z"));
    assert!(looks_rfc3339("2026-11-23T14:09:46+01:00"));
    assert!(!looks_rfc3339("2026-11-23 14:09:46Z"));
    assert!(!looks_rfc3339("1700000000"));
}

#[test]
fn kill_accepts_name_prefixed_name_and_number() {
    // "--signal": the OCI runtime CLI document's form (capsa takes it too).
    let forms: &[&str] = if is_capsa() {
        &["TERM", "SIGTERM", "15", "", "--signal"]
    } else {
        &["TERM", "SIGTERM", "15", ""]
    };
    for &sig in forms {
        let mut c = Ctx::new("killsig");
        c.sh(TRAP_TERM);
        let out = c.create_capturing();
        c.rt(&["start", &c.id]).ok();
        wait_for_text(&out, "ready\n", WAIT);
        if sig.is_empty() {
            // runc's default signal is SIGTERM.
            c.rt(&["kill", &c.id]).ok();
        } else if sig == "--signal" {
            c.rt(&["kill", "--signal", "TERM", &c.id]).ok();
        } else {
            c.rt(&["kill", &c.id, sig]).ok();
        }
        c.wait_status(&c.id, "stopped", WAIT);
        c.rt(&["delete", &c.id]).ok();
        c.assert_nothing_left(&c.id);
    }
}

#[test]
fn kill_of_unknown_signal_fails() {
    let mut c = Ctx::new("killbad");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["kill", &c.id, "NOTASIGNAL"])
        .fails_with("NOTASIGNAL");
    assert_eq!(c.status(&c.id), "created");
}

#[test]
fn kill_takes_every_kernel_signal() {
    // Issue 11 item 5: real-time signals by number and by name (RTMIN+n, RTMAX-n, with or
    // without SIG), and 0 (the kernel's liveness probe: succeeds, changes nothing). runc
    // 1.1 knows only the 31 standard names, so the names are a capsa check.
    let mut c = Ctx::new("killrt");
    c.sh("for n in 35 37 63; do trap \"echo got$n\" $n; done; \
         echo ready; while :; do sleep 0.05; done");
    let out = c.create_capturing();
    c.rt(&["start", &c.id]).ok();
    wait_for_text(&out, "ready\n", WAIT);
    c.rt(&["kill", &c.id, "0"]).ok();
    c.rt(&["kill", &c.id, "37"]).ok();
    wait_for_text(&out, "got37\n", WAIT);
    if is_capsa() {
        // glibc's SIGRTMIN is 34 (32 and 33 are its own), SIGRTMAX 64.
        c.rt(&["kill", &c.id, "SIGRTMIN+1"]).ok();
        wait_for_text(&out, "got35\n", WAIT);
        c.rt(&["kill", &c.id, "rtmax-1"]).ok();
        wait_for_text(&out, "got63\n", WAIT);
        c.rt(&["kill", &c.id, "RTMIN+99"])
            .fails_with("unknown signal");
        c.rt(&["kill", &c.id, "65"]).fails_with("unknown signal");
    }
    assert_eq!(c.status(&c.id), "running");
    c.rt(&["kill", "--all", &c.id, "KILL"]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    // 0 on a stopped container: "container not running", as runc says.
    c.rt(&["kill", &c.id, "0"]).fails_with("not running");
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// A foreground `run` forwards every signal it gets to the init, the real-time ones too.
#[test]
fn run_forwards_real_time_signals() {
    let mut c = Ctx::new("runrt");
    c.sh("trap 'echo got37' 37; trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done");
    c.write_config();
    let out = c.scratch("run-out");
    let file = fs::File::create(&out).expect("create output file");
    let root = c.root();
    let bundle = c.bundle();
    let mut child = std::process::Command::new(runtime())
        .args(["--root", root.to_str().expect("utf-8"), "run", "--bundle"])
        .args([bundle.to_str().expect("utf-8"), &c.id])
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .spawn()
        .expect("spawn run");
    wait_for_text(&out, "ready\n", WAIT);
    let pid = child.id() as i32;
    // SAFETY: kill(2) takes plain integers; pid is the runtime we just spawned.
    assert_eq!(unsafe { libc::kill(pid, 37) }, 0);
    wait_for_text(&out, "got37\n", WAIT);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait run") {
            break st;
        }
        assert!(start.elapsed() < WAIT, "run did not end after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(3));
    c.assert_nothing_left(&c.id);
}

#[test]
fn kill_all_reaches_every_process() {
    // Without a pid namespace, the death of init does not take its children with it, so
    // only `--all` can reach the background sleep.
    let mut c = Ctx::new("killall");
    c.remove_ns("pid");
    c.sh("sleep 1000 & echo child=$!; sleep 1000");
    let out = c.create_capturing();
    c.rt(&["start", &c.id]).ok();
    let text = wait_for_text(&out, "\n", WAIT);
    let child: u32 = text
        .trim()
        .strip_prefix("child=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("workload printed {text:?}"));
    assert!(alive(child), "child {child} not running");
    c.rt(&["kill", "--all", &c.id, "KILL"]).ok();
    c.wait_status(&c.id, "stopped", WAIT);
    let start = std::time::Instant::now();
    while alive(child) {
        assert!(
            start.elapsed() < WAIT,
            "kill --all left child {child} alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// runc's `kill --all` of a stopped container signals what is left in its
/// cgroup: with a shared pid namespace (a Kubernetes pod) the init's
/// children outlive it, and containerd's shim relies on reaching them.
#[test]
fn kill_all_of_a_stopped_container_reaches_what_is_left() {
    let mut c = Ctx::new("killallstopped");
    c.remove_ns("pid");
    c.sh("sleep 1000 & echo child=$!");
    let out = c.create_capturing();
    c.rt(&["start", &c.id]).ok();
    let text = wait_for_text(&out, "\n", WAIT);
    let child: u32 = text
        .trim()
        .strip_prefix("child=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("workload printed {text:?}"));
    c.wait_status(&c.id, "stopped", WAIT);
    assert!(alive(child), "child {child} not running");
    // Only SIGKILL goes to the cgroup without --all (runc >= 1.2, see
    // tests/runc_compat.rs); another signal has no init to reach.
    c.rt(&["kill", &c.id, "TERM"]).fails_with("not running");
    c.rt(&["kill", "--all", &c.id, "KILL"]).ok();
    let start = std::time::Instant::now();
    while alive(child) {
        assert!(
            start.elapsed() < WAIT,
            "kill --all of the stopped container left child {child} alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    c.rt(&["delete", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn delete_force_kills_a_running_container() {
    let mut c = Ctx::new("delforce");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let pid = c.state(&c.id)["pid"].as_u64().expect("pid") as u32;
    c.rt(&["delete", &c.id]).fails_with("is not stopped");
    assert_eq!(c.status(&c.id), "running");
    c.rt(&["delete", "--force", &c.id]).ok();
    c.rt(&["state", &c.id])
        .fails_with("container does not exist");
    assert!(!alive(pid), "init {pid} survived delete --force");
    c.assert_nothing_left(&c.id);
}

#[test]
fn delete_of_created_container_succeeds() {
    // runc deletes a container that was created but never started, killing its init.
    let mut c = Ctx::new("delcreated");
    c.args(&["sleep", "1000"]);
    c.create();
    let pid = c.state(&c.id)["pid"].as_u64().expect("pid") as u32;
    c.rt(&["delete", &c.id]).ok();
    assert!(!alive(pid), "init {pid} survived delete");
    c.assert_nothing_left(&c.id);
}

#[test]
fn delete_force_of_missing_container_succeeds() {
    let c = Ctx::new("delmissing");
    let o = c.rt(&["delete", "--force", &c.id]);
    o.ok();
    c.rt(&["delete", &c.id])
        .fails_with("container does not exist");
}

#[test]
fn pid_file_holds_digits_without_newline() {
    let mut c = Ctx::new("pidfile");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let pf = c.scratch("ct.pid");
    c.create_id(&c.id, &["--pid-file", pf.to_str().expect("utf-8")])
        .ok();
    let text = fs::read_to_string(&pf).expect("pid file written");
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
        "pid file {text:?}"
    );
    assert_eq!(
        json!(text.parse::<u64>().expect("digits")),
        c.state(&c.id)["pid"]
    );
}

#[test]
fn list_table_json_and_quiet() {
    let mut c = Ctx::new("list");
    c.args(&["sleep", "1000"]);
    c.create();
    let pid = c.state(&c.id)["pid"].as_u64().expect("pid");

    let o = c.rt(&["list"]);
    o.ok();
    let mut lines = o.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{o}"
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row.len(), 6, "{o}");
    assert_eq!(row[0], c.id);
    assert_eq!(row[1], pid.to_string());
    assert_eq!(row[2], "created");
    assert_eq!(row[3], c.bundle().to_str().expect("utf-8"));
    assert!(looks_rfc3339(row[4]), "{o}");
    assert_eq!(row[5], "root", "owner of a root-made container: {o}");
    assert!(lines.next().is_none(), "one container, one row: {o}");

    let o = c.rt(&["list", "--format", "json"]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("list json");
    let arr = v.as_array().expect("a JSON array");
    assert_eq!(arr.len(), 1, "{o}");
    assert_eq!(arr[0]["id"], json!(c.id));
    assert_eq!(arr[0]["status"], "created");
    assert_eq!(arr[0]["pid"], json!(pid));
    // As the table: runc's list JSON names the owner (its `state` does not).
    assert_eq!(arr[0]["owner"], "root", "{o}");

    let o = c.rt(&["list", "-q"]);
    o.ok();
    assert_eq!(o.stdout, format!("{}\n", c.id));
}

#[test]
fn list_of_empty_root() {
    let c = Ctx::new("listempty");
    let o = c.rt(&["list"]);
    o.ok();
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{o}"
    );
    let o = c.rt(&["list", "-q"]);
    o.ok();
    assert_eq!(o.stdout, "");
    // runc prints `null` for no containers in JSON.
    let o = c.rt(&["list", "--format", "json"]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{o}"
    );
}

#[test]
fn preserve_fds_passes_fd_3() {
    let mut c = Ctx::new("preserve");
    let f = c.scratch("payload");
    fs::write(&f, "preserved-payload").expect("write payload");
    let file = fs::File::open(&f).expect("open payload");
    c.sh("cat /proc/self/fd/3");
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            b.to_str().expect("utf-8"),
            &c.id,
        ],
        |cmd| pass_fd_as(cmd, file.as_raw_fd(), 3),
    );
    o.ok();
    assert_eq!(o.stdout, "preserved-payload", "{o}");
}

#[test]
fn stray_fd_3_does_not_reach_the_container() {
    let mut c = Ctx::new("strayfd");
    let f = c.scratch("secret-marker");
    fs::write(&f, "x").expect("write marker");
    let file = fs::File::open(&f).expect("open marker");
    // `ls` lists its own descriptors: what the workload inherited, plus the one it opens
    // on /proc/self/fd itself.
    c.args(&["ls", "-l", "/proc/self/fd/"]);
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        |cmd| pass_fd_as(cmd, file.as_raw_fd(), 3),
    );
    o.ok();
    assert!(!o.stdout.contains("secret-marker"), "fd leaked: {o}");
    for line in o.stdout.lines().filter(|l| l.contains(" -> ")) {
        let (left, target) = line.split_once(" -> ").unwrap_or_default();
        let fd = left.split_whitespace().last().unwrap_or("");
        if !["0", "1", "2"].contains(&fd) {
            assert!(
                target.starts_with("/proc/") && target.ends_with("/fd"),
                "fd {fd} -> {target} reached the workload: {o}"
            );
        }
    }
}

/// linux.resources.memory.kernel is deprecated (the v1 kmem limit enforces
/// nothing since Linux 5.16, v2 never had one): runc ignores it with a warning, and
/// Docker still sends it for --kernel-memory, so the container must run.
#[test]
fn deprecated_kernel_memory_limit_is_ignored() {
    let mut c = Ctx::new("kmem");
    c.config["linux"]["resources"]["memory"] = serde_json::json!({"kernel": 67108864});
    c.args(&["sh", "-c", "echo ran"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "ran\n", "{o}");
    c.assert_nothing_left(&c.id);
}

/// state.json is replaced by rename, so it can only be unreadable after a host
/// crash took the container with it: `delete --force` of a file written
/// before the boot must still succeed and leave no state directory (capsa's
/// recovery; runc refuses a corrupt file).
#[test]
fn delete_force_of_a_container_with_unreadable_state() {
    if skip_unless_capsa("recovery from a state.json emptied by a crash") {
        return;
    }
    let mut c = Ctx::new("delcorrupt");
    c.args(&["sleep", "1000"]);
    c.write_config();
    let b = c.bundle();
    // No cgroup: after a crash there would be none left to find.
    c.rt(&[
        "--cgroup-manager",
        "disabled",
        "create",
        "--bundle",
        b.to_str().expect("utf-8"),
        &c.id,
    ])
    .ok();
    let pid = c.state(&c.id)["pid"].as_i64().expect("pid") as i32;
    // The host "crashed": the init is gone and state.json is empty.
    // SAFETY: kill(2) takes plain integers.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !alive(pid as u32)
    });
    assert!(gone, "init {pid} did not die");
    let state_file = c.root().join(&c.id).join("state.json");
    fs::write(&state_file, b"").expect("truncate state.json");
    set_mtime_before_boot(&state_file);
    c.rt(&["state", &c.id]).fails_with("state.json");
    c.rt(&["delete", &c.id]).fails_with("state.json");
    c.rt(&["delete", "--force", &c.id]).ok();
    assert!(!c.root().join(&c.id).exists(), "state dir left behind");
    c.rt(&["state", &c.id])
        .fails_with("container does not exist");
}

/// Back-date `file` to an hour before this boot (/proc/stat btime).
fn set_mtime_before_boot(file: &std::path::Path) {
    let stat = fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        .expect("btime in /proc/stat");
    let o = std::process::Command::new("touch")
        .arg("-d")
        .arg(format!("@{}", btime - 3600))
        .arg(file)
        .status()
        .expect("run touch");
    assert!(o.success(), "touch -d failed");
}

/// A state.json made unreadable while the container runs (a hand edit, a
/// bug): nothing says where its processes and cgroups are, so `delete
/// --force` fails, says so, and keeps the state; the init keeps running.
#[test]
fn delete_force_keeps_a_running_container_whose_state_is_unreadable() {
    if skip_unless_capsa("capsa's rule for an unreadable state.json") {
        return;
    }
    let mut c = Ctx::new("delcorruptlive");
    c.args(&["sleep", "1000"]);
    c.create();
    c.rt(&["start", &c.id]).ok();
    let pid = c.state(&c.id)["pid"].as_u64().expect("pid") as u32;
    let state_file = c.root().join(&c.id).join("state.json");
    let good = fs::read(&state_file).expect("read state.json");
    fs::write(&state_file, &good[..good.len() / 2]).expect("truncate state.json");
    c.rt(&["delete", "--force", &c.id])
        .fails_with("nothing was deleted");
    assert!(alive(pid), "init {pid} was lost track of");
    assert!(state_file.exists(), "state.json was removed");
    // Still there, and `list` says it cannot show it.
    let o = c.rt(&["list", "-q"]);
    o.ok();
    assert!(o.stderr.contains(&c.id), "list is silent about it: {o}");
    // Repaired, the container is deleted as usual.
    fs::write(&state_file, &good).expect("restore state.json");
    c.rt(&["delete", "--force", &c.id]).ok();
    assert!(!alive(pid), "init {pid} survived delete --force");
    c.assert_nothing_left(&c.id);
}

/// `kill --all` of a container with its own pid namespace reaches processes
/// in pid namespaces the workload nested inside it: they are the
/// container's too (only what is outside its namespace is not).
#[test]
fn kill_all_reaches_a_nested_pid_namespace() {
    let mut c = Ctx::new("killallnested");
    let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set] = caps.clone();
    }
    // The nested sleep is pid 2 of its namespace, so SIGTERM kills it
    // (the namespaces' pid 1 shells ignore it).
    c.sh("unshare -p -f sh -c 'sleep 1000 & wait' & wait");
    c.create();
    c.rt(&["start", &c.id]).ok();
    let nested = || -> Vec<u32> {
        procs_rooted_at(&c.rootfs())
            .into_iter()
            .filter(|p| {
                let status = fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
                let cmd = fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
                status_field(&status, "NSpid").is_some_and(|f| f.split_whitespace().count() == 3)
                    && cmd.starts_with("sleep")
            })
            .collect()
    };
    let start = std::time::Instant::now();
    let mut found = nested();
    while found.is_empty() {
        assert!(start.elapsed() < WAIT, "no sleep in a nested pid namespace");
        std::thread::sleep(Duration::from_millis(10));
        found = nested();
    }
    c.rt(&["kill", "--all", &c.id, "TERM"]).ok();
    let start = std::time::Instant::now();
    while found.iter().any(|&p| alive(p)) {
        assert!(
            start.elapsed() < WAIT,
            "kill --all TERM left the nested sleep {found:?} alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    c.rt(&["delete", "--force", &c.id]).ok();
    c.assert_nothing_left(&c.id);
}
