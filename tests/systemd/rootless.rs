//! Rootless on a systemd host (issues 12 and 13): the unprivileged test user
//! (`capsa-rootless`, tests/common/rootless.rs) gets its own systemd (`systemctl start
//! user@UID.service`, as `loginctl enable-linger` would) and session bus, and runs the
//! runtime as itself:
//! - with `--systemd-cgroup` the container is a scope of the user's systemd
//!   (user.slice by default, below user@UID.service), made over the session bus, with
//!   its limits as the unit's properties and in its files; every verb works and delete
//!   leaves no unit; with no session bus, a clear error; after the user's systemd ended
//!   (a second user's, stopped) `delete --force` still cleans up;
//! - without it (cgroupfs), run from a scope of the user's systemd, the container's
//!   cgroup is made in the user's delegated subtree and its limits land there;
//! - podman rootless with podman's systemd default (`cgroup_manager = "systemd"`) runs
//!   `--memory 64m --pids-limit 50` on the runtime under test, crun (podman's default)
//!   and runc side by side, and the limits are in the container's cgroup.
//!
//! cgroup v2 only (runc refuses the rootless systemd driver on v1, and a v1 host
//! delegates nothing to a user): on the hybrid boot the first test checks the refusal,
//! and each test then skips (counted).

use super::*;
use std::collections::HashMap;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// The test user with a running user manager and session bus, started once per boot
/// (and left running: the VM is thrown away, and the tests share it).
fn session() -> Option<TestUser> {
    static USER: OnceLock<Option<TestUser>> = OnceLock::new();
    *USER.get_or_init(|| {
        let user = rootless_user()?;
        let unit = format!("user@{}.service", user.uid);
        let o = Command::new("systemctl")
            .args(["start", &unit])
            .output()
            .expect("run systemctl start");
        assert!(
            o.status.success(),
            "systemctl start {unit}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bus = run_dir(&user).join("bus");
        let start = Instant::now();
        while !bus.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{} never appeared (is dbus-user-session installed?)",
                bus.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(user)
    })
}

fn run_dir(u: &TestUser) -> PathBuf {
    PathBuf::from(format!("/run/user/{}", u.uid))
}

/// The user manager's cgroup.
fn manager_cg(u: &TestUser) -> String {
    format!("/user.slice/user-{0}.slice/user@{0}.service", u.uid)
}

/// `cmd` as the user, in its session: its runtime dir and session bus.
fn in_session(cmd: &mut Command, u: &TestUser) {
    let dir = run_dir(u);
    cmd.uid(u.uid).gid(u.gid).env("XDG_RUNTIME_DIR", &dir).env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}/bus", dir.display()),
    );
}

