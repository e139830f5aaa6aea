//! linux.seccomp is loaded after all of the runtime's own work (issue 10, items 1 and 7):
//! a deny-by-default allow-list of exactly what the workload needs (and its execve) must
//! run, whatever the default action, with or without noNewPrivileges, for the init, for
//! `exec`, with a non-root user and with startContainer hooks; every such config runc runs,
//! the runtime under test runs. And a profile that denies execveat must not make the
//! runtime exec the workload from its own binary (CVE-2019-5736).
//!
//! Seen failing before the fix (filter loaded by the init, before closing fds, the
//! exec.fifo wait and the trampoline's start-up): every minimal profile failed with "the
//! container init exited before it was ready", where runc ran the runc-minimal ones.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// What busybox `true` calls (strace of /bin/busybox true, in and out of a container).
const TRUE_SET: &[&str] = &[
    "arch_prctl",
    "brk",
    "execve",
    "exit_group",
    "getrandom",
    "getuid",
    "mprotect",
    "prctl",
    "prlimit64",
    "readlink",
    "rseq",
    "set_robust_list",
    "set_tid_address",
];

/// What busybox `true` calls beyond TRUE_SET as a non-root user (it drops set-id privileges).
const NON_ROOT_EXTRA: &[&str] = &["getgid", "newfstatat", "setgid", "setuid"];

/// What busybox `sh -c 'echo ok'` calls in a container, beyond TRUE_SET.
const SH_EXTRA: &[&str] = &[
    "getcwd",
    "getpid",
    "getppid",
    "newfstatat",
    "rt_sigaction",
    "uname",
    "write",
];

/// The smallest allow-lists runc 1.1.5 was seen to run `true` with (ERRNO default,
/// syscalls removed one by one while it still ran): with noNewPrivileges it loads the
/// filter late, without it before its own setuid/capset/exec.fifo work.
const RUNC_NNP: &[&str] = &[
    "arch_prctl",
    "close",
    "execve",
    "exit_group",
    "fstatfs",
    "getdents64",
    "mmap",
    "mprotect",
    "openat",
    "set_robust_list",
    "setresgid",
    "socketpair",
    "symlinkat",
    "unlink",
    "unlinkat",
    "wait4",
    "write",
];
const RUNC_NO_NNP: &[&str] = &[
    "arch_prctl",
    "capget",
    "capset",
    "chdir",
    "close",
    "execve",
    "exit_group",
    "fstat",
    "fstatfs",
    "getcwd",
    "getdents64",
    "getegid",
    "getppid",
    "getrlimit",
    "keyctl",
    "mmap",
    "mprotect",
    "newfstatat",
    "openat",
    "prctl",
    "pread64",
    "read",
    "setgid",
    "setgroups",
    "setuid",
    "uname",
    "wait4",
    "write",
];

/// Every default action, with errnoRet variants. (name, errnoRet)
const ACTIONS: &[(&str, Option<u32>)] = &[
    ("SCMP_ACT_ERRNO", None),
    ("SCMP_ACT_ERRNO", Some(1)),
    ("SCMP_ACT_ERRNO", Some(38)),
    ("SCMP_ACT_KILL", None),
    ("SCMP_ACT_KILL_PROCESS", None),
    ("SCMP_ACT_KILL_THREAD", None),
    ("SCMP_ACT_TRAP", None),
    ("SCMP_ACT_LOG", None),
    ("SCMP_ACT_TRACE", None),
    ("SCMP_ACT_ALLOW", None),
];

/// A deny-by-default (`action`) profile allowing exactly `names`.
fn allow_list(names: &[&str], action: (&str, Option<u32>)) -> Value {
    let mut names: Vec<&str> = names.to_vec();
    names.sort_unstable();
    names.dedup();
    let mut p = json!({
        "defaultAction": action.0,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    });
    if let Some(e) = action.1 {
        p["defaultErrnoRet"] = json!(e);
    }
    p
}

