//! Driving a runtime through its command line, and building bundles for it.
//!
//! Everything a test does to a runtime goes through `Ctx::rt` (one CLI call, with
//! stdio in files so that a container inheriting them can never block us) and every
//! container a test creates is force-deleted when the test ends, whatever its verdict.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
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

/// The fixed facts of one suite run.
pub struct Env {
    pub rt: PathBuf,
    pub rt_name: String,
    pub root: PathBuf,
    pub work: PathBuf,
    pub checker: PathBuf,
    pub base_rootfs: PathBuf,
    pub cgroup2: bool,
    pub extra_global: Vec<String>,
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
        let e = self.stderr.trim();
        let e: String = e.chars().take(300).collect();
        format!("exit {}: {}", self.code, e)
    }
}

/// Parsed checker output: `key=value` lines.
#[derive(Debug, Default, Clone)]
pub struct Kv(pub HashMap<String, String>, pub String);

impl Kv {
    pub fn parse(s: &str) -> Kv {
        let mut m = HashMap::new();
        for l in s.lines() {
            if let Some((k, v)) = l.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        Kv(m, s.to_string())
    }
    pub fn get(&self, k: &str) -> Result<&str, Verdict> {
        match self.0.get(k) {
            Some(v) => Ok(v.as_str()),
            None => fail(format!(
                "checker reported no {k:?}; output: {}",
                trunc(&self.1, 400)
            )),
        }
    }
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
}

pub fn trunc(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    t.replace('\n', " | ")
}

pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap_or("")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Set the checker operations the container runs.
    pub fn args(&mut self, ops: &[&str]) {
        let mut a = vec![json!("/checker")];
        a.extend(ops.iter().map(|o| json!(o)));
        self.config["process"]["args"] = Value::Array(a);
    }
    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }
    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }
    pub fn add_mount(&mut self, m: Value) {
        if let Some(a) = self.config["mounts"].as_array_mut() {
            a.push(m);
        }
    }
    pub fn remove_ns(&mut self, t: &str) {
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != t);
        }
    }
    pub fn add_ns(&mut self, t: &str, path: Option<&str>) {
        self.remove_ns(t);
        let mut n = json!({"type": t});
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.push(n);
        }
    }
    pub fn write(&self) -> Result<(), Verdict> {
        let s = serde_json::to_string_pretty(&self.config)
            .map_err(|e| Verdict::Fail(format!("config: {e}")))?;
        fs::write(self.dir.join("config.json"), s)
            .map_err(|e| Verdict::Fail(format!("write config.json: {e}")))
    }
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }
}

/// The default configuration: close to what `runc spec` emits, non-terminal, running the checker.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/checker"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "oci-conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ]
        }
    })
}

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
    ids: Vec<String>,
    n: usize,
    tag: String,
}

fn run_cmd(mut cmd: Command, dir: &Path, timeout: Duration) -> Out {
    let so = dir.join(".rt-stdout");
    let se = dir.join(".rt-stderr");
    let (Ok(fo), Ok(fe)) = (fs::File::create(&so), fs::File::create(&se)) else {
        return Out {
            code: -1,
            stdout: String::new(),
            stderr: "cannot create output files".into(),
        };
    };
    cmd.stdin(Stdio::null()).stdout(fo).stderr(fe);
    let code = match cmd.spawn() {
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("spawn: {e}"),
            };
        }
        Ok(mut ch) => {
            let t0 = Instant::now();
            loop {
                match ch.try_wait() {
                    Ok(Some(st)) => break st.code().unwrap_or(-1),
                    Ok(None) if t0.elapsed() > timeout => {
                        let _ = ch.kill();
                        let _ = ch.wait();
                        break -2;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => break -1,
                }
            }
        }
    };
    let mut stderr = fs::read_to_string(&se).unwrap_or_default();
    if code == -2 {
        stderr.push_str(" [timed out]");
    }
    Out {
        code,
        stdout: fs::read_to_string(&so).unwrap_or_default(),
        stderr,
    }
}

