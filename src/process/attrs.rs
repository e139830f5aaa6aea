//! Per-task attributes the kernel keeps across execve, set on the process
//! right before it becomes the workload: execution domain
//! (linux.personality), NUMA memory policy (linux.memoryPolicy), I/O
//! priority (process.ioPriority), CPU affinity (process.execCPUAffinity) and
//! scheduling policy (process.scheduler).
//!
//! [`ProcAttrs::new`] validates everything in the parent, before any fork,
//! with errors naming the config.json field; the child only makes the
//! syscalls ([`ProcAttrs::apply`]), while it is still root with every
//! capability: real-time policies and the real-time I/O class need
//! CAP_SYS_NICE / CAP_SYS_ADMIN, which the user switch and the capability
//! drop take away. runc sets them at the same point (after no_new_privs,
//! before its seccomp filter and user switch); capsa also sets the
//! personality there rather than after the filter, so a profile that
//! forbids personality(2) cannot break a config that asks for one.
//!
//! execCPUAffinity "is not applicable to the container's init process"
//! (config.md). Like runc (>= 1.2), capsa resets the init's affinity to
//! every CPU, which the kernel narrows to the cgroup's cpuset, so the
//! container does not inherit the pinning of whoever ran `capsa create`.
//! An `exec`'d process runs its set-up on `initial` (set by the parent as
//! soon as the process sits in the container's cgroup,
//! [`ProcAttrs::apply_initial_cpus`]) and execs on `final`, or on the reset
//! when there is none.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};

use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum AttrsError {
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("{field}: {source}{hint}")]
    Apply {
        field: &'static str,
        source: SysError,
        hint: &'static str,
    },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> AttrsError {
    AttrsError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Which process the attributes are for: execCPUAffinity applies to an
/// `exec`'d process only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Init,
    Exec,
}

/// CPU numbers are bounded by the kernel's CONFIG_NR_CPUS (at most 8192).
const MAX_CPUS: u32 = 8192;
/// Node numbers are bounded by MAX_NUMNODES (1 << NODES_SHIFT, at most 1024).
const MAX_NODES: u32 = 1024;
/// Every CPU the kernel can have: the reset mask.
static ALL_CPUS: [u64; (MAX_CPUS / 64) as usize] = [u64::MAX; (MAX_CPUS / 64) as usize];

/// A bit set of CPUs or NUMA nodes, in the kernel's `unsigned long` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask(Vec<u64>);

impl Mask {
    fn from_ids(ids: &[u32]) -> Mask {
        let words = ids.iter().max().map_or(0, |&m| m as usize / 64 + 1);
        let mut v = vec![0u64; words];
        for &id in ids {
            v[id as usize / 64] |= 1 << (id % 64);
        }
        Mask(v)
    }
}

