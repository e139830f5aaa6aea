//! Shared by tests/engine_{docker,podman,containerd}.rs: the real engines from
//! Debian's packages drive the runtime under test (`common::runtime()`) and
//! the tests assert what the workload observes.
//!
//! Why a harness of our own (`harness = false`): each file runs ONE private
//! engine (its own root, state dir, socket, config and cgroup parent) for all
//! its tests, which must run one after another (the engines serialise a lot
//! internally, and this 2-core machine is shared), and the engine must be
//! stopped once at the end: libtest has neither a suite set-up/tear-down nor a
//! guaranteed serial order. So `run_suite` is a tiny libtest: it runs the tests
//! whose name contains an argument (all without one), each in `catch_unwind`,
//! prints the engine's log tail when one fails, always tears the engine down,
//! and exits non-zero if any test failed.
//!
//! When the engine's binaries are missing the whole file is skipped with a
//! counted skip (`common::skip`); scripts/test.sh installs them, so there it always runs.

#![allow(dead_code)] // each engine test file uses a different part

pub mod containerd;
pub mod dockerlike;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Output, TempDir};

/// Limit for one engine command (a docker/podman/ctr invocation).
pub const CALL: Duration = Duration::from_secs(90);

/// A suite's engine: started once, torn down (Drop) once.
pub trait Engine: Sized {
    /// For messages: "docker", "podman", "containerd".
    const NAME: &'static str;
    /// Programs that must be installed, and the Debian package that has each.
    const NEEDS: &'static [(&'static str, &'static str)];
    fn start() -> Result<Self, String>;
    /// What to print when a test fails: the daemon's log tail, calls made...
    fn diagnostics(&self) -> String;
}

pub type Test<E> = (&'static str, fn(&E));

/// Run `tests` against one engine; see the module comment.
pub fn run_suite<E: Engine>(tests: &[Test<E>]) -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&Test<E>> = tests
        .iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests ({} engine)", chosen.len(), E::NAME);
    if chosen.is_empty() {
        return ExitCode::SUCCESS;
    }
    for (prog, package) in E::NEEDS {
        if which(prog).is_none() {
            common::skip(&format!(
                "{} tests: `{prog}` is not installed (apt-get install {package}; scripts/test.sh does)",
                E::NAME
            ));
            return ExitCode::SUCCESS;
        }
    }
    if !nix::unistd::geteuid().is_root() {
        common::skip(&format!("{} tests need root", E::NAME));
        return ExitCode::SUCCESS;
    }
    let t0 = Instant::now();
    let engine = match std::panic::catch_unwind(E::start) {
        Ok(Ok(e)) => e,
        Ok(Err(msg)) => {
            println!("{} did not start: {msg}", E::NAME);
            return ExitCode::FAILURE;
        }
        Err(_) => {
            println!("{} set-up panicked", E::NAME);
            return ExitCode::FAILURE;
        }
    };
    println!("{} started in {:.1?}", E::NAME, t0.elapsed());
    let mut failed = Vec::new();
    for (name, test) in chosen.iter().copied() {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        let start = Instant::now();
        common::set_current_test(Some(name));
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&engine)));
        common::set_current_test(None);
        let took = start.elapsed();
        match res {
            Ok(()) => println!("ok ({took:.1?})"),
            Err(_) => {
                println!("FAILED ({took:.1?})");
                println!("---- {} diagnostics after {name} ----", E::NAME);
                println!("{}", engine.diagnostics());
                failed.push(*name);
            }
        }
    }
    let t1 = Instant::now();
    drop(engine);
    println!("{} stopped in {:.1?}", E::NAME, t1.elapsed());
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.1?}",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        t0.elapsed()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failures:\n    {}", failed.join("\n    "));
        ExitCode::FAILURE
    }
}

