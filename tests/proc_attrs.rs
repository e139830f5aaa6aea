//! Process attributes of runtime-spec 1.3 as the workload sees them:
//! linux.personality, process.scheduler, process.ioPriority,
//! process.execCPUAffinity (with the CPU-affinity reset), linux.memoryPolicy,
//! linux.intelRdt's refusal, and LISTEN_FDS socket activation. runc 1.1.5
//! predates all of them but LISTEN_FDS: those checks are capsa-only.

mod common;

use common::*;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// `key : value` lines of /proc/PID/sched.
fn sched_field(text: &str, key: &str) -> Option<i64> {
    text.lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(key))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn personality_linux32_reports_i686() {
    if skip_unless_capsa("linux.personality is runtime-spec 1.2") {
        return;
    }
    let mut c = Ctx::new("pers32");
    c.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    c.args(&["uname", "-m"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), "i686", "{o}");

    let mut c = Ctx::new("pers64");
    c.config["linux"]["personality"] = json!({"domain": "LINUX"});
    c.args(&["uname", "-m"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.trim(), std::env::consts::ARCH, "{o}");
}

/// config-linux.md defines no personality flag: any is an unsupported value, which config.md
/// says MUST generate an error (runc warns instead).
#[test]
fn personality_flags_are_refused() {
    if skip_unless_capsa("runc 1.1.5 ignores linux.personality") {
        return;
    }
    let mut c = Ctx::new("persflags");
    c.config["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    c.create_refused("linux.personality.flags");
}

#[test]
fn scheduler_fair_policies_and_nice() {
    if skip_unless_capsa("process.scheduler is runtime-spec 1.2") {
        return;
    }
    // (policy, nice, kernel policy number, kernel prio)
    for (policy, nice, num, prio) in [
        ("SCHED_BATCH", 5, 3, 125),
        ("SCHED_OTHER", -7, 0, 113),
        ("SCHED_IDLE", 0, 5, 120),
    ] {
        let mut c = Ctx::new("schedfair");
        c.config["process"]["scheduler"] = json!({"policy": policy, "nice": nice});
        c.args(&["cat", "/proc/self/sched"]);
        let o = c.run();
        o.ok();
        assert_eq!(sched_field(&o.stdout, "policy"), Some(num), "{policy}: {o}");
        assert_eq!(sched_field(&o.stdout, "prio"), Some(prio), "{policy}: {o}");
    }
}

/// Hosts with real-time group scheduling (cgroup v1 cpu.rt_runtime_us) give a
/// new cgroup no real-time runtime: the container must be granted some.
fn grant_rt_runtime(c: &mut Ctx) -> bool {
    let rt_groups = Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    if rt_groups {
        c.config["linux"]["resources"]["cpu"] =
            json!({"realtimePeriod": 1000000, "realtimeRuntime": 10000});
    }
    rt_groups
}

#[test]
fn scheduler_real_time_policies() {
    if skip_unless_capsa("process.scheduler is runtime-spec 1.2") {
        return;
    }
    for (policy, num) in [("SCHED_FIFO", 1), ("SCHED_RR", 2)] {
        let mut c = Ctx::new("schedrt");
        grant_rt_runtime(&mut c);
        c.config["process"]["scheduler"] = json!({"policy": policy, "priority": 10});
        c.args(&["cat", "/proc/self/sched"]);
        let o = c.run();
        o.ok();
        assert_eq!(sched_field(&o.stdout, "policy"), Some(num), "{policy}: {o}");
        // Kernel prio of a real-time task: 99 - rt_priority.
        assert_eq!(sched_field(&o.stdout, "prio"), Some(89), "{policy}: {o}");
    }
}

#[test]
fn scheduler_real_time_without_runtime_says_why() {
    if skip_unless_capsa("capsa's error text") {
        return;
    }
    let mut c = Ctx::new("schedrtno");
    if !Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        return skip("no real-time group scheduling on this host");
    }
    c.config["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    let o = c.create_refused("process.scheduler: sched_setattr: operation not permitted");
    o.fails_with("linux.resources.cpu.realtimeRuntime");
}

#[test]
fn scheduler_deadline_with_the_specs_flag_spelling() {
    if skip_unless_capsa("process.scheduler is runtime-spec 1.2") {
        return;
    }
    let mut c = Ctx::new("scheddl");
    // runtime-spec spells it SCHED_FLAG_RESET_ON_FORK (oci-spec-rs does not):
    // without it a SCHED_DEADLINE shell could not fork at all.
    c.config["process"]["scheduler"] = json!({
        "policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 50000000,
        "period": 100000000, "flags": ["SCHED_FLAG_RESET_ON_FORK"]
    });
    c.sh("cat /proc/$$/sched; echo ===; cat /proc/self/sched; echo end");
    let o = c.run();
    o.ok();
    let (shell, child) = o.stdout.split_once("===").unwrap_or_default();
    assert_eq!(sched_field(shell, "policy"), Some(6), "{o}");
    assert!(sched_field(shell, "dl.deadline").is_some(), "{o}");
    // Reset on fork: the shell's child is back to SCHED_OTHER.
    assert_eq!(sched_field(child, "policy"), Some(0), "{o}");
}

#[test]
fn scheduler_rules_are_checked_before_anything_is_made() {
    if skip_unless_capsa("process.scheduler is runtime-spec 1.2") {
        return;
    }
    for (sched, field) in [
        (
            json!({"policy": "SCHED_BATCH", "priority": 3}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_OTHER", "nice": -21}),
            "process.scheduler.nice",
        ),
        (
            json!({"policy": "SCHED_OTHER", "runtime": 1000}),
            "process.scheduler.runtime",
        ),
        (
            json!({"policy": "SCHED_FIFO", "priority": 0}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 2000000, "deadline": 1000000}),
            "process.scheduler.deadline",
        ),
        (
            json!({"policy": "SCHED_WHATEVER"}),
            "process.scheduler.policy",
        ),
    ] {
        let mut c = Ctx::new("schedbad");
        c.config["process"]["scheduler"] = sched;
        c.create_refused(field);
    }
}

#[test]
fn io_priority_classes() {
    if skip_unless_capsa("process.ioPriority is runtime-spec 1.2") {
        return;
    }
    for (class, prio, want) in [
        ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
        ("IOPRIO_CLASS_RT", 2, "realtime: prio 2"),
        ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ] {
        let mut c = Ctx::new("ioprio");
        c.config["process"]["ioPriority"] = json!({"class": class, "priority": prio});
        // ionice without arguments reports its own class and priority (ioprio_get).
        c.args(&["ionice"]);
        let o = c.run();
        o.ok();
        assert!(o.stdout.trim().starts_with(want), "{class}: {o}");
    }
    let mut c = Ctx::new("ioprio-bad");
    c.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8});
    c.create_refused("process.ioPriority.priority");
}

