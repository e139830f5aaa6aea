//! capsa's seccomp compiler against Debian's libseccomp (python3-seccomp),
//! the library runc, crun, podman and Docker build their filters with.
//!
//! Each profile is compiled twice: by capsa (`compile_for`, x86_64 host) and
//! by libseccomp through `tests/data/seccomp/libseccomp_bpf.py`, which
//! translates the profile as runc does and exports libseccomp's BPF. Both
//! programs run in a small classic-BPF interpreter (seccomp_diff/) on
//! seccomp_data inputs: every architecture this kernel can present (x86_64, x32, i386)
//! plus a foreign one, every syscall number the profile names with its
//! neighbours and a few unknown ones, and argument values at the edges of
//! every comparison. The action (and errno) must be the same. runc's -ENOSYS
//! stub for numbers above the profile's largest is modelled on libseccomp's
//! side (capsa implements it in the compiler). A profile libseccomp refuses
//! capsa must refuse at the same rule (`linux.seccomp.syscalls[i]`).
//!
//! On random profiles two defects of libseccomp 2.5.4's BPF generator make
//! its program differ from its own rule tree; there capsa must agree with
//! that tree instead (the program with the missing load supplied, or the
//! pseudo filter code libseccomp prints from the tree), and the inputs are
//! counted by class (`Defects`).
//!
//! Corpora (tests/data/seccomp/README.md): Docker's default profile (as
//! Docker hands it to the runtime), podman's (containers-common's
//! seccomp.json, translated for x86_64 as the engines do, with the default
//! capabilities and with all of them, and for aarch64), containerd's CRI
//! default, and seeded random profiles.
//!
//! Known differences, not compared: the -ENOSYS stub's start on an ABI where runc's name resolution and
//! capsa's tables disagree on the profile's largest number (i386: runc
//! counts socket calls as socketcall, 102); names libseccomp does not know
//! are removed from a profile before both compile it.

mod common;
mod seccomp_diff;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use capsa::__private::seccomp_compile::{self as compile, Abi};
use capsa::oci_spec::runtime::LinuxSeccomp;
use seccomp_diff::{Comparison, Insn, RET_ERRNO, Rng, data, edges, pfc, run, run_supplying_nr};
use serde_json::{Value, json};

const PY: &str = "/usr/bin/python3";
const HELPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/seccomp/libseccomp_bpf.py"
);

const X86_64: u32 = 0xC000_003E;
const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xC000_00B7;
const ARM: u32 = 0x4000_0028;
const X32_BIT: u32 = 0x4000_0000;
/// Architectures no profile here lists: AUDIT_ARCH_S390X, _PPC64LE.
const FOREIGN: [u32; 2] = [0x8000_0016, 0xC000_0015];
const ENOSYS: u32 = 38;

