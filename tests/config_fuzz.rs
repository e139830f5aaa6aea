//! A property test for config.json: real configs (tests/data/configs: `runc spec`, `runc
//! spec --rootless`, `crun spec`, `capsa spec`, a podman 4.3 config captured through a
//! wrapper runtime, Docker 20.10- and containerd 1.6 CRI-shaped ones), adapted to the
//! test's busybox bundle, then mutated field by field by a seeded, deterministic mutator:
//! dropped, null, the wrong type, huge or negative numbers, empty strings, odd paths,
//! duplicated entries, unknown names.
//!
//! Each case goes through `create` under a timeout. A refusal must be a non-zero exit with
//! a message naming a config field (or config.json), no panic, and nothing left (state
//! dir, cgroup, mount, process). An accepted config must start and `delete --force`
//! cleanly. Failing cases are written to tests/data/configs/regressions/, which are run
//! as they are every time.
//!
//! CAPSA_FUZZ_CASES (default 350, split over the corpus) scales it; CAPSA_FUZZ_SEED
//! changes the sequence. No fuzzing crate: a xorshift generator over serde_json values is
//! all this needs, keeps every case reproducible from (file, seed), and adds no
//! dependency.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Stands for the test's scratch directory in stored configs.
const SCRATCH: &str = "@SCRATCH@";
/// Per runtime call: a hang is a failure, not a stuck suite.
const LIMIT: Duration = Duration::from_secs(20);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs")
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One step of a JSON path.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Idx(usize),
}

