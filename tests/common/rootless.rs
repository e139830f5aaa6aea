//! The unprivileged test user (`capsa-rootless`, made on first use, with /etc/subuid and
//! /etc/subgid ranges) and a `Ctx` whose runtime runs as that user with a rootless config.

use serde_json::{Value, json};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Ctx, Output};

pub const ROOTLESS_USER: &str = "capsa-rootless";
/// The subordinate id range the test user gets when it has none.
const SUB_START: u32 = 300000;
const SUB_COUNT: u32 = 65536;

/// The test user's ids and its first subordinate ranges.
#[derive(Debug, Clone, Copy)]
pub struct TestUser {
    pub uid: u32,
    pub gid: u32,
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
}

fn lookup() -> Option<TestUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(ROOTLESS_USER))?;
    let f: Vec<&str> = line.split(':').collect();
    let sub = |file: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && f[0] == ROOTLESS_USER)
                    .then(|| (f[1].parse().ok(), f[2].parse().ok()))
            })
            .and_then(|(a, b)| a.zip(b))
    };
    Some(TestUser {
        uid: f.get(2)?.parse().ok()?,
        gid: f.get(3)?.parse().ok()?,
        subuid: sub("/etc/subuid")?,
        subgid: sub("/etc/subgid")?,
    })
}

/// The test user, created (idempotently, under a lock shared with other test processes)
/// if missing. None if we cannot (not root): the caller skips.
pub fn rootless_user() -> Option<TestUser> {
    use std::sync::OnceLock;
    static USER: OnceLock<Option<TestUser>> = OnceLock::new();
    *USER.get_or_init(|| {
        if let Some(u) = lookup() {
            return Some(u);
        }
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let lock = std::fs::File::create("/run/capsa-test-rootless-user.lock").ok()?;
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        let exists = std::fs::read_to_string("/etc/passwd").is_ok_and(|p| {
            p.lines()
                .any(|l| l.starts_with(&format!("{ROOTLESS_USER}:")))
        });
        if !exists {
            let st = Command::new("useradd")
                .args(["--system", "--create-home", "--home-dir"])
                .arg(format!("/var/lib/{ROOTLESS_USER}"))
                .args(["--shell", "/usr/sbin/nologin", ROOTLESS_USER])
                .status()
                .ok()?;
            assert!(st.success() || st.code() == Some(9), "useradd: {st}");
        }
        if lookup().is_none() {
            let range = format!("{SUB_START}-{}", SUB_START + SUB_COUNT - 1);
            let st = Command::new("usermod")
                .args([
                    "--add-subuids",
                    &range,
                    "--add-subgids",
                    &range,
                    ROOTLESS_USER,
                ])
                .status()
                .ok()?;
            assert!(st.success(), "usermod --add-subuids: {st}");
        }
        lookup()
    })
}

/// A test whose runtime runs as the test user: a rootless config (runc's `spec
/// --rootless` shape, no cgroupsPath), a state root and an XDG_RUNTIME_DIR it owns.
pub struct Rootless {
    pub ctx: Ctx,
    pub user: TestUser,
}

impl Rootless {
    /// None (after a counted skip) when the test user cannot be had.
    pub fn new(tag: &str) -> Option<Rootless> {
        let Some(user) = rootless_user() else {
            super::skip("needs root to create the unprivileged test user");
            return None;
        };
        let mut ctx = Ctx::new(tag);
        // The user must reach the bundle and own its state root and runtime dir.
        for p in [ctx.tmp.path().to_path_buf(), ctx.bundle()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for d in [ctx.root(), ctx.scratch("xdg")] {
            std::fs::create_dir_all(&d).expect("mkdir");
            chown(&d, Some(user.uid), Some(user.gid)).expect("chown");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        make_rootless(&mut ctx.config, user.uid, user.gid);
        Some(Rootless { ctx, user })
    }

    pub fn xdg(&self) -> PathBuf {
        self.ctx.scratch("xdg")
    }

    /// Map container ids 1.. onto the user's subordinate ranges too.
    pub fn multi_range(&mut self) -> &mut Self {
        let u = self.user;
        let l = &mut self.ctx.config["linux"];
        l["uidMappings"] = json!([{"containerID": 0, "hostID": u.uid, "size": 1},
                                  {"containerID": 1, "hostID": u.subuid.0, "size": u.subuid.1}]);
        l["gidMappings"] = json!([{"containerID": 0, "hostID": u.gid, "size": 1},
                                  {"containerID": 1, "hostID": u.subgid.0, "size": u.subgid.1}]);
        self
    }

    /// The runtime, as the test user, with `--root <ctx root>`.
    pub fn rt(&self, args: &[&str]) -> Output {
        let (uid, gid, xdg) = (self.user.uid, self.user.gid, self.xdg());
        self.ctx
            .rt_with(args, move |cmd| as_user(cmd, uid, gid, &xdg))
    }

    /// The runtime as the test user without --root, with XDG_RUNTIME_DIR `xdg` (None:
    /// unset).
    pub fn rt_default_root(&self, args: &[&str], xdg: Option<&Path>) -> Output {
        let (uid, gid) = (self.user.uid, self.user.gid);
        let xdg = xdg.map(Path::to_path_buf);
        super::run_cmd(
            &super::runtime(),
            args,
            &self.ctx.tmp.path().join("out"),
            super::TIMEOUT,
            move |cmd| {
                cmd.uid(uid).gid(gid).env_remove("XDG_RUNTIME_DIR");
                if let Some(x) = xdg {
                    cmd.env("XDG_RUNTIME_DIR", x);
                }
            },
        )
    }

    /// Write the config and `run` the default container as the user.
    pub fn run(&self) -> Output {
        self.ctx.write_config();
        let b = self.ctx.bundle();
        self.rt(&["run", "--bundle", b.to_str().expect("utf-8"), &self.ctx.id])
    }

    /// Write the config and `create` the default container as the user.
    pub fn create(&self) -> Output {
        self.ctx.write_config();
        let b = self.ctx.bundle();
        self.rt(&[
            "create",
            "--bundle",
            b.to_str().expect("utf-8"),
            &self.ctx.id,
        ])
    }

    /// Write the config; `create` must fail with one of `needles` and leave nothing.
    #[track_caller]
    pub fn create_refused(&self, needles: &[&str]) -> Output {
        let o = self.create();
        o.fails_with_any(needles);
        self.ctx.assert_nothing_left(&self.ctx.id);
        o
    }
}

fn as_user(cmd: &mut Command, uid: u32, gid: u32, xdg: &Path) {
    // As root, std drops the supplementary groups when it changes the uid.
    cmd.uid(uid).gid(gid).env("XDG_RUNTIME_DIR", xdg);
}

/// runc's `spec --rootless` changes, applied to a config: a user namespace mapping the
/// user's own ids to root, no network namespace, /sys bound from the host, devpts
/// without gid=5, no linux.resources; and no cgroupsPath (a user may make none here).
pub fn make_rootless(c: &mut Value, uid: u32, gid: u32) {
    let l = &mut c["linux"];
    l["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    l["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(o) = l.as_object_mut() {
        o.remove("resources");
        o.remove("cgroupsPath");
    }
    if let Some(ns) = l["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "user"}));
    }
    if let Some(mounts) = c["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["type"] == "sysfs" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["type"] == "devpts"
                && let Some(o) = m.get_mut("options").and_then(Value::as_array_mut)
            {
                o.retain(|o| o != "gid=5");
            }
        }
    }
}
