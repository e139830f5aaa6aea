//! Startup benchmark: capsa, runc and crun side by side on one busybox bundle.
//!
//! Every iteration runs each runtime once, in an order that rotates with the
//! iteration number, so slow drift on the host (page cache, other load) hits
//! all runtimes alike. Per runtime it measures, through the binaries:
//! `run` of /bin/true, then `create`, `start` and `delete` of a second
//! container, then `exec` of /bin/true into a third, running one (the
//! exec probes engines run), with the wall time and the peak RSS (wait4
//! `ru_maxrss`) of each command, and the memory a created-but-not-started
//! container holds on the host (Pss and private memory of every process the
//! runtime leaves behind).
//!
//! All runs happen in a private mount namespace made here: crun 1.8 refuses
//! a hybrid cgroup layout, so an empty file is bind-mounted over
//! /sys/fs/cgroup/unified/cgroup.controllers for every runtime alike.
//!
//! Environment: CAPSA_BENCH_ITERS (default 30), CAPSA_BENCH_WARMUP (default 2),
//! CAPSA_BENCH_RUNTIMES (default "capsa,runc,crun"; a missing or broken one is
//! skipped with a note), CAPSA_BIN (default: the capsa binary cargo built).
//! Run with `cargo bench --bench startup` as root.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl::set_child_subreaper;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde_json::Value;

const STATE_PARENT: &str = "/run/capsa-bench";
const CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";
/// Every container's cgroupsPath starts with this, so leftovers can be found.
const CGROUP_PREFIX: &str = "capsa-bench-";
/// The workload measured by run/create/start/delete.
const TRUE: &[&str] = &["/bin/true"];
/// The container `exec` goes into: running, and idle.
const SLEEP: &[&str] = &["/bin/sleep", "1000"];

type Res<T> = Result<T, String>;

/// One runtime under test: its name, binary and private --root.
struct Runtime {
    name: String,
    bin: PathBuf,
    root: PathBuf,
}

/// One command's cost: wall time and peak RSS (KiB) of the runtime process.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    maxrss_kib: i64,
}

/// Memory held by the processes a created container leaves on the host.
#[derive(Clone, Copy)]
struct Held {
    pss_kib: u64,
    private_kib: u64,
    procs: usize,
}

#[derive(Default)]
struct Results {
    run: Vec<Sample>,
    create: Vec<Sample>,
    start: Vec<Sample>,
    delete: Vec<Sample>,
    exec: Vec<Sample>,
    held: Vec<Held>,
}

/// One iteration's samples for one runtime.
struct Iteration {
    run: Sample,
    create: Sample,
    held: Held,
    start: Sample,
    delete: Sample,
    exec: Sample,
}

struct Bench {
    workdir: PathBuf,
    bundle: PathBuf,
    config: Value,
    seq: u64,
}

fn main() {
    match real_main() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("startup bench: {e}");
            std::process::exit(1);
        }
    }
}

fn env_usize(name: &str, default: usize) -> Res<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}={v}: not a number")),
        Err(_) => Ok(default),
    }
}

fn real_main() -> Res<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err("must run as root (it starts real containers)".into());
    }
    let iters = env_usize("CAPSA_BENCH_ITERS", 30)?;
    let warmup = env_usize("CAPSA_BENCH_WARMUP", 2)?;
    let wanted = std::env::var("CAPSA_BENCH_RUNTIMES").unwrap_or("capsa,runc,crun".into());

    // Before any thread exists: unshare(CLONE_NEWNS) needs an unshared fs struct.
    enter_private_mount_ns()?;
    // Orphaned container inits and shims reparent to us, so we can find and reap them.
    set_child_subreaper(true).map_err(|e| format!("prctl(PR_SET_CHILD_SUBREAPER): {e}"))?;

    let workdir = PathBuf::from(format!("/var/tmp/capsa-bench-{}", std::process::id()));
    let mut runtimes = Vec::new();
    for name in wanted.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match find_runtime(name) {
            Some(bin) => runtimes.push(Runtime {
                name: name.to_string(),
                bin,
                root: Path::new(STATE_PARENT).join(name),
            }),
            None => println!("skipping {name}: binary not found"),
        }
    }
    let outcome = prepare_bundle(&workdir, &runtimes).and_then(|mut bench| {
        runtimes.retain(|rt| match bench.smoke(rt) {
            Ok(()) => true,
            Err(e) => {
                println!("skipping {}: smoke run failed: {e}", rt.name);
                false
            }
        });
        if runtimes.is_empty() {
            return Err("no runtime left to measure".into());
        }
        bench.measure(&runtimes, iters, warmup)
    });
    let cleanup = cleanup(&workdir, &runtimes);
    let results = outcome?;
    cleanup?;
    print_report(&runtimes, &results, iters, warmup);
    if let Some(capsa) = runtimes.iter().find(|r| r.name == "capsa") {
        report_symbol_order(&capsa.bin);
    }
    Ok(())
}