/// Parse a runtime-spec list ("0-3,7"); "" is the empty list.
pub fn parse_list(s: &str, limit: u32, field: &str) -> Result<Vec<u32>, AttrsError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let num = |t: &str| -> Result<u32, AttrsError> {
        let n: u32 = t
            .parse()
            .map_err(|_| invalid(field, format!("{s:?} is not a list like \"0-3,7\"")))?;
        if n >= limit {
            return Err(invalid(
                field,
                format!("{n} is beyond the limit of {limit}"),
            ));
        }
        Ok(n)
    };
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(invalid(field, format!("range {part:?} runs backwards")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `struct sched_attr` (linux/sched/types.h), SCHED_ATTR_SIZE_VER1.
#[repr(C)]
#[derive(Debug, Clone, Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_DEADLINE: u32 = 6;

/// set_mempolicy(2) arguments: mode with its flags, and the node mask.
#[derive(Debug, Clone)]
struct MemPolicy {
    mode: libc::c_int,
    nodes: Mask,
}

/// The validated attributes of one process; all `None` for a config that
/// asks for none of them (then only the CPU-affinity reset is done).
#[derive(Debug, Clone, Default)]
pub struct ProcAttrs {
    personality: Option<libc::c_ulong>,
    mempolicy: Option<MemPolicy>,
    ioprio: Option<libc::c_int>,
    sched: Option<SchedAttr>,
    initial_cpus: Option<Mask>,
    final_cpus: Option<Mask>,
}

impl ProcAttrs {
    /// Validate `process` (and linux.personality / linux.memoryPolicy).
    pub fn new(
        process: &Process,
        linux: Option<&Linux>,
        role: Role,
    ) -> Result<ProcAttrs, AttrsError> {
        let mut a = ProcAttrs::default();
        if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
            a.personality = Some(match p.domain() {
                LinuxPersonalityDomain::PerLinux => 0x0000,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            });
            if let Some(flags) = p.flags().as_ref().filter(|f| !f.is_empty()) {
                // config-linux.md: "Currently no flag values are supported",
                // and config.md: unsupported values MUST generate an error
                // (runc only warns; no engine is known to send flags).
                return Err(invalid(
                    "linux.personality.flags",
                    format!("{flags:?}: no personality flags are supported"),
                ));
            }
        }
        if let Some(mp) = linux.and_then(|l| l.memory_policy().as_ref()) {
            a.mempolicy = Some(mempolicy(
                mp.mode(),
                mp.nodes().as_deref().unwrap_or(""),
                mp.flags().as_deref().unwrap_or(&[]),
            )?);
        }
        if let Some(io) = process.io_priority() {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            let prio = io.priority();
            if !(0..=7).contains(&prio) {
                return Err(invalid(
                    "process.ioPriority.priority",
                    format!("{prio} is out of range: 0 (highest) to 7 (lowest)"),
                ));
            }
            a.ioprio = Some((class << 13) | prio as libc::c_int);
        }
        if let Some(s) = process.scheduler() {
            a.sched = Some(scheduler(s)?);
        }
        if let Some(aff) = process.exec_cpu_affinity() {
            let cpus = |v: &Option<String>, field: &str| -> Result<Option<Mask>, AttrsError> {
                match v.as_deref().filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(s) => Ok(Some(Mask::from_ids(&parse_list(s, MAX_CPUS, field)?))),
                }
            };
            let initial = cpus(aff.initial(), "process.execCPUAffinity.initial")?;
            let last = cpus(aff.cpu_affinity_final(), "process.execCPUAffinity.final")?;
            // Validated for the init too, but not applied to it (config.md).
            if role == Role::Exec {
                a.initial_cpus = initial;
                a.final_cpus = last;
            }
        }
        Ok(a)
    }

    /// Parent side of `exec`: run the process's set-up on
    /// execCPUAffinity.initial, once it sits in the container's cgroup
    /// (joining a cpuset cgroup resets the affinity).
    pub fn apply_initial_cpus(&self, pid: libc::pid_t) -> Result<(), AttrsError> {
        match &self.initial_cpus {
            Some(m) => set_affinity(pid, &m.0).map_err(|source| AttrsError::Apply {
                field: "process.execCPUAffinity.initial",
                source,
                hint: "",
            }),
            None => Ok(()),
        }
    }

    /// Child side, before the user switch and the capability drop.
    pub fn apply(&self) -> Result<(), AttrsError> {
        let apply = |field, hint, r: Result<(), SysError>| {
            r.map_err(|source| AttrsError::Apply {
                field,
                source,
                hint,
            })
        };
        if let Some(p) = self.personality {
            apply("linux.personality", "", set_personality(p))?;
        }
        if let Some(m) = &self.mempolicy {
            apply("linux.memoryPolicy", "", set_mempolicy(m))?;
        }
        if let Some(io) = self.ioprio {
            apply("process.ioPriority", "", set_ioprio(io))?;
        }
        // Before the policy: SCHED_DEADLINE wants an affinity that spans
        // its whole root domain, which the reset gives.
        match &self.final_cpus {
            Some(m) => apply("process.execCPUAffinity.final", "", set_affinity(0, &m.0))?,
            // A failed reset leaves the inherited affinity: not an error (runc).
            None => drop(set_affinity(0, &ALL_CPUS)),
        }
        if let Some(s) = &self.sched
            && let Err(source) = set_sched(s)
        {
            let hint = match (s.policy, source.errno) {
                (SCHED_FIFO | SCHED_RR, Errno::EPERM) => {
                    " (a real-time policy needs real-time runtime in the container's cgroup: \
                     linux.resources.cpu.realtimeRuntime)"
                }
                (SCHED_DEADLINE, Errno::EPERM | Errno::EBUSY) => {
                    " (SCHED_DEADLINE needs free deadline bandwidth and an affinity spanning \
                     its whole root domain)"
                }
                _ => "",
            };
            return Err(AttrsError::Apply {
                field: "process.scheduler",
                source,
                hint,
            });
        }
        Ok(())
    }
}

