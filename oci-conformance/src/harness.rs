//! Driving a runtime through its command line.
//!
//! Everything a test does to a runtime goes through `Ctx::rt` (one CLI call, with stdio in
//! files so that a container inheriting them can never block us). Every container and
//! cgroup a test creates is removed when the test ends, whatever its verdict.

use crate::bundle::{Bundle, Kv, default_config, trunc};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a test concluded. `Err` of a test's result so that `?` reads naturally.
#[derive(Debug, Clone)]
pub enum Verdict {
    Fail(String),
    Skip(String),
}

pub type R = Result<(), Verdict>;

pub fn fail<T>(msg: impl Into<String>) -> Result<T, Verdict> {
    Err(Verdict::Fail(msg.into()))
}

/// The first 64 CPUs the calling thread may run on, as a bit mask.
pub fn own_affinity_mask() -> u64 {
    // SAFETY: cpu_set_t is plain old data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return 0;
    }
    (0..64)
        // SAFETY: i is within the set's bounds.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .fold(0, |m, i| m | 1 << i)
}

pub fn skip<T>(msg: impl Into<String>) -> Result<T, Verdict> {
    Err(Verdict::Skip(msg.into()))
}

pub fn ensure(cond: bool, msg: impl Into<String>) -> R {
    if cond { Ok(()) } else { fail(msg) }
}

/// Expect `got == want`, naming what was compared.
pub fn eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> R {
    if got == want {
        Ok(())
    } else {
        fail(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// The operation MUST generate an error: a non-zero exit.
pub fn must_fail(o: &Out, what: &str) -> R {
    ensure(
        !o.ok(),
        format!("{what} succeeded (exit 0) but MUST generate an error"),
    )
}

/// An io::Error as a failed verdict, with what was being done.
pub fn io<T>(r: std::io::Result<T>, what: &str) -> Result<T, Verdict> {
    r.map_err(|e| Verdict::Fail(format!("{what}: {e}")))
}

/// The fixed facts of one suite run.
pub struct Env {
    pub rt: PathBuf,
    pub root: PathBuf,
    pub work: PathBuf,
    pub checker: PathBuf,
    pub base_rootfs: PathBuf,
    pub cgroup2: bool,
    /// `--systemd-cgroup` on every runtime call; cgroupsPath is runc's `slice:prefix:name`.
    pub systemd: bool,
    /// Rootless mode: the unprivileged user (uid, gid) every runtime command runs as, and
    /// the `XDG_RUNTIME_DIR` it gets (a directory that user owns).
    pub rootless: Option<Rootless>,
}

#[derive(Clone)]
pub struct Rootless {
    pub uid: u32,
    pub gid: u32,
    pub xdg: PathBuf,
}

impl Env {
    /// A runtime command (or the shell that execs one) run as the rootless user: its uid and
    /// gid, no supplementary groups (std drops them when root sets a uid), its own
    /// XDG_RUNTIME_DIR and HOME. As root: unchanged.
    pub fn as_user(&self, c: &mut Command) {
        if let Some(r) = &self.rootless {
            std::os::unix::process::CommandExt::uid(c, r.uid);
            std::os::unix::process::CommandExt::gid(c, r.gid);
            c.env("XDG_RUNTIME_DIR", &r.xdg).env("HOME", &r.xdg);
        }
    }
    /// In rootless mode, give a directory the driver made to the user (the bundle, the
    /// shared directory), so the runtime and the container's root (the user) can use it.
    pub fn give(&self, p: &Path) {
        if let Some(r) = &self.rootless {
            let _ = std::os::unix::fs::chown(p, Some(r.uid), Some(r.gid));
        }
    }
}

/// One runtime invocation's result.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn brief(&self) -> String {
        let e: String = self.stderr.trim().chars().take(300).collect();
        format!("exit {}: {}", self.code, e)
    }
}

/// Wait for a child with a limit; -2 when it had to be killed.
fn wait_limited(ch: &mut std::process::Child, limit: Duration) -> i32 {
    let t0 = Instant::now();
    loop {
        match ch.try_wait() {
            Ok(Some(st)) => return st.code().unwrap_or(-1),
            Ok(None) if t0.elapsed() > limit => {
                let _ = ch.kill();
                let _ = ch.wait();
                return -2;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return -1,
        }
    }
}

/// Run `cmd` with stdin from /dev/null (unless set) and stdout/stderr in the given files.
pub fn run_cmd(mut cmd: Command, so: &Path, se: &Path, stdin: Option<Stdio>) -> Out {
    let (Ok(fo), Ok(fe)) = (fs::File::create(so), fs::File::create(se)) else {
        return Out {
            code: -1,
            stdout: String::new(),
            stderr: "cannot create output files".into(),
        };
    };
    cmd.stdin(stdin.unwrap_or_else(Stdio::null))
        .stdout(fo)
        .stderr(fe);
    let code = match cmd.spawn() {
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("spawn: {e}"),
            };
        }
        Ok(mut ch) => wait_limited(&mut ch, Duration::from_secs(30)),
    };
    let mut stderr = fs::read_to_string(se).unwrap_or_default();
    if code == -2 {
        stderr.push_str(" [timed out]");
    }
    Out {
        code,
        stdout: fs::read_to_string(so).unwrap_or_default(),
        stderr,
    }
}