#[test]
fn memory_policy_modes() {
    if skip_unless_capsa("linux.memoryPolicy is runtime-spec 1.3") {
        return;
    }
    if !Path::new("/proc/self/numa_maps").exists() {
        return skip("kernel without NUMA support");
    }
    // (policy, numa_maps rendering of the task's policy)
    for (mp, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let mut c = Ctx::new("mempol");
        c.config["linux"]["memoryPolicy"] = mp.clone();
        c.args(&["head", "-n1", "/proc/self/numa_maps"]);
        let o = c.run();
        o.ok();
        let policy = o.stdout.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(policy, want, "{mp}: {o}");
    }
}

#[test]
fn memory_policy_mistakes_are_refused() {
    if skip_unless_capsa("linux.memoryPolicy is runtime-spec 1.3") {
        return;
    }
    for (mp, msg) in [
        (json!({"mode": "MPOL_BIND"}), "needs at least one node"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1-0"}),
            "runs backwards",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0",
                   "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "exclude each other",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1023"}),
            "is not online",
        ),
        (
            json!({"mode": "MPOL_SOMETIMES", "nodes": "0"}),
            "linux.memoryPolicy.mode",
        ),
    ] {
        let mut c = Ctx::new("mempolbad");
        c.config["linux"]["memoryPolicy"] = mp;
        let o = c.create_refused("linux.memoryPolicy");
        o.fails_with(msg);
    }
}

/// runc's words for each kind of bad policy (its suite matches them), and
/// an empty policy object that sets nothing.
#[test]
fn memory_policy_errors_in_runcs_words() {
    if skip_unless_capsa("linux.memoryPolicy is runtime-spec 1.3") {
        return;
    }
    for (mp, msg) in [
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "invalid memory policy mode",
        ),
        (json!({"nodes": "0-7"}), "invalid memory policy mode"),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "invalid memory policy flag",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            "invalid memory policy node",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7",
                   "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "set_mempolicy: invalid argument",
        ),
    ] {
        let mut c = Ctx::new("mempolrunc");
        c.config["linux"]["memoryPolicy"] = mp;
        let o = c.create_refused("linux.memoryPolicy");
        o.fails_with(msg);
    }
    if !Path::new("/proc/self/numa_maps").exists() {
        return skip("kernel without NUMA support");
    }
    let mut c = Ctx::new("mempolnone");
    c.config["linux"]["memoryPolicy"] = json!({});
    c.args(&["head", "-n1", "/proc/self/numa_maps"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout.split_whitespace().nth(1), Some("default"), "{o}");
}