/// `prog` on PATH (or as given, if it has a slash).
pub fn which(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Path::new(prog).is_file().then(|| PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The tests' private world for one engine: a temp dir, a unique cgroup
/// parent, and the busybox rootfs the images are made from.
pub struct Scratch {
    pub tmp: TempDir,
    /// One cgroup level, unique to this run: every container (and conmon,
    /// and the CRI pods) goes below it, so tear-down finds them all.
    pub cgroup_parent: String,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let tmp = TempDir::new(tag);
        let cgroup_parent = format!("/capsa-engine-{tag}-{}", std::process::id());
        Scratch { tmp, cgroup_parent }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// A tar of a busybox rootfs (PATH=/bin in the images made from it).
    pub fn busybox_tar(&self) -> PathBuf {
        let rootfs = self.path("rootfs");
        common::build_rootfs(&rootfs);
        // A home for --user 1000 and a file that is not executable (126).
        fs::create_dir_all(rootfs.join("home/user")).expect("mkdir home");
        fs::write(rootfs.join("etc/not-executable"), "data\n").expect("write file");
        let tar = self.path("busybox.tar");
        let o = self.run(
            Path::new("tar"),
            &["-C", &s(&rootfs), "-cf", &s(&tar), "."],
            |_| {},
        );
        assert!(o.success(), "tar the rootfs: {o}");
        tar
    }

    /// Run a program with the CALL limit; stdout/stderr captured.
    pub fn run(&self, prog: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Output {
        self.run_limit(prog, args, CALL, adjust)
    }

    /// `run` with another limit (the systemd VM lane runs under software emulation).
    pub fn run_limit(
        &self,
        prog: &Path,
        args: &[&str],
        limit: Duration,
        adjust: impl FnOnce(&mut Command),
    ) -> Output {
        let out = self.path("out");
        let _ = fs::create_dir_all(&out);
        common::run_cmd(prog, args, &out, limit, adjust)
    }

    /// A host file whose content a test checks after a container wrote it.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// `#!/bin/sh` script at `name`, executable.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.write_file(name, &format!("#!/bin/sh\n{body}\n"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod script");
        p
    }

    /// Tear-down's safety net, after the engine's own clean-up: SIGKILL every
    /// process whose command line names our temp dir (shims, conmon, a
    /// daemon that would not stop), then every process left in our cgroup
    /// parent (thawed first), remove those cgroups, and unmount whatever is
    /// still mounted below our temp dir. Everything here is ours by path.
    pub fn sweep(&self) {
        kill_cmdline_containing(&s(self.tmp.path()));
        kill_cgroup_tree(&self.cgroup_parent);
        unmount_below(self.tmp.path());
    }
}

/// podman on storage private to `scratch` (overlay, graph root `root` and
/// run root `runroot`, written to its storage.conf, which the caller passes
/// as CONTAINERS_STORAGE_CONF): the podman binary and the global flags that
/// keep every call there (tmp dir, cgroupfs, events in a file).
pub fn private_podman(
    scratch: &Scratch,
    root: &str,
    runroot: &str,
    tmp: &str,
) -> Result<(PathBuf, Vec<String>), String> {
    scratch.write_file(
        "storage.conf",
        &format!(
            "[storage]\ndriver = \"overlay\"\nrunroot = \"{runroot}\"\ngraphroot = \"{root}\"\n"
        ),
    );
    let podman = which("podman").ok_or("no podman")?;
    let global = [
        "--root",
        root,
        "--runroot",
        runroot,
        "--tmpdir",
        tmp,
        "--storage-driver",
        "overlay",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]
    .map(str::to_owned)
    .to_vec();
    Ok((podman, global))
}

/// The runtime under test as a copy in the scratch dir when it is capsa: in
/// the VM lane the build is on the 9p share, where every exec of the 66 MB
/// debug binary reads it anew (seconds under TCG; an engine execs the
/// runtime several times a call), and the scratch dir is the guest's tmpfs.
pub fn runtime_copy(scratch: &Scratch) -> PathBuf {
    let rt = common::runtime();
    if !common::is_capsa() {
        return rt;
    }
    let dir = scratch.mkdir("rt-bin");
    let copy = dir.join(rt.file_name().unwrap_or_else(|| "capsa".as_ref()));
    if !copy.exists() {
        fs::copy(&rt, &copy)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", rt.display(), copy.display()));
    }
    copy
}

pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A daemon started in its own process group with its output in a log file.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &'static str, prog: &Path, args: &[&str], log: PathBuf) -> Daemon {
        let file = fs::File::create(&log).expect("create daemon log");
        let err = file.try_clone().expect("dup log fd");
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", prog.display()));
        Daemon { name, child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Poll `ready` until it is true; Err with the log tail if the daemon
    /// exits or `limit` passes.
    pub fn wait_ready(&mut self, limit: Duration, ready: impl Fn() -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("{} exited ({st}):\n{}", self.name, self.tail(60)));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{} not ready after {limit:?}:\n{}",
                    self.name,
                    self.tail(60)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `n` lines of the daemon's log.
    pub fn tail(&self, n: usize) -> String {
        tail_file(&self.log, n)
    }

    /// SIGTERM, then SIGKILL after `grace`; by pid only.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop within {grace:?}: SIGKILL", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tail_file(path: &Path, n: usize) -> String {
    let text = common::read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    format!("==> {} <==\n{}", path.display(), lines[from..].join("\n"))
}

/// Pids (not ours) whose /proc/PID/cmdline contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn kill_cmdline_containing(needle: &str) {
    for pid in pids_with_cmdline(needle) {
        eprintln!("sweep: SIGKILL leftover pid {pid} (its command line names {needle})");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Every directory of cgroup `rel` (and below) in every hierarchy, deepest first.
fn cgroup_tree(rel: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    if let Ok(rd) = fs::read_dir(base) {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    for r in roots {
        let d = r.join(rel.trim_start_matches('/'));
        if d.is_dir() {
            walk(&d, &mut dirs);
        }
    }
    dirs
}

/// Processes still in our cgroup parent after the engine's clean-up.
pub fn cgroup_procs(rel: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_tree(rel)
        .iter()
        .flat_map(|d| {
            fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn kill_cgroup_tree(rel: &str) {
    for _ in 0..50 {
        let pids = cgroup_procs(rel);
        if pids.is_empty() {
            break;
        }
        for d in cgroup_tree(rel) {
            let f = d.join("freezer.state");
            if f.exists() {
                let _ = fs::write(&f, "THAWED");
            }
            let f = d.join("cgroup.freeze");
            if f.exists() {
                let _ = fs::write(&f, "0");
            }
        }
        for pid in pids {
            eprintln!("sweep: SIGKILL pid {pid} left in cgroup {rel}");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for d in cgroup_tree(rel) {
        let _ = fs::remove_dir(&d);
    }
}

fn unmount_below(dir: &Path) {
    let mut points = common::mounts_below(dir);
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for mp in points {
        eprintln!("sweep: unmounting leftover {mp}");
        let _ = nix::mount::umount2(mp.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Poll `f` until it returns Some, or panic with `what` after `limit`.
#[track_caller]
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `prog args` with a new pty as its controlling terminal and stdin,
/// stdout and stderr (what `ctr run -t` and `ctr task exec -t` need);
/// returns everything written to the terminal and the exit code.
pub fn run_on_pty(prog: &Path, args: &[&str], limit: Duration) -> (String, Option<i32>) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let (master, slave): (OwnedFd, OwnedFd) = (pty.master, pty.slave);
    let slave_fd = slave.as_raw_fd();
    let mut cmd = Command::new(prog);
    cmd.args(args);
    for (target, fd) in [(0, &slave), (1, &slave), (2, &slave)] {
        let f = fd.try_clone().expect("dup pty slave");
        match target {
            0 => cmd.stdin(Stdio::from(f)),
            1 => cmd.stdout(Stdio::from(f)),
            _ => cmd.stderr(Stdio::from(f)),
        };
    }
    // SAFETY: runs in the forked child before exec; setsid and ioctl are
    // async-signal-safe, and slave_fd stays open in the parent until spawn
    // returns (`slave` is dropped after it).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", prog.display()));
    // Command keeps its copies of the slave until dropped.
    drop(cmd);
    drop(slave);
    // The reader ends at EIO once the last holder of the slave is gone.
    let mut reader = fs::File::from(master);
    let handle = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {limit:?}: {} {}",
                prog.display(),
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A container process may still hold the terminal for a moment.
    wait_until("the pty reader to finish", Duration::from_secs(20), || {
        handle.is_finished().then_some(())
    });
    let out = handle.join().unwrap_or_default();
    (out, status.code())
}

/// The capability masks of a `/proc/PID/status` text.
pub fn cap_field(status: &str, key: &str) -> u64 {
    let v = common::status_field(status, key).unwrap_or_else(|| panic!("no {key} in {status}"));
    u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("{key} is not hex: {v}"))
}

/// This machine's bounding set holds every capability the kernel has (no
/// runtime can grant Docker 20.10's --privileged set otherwise).
pub fn host_has_all_caps() -> bool {
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let all = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    cap_field(&status, "CapBnd") & all == all
}

/// Shell snippet printing a cgroup file by its v1 and v2 names, whichever the
/// container sees (e.g. `memory/memory.limit_in_bytes` or `memory.max`).
pub fn cg_read(v1: &str, v2: &str) -> String {
    format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
}

/// The host path of a cgroup file of the container whose cgroup is `rel`
/// (v1 controller dir, or the unified hierarchy), whichever exists.
pub fn host_cgroup_file(rel: &str, v1: &str, v2: &str) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let (ctrl, file) = v1.split_once('/').unwrap_or(("", v1));
    [
        Path::new("/sys/fs/cgroup").join(ctrl).join(rel).join(file),
        Path::new("/sys/fs/cgroup").join(rel).join(v2),
        Path::new("/sys/fs/cgroup/unified").join(rel).join(v2),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The memory limit the kernel keeps for a request: v1 and v2 round it down
/// to a page; "max" is unlimited.
pub fn parse_limit(s: &str) -> u64 {
    let t = s.trim();
    if t == "max" {
        return u64::MAX;
    }
    t.parse()
        .unwrap_or_else(|_| panic!("not a cgroup number: {t:?}"))
}

/// `runtime --root ROOT state ID` proves the runtime under test made the
/// container (another runtime's state would not load); returns its JSON.
#[track_caller]
pub fn runtime_state(scratch: &Scratch, root: &Path, id: &str) -> serde_json::Value {
    let rt = common::runtime();
    let o = scratch.run(&rt, &["--root", &s(root), "state", id], |_| {});
    assert!(
        o.success(),
        "the runtime under test does not know container {id} under {}: {o}",
        root.display()
    );
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state is not JSON ({e}): {o}"))
}

/// An OCI image layout archive (for `ctr images import`) holding one image
/// per `(name, cmd)`, each the busybox rootfs as its single layer with
/// PATH=/bin and `cmd` as its Cmd.
pub fn oci_archive(scratch: &Scratch, images: &[(&str, &[&str])]) -> PathBuf {
    let layer = scratch.busybox_tar();
    let dir = scratch.mkdir("oci");
    let blobs = scratch.mkdir("oci/blobs/sha256");
    let put = |data: &[u8]| -> (String, usize) {
        let tmp = scratch.path("blob.tmp");
        fs::write(&tmp, data).expect("write blob");
        let digest = sha256(scratch, &tmp);
        fs::rename(&tmp, blobs.join(&digest)).expect("rename blob");
        (digest, data.len())
    };
    let (layer_digest, layer_size) = put(&fs::read(&layer).expect("read layer"));
    let mut manifests = Vec::new();
    for (name, cmd) in images {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        });
        let (cd, cs) = put(config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{cd}"), "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": format!("sha256:{layer_digest}"), "size": layer_size}],
        });
        let (md, ms) = put(manifest.to_string().as_bytes());
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{md}"), "size": ms,
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": "1"},
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(dir.join("index.json"), index.to_string()).expect("write index");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write layout");
    let archive = scratch.path("images.tar");
    let o = scratch.run(
        Path::new("tar"),
        &["-C", &s(&dir), "-cf", &s(&archive), "."],
        |_| {},
    );
    assert!(o.success(), "tar the OCI layout: {o}");
    archive
}

fn sha256(scratch: &Scratch, file: &Path) -> String {
    let o = scratch.run(Path::new("sha256sum"), &[&s(file)], |_| {});
    assert!(o.success(), "sha256sum: {o}");
    o.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
