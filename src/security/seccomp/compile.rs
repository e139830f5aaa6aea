//! linux.seccomp -> one classic-BPF program covering every architecture of
//! the profile. Pure: no syscalls, so it runs in the parent during bundle
//! validation and is tested as data.
//!
//! Program shape:
//! ```text
//!   ld arch; jeq AUDIT_ARCH_<native> -> section; jeq ... ; ret <bad arch>
//! section:
//!   ld nr; binary search over number intervals -> ret <action>
//!                                               | rule block (argument checks)
//! ```
//! Consecutive syscall numbers with the same unconditional action are merged
//! into one interval, so an allowlist of ~350 names becomes ~100 intervals and
//! a lookup costs ~7 comparisons. x86_64 and x32 share AUDIT_ARCH_X86_64 and
//! differ by bit 30 of the number: they are two halves of one number space,
//! and the half whose ABI is not in the profile gets the bad-arch action, as
//! libseccomp does.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};

use super::bpf::{self, Asm, Insn, Target};
use super::syscalls;
use super::tree::{Added, Conflict, Tree};

pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
/// 32-bit ARM EABI: what an aarch64 kernel presents for a compat task.
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// Set in the syscall number of x32 calls (__X32_SYSCALL_BIT).
pub const X32_BIT: u32 = 0x4000_0000;

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// libseccomp's default for an architecture the filter does not cover.
pub const RET_BAD_ARCH: u32 = RET_KILL_THREAD;

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// A syscall ABI capsa has a name table for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Abi {
    /// The ABI capsa itself runs on (always part of a filter, as in libseccomp).
    pub const fn native() -> Abi {
        if cfg!(target_arch = "aarch64") {
            Abi::Aarch64
        } else {
            Abi::X86_64
        }
    }

    pub(crate) fn audit(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// Arguments are compared on 64 bits (else only their low 32 bits, as
    /// libseccomp does for 32-bit ABIs).
    fn wide(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    /// The syscall's number in this ABI: one hash and (usually) one string
    /// comparison in the generated open-addressing index.
    pub fn nr(self, name: &str) -> Option<u32> {
        let (t, index) = match self {
            Abi::X86_64 => (syscalls::X86_64, &syscalls::X86_64_INDEX),
            Abi::X32 => (syscalls::X32, &syscalls::X32_INDEX),
            Abi::X86 => (syscalls::X86, &syscalls::X86_INDEX),
            Abi::Aarch64 => (syscalls::AARCH64, &syscalls::AARCH64_INDEX),
            Abi::Arm => (syscalls::ARM, &syscalls::ARM_INDEX),
        };
        let mut h: u32 = 0x811c_9dc5;
        for b in name.bytes() {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
        let mut slot = h as usize % syscalls::SLOTS;
        loop {
            let entry = *index.get(slot)? as usize;
            let (n, nr) = t.get(entry.checked_sub(1)?)?;
            if *n == name {
                return Some(*nr);
            }
            slot = (slot + 1) % syscalls::SLOTS;
        }
    }

    /// The ABI of a profile architecture; None for the ones capsa has no
    /// syscall table for: no kernel capsa runs on (x86_64, aarch64) presents
    /// them, so leaving them out changes no call's action (libseccomp adds
    /// them; the kernel's audit arch never selects them).
    fn from_arch(a: Arch, native: Abi) -> Option<Abi> {
        match a {
            Arch::ScmpArchNative => Some(native),
            Arch::ScmpArchX86_64 => Some(Abi::X86_64),
            Arch::ScmpArchX32 => Some(Abi::X32),
            Arch::ScmpArchX86 => Some(Abi::X86),
            Arch::ScmpArchAarch64 => Some(Abi::Aarch64),
            Arch::ScmpArchArm => Some(Abi::Arm),
            _ => None,
        }
    }
}

/// The architectures `capsa features` reports.
pub const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// i386 calls that also go through a multiplexer, as libseccomp 2.5 knows
/// them: name, multiplexer (socketcall 102, ipc 117), call number in its
/// argument 0. (For accept, send, recv, semop and semtimedop, which have no
/// i386 syscall of their own, libseccomp 2.5.4 records the rule but may
/// emit the i386 check without loading the syscall number: capsa emits what
/// the rule says.)
pub(crate) const MULTIPLEXED: &[(&str, u32, u32)] = &[
    ("socket", 102, 1),
    ("bind", 102, 2),
    ("connect", 102, 3),
    ("listen", 102, 4),
    ("accept", 102, 5),
    ("getsockname", 102, 6),
    ("getpeername", 102, 7),
    ("socketpair", 102, 8),
    ("send", 102, 9),
    ("recv", 102, 10),
    ("sendto", 102, 11),
    ("recvfrom", 102, 12),
    ("shutdown", 102, 13),
    ("setsockopt", 102, 14),
    ("getsockopt", 102, 15),
    ("sendmsg", 102, 16),
    ("recvmsg", 102, 17),
    ("accept4", 102, 18),
    ("recvmmsg", 102, 19),
    ("sendmmsg", 102, 20),
    ("semop", 117, 1),
    ("semget", 117, 2),
    ("semctl", 117, 3),
    ("semtimedop", 117, 4),
    ("msgsnd", 117, 11),
    ("msgrcv", 117, 12),
    ("msgget", 117, 13),
    ("msgctl", 117, 14),
    ("shmat", 117, 21),
    ("shmdt", 117, 22),
    ("shmget", 117, 23),
    ("shmctl", 117, 24),
];

/// The compiler's output.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: Vec<Insn>,
    pub flags: u32,
    /// Some rule uses SCMP_ACT_NOTIFY: the load returns a listener fd.
    pub notify: bool,
    /// Things skipped on purpose (unknown syscall names, foreign archs).
    pub warnings: Vec<String>,
}

/// An invalid profile: the config.json field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub msg: String,
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

fn action(a: Action, errno: Option<u32>, field: &str) -> Result<u32, Invalid> {
    let data = |what: &str| -> Result<u32, Invalid> {
        match errno {
            None => Ok(libc::EPERM as u32),
            Some(e) if e <= 0xffff => Ok(e),
            Some(e) => Err(invalid(
                field,
                format!("{what} {e} does not fit in 16 bits"),
            )),
        }
    };
    Ok(match a {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActErrno => RET_ERRNO | data("errnoRet")?,
        // runc passes EPERM as the tracer's data unless errnoRet says otherwise.
        Action::ScmpActTrace => RET_TRACE | data("errnoRet")?,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActNotify => RET_USER_NOTIF,
        Action::ScmpActAllow => RET_ALLOW,
    })
}

/// An errno for an action that returns none: config-linux.md says "When
/// the action doesn't support an errno, the runtime MUST print and error
/// and fail" (runc 1.1 ignores it; crun refuses it too).
fn check_errno_ret(a: Action, errno: Option<u32>, field: &str) -> Result<(), Invalid> {
    match errno {
        Some(e) if !matches!(a, Action::ScmpActErrno | Action::ScmpActTrace) => Err(invalid(
            field,
            format!("{a} takes no errno (errnoRet {e}); only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do"),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Cmp {
    pub(crate) index: u32,
    pub(crate) op: Op,
    pub(crate) value: u64,
    pub(crate) two: u64,
}

/// `Tree::add` for each comparison group of a rule (runc splits a rule
/// that compares one argument twice), with the errors and warnings naming
/// `syscalls[rule].names[j]`.
fn add_groups(
    t: &mut Tree,
    groups: &[Vec<Cmp>],
    act: u32,
    rule: usize,
    wide: bool,
    (field, j, name): (&str, usize, &str),
    warnings: &mut Vec<String>,
) -> Result<(), Invalid> {
    for g in groups {
        let mut sorted = g.clone();
        sorted.sort_by_key(|c| c.index);
        match t.add(&sorted, act, wide, rule) {
            Ok(Added::Merged) => {}
            Ok(Added::Shadowed { action }) => {
                if g.is_empty() && action != act {
                    warnings.push(format!(
                        "{field}.names[{j}]: {name} already has another action; the first rule wins"
                    ));
                }
            }
            Err(Conflict::Exists { rule }) => {
                return Err(invalid(
                    format!("{field}.names[{j}]"),
                    format!(
                        "{name}: its argument comparisons clash with those of \
                         linux.seccomp.syscalls[{rule}] (another action for calls both \
                         match, in a way libseccomp refuses: EEXIST)"
                    ),
                ));
            }
            Err(Conflict::Freed) => {
                return Err(invalid(
                    format!("{field}.names[{j}]"),
                    format!(
                        "{name}: merging this rule with the earlier ones of {name} makes \
                         libseccomp 2.5 use memory it has freed (runc then hangs or builds \
                         an unpredictable filter); reorder or simplify the rules"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Compile for the host's own ABI.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled, Invalid> {
    compile_for(s, Abi::native())
}

pub fn compile_for(s: &LinuxSeccomp, native: Abi) -> Result<Compiled, Invalid> {
    let mut warnings = Vec::new();
    if s.default_action() == Action::ScmpActNotify {
        // The init could not even report the listener fd (runc refuses too).
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    check_errno_ret(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;

    // The ABIs in the filter: the native one always, plus the listed ones.
    let mut abis = vec![native];
    let mut listed = Vec::new();
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        match Abi::from_arch(*a, native) {
            Some(abi) => {
                listed.push(abi);
                if !abis.contains(&abi) {
                    abis.push(abi);
                }
            }
            None => warnings.push(format!(
                "linux.seccomp.architectures[{i}]: {a} left out of the filter: capsa has \
                 no syscall table for it, and neither an x86_64 nor an aarch64 kernel \
                 presents it"
            )),
        }
    }

    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            // The init is single-threaded when it loads the filter: there is
            // nothing to synchronise (runc ignores it too).
            Flag::SeccompFilterFlagTsync => 0,
            Flag::SeccompFilterFlagLog => FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }

    let mut notify = false;
    // (audit arch, number) -> entry; numbers carry the X32 bit for x32.
    let mut table: BTreeMap<(u32, u32), Tree> = BTreeMap::new();
    // (ABI, name) -> rules of a name the ABI has no number for.
    let mut absent: BTreeMap<(Abi, &str), Tree> = BTreeMap::new();
    // Largest number the profile names, per ABI (for the -ENOSYS stub).
    let mut largest: BTreeMap<Abi, u32> = BTreeMap::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        check_errno_ret(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if rule.action() == Action::ScmpActNotify {
            notify = true;
            // The init reports the listener fd with sendmsg after loading
            // the filter: notifying on it would deadlock the create (runc
            // refuses `write`, which is what it uses).
            if let Some(j) = rule
                .names()
                .iter()
                .position(|n| n == "write" || n == "sendmsg")
            {
                return Err(invalid(
                    format!("{field}.names[{j}]"),
                    format!(
                        "SCMP_ACT_NOTIFY cannot be used for the {} syscall",
                        rule.names()[j]
                    ),
                ));
            }
        }
        let mut cmps = Vec::new();
        let mut seen = [0u8; 6];
        for (k, a) in rule.args().iter().flatten().enumerate() {
            if a.index() >= 6 {
                return Err(invalid(
                    format!("{field}.args[{k}].index"),
                    format!("{} is not a syscall argument (0-5)", a.index()),
                ));
            }
            seen[a.index()] += 1;
            cmps.push(Cmp {
                index: a.index() as u32,
                op: a.op(),
                value: a.value(),
                two: a.value_two().unwrap_or(0),
            });
        }
        // runc: comparisons on distinct arguments are ANDed; when one
        // argument is compared twice, each comparison is a rule of its own.
        let groups: Vec<Vec<Cmp>> = if seen.iter().any(|&c| c > 1) {
            cmps.iter().map(|c| vec![*c]).collect()
        } else {
            vec![cmps]
        };

        for (j, name) in rule.names().iter().enumerate() {
            const ALL: [Abi; 5] = [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm];
            // On i386 libseccomp also applies the rule to the multiplexer
            // (socketcall, ipc) with argument 0 the call's number, also for
            // calls that have no i386 number of their own.
            let mux = MULTIPLEXED.iter().find(|m| m.0 == name);
            if mux.is_none() && ALL.iter().all(|a| a.nr(name).is_none()) {
                warnings.push(format!("unknown seccomp syscall {name:?} ignored"));
                continue;
            }
            for abi in ALL {
                if !abis.contains(&abi) {
                    continue;
                }
                let nr = abi.nr(name);
                let mux = mux.filter(|_| abi == Abi::X86);
                // runc's stub counts a multiplexed call by its multiplexer.
                if let Some(n) = nr.or(mux.map(|m| m.1)) {
                    let l = largest.entry(abi).or_insert(0);
                    *l = (*l).max(n);
                }
                if act == default {
                    // Redundant: runc skips it (libseccomp would refuse it).
                    continue;
                }
                let at = (field.as_str(), j, name.as_str());
                let wide = abi.wide();
                if let Some(&(_, mux, call)) = mux {
                    let groups: Vec<Vec<Cmp>> = groups
                        .iter()
                        .map(|g| {
                            let mut g: Vec<Cmp> =
                                g.iter().filter(|c| c.index != 0).copied().collect();
                            g.push(Cmp {
                                index: 0,
                                op: Op::ScmpCmpEq,
                                value: call as u64,
                                two: 0,
                            });
                            g
                        })
                        .collect();
                    let t = table.entry((abi.audit(), mux)).or_default();
                    add_groups(t, &groups, act, i, wide, at, &mut warnings)?;
                }
                match nr {
                    Some(nr) => {
                        let t = table.entry((abi.audit(), nr)).or_default();
                        add_groups(t, &groups, act, i, wide, at, &mut warnings)?;
                    }
                    // A name this ABI lacks: libseccomp still keeps its
                    // rules (under a pseudo number, never emitted), and
                    // refuses conflicts there too; its i386 skips them.
                    None if abi != Abi::X86 => {
                        let t = absent.entry((abi, name.as_str())).or_default();
                        add_groups(t, &groups, act, i, wide, at, &mut warnings)?;
                    }
                    None => {}
                }
            }
        }
    }
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && !notify {
        // The kernel only accepts it together with a listener.
        flags &= !FLAG_WAIT_KILLABLE_RECV;
        warnings.push(
            "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored \
             without an SCMP_ACT_NOTIFY rule"
                .into(),
        );
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
    }

    // runc's -ENOSYS stub: with a restrictive default, numbers above the
    // largest one the profile names (for a listed arch) are syscalls newer
    // than the profile, and -ENOSYS lets libcs fall back to older ones.
    let enosys = !matches!(
        s.default_action(),
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace
    );
    let enosys_from = |abi: Abi| -> Option<u64> {
        if !enosys || !listed.contains(&abi) {
            return None;
        }
        largest.get(&abi).map(|&n| n as u64 + 1)
    };

    let mut asm = Asm::default();
    let mut audits: Vec<u32> = Vec::new();
    for a in &abis {
        if !audits.contains(&a.audit()) {
            audits.push(a.audit());
        }
    }
    let mut sections = Vec::new();
    for &audit in audits.iter().rev() {
        // The regions of this arch's number space, with their ABI (None: an
        // ABI of this arch that the filter does not include).
        let regions: Vec<(u64, u64, Option<Abi>)> = if audit == AUDIT_ARCH_X86_64 {
            let pick = |abi: Abi| abis.contains(&abi).then_some(abi);
            // Number -1 (a tracer skipping the call, or syscall(-1)) is
            // x86_64's, as libseccomp has it, not a bad x32 call.
            vec![
                (0, X32_BIT as u64 - 1, pick(Abi::X86_64)),
                (X32_BIT as u64, u32::MAX as u64 - 1, pick(Abi::X32)),
                (u32::MAX as u64, u32::MAX as u64, pick(Abi::X86_64)),
            ]
        } else {
            let abi = abis.iter().copied().find(|a| a.audit() == audit);
            vec![(0, u32::MAX as u64, abi)]
        };

        // Rule blocks first: they sit after the search tree in the program.
        let mut targets: BTreeMap<u32, Target> = BTreeMap::new();
        for ((_, nr), t) in table.range((audit, 0)..=(audit, u32::MAX)) {
            // The rules with arguments as libseccomp merged them (tree.rs);
            // a call none of them decides gets the default.
            targets.insert(*nr, t.emit(&mut asm, Target::Ret(default)));
        }

        let mut iv: Vec<(u32, Target)> = Vec::new();
        let mut push = |start: u64, t: Target| {
            if let Some(last) = iv.last()
                && last.1 == t
                && matches!(t, Target::Ret(_))
            {
                return;
            }
            iv.push((start as u32, t));
        };
        for (start, end, abi) in regions {
            let Some(abi) = abi else {
                push(start, Target::Ret(RET_BAD_ARCH));
                continue;
            };
            let cut = enosys_from(abi).unwrap_or(u64::MAX);
            // The numbers [from, to) without a rule.
            let gap = |from: u64, to: u64, push: &mut dyn FnMut(u64, Target)| {
                if from >= to {
                    return;
                }
                if from < cut {
                    push(from, Target::Ret(default));
                }
                if cut < to {
                    push(from.max(cut), Target::Ret(RET_ERRNO | libc::ENOSYS as u32));
                }
            };
            let mut cursor = start;
            for (&nr, &t) in targets.range(start as u32..=end as u32) {
                gap(cursor, nr as u64, &mut push);
                push(nr as u64, t);
                cursor = nr as u64 + 1;
            }
            gap(cursor, end + 1, &mut push);
        }
        let root = tree(&mut asm, &iv);
        asm.goto(root);
        sections.push((audit, asm.load(0)));
    }

    // Dispatch on the architecture, native first.
    let mut next = Target::Ret(RET_BAD_ARCH);
    for &(audit, label) in &sections {
        next = Target::Label(asm.jump(bpf::JEQ_K, audit, Target::Label(label), next));
    }
    asm.goto(next);
    asm.load(4);

    if asm.len() > bpf::MAX_INSNS {
        return Err(invalid(
            "linux.seccomp",
            format!(
                "the profile compiles to {} BPF instructions (the kernel allows {})",
                asm.len(),
                bpf::MAX_INSNS
            ),
        ));
    }
    Ok(Compiled {
        program: asm.finish(),
        flags,
        notify,
        warnings,
    })
}

/// Binary search over intervals sorted by start: `jge start[mid]`.
fn tree(asm: &mut Asm, iv: &[(u32, Target)]) -> Target {
    if iv.len() == 1 {
        return iv[0].1;
    }
    let mid = iv.len() / 2;
    let right = tree(asm, &iv[mid..]);
    let left = tree(asm, &iv[..mid]);
    Target::Label(asm.jump(bpf::JGE_K, iv[mid].0, right, left))
}
