//! podman 4.3 rootless, as the unprivileged test user (`capsa-rootless`, see
//! tests/common/rootless.rs), with capsa as its runtime and, side by side, runc: storage
//! in a private home (native overlay in the user namespace), the user's /etc/subuid
//! range as podman's map (newuidmap), run, exec, logs, stop, rm, `--userns=keep-id`, an
//! explicit `--uidmap`. One test, run in order: podman serialises per user anyway.
//! Networking is `--network none`: slirp4netns needs /dev/net/tun, which a host may keep
//! root-only (this one does).

mod common;

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Output, TempDir, TestUser, run_cmd};

const IMAGE: &str = "localhost/capsa-rootless/busybox:1";

struct Podman {
    tmp: TempDir,
    user: TestUser,
    home: PathBuf,
    xdg: PathBuf,
}

impl Podman {
    fn new(user: TestUser) -> Podman {
        let tmp = TempDir::new("podman-rl");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let (home, xdg) = (tmp.path().join("home"), tmp.path().join("xdg"));
        for d in [&home, &xdg] {
            std::fs::create_dir_all(d).expect("mkdir");
            chown(d, Some(user.uid), Some(user.gid)).expect("chown");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        std::fs::create_dir_all(tmp.path().join("out")).expect("mkdir out");
        std::fs::write(
            tmp.path().join("containers.conf"),
            "[containers]\n\
             # This host caps RLIMIT_NOFILE at 20000 and lacks CAP_SYS_RESOURCE.\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\n\
             runtime_supports_json = [\"crun\", \"runc\", \"capsa\"]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        )
        .expect("containers.conf");
        std::fs::write(
            tmp.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}/storage\"\nrunroot = \"{}/storage\"\n",
                home.display(),
                xdg.display()
            ),
        )
        .expect("storage.conf");
        Podman {
            tmp,
            user,
            home,
            xdg,
        }
    }

    fn podman(&self, args: &[&str]) -> Output {
        let (uid, gid) = (self.user.uid, self.user.gid);
        let (home, xdg, dir) = (
            self.home.clone(),
            self.xdg.clone(),
            self.tmp.path().to_owned(),
        );
        run_cmd(
            Path::new("/usr/bin/podman"),
            args,
            &self.tmp.path().join("out"),
            Duration::from_secs(120),
            move |c: &mut Command| {
                c.uid(uid)
                    .gid(gid)
                    .current_dir(&home)
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("HOME", &home)
                    .env("XDG_RUNTIME_DIR", &xdg)
                    .env("CONTAINERS_CONF", dir.join("containers.conf"))
                    .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"));
            },
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        // podman's pause process for this XDG_RUNTIME_DIR (it holds the user's
        // namespaces) was started for this test: end it, and only it.
        let mark = format!("XDG_RUNTIME_DIR={}", self.xdg.display());
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // Storage files belong to subordinate ids: remove them as root.
        let _ = std::fs::remove_dir_all(self.home.join("storage"));
    }
}

/// What one podman check printed (trimmed stdout), or its error.
fn result(o: &Output) -> String {
    if o.success() {
        o.stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" | ")
    } else {
        let err = o.stderr.lines().last().unwrap_or("").to_owned();
        format!("FAILED: {err}")
    }
}

/// The checks, against podman with `runtime`; (name, result) pairs.
fn checks(p: &Podman, runtime: &str) -> Vec<(&'static str, String)> {
    let rt = ["--runtime", runtime];
    let run = |extra: &[&str], cmd: &str| {
        let mut a = rt.to_vec();
        a.extend_from_slice(&["run", "--rm", "--network", "none"]);
        a.extend_from_slice(extra);
        a.extend_from_slice(&[IMAGE, "sh", "-c", cmd]);
        result(&p.podman(&a))
    };
    let mut out = vec![
        ("run: id", run(&[], "id")),
        ("run: uid_map", run(&[], "cat /proc/self/uid_map")),
        ("--userns=keep-id", run(&["--userns=keep-id"], "id -u")),
        (
            "--uidmap 0:1:1000",
            run(
                &["--uidmap", "0:1:1000", "--gidmap", "0:1:1000"],
                "cat /proc/self/uid_map",
            ),
        ),
        ("/dev/null", run(&[], "echo x > /dev/null && echo ok")),
    ];
    let name = format!("rl-{}", std::process::id());
    let mut a = rt.to_vec();
    a.extend_from_slice(&["run", "-d", "--network", "none", "--name", &name, IMAGE]);
    a.extend_from_slice(&[
        "sh",
        "-c",
        "echo hello; trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let d = p.podman(&a);
    out.push(("run -d", if d.success() { "ok".into() } else { result(&d) }));
    let mut e = rt.to_vec();
    e.extend_from_slice(&["exec", &name, "id", "-u"]);
    out.push(("exec", result(&p.podman(&e))));
    out.push(("logs", result(&p.podman(&["logs", &name]))));
    let s = p.podman(&["stop", "-t", "10", &name]);
    out.push(("stop", if s.success() { "ok".into() } else { result(&s) }));
    out.push((
        "exit code",
        result(&p.podman(&["inspect", &name, "--format", "{{.State.ExitCode}}"])),
    ));
    let r = p.podman(&["rm", &name]);
    out.push(("rm", if r.success() { "ok".into() } else { result(&r) }));
    out
}

#[test]
fn podman_rootless_on_capsa_and_runc() {
    let Some(user) = common::rootless_user() else {
        common::skip("needs root to create the unprivileged test user");
        return;
    };
    if !Path::new("/usr/bin/podman").exists() {
        common::skip("podman is not installed (Debian package podman)");
        return;
    }
    let p = Podman::new(user);
    // A busybox image, imported (no registry here).
    let rootfs = p.tmp.path().join("rootfs");
    common::build_rootfs(&rootfs);
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
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let tar_s = tar.to_str().expect("utf-8");
    p.podman(&["import", "--change", "ENV PATH=/bin", tar_s, IMAGE])
        .ok();

    let capsa = common::runtime();
    let ours = checks(&p, capsa.to_str().expect("utf-8"));
    let runc = checks(&p, "/usr/sbin/runc");
    eprintln!("{:<20} {:<50} runc", "check", capsa.display());
    for ((name, a), (_, b)) in ours.iter().zip(&runc) {
        eprintln!("{name:<20} {a:<50} {b}");
    }
    let (uid, sub) = (user.uid, user.subuid.0);
    let want: Vec<(&str, String)> = vec![
        ("run: id", "uid=0(root) gid=0(root)".into()),
        (
            "run: uid_map",
            format!("0 {uid} 1 | 1 {sub} {}", user.subuid.1),
        ),
        ("--userns=keep-id", uid.to_string()),
        // Inside podman's own user namespace: its ids 1..1000.
        ("--uidmap 0:1:1000", "0 1 1000".into()),
        ("/dev/null", "ok".into()),
        ("run -d", "ok".into()),
        ("exec", "0".into()),
        ("logs", "hello".into()),
        ("stop", "ok".into()),
        ("exit code", "0".into()),
        ("rm", "ok".into()),
    ];
    for ((name, got), (_, want)) in ours.iter().zip(&want) {
        assert_eq!(got, want, "{name}");
    }
    // And what capsa does is what runc does.
    assert_eq!(ours, runc);
}