fn have_libseccomp() -> bool {
    Command::new(PY)
        .args(["-c", "import seccomp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// libseccomp's view of a batch of profiles, one result per profile.
fn libseccomp(profiles: &[Value]) -> Vec<Value> {
    let mut child = Command::new(PY)
        .arg(HELPER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the libseccomp helper");
    let input = serde_json::to_vec(profiles).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "helper failed");
    let res: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(res.len(), profiles.len());
    res
}

/// Inputs where libseccomp's program and capsa's differ because of a
/// defect of libseccomp 2.5.4's BPF generator, by class (see `check`).
/// Its rule tree, which capsa models, is not in question there: capsa
/// agrees with the program once the load is supplied, or with the tree as
/// libseccomp itself prints it.
#[derive(Debug, Default)]
struct Defects {
    /// The syscall number never loaded (`run_supplying_nr`).
    unloaded: usize,
    /// Another value left in the accumulator: the program differs from
    /// libseccomp's own pseudo filter code (`pfc::decide`).
    stale: usize,
}

/// Compare capsa with libseccomp on one profile; returns the number of
/// inputs checked, or a description of the first disagreement.
fn check(
    name: &str,
    profile: &Value,
    lib: &Value,
    rng: &mut Rng,
    adjudicate: bool,
    defects: &mut Defects,
) -> Result<usize, String> {
    let spec: LinuxSeccomp =
        serde_json::from_value(profile.clone()).map_err(|e| format!("{name}: parse: {e}"))?;
    // "_host": "aarch64" compiles as on an aarch64 host (libseccomp's
    // side: a filter of aarch64 instead of the native x86_64).
    let arm_host = profile["_host"] == "aarch64";
    let host = if arm_host { Abi::Aarch64 } else { Abi::X86_64 };
    let ours = compile::compile_for(&spec, host);
    let (ours, bpf) = match (ours, lib.get("bpf")) {
        (Ok(c), Some(b)) => (c, b),
        (Err(e), None) => {
            // Both refuse: capsa must name the field libseccomp tripped on.
            let le = lib["error"].as_str().unwrap_or("");
            let rule = le.split(' ').next().unwrap_or("");
            let rule = rule.split('.').next().unwrap_or("");
            if !e.field.contains(rule) {
                return Err(format!(
                    "{name}: both refuse, capsa at {} ({}), libseccomp at {le}",
                    e.field, e.msg
                ));
            }
            return Ok(0);
        }
        (Ok(_), None) => {
            return Err(format!(
                "{name}: libseccomp refuses ({}), capsa accepts\n{profile}",
                lib["error"]
            ));
        }
        (Err(e), Some(_)) => {
            return Err(format!(
                "{name}: capsa refuses ({}: {}), libseccomp accepts\n{profile}",
                e.field, e.msg
            ));
        }
    };
    let their_pfc = lib["pfc"].as_str().unwrap_or("");
    let theirs: Vec<Insn> = bpf
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let n = |k: usize| i[k].as_u64().unwrap();
            (n(0) as u16, n(1) as u8, n(2) as u8, n(3) as u32)
        })
        .collect();
    let ours: Vec<Insn> = ours
        .program
        .iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect();

    // runc's -ENOSYS stub, on libseccomp's side.
    let default = profile["defaultAction"].as_str().unwrap();
    let stub = !matches!(
        default,
        "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" | "SCMP_ACT_TRACE"
    );
    let max = |abi: &str| lib["max"][abi].as_u64().map(|m| m as u32);
    // capsa's largest numbers, for the stub's ambiguous range.
    let mut ours_max: BTreeMap<&str, u32> = BTreeMap::new();

    // (arch, nr, abi name) inputs.
    let mut nrs: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut args_of: BTreeMap<(u32, u32), Vec<Comparison>> = BTreeMap::new();
    let abis: &[(Abi, u32)] = if arm_host {
        &[(Abi::Aarch64, AARCH64), (Abi::Arm, ARM)]
    } else {
        &[(Abi::X86_64, X86_64), (Abi::X32, X86_64), (Abi::X86, I386)]
    };
    for &(_, arch) in abis {
        for nr in [0, 999, 0x000f_0005, u32::MAX] {
            nrs.insert((arch, nr));
        }
    }
    for r in profile["syscalls"].as_array().into_iter().flatten() {
        for n in r["names"].as_array().unwrap() {
            for &(abi, arch) in abis {
                let Some(nr) = abi.nr(n.as_str().unwrap()) else {
                    continue;
                };
                let key = match abi {
                    Abi::X86 => "x86",
                    Abi::X32 => "x32",
                    Abi::Aarch64 => "aarch64",
                    Abi::Arm => "arm",
                    _ => "x86_64",
                };
                let m = ours_max.entry(key).or_insert(0);
                *m = (*m).max(nr & !X32_BIT);
                for d in [-1i64, 0, 1] {
                    nrs.insert((arch, (nr as i64 + d) as u32));
                }
                let cmps = args_of.entry((arch, nr)).or_default();
                for a in r["args"].as_array().into_iter().flatten() {
                    cmps.push((
                        a["index"].as_u64().unwrap() as usize,
                        a["value"].as_u64().unwrap_or(0),
                        a["valueTwo"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
    }
    for (arch, nr) in [
        (X86_64, 0),
        (X86_64, 999),
        (X86_64, X32_BIT - 1),
        (X86_64, X32_BIT),
        (X86_64, X32_BIT | 999),
        (X86_64, u32::MAX),
        (I386, 0),
        (I386, 999),
        (I386, u32::MAX),
        (FOREIGN[0], 1),
        (FOREIGN[1], 135),
    ] {
        nrs.insert((arch, nr));
    }

    let mut checked = 0;
    for &(arch, nr) in &nrs {
        // Only what this host's kernel can present (and the foreign ones).
        if arm_host != (arch == AARCH64 || arch == ARM) && !FOREIGN.contains(&arch) {
            continue;
        }
        // Tables: libseccomp gives i386 map_shadow_stack (x86_64-only) 453.
        if arch == I386 && nr == 453 {
            continue;
        }
        let mut vectors: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6]];
        if let Some(cmps) = args_of.get(&(arch, nr)) {
            let mut per_arg: [BTreeSet<u64>; 6] = Default::default();
            for &(i, v, t) in cmps {
                if i < 6 {
                    edges(v, t, &mut per_arg[i]);
                }
            }
            let lists: Vec<Vec<u64>> = per_arg
                .iter()
                .map(|s| {
                    let mut l: Vec<u64> = s.iter().copied().collect();
                    l.push(0);
                    l
                })
                .collect();
            // Each edge alone, then random combinations across arguments.
            for (i, l) in lists.iter().enumerate() {
                for &v in l {
                    let mut a = [0; 6];
                    a[i] = v;
                    vectors.push(a);
                }
            }
            for _ in 0..64 {
                let mut a = [0; 6];
                for (i, l) in lists.iter().enumerate() {
                    a[i] = *rng.pick(l);
                }
                vectors.push(a);
            }
        }
        let abi = if arch == I386 {
            Some("x86")
        } else if arch == AARCH64 && arm_host {
            Some("aarch64")
        } else if arch == ARM && arm_host {
            Some("arm")
        } else if arch == X86_64 && nr & X32_BIT != 0 && nr != u32::MAX {
            Some("x32")
        } else if arch == X86_64 && !arm_host {
            Some("x86_64")
        } else {
            None
        };
        for a in &vectors {
            let d = data(arch, nr, a);
            let raw = run(&theirs, &d);
            let supplied = run_supplying_nr(&theirs, &d);
            let mut want = raw;
            let mut stubbed = false;
            if nr == u32::MAX && stub && abi.and_then(max).is_some() {
                // Whether runc's stub catches -1 is runc's detail, not libseccomp's.
                continue;
            }
            let bare = if abi == Some("x32") {
                nr & !X32_BIT
            } else {
                nr
            };
            if let Some(m) = abi.and_then(max)
                && stub
                && nr != u32::MAX
            {
                let o = ours_max.get(abi.unwrap()).copied().unwrap_or(m);
                if bare > m.min(o) && bare <= m.max(o) {
                    continue;
                }
                if bare > m {
                    want = RET_ERRNO | ENOSYS;
                    stubbed = true;
                }
            }
            let got = run(&ours, &d);
            if got != want && adjudicate && supplied.is_some_and(|s| s == got) {
                // libseccomp's generator left out the syscall-number load
                // (`run_supplying_nr`); with it, its program agrees.
                defects.unloaded += 1;
                continue;
            }
            if got != want
                && adjudicate
                && let Some(abi) = abi
                && !stubbed
                && pfc::decide(their_pfc, abi, nr, a) == Some(got)
            {
                // libseccomp's program does not do what its own rule tree
                // (its pseudo filter code) says, and capsa does: a defect
                // of its BPF generator (it skips a load after a subtree
                // falls through to the next node of a level, and compares
                // the value left in the accumulator).
                defects.stale += 1;
                continue;
            }
            if got != want {
                return Err(format!(
                    "{name}: arch {arch:#x} nr {nr:#x} args {a:x?}: capsa {got:#x}, \
                     libseccomp {want:#x}\n{profile}"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Drop the names libseccomp cannot resolve (newer than its tables).
fn known_to_libseccomp(mut p: Value) -> Value {
    let lib = libseccomp(std::slice::from_ref(&p));
    let unknown: BTreeSet<String> = lib[0]["unknown"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for r in p["syscalls"].as_array_mut().into_iter().flatten() {
        let names = r["names"].as_array_mut().unwrap();
        names.retain(|n| !unknown.contains(n.as_str().unwrap()));
    }
    p
}

fn corpus(file: &str) -> Value {
    let path = format!("{}/tests/data/seccomp/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    known_to_libseccomp(v)
}

fn check_corpus(file: &str) {
    if !have_libseccomp() {
        common::skip("python3-seccomp (libseccomp's Python binding) is not installed");
        return;
    }
    let p = corpus(file);
    let lib = libseccomp(std::slice::from_ref(&p));
    let mut defects = Defects::default();
    let n = check(file, &p, &lib[0], &mut Rng(1), false, &mut defects)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n > 1000, "{file}: only {n} inputs checked");
    eprintln!("{file}: {n} inputs agree ({defects:?})");
}

#[test]
fn docker_default_profile_agrees() {
    check_corpus("docker-default.json");
}

#[test]
fn podman_default_profile_agrees() {
    check_corpus("podman-default.json");
}

#[test]
fn containerd_default_profile_agrees() {
    check_corpus("containerd-default.json");
}

/// As on an aarch64 host, where the kernel also presents 32-bit ARM
/// (AUDIT_ARCH_ARM) calls: the profile lists SCMP_ARCH_ARM.
#[test]
fn podman_default_profile_on_aarch64_agrees() {
    check_corpus("podman-default-aarch64.json");
}

#[test]
fn podman_privileged_profile_agrees() {
    check_corpus("podman-sys-admin.json");
}

/// Names libseccomp 2.5.4 and capsa both know on x86_64, x32 or i386,
/// including i386-only ones, socket and SysV IPC calls (on i386 their rules
/// also apply to socketcall and ipc) and their multiplexers, and one name
/// neither knows.
const NAMES: &[&str] = &[
    "read",
    "write",
    "open",
    "close",
    "personality",
    "clone",
    "mkdir",
    "mkdirat",
    "ioctl",
    "prctl",
    "kill",
    "mmap",
    "mprotect",
    "unshare",
    "chmod",
    "fchmodat",
    "ptrace",
    "uname",
    "getpid",
    "_llseek",
    "chown32",
    "time",
    "statx",
    "clone3",
    "pidfd_open",
    "open_tree",
    "io_uring_setup",
    "arch_prctl",
    "bpf",
    "keyctl",
    "mount",
    "umount2",
    "setns",
    "fstat",
    "getrandom",
    "rseq",
    "waitid",
    "no_such_syscall",
    "socket",
    "bind",
    "accept",
    "accept4",
    "setsockopt",
    "recvmmsg",
    "socketcall",
    "semget",
    "semop",
    "shmat",
    "ipc",
];
const ARCH_NAMES: &[&str] = &[
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_RISCV64",
];
const OPS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
];
const VALUES: &[u64] = &[
    0,
    1,
    2,
    5,
    8,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
];

fn action(rng: &mut Rng) -> Value {
    let (a, errno) = *rng.pick(&[
        ("SCMP_ACT_ALLOW", None),
        ("SCMP_ACT_ERRNO", None),
        ("SCMP_ACT_ERRNO", Some(1)),
        ("SCMP_ACT_ERRNO", Some(38)),
        ("SCMP_ACT_ERRNO", Some(1234)),
        ("SCMP_ACT_KILL", None),
        ("SCMP_ACT_KILL_PROCESS", None),
        ("SCMP_ACT_TRAP", None),
        ("SCMP_ACT_LOG", None),
        ("SCMP_ACT_TRACE", None),
        ("SCMP_ACT_TRACE", Some(7)),
    ]);
    match errno {
        Some(e) => json!({"action": a, "errnoRet": e}),
        None => json!({"action": a}),
    }
}

fn random_profile(rng: &mut Rng, mixed: bool) -> Value {
    let d = action(rng);
    let mut p = json!({"defaultAction": d["action"]});
    if rng.below(4) == 0 {
        p["_host"] = json!("aarch64");
    }
    if let Some(e) = d.get("errnoRet") {
        p["defaultErrnoRet"] = e.clone();
    }
    let mut arches = Vec::new();
    for a in ARCH_NAMES {
        if rng.below(3) == 0 {
            arches.push(json!(a));
        }
    }
    if !arches.is_empty() || rng.below(2) == 0 {
        p["architectures"] = json!(arches);
    }
    // A few syscalls, each with several rules, so rules of one syscall meet.
    let pool: Vec<&str> = (0..1 + rng.below(4)).map(|_| *rng.pick(NAMES)).collect();
    // Mixed: conditional rules of one syscall may have different actions
    // (their precedence is libseccomp's tree order); else they share one.
    let cond_act = action(rng);
    let mut rules = Vec::new();
    for _ in 0..1 + rng.below(8) {
        let conditional = rng.below(3) != 0;
        let mut r = if conditional && !mixed {
            cond_act.clone()
        } else {
            action(rng)
        };
        let names: Vec<&str> = (0..1 + rng.below(2)).map(|_| *rng.pick(&pool)).collect();
        r["names"] = json!(names);
        let mut args = Vec::new();
        if conditional {
            for _ in 0..1 + rng.below(3) {
                let op = *rng.pick(OPS);
                let mut a = json!({"index": rng.below(3), "op": op, "value": *rng.pick(VALUES)});
                if op == "SCMP_CMP_MASKED_EQ" || rng.below(4) == 0 {
                    a["valueTwo"] = json!(*rng.pick(VALUES));
                }
                args.push(a);
            }
        }
        if !args.is_empty() {
            r["args"] = json!(args);
        }
        rules.push(r);
    }
    p["syscalls"] = json!(rules);
    p
}

/// Differential run over `count` seeded random profiles (override with
/// CAPSA_SECCOMP_PROFILES and CAPSA_SECCOMP_SEED); returns the failures.
fn random_run(mixed: bool, default_count: u64) -> Option<(u64, Vec<String>)> {
    if !have_libseccomp() {
        common::skip("python3-seccomp (libseccomp's Python binding) is not installed");
        return None;
    }
    let count: u64 = std::env::var("CAPSA_SECCOMP_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_count);
    let seed0: u64 = std::env::var("CAPSA_SECCOMP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let profiles: Vec<Value> = (0..count)
        .map(|i| {
            let mut rng = Rng((seed0 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            random_profile(&mut rng, mixed)
        })
        .collect();
    let lib = libseccomp(&profiles);
    let mut fails = Vec::new();
    let (mut inputs, mut defects) = (0, Defects::default());
    for (i, (p, l)) in profiles.iter().zip(&lib).enumerate() {
        let name = format!("seed {}", seed0 + i as u64);
        match check(&name, p, l, &mut Rng(7 + i as u64), true, &mut defects) {
            Ok(n) => inputs += n,
            Err(e) => {
                eprintln!("{}", e.lines().next().unwrap_or(""));
                fails.push(e)
            }
        }
    }
    eprintln!(
        "{count} random profiles, {inputs} inputs, {} disagree; inputs where libseccomp's \
         program differs because of its generator's defects: {defects:?}",
        fails.len()
    );
    Some((count, fails))
}

fn report(count: u64, fails: &[String]) {
    assert!(
        fails.is_empty(),
        "{} of {count} profiles disagree; first ones:\n{}",
        fails.len(),
        fails
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn random_profiles_agree() {
    if let Some((count, fails)) = random_run(false, 3000) {
        report(count, &fails);
    }
}

/// Conditional rules of one syscall with different actions that match the
/// same call: capsa merges them as libseccomp 2.5.4 does, node by node
/// (tree.rs), so the same rule wins and the same rules are refused (its
/// EEXIST after pruning and merging), at the same rule. Where libseccomp's
/// own program misses its tree (`Defects`), capsa must agree with the tree.
#[test]
fn random_profiles_with_mixed_actions_agree() {
    if let Some((count, fails)) = random_run(true, 1000) {
        report(count, &fails);
    }
}

/// In a real container: an argument-free personality rule overrides a
/// conditional one that comes first, as with runc (libseccomp). busybox
/// `linux32` calls personality(PER_LINUX32); the conditional rule would
/// answer EPERM, the argument-free one answers EINVAL.
#[test]
fn argument_free_rule_overrides_a_conditional_one_in_a_container() {
    let mut c = common::Ctx::new("seccompoverride");
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}
        ]
    });
    c.sh("linux32 true 2>&1; echo rc=$?");
    let out = c.run();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("Invalid argument"), "{out:?}");
    assert!(!out.stdout.contains("not permitted"), "{out:?}");
    assert!(out.stdout.contains("rc=1"), "{out:?}");
}
