//! Shared harness for the integration tests: a busybox bundle per test, a per-test state
//! root, unique container ids, a runner with a timeout, and a guard that force-deletes
//! every container the test made. What it reads of the host (mounts, cgroups, processes,
//! namespaces, capabilities) is in `host`.
//!
//! The tests drive a runtime binary through its CLI only, so they run against runc too:
//! the binary is `$CAPSA_TEST_RUNTIME` if set, else the capsa binary cargo built.
//! Tests run as parallel threads of one process: nothing here changes the cwd or any
//! process-wide state, and every path and id is unique to one test.

#![allow(dead_code)] // each test file uses a different part of the harness

mod attack;
#[allow(unused_imports)] // only the CVE-2019-5736 tests run the attacker
pub use attack::*;
mod host;
pub use host::*;
mod limits;
mod rootless;
mod skip;
#[allow(unused_imports)] // only some test files make host limits
pub use limits::*;
#[allow(unused_imports)] // only the rootless tests run as the test user
pub use rootless::*;
pub use skip::*;

use serde_json::{Value, json};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default limit for one runtime invocation; a runtime that hangs fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The runtime under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("CAPSA_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_capsa")),
    }
}

/// True when the runtime under test is capsa (checks meant only for capsa gate on this).
pub fn is_capsa() -> bool {
    runtime()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("capsa"))
}

/// Skip a capsa-only test on another runtime, saying why (a counted skip, see
/// `skip`). Returns true when skipping.
pub fn skip_unless_capsa(why: &str) -> bool {
    if is_capsa() {
        return false;
    }
    skip(&format!(
        "capsa-only check ({why}); runtime is {}",
        runtime().display()
    ));
    true
}

/// What one runtime invocation produced.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panic with everything we know when the invocation failed.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success: {self}");
        self
    }

    /// Panic unless the invocation failed with a message containing `needle` (stderr or,
    /// for runtimes that log there, stdout).
    #[track_caller]
    pub fn fails_with(&self, needle: &str) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a non-zero exit: {self}"
        );
        let all = format!("{}{}", self.stderr, self.stdout);
        assert!(
            all.contains(needle),
            "expected {needle:?} in the output: {self}"
        );
        self
    }
}