/// How much of symbol-order.txt (scripts/symbol-order.sh) names functions
/// of this binary as is. A new rustc, new dependencies or code changes
/// rename them (hashes); scripts/link-ordered.sh then falls back to names
/// without hashes, which packs more than the hot code: regenerate the file
/// when few names match.
fn report_symbol_order(bin: &Path) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    let Ok(wanted) = fs::read_to_string(&file) else {
        println!("no symbol-order.txt: capsa's hot code is not packed together");
        return;
    };
    let Ok(nm) = Command::new("nm").arg("--defined-only").arg(bin).output() else {
        println!("symbol-order.txt: cannot run nm to check it");
        return;
    };
    let nm = String::from_utf8_lossy(&nm.stdout);
    let have: std::collections::HashSet<&str> = nm
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let wanted: Vec<&str> = wanted.lines().filter(|l| !l.is_empty()).collect();
    let found = wanted.iter().filter(|w| have.contains(*w)).count();
    println!(
        "symbol-order.txt: {found} of {} names found as is in the binary{}",
        wanted.len(),
        if found * 10 < wanted.len() * 9 {
            " (regenerate it: scripts/symbol-order.sh)"
        } else {
            ""
        }
    );
}

fn find_runtime(name: &str) -> Option<PathBuf> {
    if name == "capsa" {
        let bin = std::env::var_os("CAPSA_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_capsa")));
        return bin.is_file().then_some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn enter_private_mount_ns() -> Res<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Keep our mounts (and every runtime's) out of the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("mount --make-rprivate /: {e}"))?;
    if Path::new(CONTROLLERS).exists() {
        // Hybrid layout: hide the unified hierarchy's controllers (crun 1.8
        // refuses them); /dev/null would not do, runtimes read it as a file.
        let empty = Path::new(STATE_PARENT).join("empty");
        fs::create_dir_all(STATE_PARENT).map_err(|e| format!("mkdir {STATE_PARENT}: {e}"))?;
        fs::write(&empty, b"").map_err(|e| format!("write {}: {e}", empty.display()))?;
        mount(
            Some(&empty),
            CONTROLLERS,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {} over {CONTROLLERS}: {e}", empty.display()))?;
    }
    Ok(())
}

/// A busybox rootfs and a config.json from a runtime's `spec` (runc's if present).
fn prepare_bundle(workdir: &Path, runtimes: &[Runtime]) -> Res<Bench> {
    let bundle = workdir.join("bundle");
    let bin = bundle.join("rootfs/bin");
    fs::create_dir_all(&bin).map_err(|e| format!("mkdir {}: {e}", bin.display()))?;
    fs::copy("/bin/busybox", bin.join("busybox"))
        .map_err(|e| format!("copy /bin/busybox (install busybox-static): {e}"))?;
    for applet in ["sh", "true", "sleep"] {
        symlink("busybox", bin.join(applet)).map_err(|e| format!("symlink {applet}: {e}"))?;
    }
    let mut last_err = String::from("no runtime to run `spec`");
    // runc's spec first: the reference runtime's default config, which crun
    // 1.8 also accepts (it refuses capsa's newer ociVersion 1.3.0).
    let mut by_preference: Vec<&Runtime> = runtimes.iter().collect();
    by_preference.sort_by_key(|rt| ["runc", "crun", "capsa"].iter().position(|n| *n == rt.name));
    for rt in by_preference {
        let out = Command::new(&rt.bin)
            .arg("spec")
            .current_dir(&bundle)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{} spec: {e}", rt.bin.display()))?;
        let path = bundle.join("config.json");
        if !out.status.success() || !path.is_file() {
            last_err = format!("{} spec: {}", rt.name, String::from_utf8_lossy(&out.stderr));
            continue;
        }
        let text = fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let mut config: Value =
            serde_json::from_slice(&text).map_err(|e| format!("parse config.json: {e}"))?;
        config["process"]["terminal"] = Value::Bool(false);
        println!(
            "bundle: busybox rootfs, config.json from `{} spec`",
            rt.name
        );
        return Ok(Bench {
            workdir: workdir.to_path_buf(),
            bundle,
            config,
            seq: 0,
        });
    }
    Err(last_err)
}

impl Bench {
    /// Writes config.json with a cgroupsPath of its own for the next
    /// container, which runs `args`.
    fn next_container(&mut self, rt: &Runtime, kind: &str, args: &[&str]) -> Res<String> {
        self.seq += 1;
        let id = format!("{CGROUP_PREFIX}{}-{kind}{}", rt.name, self.seq);
        self.config["linux"]["cgroupsPath"] = Value::String(format!("/{id}"));
        self.config["process"]["args"] = serde_json::json!(args);
        let path = self.bundle.join("config.json");
        let text = serde_json::to_vec_pretty(&self.config).map_err(|e| e.to_string())?;
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(id)
    }

    /// Runs `rt --root R ARGS` and waits for it with wait4 for its rusage.
    fn exec(&self, rt: &Runtime, args: &[&str]) -> Res<Sample> {
        let errlog = self.workdir.join(format!("{}.stderr", rt.name));
        let stderr = fs::File::create(&errlog).map_err(|e| format!("{}: {e}", errlog.display()))?;
        let start = Instant::now();
        let child = Command::new(&rt.bin)
            .arg("--root")
            .arg(&rt.root)
            .args(args)
            .current_dir(&self.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", rt.bin.display()))?;
        let (status, rusage) = wait4(child.id())?;
        let wall = start.elapsed();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            let msg = fs::read_to_string(&errlog).unwrap_or_default();
            return Err(format!(
                "`{} {}` failed (wait status {status:#x}): {}",
                rt.name,
                args.join(" "),
                msg.trim()
            ));
        }
        Ok(Sample {
            wall,
            maxrss_kib: rusage.ru_maxrss,
        })
    }

    /// One unmeasured iteration: a stub or broken runtime is skipped, not timed.
    fn smoke(&mut self, rt: &Runtime) -> Res<()> {
        let res = self.one_iteration(rt).map(|_| ());
        reap_leftovers();
        res
    }

    fn measure(&mut self, runtimes: &[Runtime], iters: usize, warmup: usize) -> Res<Vec<Results>> {
        let mut results: Vec<Results> = runtimes.iter().map(|_| Results::default()).collect();
        let mut order: VecDeque<usize> = (0..runtimes.len()).collect();
        for iter in 0..warmup + iters {
            for &i in &order {
                let rt = &runtimes[i];
                let one = self.one_iteration(rt);
                reap_leftovers();
                let one = one.map_err(|e| format!("iteration {iter}, {}: {e}", rt.name))?;
                if iter >= warmup {
                    let r = &mut results[i];
                    r.run.push(one.run);
                    r.create.push(one.create);
                    r.held.push(one.held);
                    r.start.push(one.start);
                    r.delete.push(one.delete);
                    r.exec.push(one.exec);
                }
            }
            order.rotate_left(1);
        }
        Ok(results)
    }

    fn one_iteration(&mut self, rt: &Runtime) -> Res<Iteration> {
        let id = self.next_container(rt, "run", TRUE)?;
        let run = self.exec(rt, &["run", "--bundle", ".", &id])?;

        let id = self.next_container(rt, "life", TRUE)?;
        let create = self.exec(rt, &["create", "--bundle", ".", &id])?;
        let measured = held_memory().and_then(|held| Ok((held, init_pid(rt, &id)?)));
        let (held, pid) = match measured {
            Ok(v) => v,
            Err(e) => {
                let _ = self.exec(rt, &["delete", "--force", &id]);
                return Err(e);
            }
        };
        let start = self.exec(rt, &["start", &id]);
        // /bin/true exits at once; wait for it so `delete` sees a stopped container.
        let waited = start.and_then(|s| wait_gone(pid).map(|()| s));
        let start = match waited {
            Ok(s) => s,
            Err(e) => {
                let _ = self.exec(rt, &["delete", "--force", &id]);
                return Err(e);
            }
        };
        let delete = self.exec(rt, &["delete", &id])?;

        let id = self.next_container(rt, "exec", SLEEP)?;
        self.exec(rt, &["run", "--detach", "--bundle", ".", &id])?;
        let exec = self.exec(rt, &["exec", &id, "/bin/true"]);
        let gone = self.exec(rt, &["delete", "--force", &id]);
        let exec = exec?;
        gone?;
        Ok(Iteration {
            run,
            create,
            held,
            start,
            delete,
            exec,
        })
    }
}

/// The container's init pid, from the runtime's own `state`.
fn init_pid(rt: &Runtime, id: &str) -> Res<i32> {
    let out = Command::new(&rt.bin)
        .arg("--root")
        .arg(&rt.root)
        .args(["state", id])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} state: {e}", rt.name))?;
    let state: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{} state {id}: bad JSON ({e})", rt.name))?;
    state["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("{} state {id}: no pid in {state}", rt.name))
}

fn wait4(pid: u32) -> Res<(i32, libc::rusage)> {
    let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers and timevals).
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `rusage` are live, writable locals of the types
        // wait4 expects; `pid` is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return Ok((status, rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4({pid}): {err}"));
        }
    }
}

