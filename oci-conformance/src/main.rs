//! oci-conformance: runtime-spec 1.3 conformance suite for any OCI runtime binary.
//!
//! `oci-conformance RUNTIME [--only SUBSTR] [--known FILE] [--results FILE] [--work DIR]
//! [--name NAME] [--vm-lane] [--systemd] [--no-cgroup-workaround]` runs the tests against RUNTIME
//! through its command line and prints one TAP line per test, grouped by spec section,
//! then the skips and known failures, and as the last line `N passed, M failed, K skipped`
//! (M counts only failures not listed in --known). `--vm-lane` runs only the tests that
//! depend on the cgroup version (the VM lane's share). `--systemd` runs those same cgroup
//! tests with `--systemd-cgroup` on every runtime call and cgroupsPath in runc's
//! `slice:prefix:name` form (the systemd VM lane; results are lane "systemd").
//! `oci-conformance report OUT.md RESULTS...` merges result files into the requirement table.
//! `oci-conformance --list` prints id, section, level, lane and requirement of every test.

mod bundle;
mod coverage;
mod harness;
mod report;
mod sock;
mod t_cgroups;
mod t_cli;
mod t_config;
mod t_features;
mod t_hooks;
mod t_linux;
mod t_process;
mod t_runtime;
mod t_seccomp;
mod table;

use harness::{Ctx, Env, Rootless, Verdict};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use table::{Lane, Test};

pub fn all_tests() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(t_runtime::tests());
    v.extend(t_hooks::tests());
    v.extend(t_cli::tests());
    v.extend(t_config::tests());
    v.extend(t_process::tests());
    v.extend(t_linux::tests());
    v.extend(t_seccomp::tests());
    v.extend(t_cgroups::tests());
    v.extend(t_features::tests());
    v
}

fn die(msg: &str) -> ! {
    eprintln!("oci-conformance: {msg}");
    std::process::exit(2)
}

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Runtimes (crun 1.8 notably) misdetect a hybrid host whose cgroup2 mount lists
/// controllers. In a private mount namespace of our own, hide that list behind an empty
/// file; every runtime we start inherits the namespace, the host is untouched.
fn hybrid_workaround(work: &Path) -> Result<bool, String> {
    let ctl = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    let has = fs::read_to_string(ctl)
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    if !has {
        return Ok(false);
    }
    // SAFETY: unshare only changes this process's mount namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(last_os_error("unshare(CLONE_NEWNS)"));
    }
    // SAFETY: valid C strings; makes our copy of the tree a slave so nothing propagates back.
    if unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(last_os_error("make / rslave"));
    }
    let empty = work.join("empty");
    fs::write(&empty, "").map_err(|e| format!("write {}: {e}", empty.display()))?;
    let src =
        std::ffi::CString::new(empty.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
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
        return Err(last_os_error(&format!("bind over {}", ctl.display())));
    }
    Ok(true)
}

/// The rootless user's uid and gid, from the password database.
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a valid C string; the result points into libc's static buffer, read at once
    // (the driver is single-threaded here).
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("--rootless: no such user {name}"));
    }
    // SAFETY: non-null pointer returned by getpwnam, valid until the next getpw* call.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if uid == 0 {
        return Err(format!("--rootless: user {name} is root"));
    }
    Ok((uid, gid))
}

