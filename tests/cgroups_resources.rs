//! linux.resources, pause/resume, update, events and ps through the real
//! capsa binary on real busybox containers, as root. Values are read back
//! from the kernel's cgroup files on the host side (the container's
//! cgroupsPath is known), so the tests work whether or not the container
//! has its own root filesystem. Runs on the hybrid development hosts and,
//! through the VM lane, on pure cgroup v2:
//!   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run.sh $PWD" \
//!     cargo test --test cgroups_resources
//! Bundles and --root live under /run (a tmpfs on the host and in the VM).

#[path = "common/skip.rs"]
mod skip;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CAPSA: &str = env!("CARGO_BIN_EXE_capsa");

fn v2_host() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Every mounted cgroup hierarchy: (mount point, is cgroup2).
fn mounts() -> Vec<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount = pre.split(' ').nth(4)?;
            match fstype {
                "cgroup" => Some((PathBuf::from(mount), false)),
                "cgroup2" => Some((PathBuf::from(mount), true)),
                _ => None,
            }
        })
        .collect()
}

/// One container: its bundle and root under /run, its cgroup path, and
/// clean-up (delete -f, then the bundle) on every exit path.
struct Ctr {
    id: String,
    dir: PathBuf,
    root: PathBuf,
    cg: String,
}

