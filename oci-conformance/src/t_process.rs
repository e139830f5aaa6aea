//! config.md#process: terminal and consoleSize, cwd, env, args, POSIX rlimits and user,
//! Linux process properties (capabilities, noNewPrivileges, oomScoreAdj, scheduler,
//! ioPriority, execCPUAffinity, AppArmor and SELinux labels).

use crate::bundle::Kv;
use crate::harness::{Verdict, ensure, eq, io, own_affinity_mask, skip};
use crate::table::{MUST, SHOULD, Test, Want::*, default, probe, refuse, t};
use serde_json::json;
use std::fs;

fn caps_mask(names: &[&str]) -> u64 {
    let mut m = 0u64;
    for n in names {
        let bit = match *n {
            "CAP_CHOWN" => 0,
            "CAP_KILL" => 5,
            "CAP_NET_BIND_SERVICE" => 10,
            "CAP_NET_RAW" => 13,
            "CAP_SYS_CHROOT" => 18,
            "CAP_SYS_ADMIN" => 21,
            "CAP_MKNOD" => 27,
            "CAP_AUDIT_WRITE" => 29,
            _ => continue,
        };
        m |= 1 << bit;
    }
    m
}

fn cap_field(kv: &Kv, f: &str) -> Result<u64, Verdict> {
    let v = kv.get(&format!("status.{f}"))?;
    u64::from_str_radix(v, 16).map_err(|e| Verdict::Fail(format!("{f}={v}: {e}")))
}

/// The label this process runs with under the active LSM (AppArmor or SELinux).
fn own_label() -> String {
    fs::read_to_string("/proc/self/attr/current")
        .unwrap_or_default()
        .trim_end_matches(['\n', '\0'])
        .to_string()
}