/// Waits for `pid` to exit: reaps it if it is our child (we are a subreaper),
/// otherwise polls until it is gone or a zombie of someone else.
fn wait_gone(pid: i32) -> Res<()> {
    match waitpid(Pid::from_raw(pid), None) {
        Ok(_) => return Ok(()),
        Err(nix::errno::Errno::ECHILD) => {}
        Err(e) => return Err(format!("waitpid({pid}): {e}")),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return Ok(()),
            Ok(stat) if stat_field(&stat, 0) == Some("Z") => return Ok(()),
            Ok(_) => sleep(Duration::from_millis(1)),
        }
    }
    Err(format!(
        "container init {pid} still running 10 s after start"
    ))
}

/// Field `n` after the `(comm)` of a /proc/PID/stat line (0 = state, 1 = ppid).
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(n)
}

/// Every live process below us: what the runtime left behind (init, shims).
fn descendants() -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(ppid) = stat_field(&stat, 1).and_then(|p| p.parse().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![me];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            found.push(c);
            queue.push(c);
        }
    }
    found
}

fn held_memory() -> Res<Held> {
    let mut held = Held {
        pss_kib: 0,
        private_kib: 0,
        procs: 0,
    };
    for pid in descendants() {
        let path = format!("/proc/{pid}/smaps_rollup");
        let text = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        held.pss_kib += field("Pss:");
        held.private_kib += field("Private_Clean:") + field("Private_Dirty:");
        held.procs += 1;
    }
    if held.procs == 0 {
        return Err("create left no process behind".into());
    }
    Ok(held)
}