impl Output {
    /// Panic unless the invocation failed with a message containing, ignoring case, at
    /// least one of `needles`.
    #[track_caller]
    pub fn fails_with_any(&self, needles: &[&str]) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a non-zero exit: {self}"
        );
        let all = format!("{}{}", self.stderr, self.stdout).to_lowercase();
        assert!(
            needles.iter().any(|n| all.contains(&n.to_lowercase())),
            "expected one of {needles:?} in the output: {self}"
        );
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> code {:?} signal {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// A directory removed on drop, unless something is still mounted below it (removing
/// through a leaked bind mount could delete host files).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "capsa-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            next()
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if mounted_below(&self.path) {
            eprintln!(
                "WARNING: {} still has mounts below it; not removing it",
                self.path.display()
            );
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A file only the test rootfs has: a workload that does not see it is running in the
/// host's filesystem (a runtime without a working root switch) and must not write.
pub const ROOTFS_MARKER: &str = "/.capsa-test-rootfs";

/// Build a busybox root filesystem at `rootfs`.
pub fn build_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs dir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
        .expect("chmod rootfs/tmp");
    fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("copy /bin/busybox (install busybox-static)");
    for applet in busybox_applets() {
        // A link named busybox would replace the binary with a link to itself.
        if applet == "busybox" || applet.contains('/') {
            continue;
        }
        let _ = symlink("busybox", bin.join(&applet));
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    )
    .expect("write passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("write group");
    fs::write(rootfs.join(ROOTFS_MARKER.trim_start_matches('/')), "").expect("write marker");
}

fn busybox_applets() -> Vec<String> {
    use std::sync::OnceLock;
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("run busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
    .clone()
}

/// runc's `runc spec` default, with `terminal: false` and a harmless command.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
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
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// One test's world: a bundle, a state root, and the containers it created.
pub struct Ctx {
    pub tmp: TempDir,
    /// The config written by `write_config`; edit it freely before.
    pub config: Value,
    /// The container id this test uses by default.
    pub id: String,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Ctx {
    /// A fresh bundle (`<tmp>/bundle`) and state root (`<tmp>/root`). `tag` names the test
    /// in ids and paths, to make leftovers traceable.
    pub fn new(tag: &str) -> Ctx {
        let tmp = TempDir::new(tag);
        build_rootfs(&tmp.path().join("bundle/rootfs"));
        fs::create_dir_all(tmp.path().join("root")).expect("mkdir state root");
        fs::create_dir_all(tmp.path().join("out")).expect("mkdir out");
        let id = unique_id(tag);
        let mut config = default_config();
        config["linux"]["cgroupsPath"] = json!(cgroup_path_for(&id));
        let ctx = Ctx {
            tmp,
            config,
            id: id.clone(),
            ids: std::sync::Mutex::new(Vec::new()),
        };
        ctx.track(&id);
        ctx
    }

    pub fn bundle(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// The `--root` state directory.
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A scratch path in the test's temp dir (outside the bundle).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Remember `id` so Drop force-deletes it.
    pub fn track(&self, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id.to_owned());
        }
    }

    /// A second unique id, tracked for cleanup, whose cgroupsPath is derived the same way.
    pub fn new_id(&self, tag: &str) -> String {
        let id = unique_id(tag);
        self.track(&id);
        id
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// `sh -c script` for a script that writes files: it refuses to run (exit 99) unless
    /// it sees the test rootfs, so a runtime that leaves the workload in the host's
    /// filesystem cannot make the test write there.
    pub fn sh_writes(&mut self, script: &str) -> &mut Self {
        let guarded = format!(
            "[ -e {ROOTFS_MARKER} ] || {{ echo 'not in the test rootfs: refusing to write' >&2; exit 99; }}; {script}"
        );
        self.args(&["sh", "-c", &guarded])
    }

    /// For tests where the runtime itself writes inside the root (creating cwd or mount
    /// points): first prove with a throwaway container that the workload's root is the
    /// bundle's rootfs, else panic before the runtime can create anything on the host.
    #[track_caller]
    pub fn require_isolated_root(&self) {
        let mut probe = Ctx::new("rootprobe");
        probe.args(&["test", "-e", ROOTFS_MARKER]);
        let o = probe.run();
        assert!(
            o.success(),
            "the runtime does not run the workload in the bundle rootfs; not running a \
             test that would make it write to the host: {o}"
        );
    }

    /// Drop namespace `ty` from linux.namespaces.
    pub fn remove_ns(&mut self, ty: &str) -> &mut Self {
        if let Some(list) = self.config["linux"]["namespaces"].as_array_mut() {
            list.retain(|n| n["type"] != ty);
        }
        self
    }

    /// Add (or replace) namespace `ty`, joining `path` if given.
    pub fn set_ns(&mut self, ty: &str, path: Option<&str>) -> &mut Self {
        self.remove_ns(ty);
        let mut entry = json!({"type": ty});
        if let Some(p) = path {
            entry["path"] = json!(p);
        }
        if let Some(list) = self.config["linux"]["namespaces"].as_array_mut() {
            list.push(entry);
        }
        self
    }

    pub fn push_mount(&mut self, mount: Value) -> &mut Self {
        if let Some(list) = self.config["mounts"].as_array_mut() {
            list.push(mount);
        }
        self
    }

    /// Write `config` to `<bundle>/config.json`.
    pub fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        fs::write(self.bundle().join("config.json"), text).expect("write config.json");
    }

    /// Run the runtime with `--root <root>` and `args`.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.rt_with(args, |_| {})
    }

    /// Like `rt`, letting the caller adjust the command (stdin, extra fds...).
    pub fn rt_with(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Output {
        self.rt_limited(args, TIMEOUT, adjust)
    }

    /// Like `rt_with`, with `limit` instead of TIMEOUT as the time that counts as a hang.
    pub fn rt_limited(
        &self,
        args: &[&str],
        limit: Duration,
        adjust: impl FnOnce(&mut Command),
    ) -> Output {
        let root = self.root();
        let mut full: Vec<&str> = vec!["--root", root.to_str().expect("utf-8 temp path")];
        full.extend_from_slice(args);
        run_cmd(
            &runtime(),
            &full,
            &self.tmp.path().join("out"),
            limit,
            adjust,
        )
    }

    /// Write the config, then `run --bundle B <id>` in the foreground.
    pub fn run(&self) -> Output {
        self.write_config();
        let b = self.bundle();
        self.rt(&["run", "--bundle", b.to_str().expect("utf-8"), &self.id])
    }

    /// Write the config and `create` the default container; panics if that fails.
    pub fn create(&self) -> Output {
        self.write_config();
        let o = self.create_id(&self.id, &[]);
        o.ok();
        o
    }

    /// Write the config and `create` the default container with its stdout (inherited
    /// from the runtime) going to a file, whose path is returned: the workload can report
    /// to the test without writing into its root. Panics if create fails.
    pub fn create_capturing(&self) -> PathBuf {
        self.write_config();
        let path = self.scratch(&format!("{}.workload-out", self.id));
        let file = fs::File::create(&path).expect("create workload output file");
        let b = self.bundle();
        let o = self.rt_with(
            &["create", "--bundle", b.to_str().expect("utf-8"), &self.id],
            |cmd| {
                cmd.stdout(file);
            },
        );
        o.ok();
        path
    }

    /// `create [extra] --bundle B id` with the current config.json as is.
    pub fn create_id(&self, id: &str, extra: &[&str]) -> Output {
        let b = self.bundle();
        let mut args = vec!["create"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--bundle", b.to_str().expect("utf-8"), id]);
        self.rt(&args)
    }

    /// `state id` parsed as JSON; panics if the call fails.
    pub fn state(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]);
        o.ok();
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}"))
    }

    /// Create the default container running `sleep 1000` (it waits on start) to hold
    /// its namespaces for others to join; returns its init's pid.
    pub fn create_holder(&mut self) -> String {
        self.args(&["sleep", "1000"]);
        self.create();
        let pid = self.state(&self.id)["pid"].as_i64().expect("holder pid");
        pid.to_string()
    }

    /// The runtime's `features` output, parsed.
    pub fn features(&self) -> Value {
        let o = self.rt(&["features"]);
        o.ok();
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("features not JSON ({e}): {o}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_owned()
    }

    /// Poll until `state id` reports `want`, or panic after `limit`.
    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "container {id} stayed {s:?}, expected {want:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What survives of container `id`: its state dir under --root, cgroup directories in
    /// any hierarchy, processes whose root is this bundle's rootfs, mounts below the test's
    /// directory in our mount namespace.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        let state_dir = self.root().join(id);
        if state_dir.exists() {
            left.push(format!("state dir {}", state_dir.display()));
        }
        left.extend(
            cgroup_dirs_for(id)
                .iter()
                .map(|p| format!("cgroup {}", p.display())),
        );
        left.extend(
            procs_rooted_at(&self.rootfs())
                .iter()
                .map(|p| format!("process {p}")),
        );
        if mounted_below(self.tmp.path()) {
            left.push(format!("mount below {}", self.tmp.path().display()));
        }
        left
    }

    /// Assert that nothing of container `id` survives (see `leftovers`).
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str) {
        let left = self.leftovers(id);
        assert!(left.is_empty(), "left behind by {id}: {left:#?}");
    }

    /// Write the config and `create` it, which must fail with `needle` in the output and
    /// leave nothing behind.
    #[track_caller]
    pub fn create_refused(&self, needle: &str) -> Output {
        self.write_config();
        let o = self.create_id(&self.id, &[]);
        o.fails_with(needle);
        self.assert_nothing_left(&self.id);
        o
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        for id in ids {
            let _ = self.rt(&["delete", "--force", &id]);
            for dir in cgroup_dirs_for(&id) {
                // rmdir only: it removes an empty cgroup and can touch nothing else.
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

/// A unique container id: tag, test process pid, counter.
pub fn unique_id(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), next())
}

/// The linux.cgroupsPath every test container gets: one level, unique, so that no shared
/// parent is left behind and leftovers are easy to find.
pub fn cgroup_path_for(id: &str) -> String {
    format!("/capsa-test-{id}")
}

/// Run `prog args` with stdout/stderr going to files (a detached container may keep them
/// open, so waiting for EOF on pipes would hang) and stdin from /dev/null.
pub fn run_cmd(
    prog: &Path,
    args: &[&str],
    outdir: &Path,
    limit: Duration,
    adjust: impl FnOnce(&mut Command),
) -> Output {
    let n = next();
    let out_path = outdir.join(format!("{n}.stdout"));
    let err_path = outdir.join(format!("{n}.stderr"));
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    adjust(&mut cmd);
    let cmdline = format!("{} {}", prog.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
    let status = wait_limit(&mut child, limit).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "timed out after {limit:?}: {cmdline}\nstdout: {}\nstderr: {}",
            read_lossy(&out_path),
            read_lossy(&err_path)
        )
    });
    Output {
        code: status.code(),
        signal: status.signal(),
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
        cmdline,
    }
}

fn wait_limit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("wait: {e}"),
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Make `fd` (open in the test process, possibly close-on-exec) appear as fd `target` in
/// the spawned runtime, without close-on-exec.
pub fn pass_fd_as(cmd: &mut Command, fd: std::os::fd::RawFd, target: std::os::fd::RawFd) {
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 and
    // fcntl, which are async-signal-safe; `fd` stays open in the parent until spawn returns
    // because the caller owns it for the duration of the call.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The strings of a JSON array (empty if `v` is not one).
pub fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Poll until the file at `path` contains `text`; returns the file's content.
#[track_caller]
pub fn wait_for_text(path: &Path, text: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = read_lossy(path);
        if got.contains(text) {
            return got;
        }
        assert!(
            start.elapsed() < limit,
            "{text:?} never appeared in {}: {got:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Poll until `path` exists, or panic after `limit`.
#[track_caller]
pub fn wait_for_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}