/// The host device nodes runtimes bind-mount into user-namespaced containers.
const HOST_DEVS: [&str; 7] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

/// Owners of the host's device nodes, to be compared after a test.
pub fn host_dev_owners() -> Vec<(&'static str, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    HOST_DEVS
        .iter()
        .filter_map(|d| fs::metadata(d).ok().map(|m| (*d, m.uid(), m.gid())))
        .collect()
}

/// A runtime that chowns a bind-mounted device node changes the host's node (crun 1.8.1
/// does in user namespaces): put the owners back so the machine stays usable, and report it.
pub fn restore_host_devs(before: &[(&'static str, u32, u32)]) -> Option<String> {
    let now = host_dev_owners();
    let mut changed = Vec::new();
    for (d, u, g) in before {
        if let Some((_, nu, ng)) = now.iter().find(|(n, ..)| n == d)
            && (nu, ng) != (u, g)
        {
            let _ = std::os::unix::fs::chown(d, Some(*u), Some(*g));
            changed.push(format!("{d} {u}:{g} -> {nu}:{ng}"));
        }
    }
    (!changed.is_empty()).then(|| {
        format!(
            "the owner of the host's device nodes changed during this test (put back): {}",
            changed.join(", ")
        )
    })
}

pub fn host_ns(n: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{n}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Whether a non-root cgroup of this host has `file` (v1: in the `ctl` hierarchy; v2: the
/// unified one). Root cgroups lack most control files, so a probe child is made once per
/// hierarchy, listed and removed.
pub fn host_has(env: &Env, ctl: &str, file: &str) -> bool {
    static CACHE: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);
    let base = if env.cgroup2 {
        "/sys/fs/cgroup".to_string()
    } else {
        format!("/sys/fs/cgroup/{ctl}")
    };
    let mut g = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let files = g
        .get_or_insert_with(HashMap::new)
        .entry(base.clone())
        .or_insert_with(|| {
            // On a systemd host the root's subtree_control holds only what some unit needs
            // (a runtime's unit properties enable the rest): enable every available
            // controller there first, so the probe lists what a container could get.
            if env.systemd && env.cgroup2 {
                let avail =
                    fs::read_to_string(format!("{base}/cgroup.controllers")).unwrap_or_default();
                for ctl in avail.split_whitespace() {
                    let _ = fs::write(format!("{base}/cgroup.subtree_control"), format!("+{ctl}"));
                }
            }
            let probe = format!("{base}/oct-probe-{}", std::process::id());
            if fs::create_dir(&probe).is_err() {
                return Vec::new();
            }
            let names = fs::read_dir(&probe)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let _ = fs::remove_dir(&probe);
            names
        });
    files.iter().any(|f| f == file)
}

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
    ids: Vec<String>,
    cgroups: Vec<String>,
    n: usize,
    tag: String,
}

impl<'a> Ctx<'a> {
    pub fn new(env: &'a Env, index: usize) -> Ctx<'a> {
        let dir = env.work.join(format!("t{index:03}"));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::create_dir_all(&dir);
        env.give(&dir);
        Ctx {
            env,
            dir,
            ids: Vec::new(),
            cgroups: Vec::new(),
            n: 0,
            tag: format!("oct{}-{index}", std::process::id() % 10000),
        }
    }

    /// A fresh container id, remembered for cleanup.
    pub fn id(&mut self) -> String {
        self.n += 1;
        let id = format!("{}-{}", self.tag, self.n);
        self.ids.push(id.clone());
        id
    }

    /// Remember an id chosen by the test (e.g. an unusual one) for cleanup.
    pub fn track(&mut self, id: &str) {
        self.ids.push(id.to_string());
    }

    /// A fresh cgroupsPath, whose directories (or systemd unit) are removed when the test
    /// ends: absolute, or with --systemd runc's `slice:prefix:name` (a scope in system.slice).
    pub fn cgroup_path(&mut self) -> String {
        self.n += 1;
        let p = if self.env.systemd {
            format!("system.slice:oct:{}-cg{}", self.tag, self.n)
        } else {
            format!("/oci-conformance/{}-cg{}", self.tag, self.n)
        };
        self.cgroups.push(p.clone());
        p
    }

    /// The cgroup (relative to the mount point) a cgroupsPath from `cgroup_path` names:
    /// with --systemd, `slice:prefix:name` is the scope unit `prefix-name.scope` in the slice.
    pub fn cgroup_of(&self, path: &str) -> String {
        match path.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] if self.env.systemd => {
                format!("/{slice}/{prefix}-{name}.scope")
            }
            _ => path.to_string(),
        }
    }

    fn base_cmd(&self) -> Command {
        let mut c = Command::new(&self.env.rt);
        c.arg("--root").arg(&self.env.root);
        if self.env.systemd {
            // runc, crun and capsa all spell the global flag this way.
            c.arg("--systemd-cgroup");
        }
        c.current_dir(&self.dir);
        self.env.as_user(&mut c);
        c
    }

    /// One runtime CLI call (global options first), stdio in files, 30 s limit.
    pub fn rt(&self, args: &[&str]) -> Out {
        let mut c = self.base_cmd();
        c.args(args);
        run_cmd(
            c,
            &self.dir.join(".rt-stdout"),
            &self.dir.join(".rt-stderr"),
            None,
        )
    }

    /// A runtime call with `--root` and the given stdin, in `cwd`.
    pub fn rt_with(&self, args: &[&str], cwd: &Path, stdin: Option<Stdio>) -> Out {
        let mut c = self.base_cmd();
        c.args(args).current_dir(cwd);
        run_cmd(
            c,
            &self.dir.join(".rt-stdout"),
            &self.dir.join(".rt-stderr"),
            stdin,
        )
    }

    pub fn bundle(&mut self) -> Result<Bundle, Verdict> {
        self.n += 1;
        let dir = self.dir.join(format!("b{}", self.n));
        io(fs::create_dir_all(&dir), "mkdir bundle")?;
        let st = io(
            Command::new("cp")
                .arg("-al")
                .arg(&self.env.base_rootfs)
                .arg(dir.join("rootfs"))
                .status(),
            "cp rootfs",
        )?;
        ensure(st.success(), "cp -al of the base rootfs failed")?;
        self.env.give(&dir);
        let mut config = default_config();
        if let Some(r) = &self.env.rootless {
            crate::bundle::to_rootless(&mut config, r.uid, r.gid);
        }
        Ok(Bundle { dir, config })
    }

    /// A bundle running the checker with `ops`.
    pub fn bundle_ops(&mut self, ops: &[&str]) -> Result<Bundle, Verdict> {
        let mut b = self.bundle()?;
        b.args(ops);
        Ok(b)
    }

    /// Bind the test directory into the container at the same absolute path, so hooks and
    /// the container process can write to files the driver reads.
    pub fn share(&self, b: &mut Bundle) -> String {
        let d = self.dir.join("shared");
        let _ = fs::create_dir_all(&d);
        self.env.give(&d);
        let p = d.display().to_string();
        b.add_mount(
            serde_json::json!({"destination": p, "type": "bind", "source": p, "options": ["rbind", "rw"]}),
        );
        p
    }

    /// `create` (after writing config.json) with the container's stdio in the bundle's
    /// `stdout`/`stderr` files.
    pub fn create(&self, b: &Bundle, id: &str) -> Result<Out, Verdict> {
        b.write()?;
        self.create_nowrite(b, id, &[])
    }

    pub fn create_nowrite(&self, b: &Bundle, id: &str, extra: &[&str]) -> Result<Out, Verdict> {
        let mut c = self.base_cmd();
        c.arg("create")
            .arg("--bundle")
            .arg(&b.dir)
            .args(extra)
            .arg(id);
        let o = run_cmd(c, &b.dir.join("stdout"), &b.dir.join("stderr"), None);
        Ok(Out {
            stdout: String::new(),
            ..o
        })
    }

    /// `create` run by /bin/sh after the shell commands `prefix` (which set up what the
    /// runtime inherits: an fd, the umask, oom_score_adj, an environment variable).
    pub fn create_via_sh(&self, b: &Bundle, id: &str, prefix: &str) -> Result<Out, Verdict> {
        b.write()?;
        let script = format!(
            "{prefix}; exec {rt} --root {root} create --bundle {dir} {id}",
            rt = self.env.rt.display(),
            root = self.env.root.display(),
            dir = b.path()
        );
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script).current_dir(&self.dir);
        self.env.as_user(&mut c);
        Ok(run_cmd(
            c,
            &b.dir.join("stdout"),
            &b.dir.join("stderr"),
            None,
        ))
    }

    /// `create_via_sh`, start, wait for stopped; what the checker printed.
    pub fn run_via_sh(&mut self, b: &Bundle, prefix: &str) -> Result<Kv, Verdict> {
        let id = self.id();
        let o = self.create_via_sh(b, &id, prefix)?;
        ensure(o.ok(), format!("create failed: {}", o.brief()))?;
        self.must_start(&id)?;
        self.wait_status(&id, "stopped", 10)?;
        Ok(Kv::parse(&b.stdout()))
    }

    /// Create and insist on success.
    pub fn must_create(&self, b: &Bundle, id: &str) -> R {
        let o = self.create(b, id)?;
        ensure(o.ok(), format!("create failed: {}", o.brief()))
    }

    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    pub fn must_start(&self, id: &str) -> R {
        let o = self.start(id);
        ensure(o.ok(), format!("start failed: {}", o.brief()))
    }

    pub fn state(&self, id: &str) -> Result<Value, Verdict> {
        let o = self.rt(&["state", id]);
        ensure(o.ok(), format!("state {id} failed: {}", o.brief()))?;
        serde_json::from_str(&o.stdout).map_err(|e| {
            Verdict::Fail(format!(
                "state is not JSON ({e}): {}",
                trunc(&o.stdout, 200)
            ))
        })
    }

    pub fn status(&self, id: &str) -> Result<String, Verdict> {
        Ok(self.state(id)?["status"].as_str().unwrap_or("").to_string())
    }

    pub fn pid(&self, id: &str) -> Result<i32, Verdict> {
        let s = self.state(id)?;
        match s["pid"].as_i64() {
            Some(p) if p > 0 => Ok(p as i32),
            _ => fail(format!("state has no positive pid: {s}")),
        }
    }

    pub fn wait_status(&self, id: &str, want: &str, secs: u64) -> R {
        let t0 = Instant::now();
        let mut last = String::new();
        while t0.elapsed() < Duration::from_secs(secs) {
            last = self.status(id)?;
            if last == want {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        fail(format!(
            "status stayed {last:?}, never {want:?} within {secs}s"
        ))
    }

    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Out {
        self.rt(&["delete", id])
    }

    /// A created container whose process sleeps (so it stays alive once started).
    pub fn created(&mut self) -> Result<(Bundle, String), Verdict> {
        let b = self.bundle_ops(&["sleep:30"])?;
        let id = self.id();
        self.must_create(&b, &id)?;
        Ok((b, id))
    }

    pub fn running(&mut self) -> Result<(Bundle, String), Verdict> {
        let (b, id) = self.created()?;
        self.must_start(&id)?;
        Ok((b, id))
    }

    pub fn stopped(&mut self) -> Result<(Bundle, String), Verdict> {
        let b = self.bundle_ops(&["exit:0"])?;
        let id = self.id();
        self.must_create(&b, &id)?;
        self.must_start(&id)?;
        self.wait_status(&id, "stopped", 10)?;
        Ok((b, id))
    }

    /// Wait until the container's stdout contains `what` (e.g. a checker's `ready=1`).
    pub fn wait_output(&self, b: &Bundle, what: &str) -> R {
        for _ in 0..300 {
            if b.stdout().contains(what) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        fail(format!(
            "the container never printed {what:?}: {}",
            trunc(&b.stdout(), 200)
        ))
    }

    /// create, start, wait for stopped, delete; returns what the checker printed.
    pub fn run(&mut self, b: &Bundle) -> Result<Kv, Verdict> {
        let id = self.id();
        self.must_create(b, &id)?;
        self.must_start(&id)?;
        self.wait_status(&id, "stopped", 15)?;
        let d = self.delete(&id);
        ensure(
            d.ok(),
            format!("delete of a stopped container failed: {}", d.brief()),
        )?;
        Ok(Kv::parse(&b.stdout()))
    }

    /// Run the checker with `ops` in a bundle adjusted by `f`.
    pub fn run_ops(&mut self, ops: &[&str], f: impl FnOnce(&mut Bundle)) -> Result<Kv, Verdict> {
        let mut b = self.bundle_ops(ops)?;
        f(&mut b);
        self.run(&b)
    }

    /// Create `b` expecting a refusal: true when create failed.
    pub fn create_fails(&mut self, b: &Bundle) -> Result<bool, Verdict> {
        let id = self.id();
        let failed = !self.create(b, &id)?.ok();
        // A refused create leaves nothing behind: with --systemd, no scope unit either.
        if failed && self.env.systemd {
            let path = b.config["linux"]["cgroupsPath"].as_str().unwrap_or("");
            let cg = self.cgroup_of(path);
            let unit = cg.rsplit('/').next().unwrap_or("");
            if !unit.is_empty() && unit_exists(unit) {
                return fail(format!(
                    "create failed but left the systemd unit {unit} behind"
                ));
            }
        }
        Ok(failed)
    }

    /// The host path of `file` in the cgroup of `pid` for `controller` (v1) or the unified one.
    pub fn cgroup_file(&self, pid: i32, controller: &str, file: &str) -> Result<PathBuf, Verdict> {
        let s = io(
            fs::read_to_string(format!("/proc/{pid}/cgroup")),
            &format!("read /proc/{pid}/cgroup"),
        )?;
        for l in s.lines() {
            let mut p = l.splitn(3, ':');
            let (_, ctrls, path) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
            if self.env.cgroup2 {
                if ctrls.is_empty() {
                    return Ok(PathBuf::from(format!("/sys/fs/cgroup{path}/{file}")));
                }
            } else if ctrls.split(',').any(|c| c == controller) {
                return Ok(PathBuf::from(format!(
                    "/sys/fs/cgroup/{ctrls}{path}/{file}"
                )));
            }
        }
        fail(format!("container pid {pid} is in no {controller} cgroup"))
    }

    pub fn cgroup_read(&self, pid: i32, controller: &str, file: &str) -> Result<String, Verdict> {
        let p = self.cgroup_file(pid, controller, file)?;
        io(fs::read_to_string(&p), &format!("read {}", p.display())).map(|s| s.trim().to_string())
    }

    pub fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            if self.rt(&["state", &id]).ok() {
                let _ = self.rt(&["kill", &id, "KILL"]);
                let _ = self.rt(&["delete", "--force", &id]);
                if self.rt(&["state", &id]).ok() {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = self.rt(&["delete", "--force", &id]);
                }
            }
        }
        // The cgroups we named (and their common parent, once empty), in every hierarchy;
        // with --systemd, a scope unit the runtime left behind is stopped.
        for path in std::mem::take(&mut self.cgroups) {
            if self.env.systemd {
                let unit = self.cgroup_of(&path);
                let unit = unit.rsplit('/').next().unwrap_or("");
                if unit_exists(unit) {
                    let _ = Command::new("systemctl")
                        .args(["stop", unit])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
                continue;
            }
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
            if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
                bases.extend(rd.flatten().map(|e| e.path()));
            }
            for base in bases {
                let _ = fs::remove_dir(format!("{}{path}", base.display()));
                let _ = fs::remove_dir(format!("{}{parent}", base.display()));
            }
        }
        if std::env::var_os("OCT_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether systemd has `unit` loaded and not inactive (`systemctl is-active` exits 0 for
/// active, activating and deactivating units, 3 for inactive or unknown ones).
pub fn unit_exists(unit: &str) -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .status()
        .is_ok_and(|s| s.success())
}
