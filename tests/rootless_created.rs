//! Rootless containers that are created and not yet started, as the unprivileged test user
//! (tests/common/rootless.rs): `exec` into one (as runc allows), what a process in the
//! container can reach through the waiting init (it waits dumpable for that, see
//! src/process/idle.rs), and the other lifecycle verbs. Every test runs against runc too
//! (CAPSA_TEST_RUNTIME=/usr/sbin/runc); where the two differ the test says so.

mod common;

use common::*;
use std::time::Duration;

fn state_of(r: &Rootless) -> serde_json::Value {
    let o = r.rt(&["state", &r.ctx.id]);
    o.ok();
    serde_json::from_str(&o.stdout).expect("state json")
}

fn pid_of(r: &Rootless) -> i64 {
    state_of(r)["pid"].as_i64().expect("pid")
}

fn status_of(r: &Rootless) -> String {
    state_of(r)["status"].as_str().unwrap_or("").to_owned()
}

fn wait_stopped(r: &Rootless) {
    let start = std::time::Instant::now();
    while status_of(r) != "stopped" {
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The init's command name, from /proc (empty once it is gone).
fn comm_of(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// runc allows `exec` into a created container (the process joins the waiting init's
/// namespaces); so does capsa as the user, and `start` runs the workload afterwards.
#[test]
fn exec_into_a_created_container() {
    let Some(mut r) = Rootless::new("rl-execc") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.create().ok();
    let id = r.ctx.id.clone();
    let o = r.rt(&["exec", &id, "sh", "-c", "echo exec-in-created; id -u"]);
    assert_eq!(o.ok().stdout, "exec-in-created\n0\n", "{o}");
    assert_eq!(status_of(&r), "created");
    r.rt(&["start", &id]).ok();
    assert_eq!(status_of(&r), "running");
    let pid = pid_of(&r);
    let start = std::time::Instant::now();
    while comm_of(pid) != "sleep" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            comm_of(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    r.rt(&["delete", "--force", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}

/// What a process in the container tries against the waiting init (pid 1 of the
/// container's pid namespace) before `start`; prints `fds:N` (how many of its fds it could
/// resolve) and a word for each thing it reached: a directory fd other than the container's
/// own / and /proc (a host directory: a way out), a regular file fd or the init's exe it
/// could open for writing (CVE-2019-5736), the runtime's environment, the init's memory.
const INIT_ATTACK: &str = r#"n=0; r=""
for f in /proc/1/fd/*; do
  readlink "$f" >/dev/null 2>&1 || continue
  n=$((n+1))
  if [ -d "$f" ] && ! [ "$f" -ef /proc ] && ! [ "$f" -ef / ]; then r="$r DIR:$(readlink "$f")"; fi
  if [ -f "$f" ] && (: >> "$f") 2>/dev/null; then r="$r WROTE:$(readlink "$f")"; fi
done
for l in root cwd; do
  if [ -d /proc/1/$l/ ] && ! [ /proc/1/$l -ef / ]; then r="$r $l:$(readlink /proc/1/$l)"; fi
done
(: >> /proc/1/exe) 2>/dev/null && r="$r WROTE-EXE"
grep -q capsa-secret /proc/1/environ 2>/dev/null && r="$r ENV"
(exec 3</proc/1/mem) 2>/dev/null && r="$r MEM"
echo "fds:$n$r""#;

/// To let the user's `exec` join a created container, the rootless init waits for `start`
/// dumpable (process/idle.rs). Processes exec'd into the container then try to reach the
/// host through it: with the config's capabilities the kernel refuses them /proc/1/fd,
/// environ and mem outright; with every capability they see its fds, and none leads out
/// (the state dir and the other host fds are closed, the binary is root's, the runtime's
/// environment is wiped). Seen failing: with the state dir fd kept open, the full-caps
/// attack printed `DIR:/tmp/capsa-it-.../root/<id>`; with the environment kept, `ENV`.
/// Opening /proc/1/mem is allowed to the full-caps process (as with runc, whose rootless
/// init is dumpable throughout): such a process may already do all the init may, but
/// for the filters the init has yet to apply.
#[test]
fn a_created_init_exposes_nothing_to_the_container() {
    let Some(mut r) = Rootless::new("rl-initx") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.ctx.write_config();
    let id = r.ctx.id.clone();
    let b = r.ctx.bundle();
    let (uid, gid, xdg) = (r.user.uid, r.user.gid, r.xdg());
    r.ctx
        .rt_with(
            &["create", "--bundle", b.to_str().expect("utf-8"), &id],
            move |cmd| {
                use std::os::unix::process::CommandExt;
                cmd.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", xdg);
                cmd.env("CAPSA_TEST_TOKEN", "capsa-secret-1234");
            },
        )
        .ok();
    let o = r.rt(&["exec", &id, "sh", "-c", INIT_ATTACK]);
    if is_capsa() {
        assert_eq!(o.ok().stdout.trim(), "fds:0", "{o}");
    } else {
        // runc 1.1 applies the process's capabilities before it waits: a process with
        // the same ones resolves its fds and opens its memory ("fds:7 MEM").
        o.ok();
    }
    let mut args = vec!["exec"];
    // Every capability of a 6.x kernel: an exec'd process holding them all passes
    // the kernel's ptrace check on the init (its capabilities must cover the init's).
    for c in CAP_NAMES {
        args.extend(["--cap", c]);
    }
    args.extend([id.as_str(), "sh", "-c", INIT_ATTACK]);
    let o = r.rt(&args);
    let out = o.ok().stdout.trim().to_owned();
    let n: usize = out
        .strip_prefix("fds:")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The attack reached the init (stdio at least), and nothing through it.
    assert!(n >= 3, "{o}");
    let found: Vec<&str> = out.split(' ').skip(1).filter(|w| *w != "MEM").collect();
    assert!(found.is_empty(), "reached through the init: {found:?}\n{o}");
    // The workload still starts.
    r.rt(&["start", &id]).ok();
    let pid = pid_of(&r);
    let start = std::time::Instant::now();
    while comm_of(pid) != "sleep" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            comm_of(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    r.rt(&["delete", "--force", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}

/// The lifecycle verbs on a created, never started container, as the user: state, ps (the
/// init and what was exec'd), pause refused without a cgroup, `kill` with the default
/// signal (SIGTERM) ends it as runc's does, delete. Seen failing: the waiting init, pid 1
/// of its pid namespace with no handler, ignored SIGTERM and stayed "created".
#[test]
fn verbs_on_a_created_container() {
    let Some(mut r) = Rootless::new("rl-verbc") else {
        return;
    };
    r.ctx.args(&["sleep", "1000"]);
    r.create().ok();
    let id = r.ctx.id.clone();
    assert_eq!(status_of(&r), "created");
    let pid = pid_of(&r);
    r.rt(&["exec", "-d", &id, "sleep", "1000"]).ok();
    if is_capsa() {
        // runc 1.1: "unable to get all container pids" without a cgroup.
        let o = r.rt(&["ps", "--format", "json", &id]);
        let pids: Vec<i64> = serde_json::from_str(o.ok().stdout.trim()).expect("ps json");
        assert!(pids.len() == 2 && pids[0] == pid, "{o}");
    }
    r.rt(&["pause", &id])
        .fails_with_any(&["no cgroup of its own", "cgroups not configured"]);
    assert_eq!(status_of(&r), "created");
    r.rt(&["kill", &id]).ok();
    wait_stopped(&r);
    r.rt(&["delete", &id]).ok();
    // The exec'd process dies with its pid namespace, reaped by the host's init, which
    // may take a moment (runc reports "stopped" before it is gone).
    let start = std::time::Instant::now();
    while !r.ctx.leftovers(&id).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    r.ctx.assert_nothing_left(&id);
}

/// With a capsa binary the user owns (a build in their home), the init stays
/// non-dumpable while it waits: a container process that opened /proc/1/exe could
/// rewrite that binary once nothing runs it (CVE-2019-5736). So `exec` waits for `start`,
/// and says so; after `start` it works. (runc 1.1 runs from a memfd copy of itself and
/// allows it.) Seen failing without Trampoline::shields_host_binary in the decision: the
/// exec succeeded with the user's binary as /proc/1/exe of a dumpable init.
#[test]
fn exec_before_start_with_a_binary_the_user_owns() {
    if skip_unless_capsa("runc 1.1 runs from a memfd copy of itself") {
        return;
    }
    let Some(mut r) = Rootless::new("rl-execown") else {
        return;
    };
    let copy = r.ctx.scratch("runtime-copy");
    std::fs::copy(runtime(), &copy).expect("copy the runtime");
    std::os::unix::fs::chown(&copy, Some(r.user.uid), Some(r.user.gid)).expect("chown");
    r.ctx.args(&["sleep", "1000"]);
    r.ctx.write_config();
    let b = r.ctx.bundle();
    let (uid, gid, xdg, root) = (r.user.uid, r.user.gid, r.xdg(), r.ctx.root());
    let as_user = |args: &[&str]| {
        let mut full = vec!["--root", root.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        let xdg = xdg.clone();
        run_cmd(
            &copy,
            &full,
            &r.ctx.tmp.path().join("out"),
            TIMEOUT,
            move |c| {
                use std::os::unix::process::CommandExt;
                c.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", xdg);
            },
        )
    };
    let id = r.ctx.id.clone();
    as_user(&["create", "--bundle", b.to_str().expect("utf-8"), &id]).ok();
    as_user(&["exec", &id, "true"]).fails_with("before `start`");
    as_user(&["start", &id]).ok();
    let o = as_user(&["exec", &id, "echo", "after-start"]);
    assert_eq!(o.ok().stdout.trim(), "after-start", "{o}");
    as_user(&["delete", "--force", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}

/// The same with the user's subordinate ranges mapped and the process running as
/// container uid 1000 (host: a subordinate id, not the user's): the user still owns the
/// container's user namespace, which is what lets its `exec` in. runc 1.1 refuses this
/// one: its init's setuid to 1000 made it undumpable before it waits.
#[test]
fn exec_into_a_created_container_with_subordinate_ids() {
    let Some(mut r) = Rootless::new("rl-execsub") else {
        return;
    };
    r.multi_range();
    r.ctx.config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    r.ctx.args(&["sleep", "1000"]);
    r.create().ok();
    let id = r.ctx.id.clone();
    let o = r.rt(&["exec", &id, "id", "-u"]);
    if is_capsa() {
        assert_eq!(o.ok().stdout.trim(), "1000", "{o}");
    } else {
        o.fails_with("ns/user: Permission denied");
    }
    r.rt(&["start", &id]).ok();
    assert_eq!(status_of(&r), "running");
    r.rt(&["delete", "--force", &id]).ok();
    r.ctx.assert_nothing_left(&id);
}