fn show(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Every path in `v` the mutator may touch.
fn paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    let name = show(at);
    // The test's own cgroup, and where the root is (a mutated root could put the
    // container on the host's /): not for the mutator. The seccomp profile is large and
    // covered by tests/seccomp.rs; only its top level is mutated.
    if name == "linux.cgroupsPath" || name.starts_with("linux.seccomp.syscalls[") {
        return;
    }
    if !at.is_empty() {
        out.push(at.clone());
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Seg::Key(k.clone()));
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Seg::Idx(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str())?,
            Seg::Idx(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// Paths that never lead outside the test's bundle or scratch directory (no "/", no
/// "//": the root, a mount source or a namespace path must not become the host's).
const ODD_PATHS: &[&str] = &[
    "",
    "relative/path",
    "../../../capsa-fuzz-nowhere",
    "/capsa-fuzz-nowhere/x",
    "/dev/null",
    "/proc/self/fd",
    "/tmp/./a/../b",
    "rootfs/../rootfs",
];

/// Apply one random mutation at a random path; returns its description.
fn mutate(cfg: &mut Value, rng: &mut Rng) -> Option<String> {
    let mut all = Vec::new();
    paths(cfg, &mut Vec::new(), &mut all);
    let path = all.get(rng.below(all.len()))?.clone();
    let name = show(&path);
    let (last, parent_path) = path.split_last()?;
    let kind = rng.below(12);
    let desc;
    if kind == 0 {
        // Drop.
        let parent = get_mut(cfg, parent_path)?;
        match (last, parent) {
            (Seg::Key(k), Value::Object(m)) => {
                m.remove(k);
            }
            (Seg::Idx(i), Value::Array(a)) => {
                a.remove(*i);
            }
            _ => return None,
        }
        return Some(format!("drop {name}"));
    }
    if kind == 1 {
        // Duplicate an array entry (or the entry this path is in).
        let (arr_path, i) = match last {
            Seg::Idx(i) => (parent_path.to_vec(), *i),
            Seg::Key(_) => {
                let pos = path.iter().rposition(|s| matches!(s, Seg::Idx(_)))?;
                let Seg::Idx(i) = path[pos] else { return None };
                (path[..pos].to_vec(), i)
            }
        };
        let arr = get_mut(cfg, &arr_path)?.as_array_mut()?;
        let item = arr.get(i)?.clone();
        arr.insert(i, item);
        return Some(format!("duplicate {}[{i}]", show(&arr_path)));
    }
    let target = get_mut(cfg, &path)?;
    let new = match kind {
        2 => {
            desc = "null";
            Value::Null
        }
        3 => {
            desc = "wrong type";
            match target {
                Value::String(_) => json!(123),
                Value::Number(_) => json!("12"),
                Value::Bool(b) => json!(b.to_string()),
                Value::Array(_) => json!({"x": 1}),
                Value::Object(_) => json!([1]),
                Value::Null => json!(true),
            }
        }
        // The rest keep the type, to get past parsing to the checks behind it.
        _ => match target {
            Value::String(_) => match rng.below(4) {
                0 => {
                    desc = "empty string";
                    json!("")
                }
                1 => {
                    desc = "odd path";
                    json!(ODD_PATHS[rng.below(ODD_PATHS.len())])
                }
                2 => {
                    desc = "unknown name";
                    json!("CAPSA_FUZZ_UNKNOWN")
                }
                _ => {
                    desc = "long string";
                    json!(format!("/{}", "a/".repeat(3000)))
                }
            },
            Value::Number(_) => {
                desc = "odd number";
                [
                    json!(u64::MAX),
                    json!(i64::MAX),
                    json!(i64::MIN),
                    json!(4294967295u64),
                    json!(4294967296u64),
                    json!(9007199254740993u64),
                    json!(-1),
                    json!(0),
                    json!(1),
                    json!(1e300),
                ][rng.below(10)]
                .clone()
            }
            Value::Bool(b) => {
                desc = "flipped";
                json!(!*b)
            }
            Value::Array(a) => {
                let mut a = a.clone();
                if rng.below(2) == 0 {
                    desc = "emptied";
                    a.clear();
                } else {
                    desc = "unknown entry";
                    a.push(json!("CAPSA_FUZZ_UNKNOWN"));
                }
                Value::Array(a)
            }
            Value::Object(m) => {
                let mut m = m.clone();
                if rng.below(2) == 0 {
                    desc = "emptied";
                    m.clear();
                } else {
                    desc = "unknown key";
                    m.insert("capsaFuzzUnknown".into(), json!(1));
                }
                Value::Object(m)
            }
            Value::Null => {
                desc = "not null";
                json!(true)
            }
        },
    };
    *target = new;
    Some(format!("{desc} at {name}"))
}

/// Whether a mutated config stays inside the test's directories: the root must remain the
/// bundle's rootfs, or become something that is refused or is the bundle itself ("").
fn safe(cfg: &Value) -> bool {
    match cfg.pointer("/root/path") {
        Some(Value::String(p)) => {
            p == "rootfs"
                || ODD_PATHS.contains(&p.as_str()) && p != "/proc/self/fd"
                || p.starts_with("/a/a/")
                || p == "CAPSA_FUZZ_UNKNOWN"
        }
        _ => true,
    }
}

/// Make a corpus config runnable here: the bundle's rootfs, no terminal, a workload that
/// waits, no hooks or LSM profiles from the machine it came from, bind sources that
/// exist, new namespaces instead of the engine's.
fn adapt(cfg: &mut Value) {
    if let Some(root) = cfg.get_mut("root").and_then(Value::as_object_mut) {
        root.insert("path".into(), json!("rootfs"));
    }
    if let Some(p) = cfg.get_mut("process").and_then(Value::as_object_mut) {
        p.insert("terminal".into(), json!(false));
        p.insert("args".into(), json!(["sleep", "1000"]));
        p.remove("apparmorProfile");
        p.remove("selinuxLabel");
        if let Some(rl) = p.get_mut("rlimits").and_then(Value::as_array_mut) {
            for r in rl.iter_mut() {
                if r["type"] == "RLIMIT_NOFILE" {
                    r["hard"] = json!(1024);
                    r["soft"] = json!(1024);
                }
            }
        }
    }
    if let Some(o) = cfg.as_object_mut() {
        o.remove("hooks");
    }
    for n in cfg
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(n) = n.as_object_mut() {
            n.remove("path");
        }
    }
    if let Some(l) = cfg.get_mut("linux").and_then(Value::as_object_mut) {
        l.remove("mountLabel");
    }
    for m in cfg
        .get_mut("mounts")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let bind = m["type"] == "bind"
            || m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
        let src = m["source"].as_str().unwrap_or("").to_owned();
        if bind && src.starts_with('/') && !Path::new(&src).exists() {
            let dir = m["destination"] == "/dev/shm";
            m["source"] = json!(format!("{SCRATCH}/{}", if dir { "dir" } else { "file" }));
        }
    }
}