impl Ctr {
    /// A bundle whose process runs `script` under busybox sh; `edit`
    /// adjusts config.json (from `capsa spec`).
    fn new(what: &str, script: &str, edit: impl FnOnce(&mut Value)) -> Ctr {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "cgt-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = PathBuf::from("/run/capsa-cgtest").join(&id);
        let bin = dir.join("bundle/rootfs/bin");
        std::fs::create_dir_all(&bin).expect("mkdir rootfs");
        for d in ["tmp", "dev", "proc", "sys"] {
            std::fs::create_dir_all(dir.join("bundle/rootfs").join(d)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "sleep", "cat", "head", "tail", "mknod", "echo", "rm"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        let ctr = Ctr {
            cg: format!("/capsa-test-{id}"),
            root: dir.join("state"),
            id,
            dir,
        };
        let out = Command::new(CAPSA)
            .args(["spec", "--bundle"])
            .arg(ctr.dir.join("bundle"))
            .output()
            .expect("capsa spec");
        assert!(out.status.success(), "spec: {out:?}");
        let cfg_path = ctr.dir.join("bundle/config.json");
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(&cfg_path).expect("read config")).expect("json");
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(["/bin/busybox", "sh", "-c", script]);
        cfg["linux"]["cgroupsPath"] = json!(ctr.cg);
        edit(&mut cfg);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).expect("encode")).expect("write");
        ctr
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAPSA);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run capsa to completion. Output goes to files, not pipes: a
    /// container's init inherits them and would keep a pipe open.
    fn run(&self, args: &[&str]) -> Output {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (o, e) = (
            self.dir.join(format!("out{n}")),
            self.dir.join(format!("err{n}")),
        );
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&o).expect("out file"))
            .stderr(std::fs::File::create(&e).expect("err file"))
            .status()
            .expect("run capsa");
        let out = Output {
            status,
            stdout: std::fs::read(&o).unwrap_or_default(),
            stderr: std::fs::read(&e).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(o);
        let _ = std::fs::remove_file(e);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "capsa {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "capsa {args:?} should fail");
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // Without --log, errors come as runc's logrus line: take its msg.
        match text.split_once(" msg=") {
            Some((_, m)) if text.starts_with("time=") => {
                serde_json::from_str::<String>(m).unwrap_or(text.clone())
            }
            _ => text,
        }
    }

    fn start_detached(&self) {
        let b = self.dir.join("bundle");
        let b = b.to_str().expect("utf8");
        self.ok(&["run", "-d", "--bundle", b, &self.id]);
    }

    fn status(&self) -> String {
        let s: Value = serde_json::from_str(&self.ok(&["state", &self.id])).expect("state json");
        s["status"].as_str().unwrap_or("").to_owned()
    }

    /// The container's directory for a v1 controller, or the unified one.
    fn cgdir(&self, v1: &str) -> PathBuf {
        let rel = self.cg.trim_start_matches('/');
        if v2_host() {
            return Path::new("/sys/fs/cgroup").join(rel);
        }
        Path::new("/sys/fs/cgroup").join(v1).join(rel)
    }

    fn read(&self, v1: &str, file: &str) -> String {
        let p = self.cgdir(v1).join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_owned()
    }

    /// Every cgroup directory of this container on any hierarchy.
    fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let top = self.cg.trim_start_matches('/');
        mounts()
            .into_iter()
            .map(|(m, _)| m.join(top))
            .filter(|p| p.exists())
            .collect()
    }

    fn delete(&self) {
        self.ok(&["delete", "--force", &self.id]);
        let left = self.leftover_cgroups();
        assert!(left.is_empty(), "cgroups left after delete: {left:?}");
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MB: i64 = 1024 * 1024;

#[test]
fn resources_applied_updated_and_reported() {
    let c = Ctr::new("res", "sleep 1000", |cfg| {
        cfg["linux"]["resources"]["memory"] =
            json!({"limit": 100 * MB, "swap": 200 * MB, "reservation": 50 * MB});
        cfg["linux"]["resources"]["cpu"] =
            json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"});
        cfg["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    c.start_detached();
    let v2 = v2_host();
    if v2 {
        assert_eq!(c.read("", "memory.max"), (100 * MB).to_string());
        assert_eq!(
            c.read("", "memory.swap.max"),
            (100 * MB).to_string(),
            "swap = memsw - limit"
        );
        assert_eq!(c.read("", "memory.low"), (50 * MB).to_string());
        assert_eq!(
            c.read("", "cpu.weight"),
            "20",
            "shares 512 converted as runc does"
        );
        assert_eq!(c.read("", "cpu.max"), "50000 100000");
        assert_eq!(c.read("", "cpuset.cpus"), "0");
    } else {
        assert_eq!(
            c.read("memory", "memory.limit_in_bytes"),
            (100 * MB).to_string()
        );
        assert_eq!(
            c.read("memory", "memory.memsw.limit_in_bytes"),
            (200 * MB).to_string()
        );
        assert_eq!(
            c.read("memory", "memory.soft_limit_in_bytes"),
            (50 * MB).to_string()
        );
        assert_eq!(c.read("cpu", "cpu.shares"), "512");
        assert_eq!(c.read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(c.read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(c.read("cpuset", "cpuset.cpus"), "0");
    }
    assert_eq!(c.read("pids", "pids.max"), "50");

    // A partial update changes only what it names.
    c.ok(&["update", "--memory", "150m", "--memory-swap", "300m", &c.id]);
    let (mem, mem_file, cpu_file) = if v2 {
        ("", "memory.max", "cpu.max")
    } else {
        ("memory", "memory.limit_in_bytes", "cpu.cfs_quota_us")
    };
    let cpu_before = c.read("cpu", cpu_file);
    assert_eq!(c.read(mem, mem_file), (150 * MB).to_string());
    assert_eq!(c.read("cpu", cpu_file), cpu_before);
    assert_eq!(c.read("pids", "pids.max"), "50");
    // JSON as engines send it, from stdin; only the quota changes.
    let mut child = c
        .cmd(&["update", "-r", "-", &c.id])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn update");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"cpu":{"quota":20000},"pids":{"limit":64}}"#,
    )
    .expect("write stdin");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    if v2 {
        assert_eq!(c.read("", "cpu.max"), "20000 100000", "period kept");
    } else {
        assert_eq!(c.read("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(c.read("cpu", "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(c.read("pids", "pids.max"), "64");

    // A rejected update leaves the old limits: the memory limit is written
    // first, then the impossible cpuset fails and memory is restored.
    let err = c.err(&["update", "--memory", "250m", "--cpuset-cpus", "999", &c.id]);
    assert!(err.contains("linux.resources.cpu.cpus"), "{err}");
    assert_eq!(c.read(mem, mem_file), (150 * MB).to_string());

    // events --stats: runc's envelope with plausible numbers.
    let out = c.ok(&["events", "--stats", &c.id]);
    let ev: Value = serde_json::from_str(out.trim()).expect("events json");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], c.id.as_str());
    let d = &ev["data"];
    assert_eq!(d["pids"]["current"], 1, "{d}");
    assert_eq!(d["pids"]["limit"], 64);
    assert_eq!(d["memory"]["usage"]["limit"], 150 * MB, "{d}");
    let usage = d["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0 && usage < 150 * MB as u64, "{usage}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");

    // ps: the workload's host pid, in both formats.
    let st: Value = serde_json::from_str(&c.ok(&["state", &c.id])).expect("state");
    let pid = st["pid"].as_i64().expect("pid");
    let pids: Vec<i64> =
        serde_json::from_str(c.ok(&["ps", "--format", "json", &c.id]).trim()).expect("ps json");
    assert_eq!(pids, vec![pid]);
    let table = c.ok(&["ps", &c.id]);
    assert!(table.starts_with("UID") || table.contains("PID"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some(&pid.to_string()))
    );

    c.delete();
    let err = c.err(&["update", "--memory", "1g", &c.id]);
    assert_eq!(err, "container does not exist");
}

#[test]
fn memory_oom_kill_emits_event() {
    // No swap beyond the limit (v1 memsw = limit, v2 swap.max = 0), so the
    // growing `tail` is OOM-killed.
    let c = Ctr::new("oom", "sleep 1; tail /dev/zero; sleep 1000", |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 16 * MB, "swap": 16 * MB});
    });
    let b = c.dir.join("bundle");
    c.ok(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    let mut events = c
        .cmd(&["events", "--interval", "30s", &c.id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn events");
    let stdout = events.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first stats event says the stream is up.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("first event");
    assert!(first.starts_with(r#"{"type":"stats""#), "{first}");
    c.ok(&["start", &c.id]);
    let oom = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("an oom event");
    let _ = events.kill();
    let _ = events.wait();
    let v: Value = serde_json::from_str(&oom).expect("oom json");
    assert_eq!(v, json!({"type": "oom", "id": c.id}));
    let killed = if v2_host() {
        c.read("", "memory.events")
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0")
    } else {
        c.read("memory", "memory.oom_control")
            .contains("oom_kill 1")
    };
    assert!(killed, "kernel records the OOM kill");
    assert_eq!(c.status(), "running", "the shell survives its killed child");
    c.delete();
}

#[test]
fn fork_beyond_pids_max_fails() {
    let c = Ctr::new(
        "pids",
        // busybox sh exits on a failed fork: fork from a subshell. With 4
        // pids: sh, subshell, 2 sleeps; the next fork fails and the
        // subshell exits, leaving 3.
        "(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1000 & done) 2>/dev/null; exec sleep 1000",
        |cfg| cfg["linux"]["resources"]["pids"] = json!({"limit": 4}),
    );
    c.start_detached();
    let events = || {
        let text = c.read("pids", "pids.events");
        text.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_until("a refused fork", 10, || events() > 0);
    wait_until("3 processes", 10, || c.read("pids", "pids.current") == "3");
    let pids: Vec<i64> =
        serde_json::from_str(c.ok(&["ps", "-f", "json", &c.id]).trim()).expect("json");
    assert_eq!(pids.len(), 3);
    assert_eq!(c.status(), "running");
    c.delete();
}

/// pids.limit 0 is a real limit (runtime-spec 1.3: "0 is a valid limit value ... SHOULD be
/// treated as such"): no fork at all, so the shell dies at its first one. A pids object
/// without a limit sets nothing; update takes 0 and -1 the same way, on v1 and v2.
#[test]
fn pids_limit_zero_is_a_limit() {
    let c = Ctr::new("pids0", "(exit 0); exec sleep 1000", |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 0});
    });
    c.start_detached();
    assert_eq!(c.read("pids", "pids.max"), "0");
    wait_until("the shell's refused fork", 10, || c.status() == "stopped");
    let refused = c.read("pids", "pids.events");
    assert!(
        refused.starts_with("max ") && refused != "max 0",
        "{refused}"
    );
    c.delete();

    let c = Ctr::new("pidsupd", "exec sleep 1000", |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({});
    });
    c.start_detached();
    assert_eq!(
        c.read("pids", "pids.max"),
        "max",
        "a pids object without limit"
    );
    c.ok(&["update", "--pids-limit", "0", &c.id]);
    assert_eq!(c.read("pids", "pids.max"), "0");
    c.ok(&["update", "--pids-limit", "7", &c.id]);
    assert_eq!(c.read("pids", "pids.max"), "7");
    let resources = c.dir.join("resources.json");
    for (doc, want) in [
        (r#"{"pids":{}}"#, "7"),
        (r#"{"pids":{"limit":0}}"#, "0"),
        (r#"{"pids":{"limit":-1}}"#, "max"),
    ] {
        std::fs::write(&resources, doc).expect("write resources");
        c.ok(&["update", "-r", resources.to_str().expect("utf8"), &c.id]);
        assert_eq!(c.read("pids", "pids.max"), want, "after {doc}");
    }
    c.delete();
}

/// linux.devices makes a node but adds no cgroup rule: with the usual [deny all] list it
/// cannot be opened (v1 devices.deny, v2 the BPF program), as with runc and crun.
#[test]
fn listed_device_without_an_allow_rule_is_denied() {
    let c = Ctr::new(
        "devlisted",
        "(exec 3>/dev/capsa-kmsg) 2>&1 && echo opened; true",
        |cfg| {
            cfg["linux"]["devices"] = json!([{"path": "/dev/capsa-kmsg", "type": "c",
                "major": 1, "minor": 11, "fileMode": 0o666}]);
        },
    );
    let b = c.dir.join("bundle");
    let out = c.run(&["run", "--bundle", b.to_str().expect("utf8"), &c.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("Operation not permitted") && !text.contains("opened"),
        "{text}"
    );
    assert!(c.leftover_cgroups().is_empty());
}

/// config-linux.md "Cgroup ownership": on cgroup v2, a user-namespaced container with its
/// own cgroup namespace and a read-write cgroup mount owns its cgroup directory and the
/// delegatable files (so it can make and use sub-cgroups); other files stay root's. With a
/// read-only mount nothing changes owner. Never on v1 (not testable there: a user namespace
/// cannot mount cgroup v1 hierarchies).
#[test]
fn cgroup_is_delegated_to_a_user_namespaced_container() {
    if !v2_host() {
        skip::skip("cgroup ownership is changed on cgroup v2 only");
        return;
    }
    const ROOT_HOST: u32 = 100_000;
    let userns = |cfg: &mut Value, rw: bool| {
        if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
            ns.push(json!({"type": "user"}));
        }
        cfg["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": ROOT_HOST, "size": 65536}]);
        cfg["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": ROOT_HOST, "size": 65536}]);
        for m in cfg["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/sys/fs/cgroup"
                && rw
                && let Some(o) = m["options"].as_array_mut()
            {
                o.retain(|o| o != "ro");
            }
        }
    };
    let owner = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.uid(), m.gid())
    };
    let script = "mkdir /sys/fs/cgroup/sub && echo $$ > /sys/fs/cgroup/sub/cgroup.procs; \
                  exec sleep 1000";
    let c = Ctr::new("delegated", script, |cfg| userns(cfg, true));
    chown_tree(&c.dir.join("bundle/rootfs"), ROOT_HOST);
    let b = c.dir.join("bundle");
    c.ok(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    let dir = c.cgdir("");
    let mapped = (ROOT_HOST, ROOT_HOST);
    assert_eq!(owner(&dir), mapped, "the cgroup directory");
    let delegated = std::fs::read_to_string("/sys/kernel/cgroup/delegate")
        .unwrap_or_else(|_| "cgroup.procs\ncgroup.subtree_control\ncgroup.threads\n".into());
    for f in delegated.lines().map(str::trim).filter(|f| !f.is_empty()) {
        if dir.join(f).exists() {
            assert_eq!(owner(&dir.join(f)), mapped, "{f}");
        }
    }
    assert_eq!(owner(&dir.join("cgroup.procs")), mapped);
    assert_eq!(owner(&dir.join("memory.max")), (0, 0), "not delegatable");
    assert_eq!(owner(&dir.join("pids.max")), (0, 0), "not delegatable");
    // The workload uses it: a sub-cgroup of its own, and itself moved there.
    c.ok(&["start", &c.id]);
    let st: Value = serde_json::from_str(&c.ok(&["state", &c.id])).expect("state");
    let pid = st["pid"].as_i64().expect("pid").to_string();
    wait_until("the workload in its own sub-cgroup", 10, || {
        std::fs::read_to_string(dir.join("sub/cgroup.procs"))
            .is_ok_and(|p| p.lines().any(|l| l == pid))
    });
    c.delete();

    let c = Ctr::new("notdelegated", "exec sleep 1000", |cfg| userns(cfg, false));
    chown_tree(&c.dir.join("bundle/rootfs"), ROOT_HOST);
    let b = c.dir.join("bundle");
    c.ok(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    assert_eq!(owner(&c.cgdir("")), (0, 0), "read-only cgroup mount");
    assert_eq!(owner(&c.cgdir("").join("cgroup.procs")), (0, 0));
    c.delete();
}

/// Change the owner of everything under `dir` (symlinks themselves).
fn chown_tree(dir: &Path, id: u32) {
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).expect("lchown");
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            chown_tree(&e.expect("dir entry").path(), id);
        }
    }
}

#[test]
fn device_rules_deny_open() {
    // Inside the container (its rootfs or the host's view alike), make two
    // block device nodes: loop0 is allowed read-only by an explicit rule,
    // loop1 is not allowed at all. mknod itself is allowed (b *:* m).
    // Under /dev: not mounted nodev on any host, nor in a container (where
    // /dev must hold device nodes), unlike /tmp in the VM lane.
    let tmp = format!("/dev/capsa-cgtest-{}", std::process::id());
    let script = format!(
        "mkdir -p {tmp}; cd {tmp}; mknod a b 7 0 && mknod b b 7 1 && echo mknod-ok; \
         head -c1 a; head -c1 b; echo x > a; rm -f a b; cd /; rmdir {tmp}"
    );
    let c = Ctr::new("dev", &script, |cfg| {
        cfg["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}
        ]);
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = cfg["process"]["capabilities"][set].as_array_mut() {
                a.push(json!("CAP_MKNOD"));
            }
        }
    });
    let b = c.dir.join("bundle");
    let out = c.run(&["run", "--bundle", b.to_str().expect("utf8"), &c.id]);
    let _ = std::fs::remove_dir_all(&tmp);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("mknod-ok"), "{text}");
    // Allowed read: the open passes the cgroup check (it may then fail
    // with ENXIO without a loop driver); denied: EPERM from the cgroup.
    assert!(!text.contains("head: a: Operation not permitted"), "{text}");
    assert!(text.contains("head: b: Operation not permitted"), "{text}");
    assert!(
        text.contains("can't create a: Operation not permitted"),
        "write of read-only a: {text}"
    );
    assert!(c.leftover_cgroups().is_empty());
}

