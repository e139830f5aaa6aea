//! features.md and features-linux.md: the Features structure (`RUNTIME features`) and that
//! everything it lists is recognized (each listed element used in a config.json).

use crate::bundle::{Bundle, trunc};
use crate::harness::{Ctx, R, Verdict, ensure, fail, io, skip};
use crate::t_hooks::Hooks;
use crate::table::{MUST, Test, context, t};
use serde_json::{Value, json};
use std::fs;

fn features(c: &mut Ctx) -> Result<Value, Verdict> {
    let o = c.rt(&["features"]);
    ensure(o.ok(), format!("`features` failed: {}", o.brief()))?;
    serde_json::from_str(&o.stdout).map_err(|e| {
        Verdict::Fail(format!(
            "features output is not JSON ({e}): {}",
            trunc(&o.stdout, 200)
        ))
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Capability names by number (capabilities(7)), to tell which ones this process holds.
const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities in this process's bounding set: the ones a runtime it starts can grant.
fn grantable() -> Vec<&'static str> {
    let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = s
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPS.iter()
        .enumerate()
        .filter(|(i, _)| bnd >> i & 1 == 1)
        .map(|(_, n)| *n)
        .collect()
}

/// seccomp architectures of the other byte order than x86: libseccomp cannot put them in
/// one filter with the native architecture (EDOM), so they cannot be used here at all.
const BIG_ENDIAN: &[&str] = &[
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SHEB",
];

/// (major, minor) of a SemVer string, for comparisons.
fn version(s: &str) -> (u64, u64) {
    let mut p = s
        .split(['.', '-', '+'])
        .map(|x| x.parse::<u64>().unwrap_or(0));
    (p.next().unwrap_or(0), p.next().unwrap_or(0))
}

/// Run a container adjusted by `f`; a failure names `what`.
fn usable(c: &mut Ctx, what: &str, f: impl FnOnce(&mut Bundle)) -> R {
    context(c.run_ops(&["exit:0"], f).map(|_| ()), what)
}

/// The mount options of the spec's Linux table, and how to try one: on a tmpfs, or on a
/// bind mount (bind, propagation and recursive attributes). idmap/ridmap need mappings and
/// remount an existing mount: they are exercised by mounts.idmap and not tried here.
const TABLE: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "rexec",
    "rnoatime",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "rnodev",
];

fn option_mount(b: &mut Bundle, i: usize, o: &str, src: &str) {
    let dest = format!("/mnt/opt{i}");
    let on_bind = o == "bind"
        || o == "rbind"
        || ["shared", "slave", "private", "unbindable"].contains(&o.trim_start_matches('r'))
        || (o.starts_with('r') && TABLE.contains(&o) && !["ro", "rw", "relatime"].contains(&o));
    if on_bind {
        let opts = if o == "bind" || o == "rbind" {
            json!([o])
        } else {
            json!(["rbind", o])
        };
        b.add_mount(json!({"destination": dest, "type": "bind", "source": src, "options": opts}));
    } else {
        b.add_mount(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [o]}),
        );
    }
}

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "features.json",
            "features.md",
            MUST,
            "The Features structure: ociVersionMin and ociVersionMax REQUIRED; ociVersionMax MUST NOT be less than ociVersionMin; annotations MUST be a key-value map of strings.",
            |c| {
                let f = features(c)?;
                let (min, max) = (f["ociVersionMin"].as_str(), f["ociVersionMax"].as_str());
                let (Some(min), Some(max)) = (min, max) else {
                    return fail(format!(
                        "ociVersionMin/ociVersionMax missing: {}",
                        trunc(&f.to_string(), 200)
                    ));
                };
                ensure(
                    version(max) >= version(min),
                    format!("ociVersionMax {max} < ociVersionMin {min}"),
                )?;
                ensure(
                    f.get("annotations").is_none_or(|a| {
                        a.is_null()
                            || a.as_object().is_some_and(|m| {
                                m.values().all(|v| v.is_string()) && !m.contains_key("")
                            })
                    }),
                    "annotations is not a map of strings with non-empty keys",
                )?;
                ensure(
                    f.get("potentiallyUnsafeConfigAnnotations").is_none_or(|a| {
                        a.is_null()
                            || a.as_array()
                                .is_some_and(|v| v.iter().all(|s| s.is_string()))
                    }),
                    "potentiallyUnsafeConfigAnnotations is not an array of strings",
                )
            },
        ),
        t(
            "features.oci-version-min-accepted",
            "features.md#specification-version",
            MUST,
            "ociVersionMin: \"The runtime MUST accept this value as the ociVersion property of config.json.\"",
            |c| {
                let v = features(c)?["ociVersionMin"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                usable(c, &format!("ociVersion {v}"), |b| {
                    b.set("ociVersion", json!(v))
                })
            },
        ),
        t(
            "features.oci-version-max-accepted",
            "features.md#specification-version",
            MUST,
            "ociVersionMax: \"The runtime MUST accept this value as the ociVersion property of config.json.\"",
            |c| {
                let v = features(c)?["ociVersionMax"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                usable(c, &format!("ociVersion {v}"), |b| {
                    b.set("ociVersion", json!(v))
                })
            },
        ),
        t(
            "features.no-newer-properties",
            "features.md#specification-version",
            MUST,
            "\"The Features structure MUST NOT contain properties that are not defined in this version\" (ociVersionMax): nothing added by a later spec version, nothing unknown to 1.3.",
            |c| {
                let f = features(c)?;
                let max = version(f["ociVersionMax"].as_str().unwrap_or("0.0"));
                // (property path, spec version that defines it)
                let defined: &[(&str, (u64, u64))] = &[
                    ("ociVersionMin", (1, 0)),
                    ("ociVersionMax", (1, 0)),
                    ("hooks", (1, 0)),
                    ("mountOptions", (1, 0)),
                    ("linux", (1, 0)),
                    ("annotations", (1, 0)),
                    ("potentiallyUnsafeConfigAnnotations", (1, 2)),
                    ("linux.namespaces", (1, 0)),
                    ("linux.capabilities", (1, 0)),
                    ("linux.cgroup", (1, 0)),
                    ("linux.seccomp", (1, 0)),
                    ("linux.apparmor", (1, 0)),
                    ("linux.selinux", (1, 0)),
                    ("linux.intelRdt", (1, 1)),
                    ("linux.mountExtensions", (1, 2)),
                    ("linux.netDevices", (1, 3)),
                    ("linux.memoryPolicy", (1, 3)),
                    ("linux.intelRdt.enabled", (1, 1)),
                    ("linux.intelRdt.schemata", (1, 3)),
                    ("linux.intelRdt.monitoring", (1, 3)),
                ];
                let mut found = Vec::new();
                for (k, v) in f.as_object().into_iter().flatten() {
                    found.push(k.clone());
                    if k == "linux" {
                        for (lk, lv) in v.as_object().into_iter().flatten() {
                            found.push(format!("linux.{lk}"));
                            if lk == "intelRdt" {
                                found.extend(
                                    lv.as_object()
                                        .into_iter()
                                        .flatten()
                                        .map(|(ik, _)| format!("linux.intelRdt.{ik}")),
                                );
                            }
                        }
                    }
                }
                let checked = |p: &str| {
                    !p.starts_with("linux.")
                        || p.matches('.').count() == 1
                        || p.starts_with("linux.intelRdt.")
                };
                let bad: Vec<String> = found
                    .into_iter()
                    .filter(|p| checked(p))
                    .filter(|p| match defined.iter().find(|(d, _)| d == p) {
                        None => true,
                        Some((_, since)) => *since > max,
                    })
                    .collect();
                ensure(
                    bad.is_empty(),
                    format!("properties not defined in ociVersionMax {max:?}: {bad:?}"),
                )
            },
        ),
        t(
            "features.hooks-listed-work",
            "features.md#hooks",
            MUST,
            "hooks: \"The runtime MUST support the elements in this array as the hooks property of config.json\" (every listed hook runs).",
            |c| {
                let listed = strings(&features(c)?["hooks"]);
                ensure(!listed.is_empty(), "no hooks listed")?;
                let mut b = c.bundle_ops(&["exit:0"])?;
                let h = Hooks::new(c, &mut b)?;
                let known: Vec<&str> = crate::t_hooks::ALL
                    .iter()
                    .copied()
                    .filter(|n| listed.iter().any(|l| l == n))
                    .collect();
                h.set(&mut b, &known);
                c.run(&b)?;
                let ran = h.names();
                let missing: Vec<&&str> = known
                    .iter()
                    .filter(|n| !ran.iter().any(|r| r == *n))
                    .collect();
                ensure(
                    missing.is_empty(),
                    format!("listed hooks that did not run: {missing:?} (ran {ran:?})"),
                )
            },
        ),
        t(
            "features.mount-options",
            "features.md#mount-options",
            MUST,
            "mountOptions: \"The runtime MUST recognize the elements in this array as the options of mounts objects\" (each listed option of the spec's table used on a mount; idmap/ridmap/remount excluded).",
            |c| {
                let listed = strings(&features(c)?["mountOptions"]);
                ensure(!listed.is_empty(), "no mountOptions listed")?;
                let src = c.dir.join("opt-src");
                io(fs::create_dir_all(&src), "mkdir")?;
                let s = src.display().to_string();
                let tried: Vec<String> = listed
                    .into_iter()
                    .filter(|o| TABLE.contains(&o.as_str()))
                    .collect();
                let all = {
                    let tried = tried.clone();
                    let s = s.clone();
                    c.run_ops(&["exit:0"], move |b| {
                        for (i, o) in tried.iter().enumerate() {
                            option_mount(b, i, o, &s);
                        }
                    })
                };
                if all.is_ok() {
                    return Ok(());
                }
                // Name the options that fail on their own.
                let mut bad = Vec::new();
                for o in &tried {
                    if c.run_ops(&["exit:0"], |b| option_mount(b, 0, o, &s))
                        .is_err()
                    {
                        bad.push(o.clone());
                    }
                }
                fail(format!("listed mount options not usable: {bad:?}"))
            },
        ),
        t(
            "features.namespaces",
            "features-linux.md#namespaces",
            MUST,
            "namespaces: \"The runtime MUST recognize the elements in this array as the type of linux.namespaces objects\" (each listed namespace usable).",
            |c| {
                let ns = strings(&features(c)?["linux"]["namespaces"]);
                ensure(!ns.is_empty(), "linux.namespaces missing")?;
                for n in &ns {
                    usable(c, &format!("listed namespace {n}"), |b| {
                        if n == "user" {
                            b.userns();
                        } else {
                            b.add_ns(n, None);
                        }
                    })?;
                }
                Ok(())
            },
        ),
        t(
            "features.capabilities",
            "features-linux.md#capabilities",
            MUST,
            "capabilities: \"The runtime MUST recognize the elements in this array in the process.capabilities object\" (every listed name this host lets it grant, in every set).",
            |c| {
                let listed = strings(&features(c)?["linux"]["capabilities"]);
                if listed.is_empty() {
                    return skip("the runtime lists no capabilities");
                }
                let ok = grantable();
                let caps: Vec<&String> =
                    listed.iter().filter(|n| ok.contains(&n.as_str())).collect();
                usable(c, "all listed capabilities", |b| {
                    b.set("process.noNewPrivileges", json!(false));
                    b.set("process.capabilities", json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps}));
                })
            },
        ),
        t(
            "features.seccomp",
            "features-linux.md#seccomp",
            MUST,
            "seccomp: the runtime MUST recognize the listed actions, operators, archs and knownFlags, and MUST recognize and support supportedFlags (one filter using them all; NOTIFY and WAIT_KILLABLE_RECV need a listener and are left to seccomp.notify; big-endian archs cannot share a filter with x86).",
            |c| {
                let s = features(c)?["linux"]["seccomp"].clone();
                if s.is_null() || s["enabled"] == json!(false) {
                    return skip("the runtime does not list seccomp support");
                }
                const UNUSED: &[&str] = &[
                    "acct",
                    "swapon",
                    "swapoff",
                    "kexec_load",
                    "init_module",
                    "delete_module",
                    "quotactl",
                    "uselib",
                    "ustat",
                    "sysfs",
                    "vhangup",
                    "iopl",
                    "ioperm",
                    "lookup_dcookie",
                    "syslog",
                    "pivot_root",
                ];
                let mut spare = UNUSED.iter();
                let mut rules = Vec::new();
                for a in strings(&s["actions"])
                    .iter()
                    .filter(|a| *a != "SCMP_ACT_NOTIFY")
                {
                    let mut r = json!({"names": [spare.next().unwrap_or(&"acct")], "action": a});
                    if a == "SCMP_ACT_ERRNO" || a == "SCMP_ACT_TRACE" {
                        r["errnoRet"] = json!(1);
                    }
                    rules.push(r);
                }
                for op in strings(&s["operators"]) {
                    let arg = json!({"index": 1, "value": 7, "valueTwo": 7, "op": op});
                    rules.push(json!({"names": [spare.next().unwrap_or(&"acct")], "action": "SCMP_ACT_ERRNO", "args": [arg]}));
                }
                let flags: Vec<String> = strings(&s["supportedFlags"])
                    .into_iter()
                    .filter(|f| f != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
                    .collect();
                let archs: Vec<String> = strings(&s["archs"])
                    .into_iter()
                    .filter(|a| !BIG_ENDIAN.contains(&a.as_str()))
                    .collect();
                usable(
                    c,
                    "a filter with every listed action, operator, arch and supported flag",
                    |b| {
                        let mut f = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
                        if !archs.is_empty() {
                            f["architectures"] = json!(archs);
                        }
                        if !flags.is_empty() {
                            f["flags"] = json!(flags);
                        }
                        b.set("linux.seccomp", f);
                    },
                )
            },
        ),
        t(
            "features.memory-policy",
            "features-linux.md#memorypolicy",
            MUST,
            "memoryPolicy: the runtime MUST recognize the listed modes (as linux.memoryPolicy.mode) and flags (with MPOL_BIND).",
            |c| {
                let mp = features(c)?["linux"]["memoryPolicy"].clone();
                if mp.is_null() {
                    return skip("the runtime lists no memoryPolicy");
                }
                for m in strings(&mp["modes"]) {
                    let nodes = !["MPOL_DEFAULT", "MPOL_LOCAL"].contains(&m.as_str());
                    usable(c, &format!("memoryPolicy mode {m}"), |b| {
                        let mut p = json!({"mode": m});
                        if nodes {
                            p["nodes"] = json!("0");
                        }
                        b.set("linux.memoryPolicy", p);
                    })?;
                }
                for f in strings(&mp["flags"]) {
                    usable(c, &format!("memoryPolicy flag {f}"), |b| {
                        b.set(
                            "linux.memoryPolicy",
                            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": [f]}),
                        )
                    })?;
                }
                Ok(())
            },
        ),
    ]
}