fn scheduler(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr, AttrsError> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => 3,
        // Not in mainline Linux: the kernel says EINVAL, naming the field.
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => SCHED_DEADLINE,
    };
    let name = s.policy().to_string();
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid(
            "process.scheduler.nice",
            format!("{nice} is out of range (-20 to 19)"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    if matches!(policy, SCHED_FIFO | SCHED_RR) {
        if !(1..=99).contains(&priority) {
            return Err(invalid(
                "process.scheduler.priority",
                format!("{name} needs a priority from 1 to 99, not {priority}"),
            ));
        }
    } else if priority != 0 {
        return Err(invalid(
            "process.scheduler.priority",
            "only SCHED_FIFO and SCHED_RR take a priority",
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != SCHED_DEADLINE {
        for (f, v) in [
            ("runtime", runtime),
            ("deadline", deadline),
            ("period", period),
        ] {
            if v != 0 {
                return Err(invalid(
                    format!("process.scheduler.{f}"),
                    "only SCHED_DEADLINE takes runtime, deadline and period",
                ));
            }
        }
    } else {
        // The kernel's own rules (__checkparam_dl), said before the fork.
        if runtime < 1024 {
            return Err(invalid(
                "process.scheduler.runtime",
                "SCHED_DEADLINE needs a runtime of at least 1024 ns",
            ));
        }
        if deadline < runtime || deadline >> 63 != 0 {
            return Err(invalid(
                "process.scheduler.deadline",
                format!("{deadline} must be at least the runtime ({runtime})"),
            ));
        }
        if period != 0 && (period < deadline || period >> 63 != 0) {
            return Err(invalid(
                "process.scheduler.period",
                format!("{period} must be 0 or at least the deadline ({deadline})"),
            ));
        }
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
        ..Default::default()
    })
}

fn mempolicy(
    mode: MemoryPolicyModeType,
    nodes: &str,
    flags: &[MemoryPolicyFlagType],
) -> Result<MemPolicy, AttrsError> {
    use MemoryPolicyModeType as M;
    let value = match mode {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    // "invalid memory policy node": runc's words, which its suite matches.
    let ids = parse_list(nodes, MAX_NODES, "linux.memoryPolicy.nodes").map_err(|e| match e {
        AttrsError::Invalid { field, msg } => {
            invalid(field, format!("invalid memory policy node: {msg}"))
        }
        other => other,
    })?;
    let mut bits = 0;
    for f in flags {
        bits |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    let (static_nodes, relative_nodes) = (bits & (1 << 15) != 0, bits & (1 << 14) != 0);
    if static_nodes && relative_nodes {
        return Err(invalid(
            "linux.memoryPolicy.flags",
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other \
             (set_mempolicy: invalid argument)",
        ));
    }
    match mode {
        M::MpolDefault | M::MpolLocal if !ids.is_empty() => {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("{mode} takes no nodes (set_mempolicy: invalid argument)"),
            ));
        }
        M::MpolBind | M::MpolInterleave | M::MpolPreferredMany | M::MpolWeightedInterleave
            if ids.is_empty() =>
        {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("{mode} needs at least one node"),
            ));
        }
        _ => {}
    }
    // Relative and static node numbers need not name online nodes.
    if !static_nodes
        && !relative_nodes
        && !ids.is_empty()
        && let Ok(online) = std::fs::read_to_string("/sys/devices/system/node/online")
    {
        let online_ids = parse_list(online.trim(), MAX_NODES, "/sys/devices/system/node/online")?;
        if let Some(n) = ids.iter().find(|n| !online_ids.contains(n)) {
            return Err(invalid(
                "linux.memoryPolicy.nodes",
                format!("node {n} is not online (online: {})", online.trim()),
            ));
        }
    }
    Ok(MemPolicy {
        mode: value | bits,
        nodes: Mask::from_ids(&ids),
    })
}

fn set_personality(persona: libc::c_ulong) -> Result<(), SysError> {
    // SAFETY: personality(2) takes an integer and touches no memory of ours.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(SysError::new("personality", Errno::last()));
    }
    Ok(())
}