/// Rootless mode's directories: the user owns the state root, its XDG_RUNTIME_DIR (0700)
/// and the base rootfs (as in `runc spec --rootless` use, the rootfs belongs to the user
/// who is root in the container); the work directory stays root's but traversable.
fn prepare_rootless(
    work: &Path,
    root: &Path,
    base: &Path,
    uid: u32,
    gid: u32,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let xdg = work.join("xdg");
    for d in [root, xdg.as_path()] {
        fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        std::os::unix::fs::chown(d, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", d.display()))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", d.display()))?;
    }
    fs::set_permissions(work, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", work.display()))?;
    let st = std::process::Command::new("chown")
        .arg("-hR")
        .arg(format!("{uid}:{gid}"))
        .arg(base)
        .status()
        .map_err(|e| format!("chown -R {}: {e}", base.display()))?;
    if !st.success() {
        return Err(format!("chown -R {} failed", base.display()));
    }
    Ok(xdg)
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
        "mount", "ps", "kill", "grep", "stat", "hostname", "readlink", "test", "ip",
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

/// Known failures: `ID REASON` lines; `ID@host` / `ID@vm` limit an entry to one lane.
fn load_known(path: &Option<PathBuf>, lane: &str) -> HashMap<String, String> {
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
        if why.trim().is_empty() {
            die(&format!(
                "known failure {id} has no reason in {}",
                p.display()
            ));
        }
        let (id, only) = id.split_once('@').unwrap_or((id, ""));
        if only.is_empty() || only == lane {
            m.insert(id.to_string(), why.trim().to_string());
        }
    }
    m
}

struct Opts {
    rt: String,
    only: Vec<String>,
    known: Option<PathBuf>,
    results: Option<PathBuf>,
    work: Option<PathBuf>,
    name: Option<String>,
    workaround: bool,
    vm_lane: bool,
    systemd: bool,
    rootless: Option<String>,
}