impl<'a> Ctx<'a> {
    pub fn new(env: &'a Env, tag: &str, index: usize) -> Ctx<'a> {
        let dir = env.work.join(format!("t{index:03}"));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::create_dir_all(&dir);
        let _ = tag;
        Ctx {
            env,
            dir,
            ids: Vec::new(),
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

    fn base_cmd(&self) -> Command {
        let mut c = Command::new(&self.env.rt);
        c.arg("--root").arg(&self.env.root);
        c.args(&self.env.extra_global);
        c.current_dir(&self.dir);
        c
    }

    /// One runtime CLI call (global options first), stdio in files, 30 s limit.
    pub fn rt(&self, args: &[&str]) -> Out {
        let mut c = self.base_cmd();
        c.args(args);
        run_cmd(c, &self.dir, Duration::from_secs(30))
    }

    /// Call the runtime with no `--root`, exactly as given.
    pub fn rt_raw(&self, args: &[&str]) -> Out {
        let mut c = Command::new(&self.env.rt);
        c.args(args).current_dir(&self.dir);
        run_cmd(c, &self.dir, Duration::from_secs(30))
    }

    pub fn bundle(&mut self) -> Result<Bundle, Verdict> {
        self.n += 1;
        let dir = self.dir.join(format!("b{}", self.n));
        fs::create_dir_all(&dir).map_err(|e| Verdict::Fail(format!("mkdir bundle: {e}")))?;
        let st = Command::new("cp")
            .arg("-al")
            .arg(&self.env.base_rootfs)
            .arg(dir.join("rootfs"))
            .status()
            .map_err(|e| Verdict::Fail(format!("cp rootfs: {e}")))?;
        ensure(st.success(), "cp -al of the base rootfs failed")?;
        Ok(Bundle {
            dir,
            config: default_config(),
        })
    }

    /// Bind the test directory into the container at the same absolute path, so hooks and
    /// the container process can write to files the driver reads.
    pub fn share(&self, b: &mut Bundle) -> String {
        let d = self.dir.join("shared");
        let _ = fs::create_dir_all(&d);
        let p = d.display().to_string();
        b.add_mount(
            json!({"destination": p, "type": "bind", "source": p, "options": ["rbind", "rw"]}),
        );
        p
    }

    /// `create` with the container's stdio in the bundle's `stdout`/`stderr` files.
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
        let so =
            fs::File::create(b.dir.join("stdout")).map_err(|e| Verdict::Fail(e.to_string()))?;
        let se =
            fs::File::create(b.dir.join("stderr")).map_err(|e| Verdict::Fail(e.to_string()))?;
        c.stdin(Stdio::null()).stdout(so).stderr(se);
        let mut ch = c
            .spawn()
            .map_err(|e| Verdict::Fail(format!("spawn create: {e}")))?;
        let t0 = Instant::now();
        let code = loop {
            match ch.try_wait() {
                Ok(Some(st)) => break st.code().unwrap_or(-1),
                Ok(None) if t0.elapsed() > Duration::from_secs(30) => {
                    let _ = ch.kill();
                    let _ = ch.wait();
                    break -2;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break -1,
            }
        };
        Ok(Out {
            code,
            stdout: String::new(),
            stderr: b.stderr(),
        })
    }

    /// Create and insist on success.
    pub fn must_create(&self, b: &Bundle, id: &str) -> R {
        let o = self.create(b, id)?;
        if !o.ok() {
            return fail(format!("create failed: {}", o.brief()));
        }
        Ok(())
    }

    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    pub fn state(&self, id: &str) -> Result<Value, Verdict> {
        let o = self.rt(&["state", id]);
        if !o.ok() {
            return fail(format!("state {id} failed: {}", o.brief()));
        }
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

    /// create, start, wait for stopped, delete; returns what the checker printed.
    pub fn run(&mut self, b: &Bundle) -> Result<Kv, Verdict> {
        let id = self.id();
        self.must_create(b, &id)?;
        let o = self.start(&id);
        if !o.ok() {
            return fail(format!("start failed: {}", o.brief()));
        }
        self.wait_status(&id, "stopped", 15)?;
        let d = self.delete(&id);
        if !d.ok() {
            return fail(format!(
                "delete of a stopped container failed: {}",
                d.brief()
            ));
        }
        Ok(Kv::parse(&b.stdout()))
    }

    /// Run a container expected to be refused at create (or to fail before the checker runs).
    /// Returns Ok(true) when create failed, Ok(false) when it ran anyway.
    pub fn create_fails(&mut self, b: &Bundle) -> Result<(bool, String), Verdict> {
        let id = self.id();
        let o = self.create(b, &id)?;
        if !o.ok() {
            return Ok((true, o.brief()));
        }
        Ok((false, String::new()))
    }

    /// The host path of `file` in the container's cgroup for `controller` (v1) or the unified one.
    pub fn cgroup_file(&self, pid: i32, controller: &str, file: &str) -> Result<PathBuf, Verdict> {
        let s = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|e| Verdict::Fail(format!("read /proc/{pid}/cgroup: {e}")))?;
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
        fs::read_to_string(&p)
            .map(|s| s.trim().to_string())
            .map_err(|e| Verdict::Fail(format!("read {}: {e}", p.display())))
    }

    pub fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            let st = self.rt(&["state", &id]);
            if st.ok() {
                let _ = self.rt(&["kill", &id, "KILL"]);
                let _ = self.rt(&["delete", "--force", &id]);
                if self.rt(&["state", &id]).ok() {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = self.rt(&["delete", "--force", &id]);
                }
            }
        }
        if std::env::var_os("OCT_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