fn set_mempolicy(m: &MemPolicy) -> Result<(), SysError> {
    let (ptr, maxnode) = if m.nodes.0.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (m.nodes.0.as_ptr(), m.nodes.0.len() * 64 + 1)
    };
    // SAFETY: the kernel reads at most maxnode - 1 bits from `ptr`, which
    // points to that many bits of a live Vec (or is null with maxnode 0).
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, m.mode, ptr, maxnode) };
    if r != 0 {
        return Err(SysError::new("set_mempolicy", Errno::last()));
    }
    Ok(())
}

fn set_ioprio(value: libc::c_int) -> Result<(), SysError> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: ioprio_set takes integers only; who 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if r != 0 {
        return Err(SysError::new("ioprio_set", Errno::last()));
    }
    Ok(())
}

fn set_affinity(pid: libc::pid_t, words: &[u64]) -> Result<(), SysError> {
    // SAFETY: the kernel reads `len` bytes from `words`, a live slice of
    // exactly that size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(words),
            words.as_ptr(),
        )
    };
    if r != 0 {
        return Err(SysError::new("sched_setaffinity", Errno::last()));
    }
    Ok(())
}

fn set_sched(attr: &SchedAttr) -> Result<(), SysError> {
    // SAFETY: the kernel reads attr.size bytes from `attr`, a live, fully
    // initialised struct sched_attr of that size; pid 0 is the caller.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if r != 0 {
        return Err(SysError::new("sched_setattr", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: serde_json::Value) -> Process {
        let mut base = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), json.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).expect("process JSON")
    }

    fn err(p: serde_json::Value) -> String {
        ProcAttrs::new(&process(p), None, Role::Exec)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn lists_parse_like_the_kernel() {
        assert_eq!(parse_list("0-3,7", 64, "f").ok(), Some(vec![0, 1, 2, 3, 7]));
        assert_eq!(parse_list("", 64, "f").ok(), Some(vec![]));
        assert_eq!(parse_list("5,1,5", 64, "f").ok(), Some(vec![1, 5]));
        let e = |s| parse_list(s, 64, "f").err().map(|e| e.to_string());
        assert_eq!(e("3-1").as_deref(), Some("f: range \"3-1\" runs backwards"));
        assert_eq!(e("64").as_deref(), Some("f: 64 is beyond the limit of 64"));
        assert!(e("1,,2").is_some() && e("x").is_some() && e("1-").is_some());
        assert_eq!(Mask::from_ids(&[0, 65]).0, vec![1, 2]);
    }

    #[test]
    fn scheduler_rules_name_the_field() {
        let s = |v| err(serde_json::json!({ "scheduler": v }));
        assert!(
            s(serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}))
                .starts_with("process.scheduler.nice: 20 is out of range")
        );
        assert!(
            s(serde_json::json!({"policy": "SCHED_BATCH", "priority": 3}))
                .starts_with("process.scheduler.priority: only SCHED_FIFO")
        );
        assert!(
            s(serde_json::json!({"policy": "SCHED_FIFO"})).starts_with(
                "process.scheduler.priority: SCHED_FIFO needs a priority from 1 to 99"
            )
        );
        assert!(s(serde_json::json!({"policy": "SCHED_RR", "priority": 100})).contains("not 100"));
        assert!(
            s(serde_json::json!({"policy": "SCHED_OTHER", "period": 5}))
                .starts_with("process.scheduler.period: only SCHED_DEADLINE")
        );
        assert!(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10}))
                .starts_with("process.scheduler.runtime:")
        );
        assert!(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 1000}))
                .starts_with("process.scheduler.deadline:")
        );
        assert!(s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 2500}))
            .starts_with("process.scheduler.period:"));
        let ok = ProcAttrs::new(
            &process(serde_json::json!({"scheduler": {"policy": "SCHED_DEADLINE",
                "runtime": 10000000, "deadline": 20000000, "period": 30000000,
                "flags": ["SCHED_RESET_ON_FORK", "SCHED_FLAG_D_L_OVERRUN"]}})),
            None,
            Role::Init,
        )
        .expect("valid deadline");
        let attr = ok.sched.expect("sched");
        assert_eq!((attr.policy, attr.flags, attr.size), (6, 0x05, 56));
    }

    #[test]
    fn io_priority_range_and_value() {
        assert!(
            err(serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}))
                .starts_with("process.ioPriority.priority: 8 is out of range")
        );
        let a = ProcAttrs::new(
            &process(
                serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 4}}),
            ),
            None,
            Role::Init,
        )
        .expect("valid");
        assert_eq!(a.ioprio, Some((1 << 13) | 4));
    }

    #[test]
    fn exec_affinity_is_for_exec_only() {
        let p = process(serde_json::json!({"execCPUAffinity": {"initial": "1", "final": "0-1"}}));
        let init = ProcAttrs::new(&p, None, Role::Init).expect("valid");
        assert!(init.initial_cpus.is_none() && init.final_cpus.is_none());
        let exec = ProcAttrs::new(&p, None, Role::Exec).expect("valid");
        assert_eq!(exec.initial_cpus, Some(Mask(vec![2])));
        assert_eq!(exec.final_cpus, Some(Mask(vec![3])));
        assert!(
            err(serde_json::json!({"execCPUAffinity": {"final": "9000"}}))
                .starts_with("process.execCPUAffinity.final: 9000 is beyond the limit")
        );
    }

    #[test]
    fn memory_policy_rules() {
        use MemoryPolicyFlagType as F;
        use MemoryPolicyModeType as M;
        let e = |m, n, f: &[F]| mempolicy(m, n, f).err().map(|e| e.to_string());
        assert_eq!(
            e(M::MpolBind, "", &[]).as_deref(),
            Some("linux.memoryPolicy.nodes: MPOL_BIND needs at least one node")
        );
        assert_eq!(
            e(M::MpolLocal, "0", &[]).as_deref(),
            Some(
                "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes \
                 (set_mempolicy: invalid argument)"
            )
        );
        assert!(
            e(
                M::MpolInterleave,
                "0",
                &[F::MpolFStaticNodes, F::MpolFRelativeNodes]
            )
            .is_some_and(|s| s.contains("exclude each other"))
        );
        assert!(e(M::MpolBind, "1023", &[]).is_some_and(|s| s.contains("is not online")));
        let ok = mempolicy(M::MpolInterleave, "1000", &[F::MpolFRelativeNodes]).expect("relative");
        assert_eq!(ok.mode, 3 | (1 << 14));
        assert_eq!(ok.nodes.0.len(), 1000 / 64 + 1);
        assert!(e(M::MpolPreferred, "", &[]).is_none());
    }
}
