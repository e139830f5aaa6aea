//! podman 4.3 rootless, as the unprivileged test user (`capsa-rootless`, see
//! tests/common/rootless.rs), with capsa as its runtime and, side by side, runc and crun
//! (each given by path, `--runtime PATH`), which must agree on every result: storage
//! in a private home (native overlay in the user namespace), the user's /etc/subuid
//! range as podman's map (newuidmap), run, exec, logs, stop, rm, `--userns=keep-id`, an
//! explicit `--uidmap`. One test, run in order: podman serialises per user anyway.
//! Networking is `--network none`: slirp4netns (podman's rootless default) opens
//! /dev/net/tun as the user, and a host may keep that node root-only (the reference host
//! does: crw------- root), so the slirp4netns checks are a test of their own, skipped
//! (counted) where the user cannot open it. On this cgroup v1 host a rootless container
//! has no cgroup: `--memory` and `--pids-limit` belong to the VM lane (cgroups_rootless.rs).

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
        let hide = hidden_controllers(self.tmp.path());
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
                // SAFETY: the closure runs in the forked child before exec and calls only
                // unshare, mount, setgroups, setgid and setuid, async-signal-safe, on C
                // strings it owns.
                unsafe {
                    c.pre_exec(move || {
                        let fail = || Err(std::io::Error::last_os_error());
                        if let Some(empty) = &hide {
                            let null: *const libc::c_char = std::ptr::null();
                            let no_data: *const libc::c_void = std::ptr::null();
                            if libc::unshare(libc::CLONE_NEWNS) != 0
                                || libc::mount(
                                    null,
                                    c"/".as_ptr(),
                                    null,
                                    libc::MS_REC | libc::MS_SLAVE,
                                    no_data,
                                ) != 0
                                || libc::mount(
                                    empty.as_ptr(),
                                    CONTROLLERS.as_ptr(),
                                    null,
                                    libc::MS_BIND,
                                    no_data,
                                ) != 0
                            {
                                return fail();
                            }
                        }
                        if libc::setgroups(0, std::ptr::null()) != 0
                            || libc::setgid(gid) != 0
                            || libc::setuid(uid) != 0
                        {
                            return fail();
                        }
                        Ok(())
                    });
                }
                c.current_dir(&home)
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

/// The cgroup2 controller list of a hybrid host.
const CONTROLLERS: &std::ffi::CStr = c"/sys/fs/cgroup/unified/cgroup.controllers";

/// crun 1.8 refuses a hybrid host whose cgroup2 mount lists controllers ("cgroups in
/// hybrid mode not supported, drop all controllers from cgroupv2"; this host lists
/// hugetlb). As the conformance suite does, podman then runs in a private mount namespace
/// where an empty file hides that list, for all three runtimes alike (rootless containers
/// get no cgroup here anyway): the empty file's path, None when there is no list to hide.
fn hidden_controllers(dir: &Path) -> Option<std::ffi::CString> {
    let list = std::fs::read_to_string(CONTROLLERS.to_str().ok()?).ok()?;
    if list.trim().is_empty() {
        return None;
    }
    let empty = dir.join("empty-controllers");
    std::fs::write(&empty, "").ok()?;
    std::ffi::CString::new(empty.into_os_string().into_encoded_bytes()).ok()
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

/// The runtimes compared with capsa, by path.
const OTHERS: [&str; 2] = ["/usr/sbin/runc", "/usr/bin/crun"];

/// podman set up for the test user with the busybox image imported; None after a counted
/// skip when the user or podman cannot be had.
fn podman_with_image() -> Option<(Podman, TestUser)> {
    let Some(user) = common::rootless_user() else {
        common::skip("needs root to create the unprivileged test user");
        return None;
    };
    if !Path::new("/usr/bin/podman").exists() {
        common::skip("podman is not installed (Debian package podman)");
        return None;
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
    Some((p, user))
}

/// Each runtime's results, capsa's first, printed side by side.
fn side_by_side(
    p: &Podman,
    checks: impl Fn(&Podman, &str) -> Vec<(&'static str, String)>,
) -> Vec<Vec<(&'static str, String)>> {
    let capsa = common::runtime();
    let mut all = vec![checks(p, capsa.to_str().expect("utf-8"))];
    for rt in OTHERS {
        all.push(checks(p, rt));
    }
    eprintln!("{:<20} {:<40} {:<40} crun", "check", "capsa", "runc");
    for (i, (name, a)) in all[0].iter().enumerate() {
        eprintln!("{name:<20} {a:<40} {:<40} {}", all[1][i].1, all[2][i].1);
    }
    all
}

#[test]
fn podman_rootless_on_capsa_runc_and_crun() {
    let Some((p, user)) = podman_with_image() else {
        return;
    };
    let all = side_by_side(&p, checks);
    let ours = &all[0];
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
    // And what capsa does is what runc and crun do.
    for (rt, theirs) in OTHERS.iter().zip(&all[1..]) {
        assert_eq!(ours, theirs, "capsa and {rt} differ");
    }
}

/// podman's default rootless network, slirp4netns: a tap device in the container's
/// network namespace with slirp4netns's address for the container.
#[test]
fn podman_rootless_slirp4netns_on_capsa_runc_and_crun() {
    let tun = Path::new("/dev/net/tun");
    let mode = std::fs::metadata(tun).map_or(0, |m| m.permissions().mode());
    if mode & 0o006 != 0o006 {
        common::skip(&format!(
            "slirp4netns opens /dev/net/tun as the user, and this host keeps it \
             {mode:o}: not for other users"
        ));
        return;
    }
    if !Path::new("/usr/bin/slirp4netns").exists() {
        common::skip("slirp4netns is not installed (Debian package slirp4netns)");
        return;
    }
    let Some((p, _)) = podman_with_image() else {
        return;
    };
    let all = side_by_side(&p, |p, runtime| {
        let run = |cmd: &str| {
            let mut a = vec![
                "--runtime",
                runtime,
                "run",
                "--rm",
                "--network",
                "slirp4netns",
            ];
            a.extend_from_slice(&[IMAGE, "sh", "-c", cmd]);
            result(&p.podman(&a))
        };
        vec![
            ("interfaces", run("ls /sys/class/net | sort | tr '\\n' ' '")),
            (
                "tap0 address",
                run("ip -o -4 addr show tap0 | awk '{print $4}'"),
            ),
        ]
    });
    assert_eq!(all[0][0].1, "lo tap0", "{:?}", all[0]);
    assert_eq!(all[0][1].1, "10.0.2.100/24", "{:?}", all[0]);
    for (rt, theirs) in OTHERS.iter().zip(&all[1..]) {
        assert_eq!(&all[0], theirs, "capsa and {rt} differ");
    }
}