fn parse_args(args: Vec<String>) -> Opts {
    let mut o = Opts {
        rt: String::new(),
        only: Vec::new(),
        known: None,
        results: None,
        work: None,
        name: None,
        workaround: true,
        vm_lane: false,
        systemd: false,
        rootless: None,
    };
    let mut it = args.into_iter();
    let val = |it: &mut std::vec::IntoIter<String>, a: &str| {
        it.next()
            .unwrap_or_else(|| die(&format!("{a} needs a value")))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => o.only.push(val(&mut it, &a)),
            "--known" => o.known = Some(PathBuf::from(val(&mut it, &a))),
            "--results" => o.results = Some(PathBuf::from(val(&mut it, &a))),
            "--work" => o.work = Some(PathBuf::from(val(&mut it, &a))),
            "--name" => o.name = Some(val(&mut it, &a)),
            "--no-cgroup-workaround" => o.workaround = false,
            "--vm-lane" => o.vm_lane = true,
            "--systemd" => o.systemd = true,
            "--rootless" => o.rootless = Some(val(&mut it, &a)),
            _ if o.rt.is_empty() && !a.starts_with('-') => o.rt = a,
            _ => die(&format!("unknown argument {a}")),
        }
    }
    if o.rt.is_empty() {
        die(
            "usage: oci-conformance RUNTIME_BINARY [--only SUBSTR] [--known FILE] [--results FILE] [--work DIR] [--name NAME] [--vm-lane] [--systemd] [--rootless USER]",
        );
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(|s| s.as_str()) {
        Some("report") => {
            if args.len() < 3 {
                die("usage: oci-conformance report OUT.md RESULTS.tsv...");
            }
            if let Err(e) = report::write(Path::new(&args[1]), &args[2..]) {
                die(&e);
            }
            return;
        }
        Some("--list") => {
            for t in all_tests() {
                let lane = match t.lane {
                    Lane::Any => "host",
                    Lane::Cgroup => "host+vm",
                    Lane::V2 => "vm",
                };
                println!("{}\t{}\t{}\t{lane}\t{}", t.id, t.section, t.level, t.req);
            }
            return;
        }
        _ => {}
    }
    let o = parse_args(args);
    let rt = which(&o.rt).unwrap_or_else(|| die(&format!("runtime {} not found", o.rt)));
    let rt_name = o.name.clone().unwrap_or_else(|| {
        rt.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        die("must run as root (it creates real containers)");
    }
    let lane = match (o.systemd, o.vm_lane) {
        (true, _) => "systemd",
        (false, true) => "vm",
        (false, false) => "host",
    };
    let known = load_known(&o.known, lane);
    let exe = std::env::current_exe().unwrap_or_else(|_| die("no current_exe"));
    let checker = exe.with_file_name("checker");
    if !checker.exists() {
        die(&format!("checker binary missing at {}", checker.display()));
    }
    let work = o
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/run/oci-conformance/{}", std::process::id())));
    let _ = fs::create_dir_all(&work);
    let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let wa = if o.workaround && !cgroup2 {
        hybrid_workaround(&work).unwrap_or_else(|e| die(&e))
    } else {
        false
    };
    if (o.vm_lane || o.systemd) && cgroup2 {
        t_cgroups::prepare_vm_lane();
    }
    let base = work.join("base-rootfs");
    build_rootfs(&base, &checker).unwrap_or_else(|e| die(&e));
    let root = work.join("state");
    let rootless = o.rootless.as_ref().map(|name| {
        let (uid, gid) = lookup_user(name).unwrap_or_else(|e| die(&e));
        let xdg = prepare_rootless(&work, &root, &base, uid, gid).unwrap_or_else(|e| die(&e));
        Rootless { uid, gid, xdg }
    });
    let env = Env {
        rt: rt.clone(),
        root,
        work: work.clone(),
        checker,
        base_rootfs: base,
        cgroup2,
        systemd: o.systemd,
        rootless,
    };
    let mut tests = all_tests();
    tests.retain(|t| {
        (!(o.vm_lane || o.systemd) || t.lane != Lane::Any)
            && (o.only.is_empty()
                || o.only
                    .iter()
                    .any(|s| t.id.contains(s.as_str()) || t.section.contains(s.as_str())))
    });
    println!("TAP version 13");
    println!(
        "# runtime {} ({}), {} lane{}, host cgroup {}, hybrid workaround {}",
        rt_name,
        rt.display(),
        lane,
        match (&o.rootless, &env.rootless) {
            (Some(n), Some(r)) => format!(", rootless as {n} (uid {} gid {})", r.uid, r.gid),
            _ => String::new(),
        },
        if cgroup2 { "v2" } else { "v1/hybrid" },
        if wa { "on" } else { "off" }
    );
    println!("1..{}", tests.len());
    let (mut pass, mut failn) = (0, 0);
    let (mut skips, mut knownf, mut fixed, mut rows) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cur = "";
    for (i, t) in tests.iter().enumerate() {
        if t.section != cur {
            cur = t.section;
            println!("# {cur}");
        }
        let n = i + 1;
        let res = if t.lane == Lane::V2 && !cgroup2 {
            Err(Verdict::Skip(
                "needs a pure cgroup v2 host (the VM lane: run --vm)".into(),
            ))
        } else {
            let devs = harness::host_dev_owners();
            let mut c = Ctx::new(&env, n);
            let r = t.run(&mut c);
            c.cleanup();
            match harness::restore_host_devs(&devs) {
                Some(msg) => Err(Verdict::Fail(msg)),
                None => r,
            }
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
    if let Some(p) = &o.results {
        let mut s = format!("#runtime\t{rt_name}\n#lane\t{lane}\n");
        for r in &rows {
            s.push_str(r);
            s.push('\n');
        }
        if let Err(e) = fs::write(p, s) {
            eprintln!("cannot write results {}: {e}", p.display());
        }
    }
    if std::env::var_os("OCT_KEEP").is_none() {
        let _ = fs::remove_dir_all(&work);
    }
    let list = |title: String, items: &[String]| {
        if !items.is_empty() {
            println!("# {title} ({}):", items.len());
            for s in items {
                println!("#   {s}");
            }
        }
    };
    list("skipped".into(), &skips);
    list("known failures, not counted as failed".into(), &knownf);
    if !fixed.is_empty() {
        println!(
            "# listed as known failures but passed now (remove them from the list): {}",
            fixed.join(" ")
        );
    }
    println!("{pass} passed, {failn} failed, {} skipped", skips.len());
    std::process::exit(if failn > 0 { 1 } else { 0 });
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