/// The corpus files, by name.
fn corpus(name: &str) -> Value {
    let text = fs::read_to_string(corpus_dir().join(name))
        .unwrap_or_else(|e| panic!("read corpus {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("corpus {name}: {e}"))
}

fn cases_per_file() -> usize {
    let total: usize = std::env::var("CAPSA_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(350);
    total.div_ceil(7).max(1)
}

fn seed_base() -> u64 {
    std::env::var("CAPSA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C0_FFEE)
}

/// The test's world: one bundle reused by every case (each case has its own id and
/// cgroup), and the scratch files bind sources are pointed at.
fn world(tag: &str) -> Ctx {
    let c = Ctx::new(tag);
    fs::create_dir_all(c.scratch("dir")).expect("mkdir scratch dir");
    fs::write(c.scratch("file"), "capsa fuzz\n").expect("write scratch file");
    c
}

/// Top-level config.json keys: a message naming a field starts its path with one.
const TOP: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "domainname",
    "mounts",
    "hooks",
    "annotations",
    "linux",
];

fn names_a_field(msg: &str) -> bool {
    msg.contains("config.json")
        || TOP.iter().any(|k| {
            [".", "[", ":", "\\\""]
                .iter()
                .any(|after| msg.contains(&format!("{k}{after}")))
        })
}

/// Run one config through the runtime and check the outcome; panics say what is wrong.
fn check_case(c: &Ctx, cfg: &Value, tag: &str) {
    let id = c.new_id(tag);
    let mut cfg = cfg.clone();
    if let Some(l) = cfg.get_mut("linux").and_then(Value::as_object_mut) {
        l.insert("cgroupsPath".into(), json!(cgroup_path_for(&id)));
    }
    let scratch = c.tmp.path().to_str().expect("utf-8 temp path").to_owned();
    let text = serde_json::to_string_pretty(&cfg)
        .expect("serialize")
        .replace(SCRATCH, &scratch);
    fs::write(c.bundle().join("config.json"), text).expect("write config.json");
    // Mount points a case made in the image's /dev (a directory at /dev/null, say) must
    // not decide the next case; nothing is mounted there (each case checks that).
    let dev = c.rootfs().join("dev");
    let _ = fs::remove_dir_all(&dev);
    fs::create_dir_all(&dev).expect("mkdir rootfs/dev");
    let root = c.root();
    let root = root.to_str().expect("utf-8");
    let bundle = c.bundle();
    let bundle = bundle.to_str().expect("utf-8");
    let out = c.tmp.path().join("out");
    let rt = |args: &[&str]| {
        let mut full = vec!["--root", root];
        full.extend_from_slice(args);
        run_cmd(&runtime(), &full, &out, LIMIT, |_| {})
    };
    let o = rt(&["create", "--bundle", bundle, &id]);
    let all = format!("{}{}", o.stderr, o.stdout);
    assert!(!all.contains("panicked at"), "panic: {o}");
    assert!(o.signal.is_none(), "killed by a signal: {o}");
    let first = all
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    eprintln!("  {tag}: {}", if o.success() { "accepted" } else { &first });
    if o.success() {
        let s = rt(&["start", &id]);
        assert!(!s.stderr.contains("panicked at"), "panic in start: {s}");
        let d = rt(&["delete", "--force", &id]);
        assert!(d.success(), "delete --force failed: {d}");
    } else if is_capsa() {
        assert!(names_a_field(&all), "the refusal names no field: {o}");
    }
    let left = c.leftovers(&id);
    assert!(left.is_empty(), "left behind: {left:#?}\n{o}");
}

/// Write a failing case where the suite keeps it, for the regression test.
fn keep(cfg: &Value, name: &str, why: &str) -> PathBuf {
    let dir = corpus_dir().join("regressions");
    let _ = fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}.json"));
    let mut cfg = cfg.clone();
    if let Some(l) = cfg.get_mut("linux").and_then(Value::as_object_mut) {
        l.remove("cgroupsPath");
    }
    let text = serde_json::to_string_pretty(&cfg).unwrap_or_default();
    let _ = fs::write(&path, text + "\n");
    let _ = fs::write(dir.join(format!("{name}.txt")), format!("{why}\n"));
    path
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".into())
}

fn fuzz_file(file: &str) {
    if !is_capsa() && std::env::var_os("CAPSA_FUZZ_OTHER").is_none() {
        // Other runtimes name fields differently; CAPSA_FUZZ_OTHER runs it anyway
        // (panics, hangs and leftovers are still checked).
        skip("config fuzzing checks capsa's messages (CAPSA_FUZZ_OTHER=1 to run anyway)");
        return;
    }
    let stem = file.trim_end_matches(".json");
    let c = world(&format!("fz{}", &stem[..stem.len().min(6)]));
    let mut base = corpus(file);
    adapt(&mut base);
    // The corpus itself must run: these are configs real engines send.
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| check_case(&c, &base, "fzbase"))) {
        panic!("{file} as is: {}", panic_text(&*e));
    }
    let seed0 = seed_base()
        ^ stem
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64);
    let mut failures = Vec::new();
    for n in 0..cases_per_file() {
        let seed = seed0.wrapping_add(n as u64);
        let mut rng = Rng::new(seed);
        let mut cfg = base.clone();
        let mut steps = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let before = cfg.clone();
            match mutate(&mut cfg, &mut rng) {
                Some(d) if safe(&cfg) => steps.push(d),
                _ => cfg = before,
            }
        }
        if steps.is_empty() {
            continue;
        }
        eprintln!("{file} seed {seed}: {}", steps.join("; "));
        let r = catch_unwind(AssertUnwindSafe(|| check_case(&c, &cfg, "fz")));
        if let Err(e) = r {
            let why = format!("{file} seed {seed}: {}", steps.join("; "));
            let kept = keep(&cfg, &format!("{stem}-{seed}"), &why);
            failures.push(format!(
                "{why}\n  kept as {}\n  {}",
                kept.display(),
                panic_text(&*e)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn fuzz_runc_spec() {
    fuzz_file("runc-spec.json");
}

#[test]
fn fuzz_runc_spec_rootless() {
    fuzz_file("runc-spec-rootless.json");
}

#[test]
fn fuzz_crun_spec() {
    fuzz_file("crun-spec.json");
}

#[test]
fn fuzz_capsa_spec() {
    fuzz_file("capsa-spec.json");
}

#[test]
fn fuzz_podman() {
    fuzz_file("podman-4.3.json");
}

#[test]
fn fuzz_docker() {
    fuzz_file("docker-20.10.json");
}

#[test]
fn fuzz_containerd_cri() {
    fuzz_file("containerd-1.6-cri.json");
}

/// Every case the fuzzer ever failed on, as stored (already adapted and mutated).
#[test]
fn regressions() {
    if skip_unless_capsa("the regression cases check capsa's messages") {
        return;
    }
    let dir = corpus_dir().join("regressions");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let c = world("fzreg");
    let mut failures = Vec::new();
    for f in &files {
        let cfg: Value = serde_json::from_str(&fs::read_to_string(f).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check_case(&c, &cfg, "fzreg"))) {
            failures.push(format!("{}: {}", f.display(), panic_text(&*e)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn mutator_is_deterministic_and_stays_safe() {
    let mut base = corpus("runc-spec.json");
    adapt(&mut base);
    for seed in 0..200 {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut cfg = base.clone();
            let d = mutate(&mut cfg, &mut rng);
            (cfg, d)
        };
        let (a, da) = run(seed);
        let (b, db) = run(seed);
        assert_eq!(a, b);
        assert_eq!(da, db);
    }
    assert!(names_a_field(
        "config.json: process.args: args must not be empty"
    ));
    assert!(names_a_field("msg=\"mounts[3].destination: x\""));
    assert!(!names_a_field("something failed: invalid argument"));
    let mut cfg = base.clone();
    cfg["root"]["path"] = json!("/");
    assert!(!safe(&cfg));
}