/// `systemctl --user show UNIT -p P...` as the user, as a map.
fn user_show(u: &TestUser, unit: &str, props: &[&str]) -> HashMap<String, String> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["--user", "show", unit]);
    for p in props {
        cmd.args(["-p", p]);
    }
    in_session(&mut cmd, u);
    let out = cmd.output().expect("run systemctl --user show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The test's rootless container and the runtime as the user, in its session.
struct UserCtx {
    r: Rootless,
    user: TestUser,
    /// Extra global flags (`--systemd-cgroup`).
    flags: Vec<&'static str>,
}

impl UserCtx {
    fn new(tag: &str, user: TestUser, flags: &[&'static str]) -> Option<UserCtx> {
        let mut r = Rootless::new(tag)?;
        r.ctx.args(&["sleep", "1000"]);
        r.ctx.config["linux"]["resources"] =
            json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
        Some(UserCtx {
            r,
            user,
            flags: flags.to_vec(),
        })
    }

    fn id(&self) -> String {
        self.r.ctx.id.clone()
    }

    fn rt(&self, args: &[&str]) -> Output {
        self.rt_env(args, |_| {})
    }

    fn rt_env(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Output {
        let mut full = self.flags.clone();
        full.extend_from_slice(args);
        let u = self.user;
        self.r.ctx.rt_with(&full, move |c| {
            in_session(c, &u);
            adjust(c);
        })
    }

    fn create(&self) -> Output {
        self.r.ctx.write_config();
        let b = self.r.ctx.bundle();
        self.rt(&["create", "--bundle", b.to_str().expect("utf-8"), &self.id()])
    }

    fn pid(&self) -> u32 {
        let o = self.rt(&["state", &self.id()]);
        let v: Value = serde_json::from_str(&o.ok().stdout).expect("state JSON");
        v["pid"].as_u64().expect("state pid") as u32
    }

    fn status(&self) -> String {
        let o = self.rt(&["state", &self.id()]);
        let v: Value = serde_json::from_str(&o.ok().stdout).expect("state JSON");
        v["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for UserCtx {
    fn drop(&mut self) {
        // As the user: root cannot speak to the user's bus as the user.
        let _ = self.rt(&["delete", "--force", &self.id()]);
    }
}

/// The user and its session on a pure v2 boot; None (after a counted skip) elsewhere.
fn v2_session(what: &str) -> Option<TestUser> {
    if skip_without_systemd() {
        return None;
    }
    if !v2() {
        skip(&format!(
            "{what}: rootless cgroups need cgroup v2 (the hybrid boot)"
        ));
        return None;
    }
    let Some(u) = session() else {
        skip("needs root to create the unprivileged test user");
        return None;
    };
    Some(u)
}

#[test]
fn rootless_systemd_scope_in_the_user_manager() {
    if skip_without_systemd() {
        return;
    }
    if !v2() {
        // The refusal, before anything is made (runc refuses too).
        if is_capsa()
            && let Some(u) = rootless_user()
            && let Some(c) = UserCtx::new("sdrlv1", u, &["--systemd-cgroup"])
        {
            let o = c.create();
            o.fails_with("needs cgroup v2");
            c.r.ctx.assert_nothing_left(&c.id());
        }
        skip("rootless --systemd-cgroup: cgroup v2 only, refused on the hybrid boot");
        return;
    }
    let Some(u) = v2_session("rootless --systemd-cgroup") else {
        return;
    };
    let c = UserCtx::new("sdrl", u, &["--systemd-cgroup"]).expect("the test user");
    let id = c.id();

    // No session bus: a clear error naming what to set, and nothing made.
    if is_capsa() {
        c.r.ctx.write_config();
        let xdg = c.r.xdg();
        let o = c.rt_env(
            &[
                "create",
                "--bundle",
                c.r.ctx.bundle().to_str().expect("utf-8"),
                &id,
            ],
            |cmd| {
                cmd.env_remove("DBUS_SESSION_BUS_ADDRESS")
                    .env("XDG_RUNTIME_DIR", &xdg);
            },
        );
        o.fails_with("DBUS_SESSION_BUS_ADDRESS");
        o.fails_with("session bus");
        c.r.ctx.assert_nothing_left(&id);
    }

    c.create().ok();
    let unit = format!("runc-{id}.scope");
    let cg = format!("{}/user.slice/{unit}", manager_cg(&u));
    let pid = c.pid();
    assert_eq!(proc_cgroup(pid), cg, "the init's cgroup");
    let p = user_show(
        &u,
        &unit,
        &["ActiveState", "MemoryMax", "TasksMax", "Delegate", "Slice"],
    );
    assert_eq!(p["ActiveState"], "active", "{p:#?}");
    assert_eq!(p["MemoryMax"], "67108864", "{p:#?}");
    assert_eq!(p["TasksMax"], "50", "{p:#?}");
    assert_eq!(p["Delegate"], "yes", "{p:#?}");
    assert_eq!(p["Slice"], "user.slice", "{p:#?}");
    // Not the system manager's.
    assert_eq!(prop(&unit, "LoadState"), "not-found");
    assert_eq!(read_cg("", &cg, "memory.max"), "67108864");
    assert_eq!(read_cg("", &cg, "pids.max"), "50");

    c.rt(&["start", &id]).ok();
    assert_eq!(c.status(), "running");
    let o = c.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<u32> = serde_json::from_str(&o.ok().stdout).expect("ps JSON");
    assert!(pids.contains(&pid), "ps {pids:?} lacks the init {pid}");

    c.rt(&["pause", &id]).ok();
    assert_eq!(c.status(), "paused");
    assert_eq!(read_cg("", &cg, "cgroup.freeze"), "1");
    c.rt(&["resume", &id]).ok();
    assert_eq!(c.status(), "running");
    assert_eq!(read_cg("", &cg, "cgroup.freeze"), "0");

    c.rt(&["update", "--memory", "100000000", "--pids-limit", "55", &id])
        .ok();
    let p = user_show(&u, &unit, &["MemoryMax", "TasksMax"]);
    assert_eq!(p["MemoryMax"], "100000000", "{p:#?}");
    assert_eq!(p["TasksMax"], "55", "{p:#?}");
    assert_eq!(
        read_cg("", &cg, "memory.max"),
        (100000000 / 4096 * 4096).to_string()
    );
    assert_eq!(read_cg("", &cg, "pids.max"), "55");

    // exec: the process joins the unit's cgroup (the user's systemd moves it there:
    // the test's own cgroup is not in the user's delegated subtree).
    let o = c.rt(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let text = o.ok().stdout.clone();
    assert!(
        text.lines().any(|l| l == format!("0::{cg}")),
        "exec's /proc/self/cgroup: {text}"
    );

    c.rt(&["exec", "-d", &id, "sleep", "1001"]).ok();
    c.rt(&["kill", "--all", &id, "KILL"]).ok();
    eventually("stopped after kill --all", || c.status() == "stopped");

    c.rt(&["delete", &id]).ok();
    eventually("the unit is gone after delete", || {
        user_show(&u, &unit, &["LoadState"])["LoadState"] == "not-found"
    });
    assert_no_unit_no_cgroup(&id);
    c.r.ctx.assert_nothing_left(&id);
}

/// A second user (made here: the VM's /etc is a throw-away overlay) with its own
/// user manager, for the test that stops it.
fn second_user() -> TestUser {
    const NAME: &str = "capsa-rl-gone";
    let st = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            NAME,
        ])
        .status()
        .expect("run useradd");
    assert!(st.success() || st.code() == Some(9), "useradd: {st}");
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, NAME])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    TestUser {
        uid: id("-u"),
        gid: id("-g"),
        subuid: (0, 0),
        subgid: (0, 0),
    }
}

/// The user's systemd ends (user@UID.service stopped, as when its last session closes)
/// while its container runs: the unit and its cgroup go with it, and `delete --force`
/// still removes the container, though the session bus is gone.
#[test]
fn delete_force_after_the_users_systemd_ended() {
    if skip_without_systemd() {
        return;
    }
    if !v2() {
        skip("rootless --systemd-cgroup: cgroup v2 only, refused on the hybrid boot");
        return;
    }
    let u = second_user();
    let unit = format!("user@{}.service", u.uid);
    let st = Command::new("systemctl")
        .args(["start", &unit])
        .status()
        .expect("run systemctl start");
    assert!(st.success(), "systemctl start {unit}");
    let bus = run_dir(&u).join("bus");
    eventually_within("the second user's session bus", 120, || bus.exists());
    let mut ctx = Ctx::new("sdrlgone");
    ctx.args(&["sleep", "1000"]);
    for p in [ctx.tmp.path().to_path_buf(), ctx.bundle()] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    chown(ctx.root(), Some(u.uid), Some(u.gid)).expect("chown the state root");
    make_rootless(&mut ctx.config, u.uid, u.gid);
    ctx.write_config();
    let id = ctx.id.clone();
    let b = ctx.bundle();
    let rt = |args: &[&str]| {
        let mut full = vec!["--systemd-cgroup"];
        full.extend_from_slice(args);
        ctx.rt_with(&full, |c| in_session(c, &u))
    };
    rt(&["create", "--bundle", b.to_str().expect("utf-8"), &id]).ok();
    let cg = format!("{}/user.slice/runc-{id}.scope", manager_cg(&u));
    assert!(cg_dir("", &cg).is_dir(), "no scope cgroup {cg}");

    let st = Command::new("systemctl")
        .args(["stop", &unit])
        .status()
        .expect("run systemctl stop");
    assert!(st.success(), "systemctl stop {unit}");
    eventually("the scope's cgroup is gone with the user's systemd", || {
        !cg_dir("", &cg).exists()
    });
    rt(&["delete", "--force", &id]).ok();
    ctx.assert_nothing_left(&id);
}

/// Poll `f` for up to `secs` seconds.
#[track_caller]
fn eventually_within(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// cgroupfs rootless, run from a scope of the user's systemd: the container's cgroup is
/// made next to that scope in the user's delegated subtree, and its limits land there.
#[test]
fn rootless_cgroupfs_in_the_users_delegated_subtree() {
    let Some(u) = v2_session("rootless cgroupfs in user@UID.service") else {
        return;
    };
    let c = UserCtx::new("sdrlfs", u, &[]).expect("the test user");
    let id = c.id();
    c.r.ctx.write_config();
    let b = c.r.ctx.bundle();
    let root = c.r.ctx.root();
    // systemd-run --user --scope: capsa runs in app.slice/run-*.scope of the user.
    let o = run_cmd(
        Path::new("/usr/bin/systemd-run"),
        &[
            "--user",
            "--scope",
            "--quiet",
            "--",
            runtime().to_str().expect("utf-8"),
            "--root",
            root.to_str().expect("utf-8"),
            "create",
            "--bundle",
            b.to_str().expect("utf-8"),
            &id,
        ],
        &c.r.ctx.scratch("out"),
        Duration::from_secs(60),
        |cmd| in_session(cmd, &u),
    );
    o.ok();
    let pid = c.pid();
    let cg = proc_cgroup(pid);
    assert_eq!(
        cg,
        format!("{}/app.slice/{id}", manager_cg(&u)),
        "the container's cgroup is the user's, next to the caller's scope"
    );
    assert_eq!(read_cg("", &cg, "memory.max"), "67108864");
    assert_eq!(read_cg("", &cg, "pids.max"), "50");
    c.rt(&["start", &id]).ok();
    c.rt(&["pause", &id]).ok();
    assert_eq!(read_cg("", &cg, "cgroup.freeze"), "1");
    c.rt(&["resume", &id]).ok();
    c.rt(&["delete", "--force", &id]).ok();
    assert!(
        !cg_dir("", &cg).exists(),
        "delete leaves the container's cgroup {cg}"
    );
    c.r.ctx.assert_nothing_left(&id);
}

/// podman rootless, as the test user, with podman's systemd default.
struct UserPodman {
    tmp: TempDir,
    user: TestUser,
    home: PathBuf,
}

const RL_IMAGE: &str = "localhost/capsa-sdrl/busybox:1";

impl UserPodman {
    fn new(user: TestUser) -> UserPodman {
        let tmp = TempDir::new("sdrl-podman");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).expect("mkdir home");
        chown(&home, Some(user.uid), Some(user.gid)).expect("chown");
        fs::create_dir_all(tmp.path().join("out")).expect("mkdir out");
        fs::write(
            tmp.path().join("containers.conf"),
            "[engine]\n\
             runtime_supports_json = [\"crun\", \"runc\", \"capsa\"]\n\
             cgroup_manager = \"systemd\"\n\
             events_logger = \"file\"\n",
        )
        .expect("containers.conf");
        fs::write(
            tmp.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/run\"\n",
                home.display()
            ),
        )
        .expect("storage.conf");
        UserPodman { tmp, user, home }
    }

    fn podman(&self, args: &[&str]) -> Output {
        let u = self.user;
        let (home, dir) = (self.home.clone(), self.tmp.path().to_owned());
        run_cmd(
            Path::new("/usr/bin/podman"),
            args,
            &self.tmp.path().join("out"),
            Duration::from_secs(180),
            move |c: &mut Command| {
                c.current_dir(&home)
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("HOME", &home)
                    .env("CONTAINERS_CONF", dir.join("containers.conf"))
                    .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"));
                in_session(c, &u);
            },
        )
    }
}

impl Drop for UserPodman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        // Files of subordinate ids: removed as root.
        let _ = fs::remove_dir_all(self.home.join("storage"));
    }
}