/// CPU time of the container so far, in microseconds.
fn cpu_usage_us(c: &Ctr) -> u64 {
    if v2_host() {
        c.read("", "cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        c.read("cpuacct", "cpuacct.usage")
            .parse::<u64>()
            .unwrap_or(0)
            / 1000
    }
}

#[test]
fn pause_stops_and_resume_restarts_a_busy_loop() {
    let c = Ctr::new("pause", "while :; do :; done", |_| {});
    // Pausing a created container is allowed (runc), and resume returns it
    // to created.
    let b = c.dir.join("bundle");
    c.ok(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    c.ok(&["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    c.ok(&["resume", &c.id]);
    assert_eq!(c.status(), "created");
    c.ok(&["start", &c.id]);
    wait_until("the loop to run", 10, || cpu_usage_us(&c) > 20_000);

    assert_eq!(c.err(&["resume", &c.id]), "container not paused");
    c.ok(&["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    assert_eq!(c.err(&["pause", &c.id]), "container not running");
    let a = cpu_usage_us(&c);
    std::thread::sleep(Duration::from_millis(300));
    let b2 = cpu_usage_us(&c);
    assert!(b2 - a < 5_000, "frozen loop used {} us", b2 - a);

    c.ok(&["resume", &c.id]);
    assert_eq!(c.status(), "running");
    let a = cpu_usage_us(&c);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_usage_us(&c) - a > 50_000, "loop runs again");

    // Paused, then deleted by force: nothing remains.
    c.ok(&["pause", &c.id]);
    c.delete();
    assert_eq!(c.err(&["pause", &c.id]), "container does not exist");
}

#[test]
fn unapplicable_resource_is_a_clear_error_and_leaves_nothing() {
    let (edit, want): (fn(&mut Value), &str) = if v2_host() {
        (
            |cfg| cfg["linux"]["resources"]["network"] = json!({"classID": 42}),
            "linux.resources.network.classID: ",
        )
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        // Hybrid: v2 keys go to the unified leaf, which has no memory files.
        (
            |cfg| cfg["linux"]["resources"]["unified"] = json!({"memory.high": "1000000"}),
            "linux.resources.unified.\"memory.high\": ",
        )
    } else {
        (
            |cfg| cfg["linux"]["resources"]["unified"] = json!({"memory.high": "1000000"}),
            "cgroup v2 keys need a cgroup v2 hierarchy",
        )
    };
    let c = Ctr::new("bad", "sleep 1000", edit);
    let b = c.dir.join("bundle");
    let err = c.err(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    assert!(err.contains(want), "{err}");
    assert!(
        c.leftover_cgroups().is_empty(),
        "{:?}",
        c.leftover_cgroups()
    );
    assert_eq!(c.err(&["state", &c.id]), "container does not exist");
}

#[test]
fn hugetlb_limit_from_the_hierarchy_that_has_it() {
    let has_2mb = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if !has_2mb {
        skip::skip("no 2MB huge pages");
        return;
    }
    let c = Ctr::new("huge", "sleep 1000", |cfg| {
        cfg["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 * MB}]);
    });
    let b = c.dir.join("bundle");
    let out = c.run(&["create", "--bundle", b.to_str().expect("utf8"), &c.id]);
    let unified = mounts().into_iter().find(|(_, v2)| *v2).map(|(m, _)| m);
    let v1_hugetlb = Path::new("/sys/fs/cgroup/hugetlb").exists();
    let root_enables = unified
        .as_ref()
        .and_then(|u| std::fs::read_to_string(u.join("cgroup.subtree_control")).ok())
        .is_some_and(|s| s.split_whitespace().any(|w| w == "hugetlb"));
    if v1_hugetlb {
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            c.read("hugetlb", "hugetlb.2MB.limit_in_bytes"),
            (4 * MB).to_string()
        );
    } else if let (Some(u), true) = (unified, root_enables) {
        assert!(out.status.success(), "{out:?}");
        let leaf = u.join(c.cg.trim_start_matches('/'));
        let got = std::fs::read_to_string(leaf.join("hugetlb.2MB.max")).expect("read");
        assert_eq!(got.trim(), (4 * MB).to_string());
        if leaf.join("hugetlb.2MB.rsvd.max").exists() {
            let r = std::fs::read_to_string(leaf.join("hugetlb.2MB.rsvd.max")).expect("read");
            assert_eq!(r.trim(), (4 * MB).to_string());
        }
    } else {
        // Hybrid host whose unified root does not pass hugetlb down: a
        // clear error, and capsa does not enable it on a cgroup it did not
        // create.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "linux.resources.hugepageLimits[0]: the hugetlb controller is not available"
            ),
            "{err}"
        );
        assert!(c.leftover_cgroups().is_empty());
        return;
    }
    c.delete();
}