/// The CPUs this test may use, as /proc/self/status lists them.
fn my_cpus() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_field(&s, "Cpus_allowed_list")
        .unwrap_or_default()
        .to_owned()
}

/// The first CPU in a list such as "0-3,7".
fn first_cpu(list: &str) -> u32 {
    list.split([',', '-'])
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Run the runtime pinned to `cpu`, as `taskset -c CPU runtime ...` would.
fn pinned(cpu: u32) -> impl FnOnce(&mut std::process::Command) {
    move |cmd| {
        // SAFETY: the closure runs in the forked child before exec and only
        // calls sched_setaffinity on itself with a local, initialised mask.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn cpus_of(o: &Output) -> String {
    status_field(&o.stdout, "Cpus_allowed_list")
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn init_affinity_is_reset_not_inherited() {
    if skip_unless_capsa("the reset is runc >= 1.2 behaviour") {
        return;
    }
    let all = my_cpus();
    if !all.contains([',', '-']) {
        return skip("a single CPU: nothing to reset");
    }
    let mut c = Ctx::new("affreset");
    // Not applicable to the init (config.md): it must not pin it either.
    c.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"});
    c.args(&["cat", "/proc/self/status"]);
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        pinned(first_cpu(&all) + 1),
    );
    o.ok();
    assert_eq!(cpus_of(&o), all, "{o}");
}

#[test]
fn exec_affinity_initial_and_final() {
    if skip_unless_capsa("process.execCPUAffinity is runtime-spec 1.2") {
        return;
    }
    let all = my_cpus();
    if !all.contains([',', '-']) {
        return skip("needs two CPUs");
    }
    let (first, second) = (first_cpu(&all), first_cpu(&all) + 1);
    let mut c = Ctx::new("execaff");
    c.args(&["sleep", "1000"]);
    // An exec without --process takes the config's process, affinity included (runc).
    c.config["process"]["execCPUAffinity"] =
        json!({"initial": first.to_string(), "final": second.to_string()});
    c.create();
    c.rt(&["start", &c.id]).ok();
    let o = c.rt(&["exec", &c.id, "cat", "/proc/self/status"]);
    o.ok();
    assert_eq!(cpus_of(&o), second.to_string(), "{o}");
    // The init is not affected.
    let o = c.rt(&["exec", &c.id, "cat", "/proc/1/status"]);
    o.ok();
    assert_eq!(cpus_of(&o), all, "{o}");

    // --process: only initial, from a caller pinned to another CPU: the
    // process execs on the reset affinity. "" means unset (config.md).
    let proc_json = c.scratch("p.json");
    let write = |aff: Value| {
        let p = json!({"args": ["cat", "/proc/self/status"], "cwd": "/",
                       "user": {"uid": 0, "gid": 0}, "execCPUAffinity": aff});
        std::fs::write(&proc_json, p.to_string()).expect("write process.json");
    };
    write(json!({"initial": first.to_string(), "final": ""}));
    let pj = proc_json.to_str().expect("utf-8");
    let o = c.rt_with(&["exec", "--process", pj, &c.id], pinned(second));
    o.ok();
    assert_eq!(cpus_of(&o), all, "{o}");

    // initial is applied: a CPU that does not exist is an error naming it.
    write(json!({"initial": "8000"}));
    let o = c.rt(&["exec", "--process", pj, &c.id]);
    o.fails_with("process.execCPUAffinity.initial: sched_setaffinity: invalid argument");
    write(json!({"final": "8000"}));
    let o = c.rt(&["exec", "--process", pj, &c.id]);
    o.fails_with("process.execCPUAffinity.final: sched_setaffinity: invalid argument");
    write(json!({"final": "1-0"}));
    let o = c.rt(&["exec", "--process", pj, &c.id]);
    o.fails_with("execCPUAffinity");
}

#[test]
fn exec_gets_the_containers_personality_and_its_own_scheduler() {
    if skip_unless_capsa("runtime-spec 1.2/1.3 attributes") {
        return;
    }
    let mut c = Ctx::new("execattrs");
    c.args(&["sleep", "1000"]);
    c.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    c.create();
    c.rt(&["start", &c.id]).ok();
    let proc_json = c.scratch("p.json");
    let p = json!({"args": ["sh", "-c", "uname -m; cat /proc/self/sched; ionice; echo end"],
        "cwd": "/", "user": {"uid": 0, "gid": 0},
        "scheduler": {"policy": "SCHED_BATCH", "nice": 3},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 1}});
    std::fs::write(&proc_json, p.to_string()).expect("write process.json");
    let o = c.rt(&[
        "exec",
        "--process",
        proc_json.to_str().expect("utf-8"),
        &c.id,
    ]);
    o.ok();
    assert!(o.stdout.starts_with("i686\n"), "{o}");
    // cat is the shell's child: policy and nice are inherited.
    assert_eq!(sched_field(&o.stdout, "policy"), Some(3), "{o}");
    assert_eq!(sched_field(&o.stdout, "prio"), Some(123), "{o}");
    assert!(o.stdout.contains("best-effort: prio 1"), "{o}");
}

#[test]
fn intel_rdt_is_refused_with_the_reason() {
    let mut c = Ctx::new("rdt");
    c.config["linux"]["intelRdt"] = json!({"closID": "capsa-test", "l3CacheSchema": "L3:0=ff"});
    let o = c.create_refused("");
    if is_capsa() {
        o.fails_with("linux.intelRdt");
        let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .contains(" - resctrl ");
        if !resctrl {
            o.fails_with("no resctrl filesystem is mounted");
        }
    }
}

#[test]
fn features_list_what_is_implemented() {
    if skip_unless_capsa("capsa's features document") {
        return;
    }
    let c = Ctx::new("feat13");
    let o = c.rt(&["features"]);
    o.ok();
    let f: Value = serde_json::from_str(&o.stdout).expect("features JSON");
    let modes = f["linux"]["memoryPolicy"]["modes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(modes.len(), 7, "{f}");
    assert_eq!(f["linux"]["netDevices"]["enabled"], json!(true), "{f}");
    assert_eq!(f["linux"]["intelRdt"]["enabled"], json!(false), "{f}");
    // Every listed mode is accepted (MPOL_LOCAL and MPOL_DEFAULT take no nodes).
    for m in modes {
        let m = m.as_str().unwrap_or_default();
        let mut c = Ctx::new("featmode");
        c.config["linux"]["memoryPolicy"] = if m == "MPOL_LOCAL" || m == "MPOL_DEFAULT" {
            json!({"mode": m})
        } else {
            json!({"mode": m, "nodes": "0"})
        };
        let o = c.run();
        assert!(
            o.success() || o.stderr.contains("set_mempolicy"),
            "{m}: {o}"
        );
    }
}

/// Run `runtime --root R run --bundle B ID` from a shell that opened `fds`
/// and exported LISTEN_PID/LISTEN_FDS as a socket-activating manager does.
fn run_activated(c: &Ctx, setup: &str, extra: &[&str]) -> Output {
    c.write_config();
    let script = format!(
        "{setup} exec {rt} --root {root} run {extra} --bundle {bundle} {id}",
        rt = runtime().display(),
        root = c.root().display(),
        extra = extra.join(" "),
        bundle = c.bundle().display(),
        id = c.id
    );
    run_cmd(
        Path::new("/bin/sh"),
        &["-c", &script],
        &c.scratch("out"),
        TIMEOUT,
        |_| {},
    )
}

#[test]
fn listen_fds_are_passed_with_the_environment() {
    let mut c = Ctx::new("listenfds");
    std::fs::create_dir_all(c.scratch("out")).expect("mkdir");
    let a = c.scratch("a.txt");
    let b = c.scratch("b.txt");
    std::fs::write(&a, "activation-a\n").expect("write");
    std::fs::write(&b, "activation-b\n").expect("write");
    c.sh("cat <&3; cat <&4 2>/dev/null || echo no-fd-4; echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID");
    let open = format!("exec 3<{} 4<{};", a.display(), b.display());

    let o = run_activated(&c, &format!("{open} LISTEN_PID=$$ LISTEN_FDS=1"), &[]);
    o.ok();
    assert!(o.stdout.contains("activation-a\nno-fd-4\n"), "{o}");
    assert!(o.stdout.contains("LISTEN_FDS=1 LISTEN_PID=1"), "{o}");

    // --preserve-fds counts after the activated ones (runc).
    let o = run_activated(
        &c,
        &format!("{open} LISTEN_PID=$$ LISTEN_FDS=1"),
        &["--preserve-fds", "1"],
    );
    o.ok();
    assert!(o.stdout.contains("activation-a\nactivation-b\n"), "{o}");

    // LISTEN_PID names another process: the fds are not ours to pass.
    let o = run_activated(&c, &format!("{open} LISTEN_PID=1 LISTEN_FDS=1"), &[]);
    assert!(!o.stdout.contains("activation-a"), "{o}");
    assert!(o.stdout.contains("LISTEN_FDS= LISTEN_PID="), "{o}");
}
