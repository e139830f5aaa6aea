//! oci-conformance: runtime-spec 1.3 conformance suite for any OCI runtime binary.
//!
//! `oci-conformance RUNTIME [--only SUBSTR] [--known FILE] [--results FILE] [--work DIR]`
//! runs every test against RUNTIME through its command line and prints one TAP line per
//! test, grouped by spec section, then the skips and known failures, and as the last line
//! `N passed, M failed, K skipped` (M counts only failures not listed in --known).
//! `oci-conformance report OUT.md RESULTS...` merges result files into the requirement table.

mod harness;
mod report;
mod t_cgroups;
mod t_config;
mod t_linux;
mod t_runtime;

use harness::{Ctx, Env, Verdict};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const MUST: &str = "MUST";
pub const SHOULD: &str = "SHOULD";

/// One normative requirement and the test that checks it.
pub struct Test {
    pub id: &'static str,
    /// spec file and section anchor, e.g. `runtime.md#create`
    pub section: &'static str,
    pub level: &'static str,
    /// the sentence of the spec this test checks (quoted or closely paraphrased)
    pub req: &'static str,
    pub run: fn(&mut Ctx) -> harness::R,
    /// needs a pure cgroup v2 host (the VM lane)
    pub v2: bool,
}

pub fn all_tests() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(t_runtime::tests());
    v.extend(t_config::tests());
    v.extend(t_linux::tests());
    v.extend(t_cgroups::tests());
    v
}

fn die(msg: &str) -> ! {
    eprintln!("oci-conformance: {msg}");
    std::process::exit(2)
}