/// Reaps zombies reparented to us; warns about anything still alive.
fn reap_leftovers() {
    while let Ok(status) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
    let left = descendants();
    if !left.is_empty() {
        eprintln!("warning: processes left behind: {left:?}");
    }
}

fn cleanup(workdir: &Path, runtimes: &[Runtime]) -> Res<()> {
    let mut errors = Vec::new();
    for rt in runtimes {
        // Anything a failed iteration left: force-delete what the runtime lists.
        if let Ok(out) = Command::new(&rt.bin)
            .arg("--root")
            .arg(&rt.root)
            .args(["list", "-q"])
            .stderr(Stdio::null())
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new(&rt.bin)
                    .arg("--root")
                    .arg(&rt.root)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
    }
    reap_leftovers();
    for dir in [workdir, Path::new(STATE_PARENT)] {
        if dir.exists()
            && let Err(e) = fs::remove_dir_all(dir)
        {
            errors.push(format!("remove {}: {e}", dir.display()));
        }
    }
    // Runtimes remove a container's cgroup on delete; catch any they missed.
    for hierarchy in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for entry in fs::read_dir(hierarchy.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(CGROUP_PREFIX)
                && let Err(e) = fs::remove_dir(entry.path())
            {
                errors.push(format!("rmdir {}: {e}", entry.path().display()));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("cleanup: {}", errors.join("; ")))
    }
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn ms(samples: &[Sample]) -> f64 {
    median(samples.iter().map(|s| s.wall.as_secs_f64() * 1e3).collect())
}

fn rss(samples: &[Sample]) -> f64 {
    median(samples.iter().map(|s| s.maxrss_kib as f64).collect())
}

fn print_report(runtimes: &[Runtime], results: &[Results], iters: usize, warmup: usize) {
    let capsa = runtimes.iter().position(|r| r.name == "capsa");
    let others: Vec<usize> = (0..runtimes.len()).filter(|&i| Some(i) != capsa).collect();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!();
    println!(
        "host: {} cpus, load average {} (other work on the host inflates the times)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.join(" ")
    );
    println!(
        "{iters} iterations (+{warmup} warm-up), runtimes interleaved in rotating order; \
         medians; busybox bundle running /bin/true"
    );
    let mut header = format!("| {:<34} |", "metric");
    for rt in runtimes {
        header += &format!(" {:>9} |", rt.name);
    }
    if let Some(c) = capsa {
        for &o in &others {
            header += &format!(
                " {:>11} |",
                format!("{}/{}", runtimes[c].name, runtimes[o].name)
            );
        }
    }
    println!("{header}");
    println!(
        "|{}",
        "---|".repeat(1 + runtimes.len() + capsa.map_or(0, |_| others.len()))
    );
    // (label, median of one runtime's results, decimals shown)
    type Metric = (&'static str, fn(&Results) -> f64, usize);
    let metrics: [Metric; 14] = [
        ("run /bin/true (ms)", |r| ms(&r.run), 1),
        ("create (ms)", |r| ms(&r.create), 1),
        ("start (ms)", |r| ms(&r.start), 1),
        ("delete (ms)", |r| ms(&r.delete), 1),
        ("create+start+delete (ms)", total_ms, 1),
        ("exec /bin/true, running (ms)", |r| ms(&r.exec), 1),
        ("peak RSS run (KiB)", |r| rss(&r.run), 0),
        ("peak RSS create (KiB)", |r| rss(&r.create), 0),
        ("peak RSS start (KiB)", |r| rss(&r.start), 0),
        ("peak RSS delete (KiB)", |r| rss(&r.delete), 0),
        ("peak RSS exec (KiB)", |r| rss(&r.exec), 0),
        (
            "created, idle: Pss held (KiB)",
            |r| held(r, |h| h.pss_kib as f64),
            0,
        ),
        (
            "created, idle: private (KiB)",
            |r| held(r, |h| h.private_kib as f64),
            0,
        ),
        (
            "created, idle: processes",
            |r| held(r, |h| h.procs as f64),
            0,
        ),
    ];
    for (label, f, decimals) in metrics {
        let values: Vec<f64> = results.iter().map(f).collect();
        let mut line = format!("| {label:<34} |");
        for v in &values {
            line += &format!(" {:>9} |", format!("{v:.decimals$}"));
        }
        if let Some(c) = capsa {
            for &o in &others {
                let ratio = if values[o] > 0.0 {
                    values[c] / values[o]
                } else {
                    f64::NAN
                };
                line += &format!(" {:>11} |", format!("{ratio:.2}x"));
            }
        }
        println!("{line}");
    }
}

fn total_ms(r: &Results) -> f64 {
    let totals = (0..r.create.len())
        .map(|i| (r.create[i].wall + r.start[i].wall + r.delete[i].wall).as_secs_f64() * 1e3)
        .collect();
    median(totals)
}

fn held(r: &Results, f: fn(&Held) -> f64) -> f64 {
    median(r.held.iter().map(f).collect())
}