/// One runtime's `podman run -d --memory 64m --pids-limit 50`: the container's
/// cgroup, its memory.max and pids.max, and whether `podman rm` left its scope.
fn podman_limits(p: &UserPodman, runtime: &str) -> Vec<(&'static str, String)> {
    let name = format!(
        "sdrl-{}",
        Path::new(runtime)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("rt")
    );
    let o = p.podman(&[
        "--runtime",
        runtime,
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        RL_IMAGE,
        "sleep",
        "1000",
    ]);
    if !o.success() {
        let err = o.stderr.lines().last().unwrap_or("").to_owned();
        return vec![("run -d", format!("FAILED: {err}"))];
    }
    let o = p.podman(&["inspect", "--format", "{{.State.Pid}} {{.Id}}", &name]);
    let text = o.ok().stdout.clone();
    let mut it = text.split_whitespace();
    let pid: u32 = it.next().and_then(|s| s.parse().ok()).expect("pid");
    let cid = it.next().expect("container id").to_owned();
    let cg = proc_cgroup(pid);
    let scope = format!("{}/user.slice/libpod-{cid}.scope", manager_cg(&p.user));
    let read = |f: &str| {
        fs::read_to_string(cg_dir("", &cg).join(f))
            .map_or_else(|e| e.to_string(), |s| s.trim().to_owned())
    };
    let mut out = vec![
        ("run -d", "ok".to_owned()),
        (
            "cgroup",
            if cg.starts_with(&scope) {
                format!(
                    "user@UID.service/user.slice/libpod-ID.scope{}",
                    &cg[scope.len()..]
                )
            } else {
                cg.clone()
            },
        ),
        ("memory.max", read("memory.max")),
        ("pids.max", read("pids.max")),
    ];
    let e = p.podman(&["exec", &name, "echo", "exec-ok"]);
    out.push((
        "exec",
        if e.success() {
            e.stdout.trim().to_owned()
        } else {
            "FAILED".into()
        },
    ));
    let r = p.podman(&["rm", "-f", "-t", "0", &name]);
    out.push((
        "rm",
        if r.success() {
            "ok".into()
        } else {
            "FAILED".into()
        },
    ));
    let unit = format!("libpod-{cid}.scope");
    let start = Instant::now();
    while user_show(&p.user, &unit, &["LoadState"])["LoadState"] != "not-found"
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push((
        "scope after rm",
        user_show(&p.user, &unit, &["LoadState"])["LoadState"].clone(),
    ));
    out
}