/// The union of two name lists.
fn with(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn configure(c: &mut Ctx, profile: Value, nnp: bool) {
    c.config["process"]["noNewPrivileges"] = json!(nnp);
    c.config["linux"]["seccomp"] = profile;
}

/// `bin --root root run --bundle B id` with the current config, then `delete --force`.
fn run_with(c: &Ctx, bin: &Path, root: &Path, id: &str) -> Output {
    c.write_config();
    let b = c.bundle();
    let r = root.to_str().expect("utf-8");
    let out = c.tmp.path().join("out");
    let o = run_cmd(
        bin,
        &[
            "--root",
            r,
            "run",
            "--bundle",
            b.to_str().expect("utf-8"),
            id,
        ],
        &out,
        TIMEOUT,
        |_| {},
    );
    let _ = run_cmd(
        bin,
        &["--root", r, "delete", "--force", id],
        &out,
        TIMEOUT,
        |_| {},
    );
    o
}

/// `run` through the runtime under test.
fn run_id(c: &Ctx, tag: &str) -> Output {
    let id = c.new_id(tag);
    run_with(c, &runtime(), &c.root(), &id)
}

fn describe(profile: &str, action: (&str, Option<u32>), nnp: bool) -> String {
    format!("profile {profile}, default {action:?}, noNewPrivileges {nnp}")
}

/// The workload's exact syscalls, nothing of the runtime's: runs under every default
/// action, both noNewPrivileges values, as root and as a non-root user.
#[test]
fn exactly_the_workloads_syscalls_suffice() {
    if skip_unless_capsa(
        "profiles without the runtime's own calls: runc needs its own after the filter",
    ) {
        return;
    }
    let mut c = Ctx::new("scorder-min");
    let sh: Vec<&str> = with(TRUE_SET, SH_EXTRA);
    let non_root: Vec<&str> = with(TRUE_SET, NON_ROOT_EXTRA);
    for &action in ACTIONS {
        for nnp in [true, false] {
            for uid in [0, 1000] {
                c.config["process"]["user"] = json!({"uid": uid, "gid": uid});
                c.args(&["true"]);
                let set = if uid == 0 { TRUE_SET } else { &non_root[..] };
                configure(&mut c, allow_list(set, action), nnp);
                let o = run_id(&c, "min");
                assert!(
                    o.success(),
                    "true, uid {uid}, {}: {o}",
                    describe("TRUE_SET", action, nnp)
                );
            }
            c.config["process"]["user"] = json!({"uid": 0, "gid": 0});
            c.sh("echo ok");
            configure(&mut c, allow_list(&sh, action), nnp);
            let o = run_id(&c, "minsh");
            assert!(
                o.success() && o.stdout.contains("ok"),
                "sh -c 'echo ok', {}: {o}",
                describe("TRUE_SET+SH_EXTRA", action, nnp)
            );
        }
    }
}

/// The differential test: every minimal allow-list runc runs, the runtime under test runs
/// (KILL and KILL_THREAD only through the test above: runc's init can hang on them).
#[test]
fn runs_every_minimal_profile_runc_runs() {
    if skip_unless_capsa("runc is the reference here (and flaky on its own minimal sets)") {
        return;
    }
    let runc = Path::new("/usr/sbin/runc");
    if !runc.exists() {
        skip("no /usr/sbin/runc to compare with");
        return;
    }
    let mut c = Ctx::new("scorder-diff");
    let runc_root = c.scratch("runc-root");
    std::fs::create_dir_all(&runc_root).expect("mkdir runc root");
    let profiles: [(&str, Vec<&str>); 4] = [
        ("TRUE_SET", TRUE_SET.to_vec()),
        ("RUNC_NNP", RUNC_NNP.to_vec()),
        ("RUNC_NO_NNP", RUNC_NO_NNP.to_vec()),
        ("RUNC_NO_NNP+TRUE_SET", with(RUNC_NO_NNP, TRUE_SET)),
    ];
    let mut runc_ran = 0;
    for (name, set) in &profiles {
        for &action in ACTIONS {
            if matches!(action.0, "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD") {
                continue;
            }
            for nnp in [true, false] {
                configure(&mut c, allow_list(set, action), nnp);
                let id = unique_id("scorder-runc");
                if !run_with(&c, runc, &runc_root, &id).success() {
                    continue;
                }
                runc_ran += 1;
                let o = run_id(&c, "diff");
                assert!(
                    o.success(),
                    "runc runs it, the runtime under test does not: {}: {o}",
                    describe(name, action, nnp)
                );
            }
        }
    }
    // The comparison compared something: runc runs its own minimal sets.
    assert!(runc_ran >= 4, "runc ran only {runc_ran} of the profiles");
}

/// `exec` loads the container's filter too: a minimal profile runs there as well.
#[test]
fn exec_with_a_minimal_profile() {
    if skip_unless_capsa(
        "profiles without the runtime's own calls: runc needs its own after the filter",
    ) {
        return;
    }
    let mut c = Ctx::new("scorder-exec");
    let set = with(TRUE_SET, &["clock_nanosleep"]);
    for action in [
        ("SCMP_ACT_ERRNO", None),
        ("SCMP_ACT_KILL_PROCESS", None),
        ("SCMP_ACT_KILL", None),
    ] {
        for nnp in [true, false] {
            c.args(&["sleep", "30"]);
            configure(&mut c, allow_list(&set, action), nnp);
            c.write_config();
            let id = c.new_id("exec");
            let b = c.bundle();
            c.rt(&["run", "-d", "--bundle", b.to_str().expect("utf-8"), &id])
                .ok();
            let o = c.rt(&["exec", &id, "true"]);
            let _ = c.rt(&["delete", "--force", &id]);
            assert!(
                o.success(),
                "exec true, {}: {o}",
                describe("TRUE_SET", action, nnp)
            );
        }
    }
}

/// startContainer hooks run after the runtime's own work too; the hook itself gets the
/// workload's filter.
#[test]
fn start_container_hook_with_a_minimal_profile() {
    if skip_unless_capsa(
        "profiles without the runtime's own calls: runc needs its own after the filter",
    ) {
        return;
    }
    let mut c = Ctx::new("scorder-hook");
    for action in [("SCMP_ACT_ERRNO", None), ("SCMP_ACT_KILL_PROCESS", None)] {
        for nnp in [true, false] {
            c.config["hooks"] = json!({"startContainer": [{"path": "/bin/true"}]});
            c.args(&["true"]);
            configure(&mut c, allow_list(TRUE_SET, action), nnp);
            let o = run_id(&c, "hook");
            assert!(o.success(), "{}: {o}", describe("TRUE_SET", action, nnp));
        }
    }
}

/// The runtime's capability hand-over (no noNewPrivileges: the trampoline loads the
/// filter with CAP_SYS_ADMIN) leaves the workload and startContainer hooks exactly the
/// configured sets, with the filter on, as root and as a non-root user.
#[test]
fn workload_and_hooks_get_exactly_the_configured_caps() {
    let mut c = Ctx::new("scorder-caps");
    let probe = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status";
    c.config["root"]["readonly"] = json!(false);
    for uid in [0, 1000] {
        for nnp in [true, false] {
            let out = format!("/tmp/hook-{uid}-{nnp}");
            c.config["process"]["user"] = json!({"uid": uid, "gid": uid});
            c.config["hooks"] = json!({"startContainer": [{
                "path": "/bin/sh", "args": ["sh", "-c", format!("{probe} > {out}")]
            }]});
            c.sh(probe);
            configure(
                &mut c,
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
                nnp,
            );
            let o = run_id(&c, "caps");
            o.ok();
            let hook = read_lossy(&c.rootfs().join(out.trim_start_matches('/')));
            let lines = |s: &str| -> Vec<String> {
                s.lines()
                    .filter(|l| {
                        l.starts_with("Cap") || l.starts_with("NoNew") || l.starts_with("Secc")
                    })
                    .map(str::to_owned)
                    .collect()
            };
            let want = [
                "CapInh:\t0000000000000000",
                "CapPrm:\t0000000020000420",
                "CapEff:\t0000000020000420",
                "CapBnd:\t0000000020000420",
                "CapAmb:\t0000000000000000",
                if nnp {
                    "NoNewPrivs:\t1"
                } else {
                    "NoNewPrivs:\t0"
                },
                "Seccomp:\t2",
            ];
            let got = lines(&o.stdout);
            for w in want {
                // Root gets its bounding set as permitted; a non-root user without
                // inheritable or ambient capabilities gets none.
                let w = if uid != 0 && (w.starts_with("CapPrm") || w.starts_with("CapEff")) {
                    format!("{}\t0000000000000000", &w[..7])
                } else {
                    w.to_string()
                };
                assert!(
                    got.contains(&w),
                    "workload, uid {uid}, nnp {nnp}: want {w:?} in {got:?}"
                );
            }
            assert_eq!(lines(&hook), got, "hook vs workload, uid {uid}, nnp {nnp}");
        }
    }
}

/// Item 7: a profile that allows execve but not execveat. The runtime's exec of its
/// read-only copy happens before the filter, so the workload still runs, through it.
/// (The CVE-2019-5736 attack under this profile is in tests/escape.rs.)
#[test]
fn execveat_denied_still_runs_the_workload() {
    let mut c = Ctx::new("scorder-execveat");
    for nnp in [true, false] {
        c.sh("echo ok");
        configure(
            &mut c,
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}),
            nnp,
        );
        let o = run_id(&c, "execveat");
        assert!(o.success() && o.stdout.contains("ok"), "nnp {nnp}: {o}");
    }
}