/// Runtimes (crun 1.8 notably) misdetect a hybrid host whose cgroup2 mount lists
/// controllers. In a private mount namespace of our own, hide that list behind an empty
/// file; every runtime we start inherits the namespace, the host is untouched.
fn hybrid_workaround() -> Result<bool, String> {
    let ctl = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    let has = fs::read_to_string(ctl)
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    if !has {
        return Ok(false);
    }
    // SAFETY: unshare only changes this process's mount namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let root = c"/";
    // SAFETY: valid C strings; makes our copy of the tree a slave so nothing propagates back.
    if unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(format!(
            "make / rslave: {}",
            std::io::Error::last_os_error()
        ));
    }
    let empty = "/run/oci-conformance-empty";
    fs::write(empty, "").map_err(|e| format!("write {empty}: {e}"))?;
    let src = std::ffi::CString::new(empty).map_err(|e| e.to_string())?;
    let dst =
        std::ffi::CString::new(ctl.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid C strings; a bind mount in our private namespace.
    if unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(format!(
            "bind over {}: {}",
            ctl.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(true)
}

fn build_rootfs(dir: &Path, checker: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    for d in [
        "bin", "sbin", "usr/bin", "proc", "sys", "dev", "tmp", "etc", "root", "var", "mnt",
    ] {
        fs::create_dir_all(dir.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox-static is not installed")?;
    fs::copy(bb, dir.join("bin/busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    for a in [
        "sh", "cat", "ls", "sleep", "echo", "true", "false", "mkdir", "touch", "id", "env",
        "mount", "ps", "kill", "grep", "stat", "hostname", "readlink", "test",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(a));
    }
    fs::copy(checker, dir.join("checker")).map_err(|e| format!("copy checker: {e}"))?;
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .map_err(|e| e.to_string())?;
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .map_err(|e| e.to_string())?;
    let _ = fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    );
    Ok(())
}

fn load_known(path: &Option<PathBuf>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let Some(p) = path else { return m };
    let Ok(s) = fs::read_to_string(p) else {
        die(&format!("cannot read known-failures file {}", p.display()))
    };
    for l in s.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (id, why) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let why = why.trim();
        if why.is_empty() {
            die(&format!(
                "known failure {id} has no reason in {}",
                p.display()
            ));
        }
        m.insert(id.to_string(), why.to_string());
    }
    m
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(|s| s.as_str()) == Some("report") {
        if args.len() < 3 {
            die("usage: oci-conformance report OUT.md RESULTS.tsv...");
        }
        if let Err(e) = report::write(Path::new(&args[1]), &args[2..]) {
            die(&e);
        }
        return;
    }
    if args.first().map(|s| s.as_str()) == Some("--list") {
        for t in all_tests() {
            println!("{}\t{}\t{}\t{}", t.id, t.section, t.level, t.req);
        }
        return;
    }
    let mut rt = None;
    let (mut only, mut known, mut results, mut work, mut name) =
        (Vec::new(), None, None, None, None);
    let mut workaround = true;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => only.push(it.next().unwrap_or_else(|| die("--only needs a value"))),
            "--known" => known = it.next().map(PathBuf::from),
            "--results" => results = it.next().map(PathBuf::from),
            "--work" => work = it.next().map(PathBuf::from),
            "--name" => name = it.next(),
            "--no-cgroup-workaround" => workaround = false,
            _ if rt.is_none() && !a.starts_with('-') => rt = Some(a),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    let rt = rt.unwrap_or_else(|| {
        die("usage: oci-conformance RUNTIME_BINARY [--only SUBSTR] [--known FILE] [--results FILE]")
    });
    let rt = which(&rt).unwrap_or_else(|| die(&format!("runtime {rt} not found")));
    let rt_name = name.unwrap_or_else(|| {
        rt.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        die("must run as root (it creates real containers)");
    }
    let known = load_known(&known);
    let exe = std::env::current_exe().unwrap_or_else(|_| die("no current_exe"));
    let checker = exe.with_file_name("checker");
    if !checker.exists() {
        die(&format!("checker binary missing at {}", checker.display()));
    }
    let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let wa = if workaround && !cgroup2 {
        hybrid_workaround().unwrap_or_else(|e| die(&e))
    } else {
        false
    };
    let work = work
        .unwrap_or_else(|| PathBuf::from(format!("/run/oci-conformance/{}", std::process::id())));
    let _ = fs::create_dir_all(&work);
    let base = work.join("base-rootfs");
    build_rootfs(&base, &checker).unwrap_or_else(|e| die(&e));
    let env = Env {
        rt: rt.clone(),
        rt_name: rt_name.clone(),
        root: work.join("state"),
        work: work.clone(),
        checker: checker.clone(),
        base_rootfs: base,
        cgroup2,
        extra_global: Vec::new(),
    };
    let mut tests = all_tests();
    tests.retain(|t| {
        only.is_empty()
            || only
                .iter()
                .any(|o| t.id.contains(o.as_str()) || t.section.contains(o.as_str()))
    });
    tests.sort_by_key(|t| section_order(t.section));
    println!("TAP version 13");
    println!(
        "# runtime {} ({}), host cgroup {}, hybrid workaround {}",
        rt_name,
        rt.display(),
        if cgroup2 { "v2" } else { "v1/hybrid" },
        if wa { "on" } else { "off" }
    );
    println!("1..{}", tests.len());
    let (mut pass, mut failn) = (0, 0);
    let mut skips = Vec::new();
    let mut knownf = Vec::new();
    let mut fixed = Vec::new();
    let mut rows = Vec::new();
    let mut cur = "";
    for (i, t) in tests.iter().enumerate() {
        if t.section != cur {
            cur = t.section;
            println!("# {cur}");
        }
        let n = i + 1;
        let res = if t.v2 && !cgroup2 {
            Err(Verdict::Skip(
                "needs a pure cgroup v2 host (run it in the VM lane: run --vm)".into(),
            ))
        } else {
            let mut c = Ctx::new(&env, t.id, n);
            let r = (t.run)(&mut c);
            c.cleanup();
            r
        };
        let (tag, detail) = match &res {
            Ok(()) => {
                pass += 1;
                if known.contains_key(t.id) {
                    fixed.push(t.id);
                }
                println!("ok {n} - {} [{}]", t.id, t.level);
                ("pass", String::new())
            }
            Err(Verdict::Skip(why)) => {
                println!("ok {n} - {} [{}] # SKIP {why}", t.id, t.level);
                skips.push(format!("{}: {why}", t.id));
                ("skip", why.clone())
            }
            Err(Verdict::Fail(why)) => {
                if let Some(k) = known.get(t.id) {
                    println!(
                        "not ok {n} - {} [{}] # TODO known: {k} (saw: {why})",
                        t.id, t.level
                    );
                    knownf.push(format!("{}: {k}", t.id));
                } else {
                    failn += 1;
                    println!("not ok {n} - {} [{}]", t.id, t.level);
                    println!("  # {}: {}", t.req, why);
                }
                ("fail", why.clone())
            }
        };
        rows.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.id,
            t.section,
            t.level,
            tag,
            detail.replace(['\t', '\n'], " "),
            t.req
        ));
    }
    if let Some(p) = results {
        let mut s = format!("#runtime\t{rt_name}\n");
        for r in &rows {
            s.push_str(r);
            s.push('\n');
        }
        if let Err(e) = fs::write(&p, s) {
            eprintln!("cannot write results {}: {e}", p.display());
        }
    }
    if std::env::var_os("OCT_KEEP").is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    if !skips.is_empty() {
        println!("# skipped ({}):", skips.len());
        for s in &skips {
            println!("#   {s}");
        }
    }
    if !knownf.is_empty() {
        println!(
            "# known failures, not counted as failed ({}):",
            knownf.len()
        );
        for s in &knownf {
            println!("#   {s}");
        }
    }
    if !fixed.is_empty() {
        println!(
            "# listed as known failures but passed now (remove them from the list): {}",
            fixed.join(" ")
        );
    }
    println!("{pass} passed, {failn} failed, {} skipped", skips.len());
    std::process::exit(if failn > 0 { 1 } else { 0 });
}

fn section_order(s: &str) -> usize {
    const ORDER: [&str; 8] = [
        "runtime.md",
        "cli",
        "config.md",
        "runtime-linux.md",
        "config-linux.md#namespaces",
        "config-linux.md",
        "config-linux.md#control-groups",
        "features.md",
    ];
    let mut best = 0;
    for (i, o) in ORDER.iter().enumerate() {
        if s.starts_with(o) {
            best = i;
        }
    }
    best * 100
}

fn which(rt: &str) -> Option<PathBuf> {
    if rt.contains('/') {
        let p = PathBuf::from(rt);
        return p.exists().then(|| fs::canonicalize(&p).unwrap_or(p));
    }
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .map(|d| Path::new(d).join(rt))
        .find(|p| p.exists())
}