pub fn tests() -> Vec<Test> {
    vec![
        probe(
            "process.terminal-false",
            "config.md#process",
            MUST,
            "terminal (bool, OPTIONAL) specifies whether a terminal is attached to the process, defaults to false.",
            &["tty"],
            default,
            &[("tty.1", Eq("0"))],
        ),
        t(
            "process.console-size",
            "config.md#process",
            MUST,
            "consoleSize specifies the console size in characters of the terminal (height, width) when terminal is true.",
            |c| {
                let kv = crate::t_cli::console_kv(c, |b| b.set("process.consoleSize", json!({"height": 31, "width": 101})))?;
                eq("consoleSize (rows cols)", kv.get("winsize")?, "31 101")
            },
        ),
        probe(
            "process.console-size-ignored",
            "config.md#process",
            MUST,
            "Runtimes MUST ignore consoleSize if terminal is false or unset.",
            &["tty"],
            |b| b.set("process.consoleSize", json!({"height": 31, "width": 101})),
            &[("tty.1", Eq("0"))],
        ),
        t(
            "linux.dev-console",
            "config-linux.md#default-devices",
            MUST,
            "/dev/console is set up if terminal is enabled in the config by bind mounting the pseudoterminal pty to /dev/console.",
            |c| {
                let kv = crate::t_cli::console_kv(c, |_| {})?;
                let con = kv.get("stat./dev/console")?;
                ensure(con.starts_with("c ") && con.contains(" 136 "), format!("/dev/console is not a pty: {con}"))?;
                let pty = kv.get("readlink./proc/self/fd/0")?;
                let n = pty.rsplit('/').next().unwrap_or("");
                ensure(con.ends_with(&format!(" 136 {n}")), format!("/dev/console ({con}) is not the process's terminal {pty}"))
            },
        ),
        probe(
            "process.cwd",
            "config.md#process",
            MUST,
            "cwd is the working directory that will be set for the executable.",
            &["cwd"],
            |b| b.set("process.cwd", json!("/tmp")),
            &[("cwd", Eq("/tmp"))],
        ),
        t(
            "process.env",
            "config.md#process",
            MUST,
            "env (array of strings) with the same semantics as IEEE Std 1003.1-2008's environ: the process gets exactly these variables.",
            |c| {
                let kv = c.run_ops(&["env"], |b| b.set("process.env", json!(["PATH=/bin", "OCT_A=1", "OCT_B=with space"])))?;
                eq("OCT_A", kv.get("env.OCT_A")?, "1")?;
                eq("OCT_B", kv.get("env.OCT_B")?, "with space")?;
                // HOME may be added by a runtime for POSIX (not forbidden); nothing else.
                let n = kv.0.keys().filter(|k| k.starts_with("env.")).count();
                ensure(n <= 4, format!("unexpected extra environment: {}", crate::bundle::trunc(&kv.1, 300)))
            },
        ),
        probe(
            "process.args",
            "config.md#process",
            MUST,
            "args with similar semantics to IEEE Std 1003.1-2008 execvp's argv.",
            &[],
            |b| b.set("process.args", json!(["/bin/sh", "-c", "echo args=$0-$1", "zero", "one"])),
            &[("args", Eq("zero-one"))],
        ),
        probe(
            "process.args-path-lookup",
            "config.md#process",
            MUST,
            "args: at least one entry is REQUIRED, used with the same semantics as execvp's file (a name without a slash is looked up in PATH).",
            &[],
            |b| b.set("process.args", json!(["sh", "-c", "echo found=yes"])),
            &[("found", Eq("yes"))],
        ),
        refuse(
            "process.args-empty-errors",
            "config.md#process",
            MUST,
            "args: at least one entry is REQUIRED (non-Windows); an empty args is invalid and Runtimes MUST generate an error when invalid values are encountered.",
            |b| b.set("process.args", json!([])),
        )
        .by_start(),
        // ---- POSIX process: rlimits
        t(
            "process.rlimits",
            "config.md#posix-process",
            MUST,
            "rlimits: for each entry, a getrlimit(3) on type MUST succeed; rlim.rlim_cur MUST match soft and rlim.rlim_max MUST match hard.",
            |c| {
                let kv = c.run_ops(&["rlimit:RLIMIT_NOFILE", "rlimit:RLIMIT_CORE", "rlimit:RLIMIT_NPROC"], |b| {
                    b.set(
                        "process.rlimits",
                        json!([{"type": "RLIMIT_NOFILE", "soft": 513, "hard": 1025},
                               {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
                               {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444}]),
                    )
                })?;
                eq("NOFILE", kv.get("rlimit.RLIMIT_NOFILE")?, "513 1025")?;
                eq("CORE", kv.get("rlimit.RLIMIT_CORE")?, "4096 8192")?;
                eq("NPROC", kv.get("rlimit.RLIMIT_NPROC")?, "333 444")
            },
        ),
        refuse(
            "process.rlimits-duplicate-errors",
            "config.md#posix-process",
            MUST,
            "If rlimits contains duplicated entries with same type, the runtime MUST generate an error.",
            |b| {
                b.set(
                    "process.rlimits",
                    json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}, {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]),
                )
            },
        )
        .by_start(),
        refuse(
            "process.rlimits-invalid-errors",
            "config.md#posix-process",
            MUST,
            "type: the runtime MUST generate an error for any values which cannot be mapped to a relevant kernel interface.",
            |b| b.set("process.rlimits", json!([{"type": "RLIMIT_OCT_BOGUS", "soft": 1, "hard": 1}])),
        )
        .by_start(),
        // ---- POSIX user
        t(
            "process.user-ids",
            "config.md#posix-platform-user",
            MUST,
            "uid, gid and additionalGids: the user and group IDs in the container namespace the process runs with.",
            |c| {
                let kv = c.run_ops(&["ids"], |b| b.set("process.user", json!({"uid": 1234, "gid": 2345, "additionalGids": [5, 3456]})))?;
                eq("uid", kv.get("uid")?, "1234")?;
                eq("euid", kv.get("euid")?, "1234")?;
                eq("gid", kv.get("gid")?, "2345")?;
                let mut g: Vec<&str> = kv.get("groups")?.split(',').filter(|s| !s.is_empty() && *s != "2345").collect();
                g.sort();
                eq("additional groups", g, vec!["3456", "5"])
            },
        ),
        probe(
            "process.user-umask",
            "config.md#posix-platform-user",
            MUST,
            "umask (int, OPTIONAL) specifies the umask of the user.",
            &["umask"],
            |b| b.set("process.user.umask", json!(0o27)),
            &[("umask", Eq("0027"))],
        ),
        t(
            "process.user-umask-unset",
            "config.md#posix-platform-user",
            SHOULD,
            "umask: \"If unspecified, the umask should not be changed from the calling process' umask.\"",
            |c| {
                let b = c.bundle_ops(&["umask"])?;
                eq("umask", c.run_via_sh(&b, "umask 037")?.get("umask")?, "0037")
            },
        ),
        // ---- Linux process
        t(
            "process.capabilities",
            "config.md#linux-process",
            MUST,
            "capabilities: the effective, bounding, inheritable, permitted and ambient arrays are the capabilities kept for the process in each set.",
            |c| {
                let e = ["CAP_CHOWN", "CAP_KILL"];
                let bd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_MKNOD"];
                let i = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"];
                let kv = c.run_ops(&["status"], |b| {
                    b.set("process.noNewPrivileges", json!(false));
                    b.set("process.capabilities", json!({"effective": e, "bounding": bd, "permitted": i, "inheritable": i, "ambient": ["CAP_KILL"]}));
                })?;
                eq("CapBnd", cap_field(&kv, "CapBnd")?, caps_mask(&bd))?;
                eq("CapInh", cap_field(&kv, "CapInh")?, caps_mask(&i))?;
                eq("CapAmb", cap_field(&kv, "CapAmb")?, caps_mask(&["CAP_KILL"]))?;
                // exec adds ambient to permitted/effective; what was configured must be there.
                ensure(
                    cap_field(&kv, "CapPrm")? & caps_mask(&i) == caps_mask(&i),
                    "CapPrm lacks configured permitted capabilities",
                )?;
                ensure(
                    cap_field(&kv, "CapEff")? & caps_mask(&e) == caps_mask(&e),
                    "CapEff lacks configured effective capabilities",
                )
            },
        ),
        t(
            "process.capabilities-nonroot",
            "config.md#linux-process",
            MUST,
            "ambient: the ambient capabilities are kept for a non-root process (they survive the uid change and execve).",
            |c| {
                let s = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
                let kv = c.run_ops(&["status"], |b| {
                    b.set("process.user", json!({"uid": 1000, "gid": 1000}));
                    b.set("process.capabilities", json!({"effective": s, "bounding": s, "permitted": s, "inheritable": s, "ambient": s}));
                })?;
                eq("CapAmb", cap_field(&kv, "CapAmb")?, caps_mask(&s))?;
                eq("CapEff", cap_field(&kv, "CapEff")?, caps_mask(&s))
            },
        ),
        probe(
            "process.capabilities-unknown-no-fail",
            "config.md#linux-process",
            SHOULD,
            "Any value which cannot be mapped to a relevant kernel interface MUST be logged as a warning; runtimes SHOULD NOT fail if the configuration requests capabilities that cannot be granted (an unknown name).",
            &["exit:0"],
            |b| {
                let s = ["CAP_KILL", "CAP_OCT_NOT_A_CAP"];
                b.set("process.capabilities", json!({"effective": s, "bounding": s, "permitted": s}));
            },
            &[],
        ),
        probe(
            "process.no-new-privileges",
            "config.md#linux-process",
            MUST,
            "noNewPrivileges set to true prevents the process from gaining additional privileges (no_new_privs is set).",
            &["status"],
            default,
            &[("status.NoNewPrivs", Eq("1"))],
        ),
        probe(
            "process.no-new-privileges-false",
            "config.md#linux-process",
            MUST,
            "noNewPrivileges false: the flag is not set.",
            &["status"],
            |b| b.set("process.noNewPrivileges", json!(false)),
            &[("status.NoNewPrivs", Eq("0"))],
        ),
        probe(
            "process.oom-score-adj",
            "config.md#linux-process",
            MUST,
            "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value.",
            &["cat:/proc/self/oom_score_adj"],
            |b| b.set("process.oomScoreAdj", json!(123)),
            &[("cat./proc/self/oom_score_adj", Eq("123"))],
        ),
        t(
            "process.oom-score-adj-unset",
            "config.md#linux-process",
            MUST,
            "If oomScoreAdj is not set, the runtime MUST NOT change the value of oom_score_adj (the container keeps the caller's value).",
            |c| {
                let b = c.bundle_ops(&["cat:/proc/self/oom_score_adj"])?;
                let kv = c.run_via_sh(&b, "echo 17 > /proc/self/oom_score_adj")?;
                eq("oom_score_adj", kv.get("cat./proc/self/oom_score_adj")?, "17")
            },
        ),
        probe(
            "process.io-priority",
            "config.md#linux-process",
            MUST,
            "ioPriority configures the I/O priority (class, priority) of the container's processes.",
            &["ioprio"],
            |b| b.set("process.ioPriority", json!({"class": "IOPRIO_CLASS_BE", "priority": 6})),
            &[("ioprio", Eq("16390"))],
        ),
        probe(
            "process.scheduler",
            "config.md#linux-process",
            MUST,
            "scheduler: the scheduling policy and nice value of the process (nice defaults to 0).",
            &["sched"],
            |b| b.set("process.scheduler", json!({"policy": "SCHED_BATCH", "nice": 5})),
            &[("sched", Eq("3 5"))],
        ),
        t(
            "process.exec-cpu-affinity",
            "config.md#linux-process",
            MUST,
            "execCPUAffinity.final: the list of CPUs the executed process will run on (an exec'd process; the OCI CLI has no exec, so runc's `exec --process` is used).",
            |c| {
                if own_affinity_mask().count_ones() < 2 {
                    return skip("needs at least 2 CPUs to see an affinity change");
                }
                let (_b, id) = c.running()?;
                let p = c.dir.join("process.json");
                let proc = json!({"args": ["/checker", "affinity"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "env": ["PATH=/bin"], "execCPUAffinity": {"final": "0"}});
                io(fs::write(&p, proc.to_string()), "write process.json")?;
                let o = c.rt(&["exec", "--process", p.to_str().unwrap_or(""), &id]);
                ensure(o.ok(), format!("exec: {}", o.brief()))?;
                eq("affinity of the exec'd process", Kv::parse(&o.stdout).get("affinity")?, "0x1")
            },
        ),
        t(
            "process.exec-cpu-affinity-not-init",
            "config.md#linux-process",
            MUST,
            "execCPUAffinity: \"This setting is not applicable to the container's init process\" (the init keeps the caller's affinity).",
            |c| {
                let kv = c.run_ops(&["affinity"], |b| b.set("process.execCPUAffinity", json!({"initial": "0", "final": "0"})))?;
                eq("affinity of the init process", kv.get("affinity")?, format!("{:#x}", own_affinity_mask()).as_str())
            },
        ),
        t(
            "process.apparmor-profile",
            "config.md#linux-process",
            MUST,
            "apparmorProfile specifies the name of the AppArmor profile for the process (the process runs under it: \"unconfined\").",
            |c| {
                if fs::metadata("/sys/kernel/security/apparmor").is_err() {
                    return skip("no AppArmor on this host");
                }
                let kv = c.run_ops(&["cat:/proc/self/attr/current"], |b| b.set("process.apparmorProfile", json!("unconfined")))?;
                ensure(kv.get("cat./proc/self/attr/current")?.starts_with("unconfined"), "the process is not under the configured profile")
            },
        ),
        t(
            "process.selinux-label",
            "config.md#linux-process",
            MUST,
            "selinuxLabel specifies the SELinux label for the process (the label of the driver itself, known valid).",
            |c| {
                if fs::metadata("/sys/fs/selinux/enforce").is_err() {
                    return skip("no SELinux on this host");
                }
                let label = own_label();
                let kv = c.run_ops(&["cat:/proc/self/attr/current"], |b| b.set("process.selinuxLabel", json!(label.clone())))?;
                eq("process label", kv.get("cat./proc/self/attr/current")?.trim_end_matches('\0'), label.as_str())
            },
        ),
    ]
}