/// Same class, the user switch: the runtime entered process.cwd only after switching to
/// process.user, so a cwd only root may search (/root, mode 0700, for uid 1000) failed
/// with "process.cwd: chdir /root: permission denied", where runc (which enters it as root
/// first, as the user only if root is refused) runs the workload there.
#[test]
fn non_root_user_with_a_cwd_only_root_may_search() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = Ctx::new("scorder-cwd");
    let dir = c.rootfs().join("root");
    std::fs::create_dir_all(&dir).expect("mkdir rootfs/root");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c.config["process"]["cwd"] = json!("/root");
    c.args(&["pwd"]);
    let o = c.run();
    assert!(o.success() && o.stdout.trim() == "/root", "{o}");
}

/// Same class, the capability drop: the runtime looked the executable up with an empty
/// effective set (after the user switch, before the capabilities) and its trampoline
/// exec'd the workload with the sets execve gave it (a non-root user's effective set is
/// its ambient one), so a non-root user whose configured effective set has
/// CAP_DAC_OVERRIDE could not run /secret/true (mode 0700, root's): "stat /secret/true:
/// permission denied". runc looks up and execs with the configured effective set.
#[test]
fn non_root_user_execs_with_its_configured_effective_set() {
    use std::os::unix::fs::PermissionsExt;
    let mut c = Ctx::new("scorder-dac");
    let dir = c.rootfs().join("secret");
    std::fs::create_dir_all(&dir).expect("mkdir rootfs/secret");
    std::fs::copy("/bin/busybox", dir.join("true")).expect("copy busybox");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let caps = json!(["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]);
    c.config["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps
    });
    c.args(&["/secret/true"]);
    for nnp in [true, false] {
        for seccomp in [false, true] {
            // The minimal profile is more than runc runs (it needs its own calls).
            if seccomp && !is_capsa() {
                continue;
            }
            c.config["process"]["noNewPrivileges"] = json!(nnp);
            c.config["linux"]["seccomp"] = if seccomp {
                allow_list(&with(TRUE_SET, NON_ROOT_EXTRA), ("SCMP_ACT_ERRNO", None))
            } else {
                Value::Null
            };
            let o = run_id(&c, "dac");
            assert!(o.success(), "nnp {nnp}, seccomp {seccomp}: {o}");
        }
    }
}

/// startContainer hooks in a container without /proc: spawned through the trampoline by
/// its fd (execveat), as the runtime's capability hand-over requires them to be (a direct
/// spawn would run them with every capability the runtime holds), so they still run.
#[test]
fn start_container_hook_without_proc() {
    if skip_unless_capsa("runc needs /proc in the container (it closes fds through it)") {
        return;
    }
    let mut c = Ctx::new("scorder-noproc");
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/proc");
    }
    c.config["linux"]["maskedPaths"] = json!([]);
    c.config["linux"]["readonlyPaths"] = json!([]);
    c.config["hooks"] = json!({"startContainer": [{"path": "/bin/true"}]});
    c.args(&["true"]);
    let o = run_id(&c, "noproc");
    assert!(o.success(), "{o}");
}