#[test]
fn podman_rootless_with_the_systemd_cgroup_manager() {
    let Some(u) = v2_session("podman rootless with cgroup_manager = systemd") else {
        return;
    };
    if !Path::new("/usr/bin/podman").exists() {
        skip("podman is not installed (Debian package podman)");
        return;
    }
    let p = UserPodman::new(u);
    let rootfs = p.tmp.path().join("rootfs");
    build_rootfs(&rootfs);
    let tar = p.tmp.path().join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o644)).expect("chmod");
    p.podman(&[
        "import",
        "--change",
        "ENV PATH=/bin",
        tar.to_str().expect("utf-8"),
        RL_IMAGE,
    ])
    .ok();

    let capsa = runtime();
    let capsa = capsa.to_str().expect("utf-8");
    let results: Vec<(&str, Vec<(&str, String)>)> = ["/usr/bin/crun", "/usr/sbin/runc", capsa]
        .into_iter()
        .map(|rt| (rt, podman_limits(&p, rt)))
        .collect();
    eprintln!(
        "{:<16} {:<50} {:<50} {}",
        "check", results[0].0, results[1].0, results[2].0
    );
    for (i, (name, _)) in results[2].1.iter().enumerate() {
        let col = |r: &Vec<(&str, String)>| r.get(i).map_or(String::new(), |(_, v)| v.clone());
        eprintln!(
            "{name:<16} {:<50} {:<50} {}",
            col(&results[0].1),
            col(&results[1].1),
            col(&results[2].1)
        );
    }
    let ours = &results[2].1;
    let want = [
        ("run -d", "ok"),
        ("memory.max", "67108864"),
        ("pids.max", "50"),
        ("exec", "exec-ok"),
        ("rm", "ok"),
        ("scope after rm", "not-found"),
    ];
    for (name, value) in want {
        let got = ours
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str());
        assert_eq!(got, Some(value), "{name}: {ours:?}");
    }
    let cg = ours
        .iter()
        .find(|(n, _)| *n == "cgroup")
        .map(|(_, v)| v.as_str());
    assert!(
        cg.is_some_and(|c| c.starts_with("user@UID.service/user.slice/libpod-ID.scope")),
        "the container's cgroup: {cg:?}"
    );
    // Side by side: what runc does, and what crun does but for its `container`
    // sub-cgroup of the same scope.
    assert_eq!(ours, &results[1].1, "capsa and runc differ");
    fn but_cgroup(r: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        r.iter().filter(|(n, _)| *n != "cgroup").cloned().collect()
    }
    assert_eq!(
        but_cgroup(ours),
        but_cgroup(&results[0].1),
        "capsa and crun differ"
    );
}
