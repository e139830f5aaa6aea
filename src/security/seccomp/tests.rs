//! The compiler as data: generated programs run through the BPF interpreter
//! in `bpf.rs` against synthetic seccomp_data, and are checked against a
//! direct, independently written evaluation of the profile.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompOperator as Op};
use serde_json::json;

use super::bpf;
use super::compile::*;

fn spec(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile parses")
}

fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        let (lo, hi) = (*a as u32, (*a >> 32) as u32);
        let o = 16 + 8 * i;
        // little-endian layout of a u64, as the kernel stores it
        d[o..o + 4].copy_from_slice(&lo.to_ne_bytes());
        d[o + 4..o + 8].copy_from_slice(&hi.to_ne_bytes());
    }
    d
}

fn run(c: &Compiled, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    bpf::run(&c.program, &data(arch, nr, args)).expect("program runs")
}

const X64: u32 = AUDIT_ARCH_X86_64;
const I386: u32 = AUDIT_ARCH_I386;
const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

fn nr(abi: Abi, name: &str) -> u32 {
    abi.nr(name).expect("known syscall")
}

#[test]
fn denied_syscall_gets_errno_and_custom_errno() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1234}
            ]
        })),
        Abi::X86_64,
    )
    .unwrap();
    let z = [0; 6];
    assert_eq!(run(&c, X64, 83, z), EPERM); // mkdir
    assert_eq!(run(&c, X64, 258, z), EPERM); // mkdirat
    assert_eq!(run(&c, X64, 84, z), RET_ERRNO | 1234); // rmdir
    assert_eq!(run(&c, X64, 0, z), RET_ALLOW);
    assert_eq!(run(&c, X64, 82, z), RET_ALLOW);
    assert_eq!(run(&c, X64, 85, z), RET_ALLOW);
    assert_eq!(run(&c, X64, u32::MAX >> 2, z), RET_ALLOW);
    // Not in the filter: i386 and x32 calls are a bad architecture.
    assert_eq!(run(&c, I386, 39, z), RET_BAD_ARCH);
    assert_eq!(run(&c, X64, X32_BIT | 83, z), RET_BAD_ARCH);
    assert_eq!(run(&c, AUDIT_ARCH_AARCH64, 34, z), RET_BAD_ARCH);
    assert_eq!(c.flags, 0);
    assert!(!c.notify);
}

#[test]
fn every_action_maps_to_its_return_value() {
    let cases = [
        ("SCMP_ACT_ALLOW", None, RET_ALLOW),
        ("SCMP_ACT_ERRNO", None, EPERM),
        ("SCMP_ACT_ERRNO", Some(5), RET_ERRNO | 5),
        ("SCMP_ACT_KILL", None, RET_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, RET_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, RET_KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, RET_TRAP),
        ("SCMP_ACT_TRACE", None, RET_TRACE | libc::EPERM as u32),
        ("SCMP_ACT_TRACE", Some(7), RET_TRACE | 7),
        ("SCMP_ACT_LOG", None, RET_LOG),
        ("SCMP_ACT_NOTIFY", None, RET_USER_NOTIF),
    ];
    for (act, errno, want) in cases {
        let mut rule = json!({"names": ["getpid"], "action": act});
        if let Some(e) = errno {
            rule["errnoRet"] = json!(e);
        }
        // A default that differs from every rule action.
        let c = compile_for(
            &spec(
                json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99,
                         "listenerPath": "/x", "syscalls": [rule]}),
            ),
            Abi::X86_64,
        )
        .unwrap();
        assert_eq!(run(&c, X64, 39, [0; 6]), want, "{act} {errno:?}");
        assert_eq!(run(&c, X64, 40, [0; 6]), RET_ERRNO | 99, "{act}: default");
        // As the default action too (NOTIFY is refused there).
        if act != "SCMP_ACT_NOTIFY" {
            let mut s = json!({"defaultAction": act, "syscalls": []});
            if let Some(e) = errno {
                s["defaultErrnoRet"] = json!(e);
            }
            let c = compile_for(&spec(s), Abi::X86_64).unwrap();
            assert_eq!(run(&c, X64, 39, [0; 6]), want, "default {act}");
        }
    }
}

/// The comparisons of the runtime-spec, on u64, straight from their definition.
fn reference_cmp(op: Op, arg: u64, value: u64, two: u64) -> bool {
    match op {
        Op::ScmpCmpNe => arg != value,
        Op::ScmpCmpLt => arg < value,
        Op::ScmpCmpLe => arg <= value,
        Op::ScmpCmpEq => arg == value,
        Op::ScmpCmpGe => arg >= value,
        Op::ScmpCmpGt => arg > value,
        Op::ScmpCmpMaskedEq => arg & value == two,
    }
}

const OPS: [(&str, Op); 7] = [
    ("SCMP_CMP_NE", Op::ScmpCmpNe),
    ("SCMP_CMP_LT", Op::ScmpCmpLt),
    ("SCMP_CMP_LE", Op::ScmpCmpLe),
    ("SCMP_CMP_EQ", Op::ScmpCmpEq),
    ("SCMP_CMP_GE", Op::ScmpCmpGe),
    ("SCMP_CMP_GT", Op::ScmpCmpGt),
    ("SCMP_CMP_MASKED_EQ", Op::ScmpCmpMaskedEq),
];

/// Values around the 32-bit half boundaries, where a wrong split shows.
const EDGES: [u64; 12] = [
    0,
    1,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_ffff_ffff,
    0x2_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_0000_0000,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
];

#[test]
fn every_operator_on_64_bit_halves() {
    for (name, op) in OPS {
        for &value in &EDGES {
            let two = value & 0x0000_ffff_0000_ff00;
            let c = compile_for(
                &spec(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 3, "value": value, "valueTwo": two, "op": name}]}]
                })),
                Abi::X86_64,
            )
            .unwrap();
            for &arg in &EDGES {
                let mut args = [0u64; 6];
                args[3] = arg;
                let want = if reference_cmp(op, arg, value, two) {
                    EPERM
                } else {
                    RET_ALLOW
                };
                assert_eq!(
                    run(&c, X64, 135, args),
                    want,
                    "{name} arg {arg:#x} value {value:#x} two {two:#x}"
                );
            }
        }
    }
}

#[test]
fn operators_on_32_bit_abis_compare_the_low_half() {
    // libseccomp semantics for x86 and x32: only the low 32 bits count.
    for (name, op) in OPS {
        for &value in &EDGES {
            let c = compile_for(
                &spec(json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": value, "valueTwo": 0, "op": name}]}]
                })),
                Abi::X86_64,
            )
            .unwrap();
            for &arg in &EDGES {
                let low = |v: u64| v & 0xffff_ffff;
                let want = if reference_cmp(op, low(arg), low(value), 0) {
                    EPERM
                } else {
                    RET_ALLOW
                };
                let args = [arg, 0, 0, 0, 0, 0];
                assert_eq!(
                    run(&c, I386, 136, args),
                    want,
                    "x86 {name} {arg:#x} {value:#x}"
                );
                assert_eq!(
                    run(&c, X64, X32_BIT | 135, args),
                    want,
                    "x32 {name} {arg:#x} {value:#x}"
                );
                let wide = if reference_cmp(op, arg, value, 0) {
                    EPERM
                } else {
                    RET_ALLOW
                };
                assert_eq!(run(&c, X64, 135, args), wide, "x86_64 {name}");
            }
        }
    }
}

#[test]
fn args_of_one_rule_are_anded_and_rules_are_ordered_as_libseccomp_does() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                // libseccomp tests the higher argument first, whatever the
                // profile order.
                {"names": ["kill"], "action": "SCMP_ACT_LOG", "args": [
                    {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_TRAP", "args": [
                    {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
                // An argument-free rule overrides the conditional ones,
                // before or after them.
                {"names": ["tgkill"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["tgkill", "personality"], "action": "SCMP_ACT_TRAP"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                // The same argument twice: each comparison is a rule (runc).
                {"names": ["tkill"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
            ]
        })),
        Abi::X86_64,
    )
    .unwrap();
    let kill = 62;
    assert_eq!(run(&c, X64, kill, [1, 9, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(run(&c, X64, kill, [2, 9, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(run(&c, X64, kill, [3, 9, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(run(&c, X64, kill, [3, 8, 0, 0, 0, 0]), RET_TRAP);
    assert_eq!(run(&c, X64, kill, [1, 8, 0, 0, 0, 0]), EPERM);
    for nr in [234, 135] {
        assert_eq!(run(&c, X64, nr, [1, 0, 0, 0, 0, 0]), RET_TRAP);
        assert_eq!(run(&c, X64, nr, [2, 0, 0, 0, 0, 0]), RET_TRAP);
    }
    let tkill = 200;
    assert_eq!(run(&c, X64, tkill, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&c, X64, tkill, [2, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&c, X64, tkill, [3, 0, 0, 0, 0, 0]), EPERM);
}

/// libseccomp merges rules node by node (tree.rs): it refuses rules whose
/// comparisons differ but share a node, and a later rule with the same
/// action can replace the end of an earlier chain.
#[test]
fn rules_sharing_a_high_half_node_merge_as_in_libseccomp() {
    // "a1 > 0x7fffffff" and "a1 > 0" share the node "a1.hi > 0" on x86_64.
    // Its true branch goes on to rule 0's a2 comparison (KILL) and would
    // end with rule 1's TRACE there: EEXIST (libseccomp 2.5.4 refuses it;
    // the comparisons are not the same, so a rule-level check accepted it).
    let e = compile_for(
        &spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_KILL", "args": [
                {"index": 2, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"},
                {"index": 1, "value": 0x7fff_ffff_u64, "op": "SCMP_CMP_GT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "args": [
                {"index": 1, "value": 0, "op": "SCMP_CMP_GT"}]}]})),
        Abi::X86_64,
    )
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.syscalls[1].names[0]");
    assert!(e.msg.contains("syscalls[0]"), "{}", e.msg);
    // On a 32-bit ABI there is no high half to share: accepted.
    let c = compile_for(
        &spec(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_KILL", "args": [
                {"index": 1, "value": 0x7fff_ffff_u64, "op": "SCMP_CMP_GT"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "args": [
                {"index": 1, "value": 0, "op": "SCMP_CMP_GT"}]}]}),
        ),
        Abi::X86,
    )
    .unwrap();
    // i386 getpid is 20; libseccomp orders GT nodes by value, greatest
    // first: a1 = 0x80000000 matches both, the KILL node is tested first.
    assert_eq!(
        run(&c, I386, 20, [0, 0x8000_0000, 0, 0, 0, 0]),
        RET_KILL_THREAD
    );
    assert_eq!(run(&c, I386, 20, [0, 1, 0, 0, 0, 0]), RET_TRACE | 1);
    assert_eq!(run(&c, I386, 20, [0; 6]), RET_ALLOW);
}

#[test]
fn conflicting_rules_are_refused_and_masked_eq_masks_the_value() {
    // Same comparisons, another action: libseccomp refuses it (EEXIST).
    let e = compile_for(
        &spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_TRAP", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]})),
        Abi::X86_64,
    )
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.syscalls[1].names[0]");
    assert!(e.msg.contains("syscalls[0]"), "{}", e.msg);
    // (arg & mask) == (value & mask): bits of the value outside the mask
    // do not count.
    let c = compile_for(
        &spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_TRAP", "args": [
                {"index": 0, "value": 0xff, "valueTwo": 0x1234, "op": "SCMP_CMP_MASKED_EQ"}]}]})),
        Abi::X86_64,
    )
    .unwrap();
    assert_eq!(run(&c, X64, 62, [0x34, 0, 0, 0, 0, 0]), RET_TRAP);
    assert_eq!(run(&c, X64, 62, [0x1234, 0, 0, 0, 0, 0]), RET_TRAP);
    assert_eq!(run(&c, X64, 62, [0x35, 0, 0, 0, 0, 0]), RET_ALLOW);
    // Number -1 on x86_64 is not an x32 call.
    assert_eq!(run(&c, X64, u32::MAX, [0; 6]), RET_ALLOW);
}

#[test]
fn x86_64_x86_and_x32_in_one_filter() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "socketcall"], "action": "SCMP_ACT_KILL_PROCESS"}]
        })),
        Abi::X86_64,
    )
    .unwrap();
    let z = [0; 6];
    assert_eq!(run(&c, X64, 83, z), RET_KILL_PROCESS);
    assert_eq!(run(&c, I386, 39, z), RET_KILL_PROCESS);
    assert_eq!(run(&c, I386, 102, z), RET_KILL_PROCESS); // socketcall: i386 only
    assert_eq!(run(&c, X64, X32_BIT | 83, z), RET_KILL_PROCESS);
    assert_eq!(run(&c, I386, 83, z), RET_ALLOW); // 83 is symlink on i386
    assert_eq!(run(&c, X64, 102, z), RET_ALLOW); // getuid on x86_64
    assert_eq!(run(&c, X64, X32_BIT | 84, z), RET_ALLOW);
    assert_eq!(run(&c, AUDIT_ARCH_AARCH64, 34, z), RET_BAD_ARCH);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn aarch64_host() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })),
        Abi::Aarch64,
    )
    .unwrap();
    assert_eq!(run(&c, AUDIT_ARCH_AARCH64, 34, [0; 6]), EPERM);
    assert_eq!(run(&c, AUDIT_ARCH_AARCH64, 35, [0; 6]), RET_ALLOW);
    assert_eq!(run(&c, X64, 83, [0; 6]), RET_BAD_ARCH);
    // 32-bit ARM, which an aarch64 kernel presents for compat tasks, has
    // the profile's rules (it used to get the bad-architecture action).
    assert_eq!(run(&c, AUDIT_ARCH_ARM, 39, [0; 6]), EPERM); // mkdir
    assert_eq!(run(&c, AUDIT_ARCH_ARM, 323, [0; 6]), EPERM); // mkdirat
    assert_eq!(run(&c, AUDIT_ARCH_ARM, 0x000f_0005, [0; 6]), RET_ALLOW); // set_tls
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // An architecture without a table is left out, with a warning.
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE"],
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        })),
        Abi::Aarch64,
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("architectures[1]"));
}

#[test]
fn enosys_for_syscalls_newer_than_the_profile() {
    let s = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read", "write", "openat"], "action": "SCMP_ACT_ALLOW"}]
    });
    let c = compile_for(&spec(s.clone()), Abi::X86_64).unwrap();
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    assert_eq!(run(&c, X64, 0, [0; 6]), RET_ALLOW);
    assert_eq!(run(&c, X64, 2, [0; 6]), EPERM); // open: known, below openat
    assert_eq!(run(&c, X64, 257, [0; 6]), RET_ALLOW);
    assert_eq!(run(&c, X64, 258, [0; 6]), enosys);
    assert_eq!(run(&c, X64, 435, [0; 6]), enosys);
    assert_eq!(run(&c, X64, X32_BIT | 1, [0; 6]), RET_ALLOW);
    assert_eq!(run(&c, X64, X32_BIT | 300, [0; 6]), enosys);
    // Without listed architectures (or with a permissive default) no stub.
    let mut s2 = s.clone();
    s2.as_object_mut().unwrap().remove("architectures");
    let c = compile_for(&spec(s2), Abi::X86_64).unwrap();
    assert_eq!(run(&c, X64, 435, [0; 6]), EPERM);
    let mut s3 = s;
    s3["defaultAction"] = json!("SCMP_ACT_LOG");
    let c = compile_for(&spec(s3), Abi::X86_64).unwrap();
    assert_eq!(run(&c, X64, 435, [0; 6]), RET_LOG);
}

#[test]
fn validation_errors_name_the_field() {
    let err = |v| compile_for(&spec(v), Abi::X86_64).unwrap_err();
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
    assert_eq!(e.field, "linux.seccomp.defaultAction");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getpid", "write"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(e.field, "linux.seccomp.syscalls[1].names[1]");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(e.field, "linux.seccomp.syscalls[0].args[0].index");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}));
    assert_eq!(e.field, "linux.seccomp.syscalls[0].errnoRet");
    // An errno for an action that has none (config-linux.md: MUST fail).
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 5}]}));
    assert_eq!(e.field, "linux.seccomp.syscalls[1].errnoRet");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 38}));
    assert_eq!(e.field, "linux.seccomp.defaultErrnoRet");
    // TRACE takes one (the tracer's data).
    let t = compile_for(
        &spec(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]})),
        Abi::X86_64,
    );
    assert!(t.is_ok());
}

#[test]
fn flags_unknown_names_and_notify() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                      "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["no_such_syscall", "getpid"], "action": "SCMP_ACT_ERRNO"}]
        })),
        Abi::X86_64,
    )
    .unwrap();
    assert_eq!(c.flags, FLAG_LOG | FLAG_SPEC_ALLOW);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("no_such_syscall")));
    assert_eq!(run(&c, X64, 39, [0; 6]), EPERM);

    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        })),
        Abi::X86_64,
    )
    .unwrap();
    assert!(c.notify);
    assert_eq!(c.flags, FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV);
    assert_eq!(run(&c, X64, 110, [0; 6]), RET_USER_NOTIF);
}

fn docker_default() -> LinuxSeccomp {
    serde_json::from_str(include_str!("testdata/docker-default.json")).expect("fixture parses")
}

#[test]
fn docker_default_profile() {
    let s = docker_default();
    let t = std::time::Instant::now();
    let n = 200;
    let mut c = compile_for(&s, Abi::X86_64).unwrap();
    for _ in 1..n {
        c = compile_for(&s, Abi::X86_64).unwrap();
    }
    let per = t.elapsed() / n;
    eprintln!(
        "docker default profile: {} instructions, compiled in {per:?} ({}), {} warnings",
        c.program.len(),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        c.warnings.len()
    );
    assert!(c.program.len() < 1000, "{} instructions", c.program.len());
    let z = [0u64; 6];
    for name in s.syscalls().as_ref().unwrap()[0].names() {
        for (abi, arch) in [(Abi::X86_64, X64), (Abi::X86, I386), (Abi::X32, X64)] {
            if let Some(n) = abi.nr(name) {
                assert_eq!(run(&c, arch, n, z), RET_ALLOW, "{name} on {abi:?}");
            }
        }
    }
    assert_eq!(run(&c, X64, nr(Abi::X86_64, "reboot"), z), EPERM);
    assert_eq!(run(&c, X64, nr(Abi::X86_64, "unshare"), z), EPERM);
    assert_eq!(run(&c, I386, nr(Abi::X86, "unshare"), z), EPERM);
    let clone = nr(Abi::X86_64, "clone");
    assert_eq!(run(&c, X64, clone, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(&c, X64, clone, [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(
        run(&c, X64, nr(Abi::X86_64, "clone3"), z),
        RET_ERRNO | libc::ENOSYS as u32
    );
    let pers = nr(Abi::X86_64, "personality");
    assert_eq!(run(&c, X64, pers, [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&c, X64, pers, [0x0040_0000, 0, 0, 0, 0, 0]), EPERM);
    let socket = nr(Abi::X86_64, "socket");
    assert_eq!(run(&c, X64, socket, [2, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&c, X64, socket, [40, 0, 0, 0, 0, 0]), EPERM);
    // Newer than anything the profile names: -ENOSYS.
    assert_eq!(run(&c, X64, 600, z), RET_ERRNO | libc::ENOSYS as u32);
}

/// A direct evaluation of a profile (first matching rule with arguments in
/// order, then the first unconditional rule, then the default), written
/// independently of the compiler's data structures.
fn reference(s: &LinuxSeccomp, abi: Abi, nr: u32, args: [u64; 6], default: u32) -> u32 {
    let wide = matches!(abi, Abi::X86_64 | Abi::Aarch64);
    let narrow = |v: u64| if wide { v } else { v & 0xffff_ffff };
    let rules = s.syscalls().clone().unwrap_or_default();
    let names =
        |r: &oci_spec::runtime::LinuxSyscall| r.names().iter().any(|n| abi.nr(n) == Some(nr));
    let act = |r: &oci_spec::runtime::LinuxSyscall| match r.action() {
        Action::ScmpActAllow => RET_ALLOW,
        Action::ScmpActErrno => RET_ERRNO | r.errno_ret().unwrap_or(1),
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActTrap => RET_TRAP,
        _ => unimplemented!(),
    };
    // An argument-free rule overrides the conditional ones (libseccomp).
    for r in rules.iter().filter(|r| names(r) && act(r) != default) {
        if r.args().as_ref().is_none_or(|a| a.is_empty()) {
            return act(r);
        }
    }
    for r in rules.iter().filter(|r| names(r) && act(r) != default) {
        let Some(a) = r.args().as_ref().filter(|a| !a.is_empty()) else {
            continue;
        };
        if a.iter().all(|c| {
            reference_cmp(
                c.op(),
                narrow(args[c.index()]),
                narrow(c.value()),
                narrow(c.value_two().unwrap_or(0)),
            )
        }) {
            return act(r);
        }
    }
    default
}

#[test]
fn long_programs_match_the_reference() {
    // Enough conditional rules that jumps need trampolines (> 255 apart).
    let mut rules = Vec::new();
    // Not the socket and SysV IPC calls: on i386 their rules also go to
    // socketcall and ipc, which `reference` does not model (the
    // differential test in tests/seccomp_libseccomp.rs covers them).
    let names: Vec<&str> = super::syscalls::X86_64
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !MULTIPLEXED.iter().any(|m| m.0 == *n))
        .collect();
    let acts = ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"];
    for (i, name) in names.iter().enumerate().step_by(2) {
        let op = OPS[i % 7].0;
        let v = EDGES[i % 12];
        rules.push(json!({"names": [name], "action": acts[i % 3],
            "args": [{"index": i % 6, "value": v, "valueTwo": v & 0xff00ff00, "op": op},
                     {"index": (i + 1) % 6, "value": EDGES[(i + 5) % 12], "op": OPS[(i + 3) % 7].0}]}));
        if i % 4 == 0 {
            rules.push(
                json!({"names": [name, names[(i + 7) % names.len()]], "action": acts[(i + 1) % 3]}),
            );
        }
    }
    let s = spec(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
                        "syscalls": rules}),
    );
    let c = compile_for(&s, Abi::X86_64).unwrap();
    assert!(c.program.len() > 1000, "{}", c.program.len());
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let enosys_x86 = |nr: u32| {
        let max = s
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|r| r.names().iter().filter_map(|n| Abi::X86.nr(n)))
            .max()
            .unwrap();
        nr > max
    };
    for _ in 0..20000 {
        let (abi, arch) = if rnd() % 4 == 0 {
            (Abi::X86, I386)
        } else {
            (Abi::X86_64, X64)
        };
        let nr = (rnd() % 480) as u32;
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = EDGES[(rnd() % 12) as usize] ^ if rnd() % 3 == 0 { rnd() } else { 0 };
        }
        let want = if abi == Abi::X86 && enosys_x86(nr) {
            RET_ERRNO | libc::ENOSYS as u32
        } else {
            reference(&s, abi, nr, args, EPERM)
        };
        assert_eq!(
            run(&c, arch, nr, args),
            want,
            "{abi:?} nr {nr} args {args:x?}"
        );
    }
}

#[test]
fn name_index_finds_every_entry_and_nothing_else() {
    use super::syscalls;
    for (abi, t) in [
        (Abi::X86_64, syscalls::X86_64),
        (Abi::X32, syscalls::X32),
        (Abi::X86, syscalls::X86),
        (Abi::Aarch64, syscalls::AARCH64),
    ] {
        for (name, nr) in t {
            assert_eq!(abi.nr(name), Some(*nr), "{abi:?} {name}");
        }
        assert_eq!(abi.nr("no_such_syscall"), None);
        assert_eq!(abi.nr(""), None);
    }
    assert_eq!(Abi::X86.nr("socketcall"), Some(102));
    assert_eq!(Abi::X86_64.nr("socketcall"), None);
    assert_eq!(Abi::X32.nr("execve"), Some(X32_BIT | 520));
    assert_eq!(Abi::Aarch64.nr("mkdirat"), Some(34));
}

#[test]
fn allows_is_true_only_for_a_plain_allow() {
    let f = |v| super::Filter::from_spec(&spec(v)).expect("profile compiles");
    let madvise = libc::SYS_madvise;
    let dontneed = [0, 4096, libc::MADV_DONTNEED as u64, 0, 0, 0];
    assert!(f(json!({"defaultAction": "SCMP_ACT_ALLOW"})).allows(madvise, dontneed));
    let listed = f(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(listed.allows(madvise, dontneed));
    assert!(!listed.allows(libc::SYS_mkdir, dontneed));
    for action in [
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRAP",
    ] {
        let denied = f(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["madvise"], "action": action}]
        }));
        assert!(!denied.allows(madvise, dontneed), "{action}");
    }
    // An argument condition is evaluated with the arguments given.
    let only_cold = f(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["madvise"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 2, "value": libc::MADV_COLD, "op": "SCMP_CMP_EQ"}]}]
    }));
    assert!(!only_cold.allows(madvise, dontneed));
}

#[test]
fn i386_socket_and_ipc_rules_also_apply_to_their_multiplexers() {
    let c = compile_for(
        &spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]},
                {"names": ["semop"], "action": "SCMP_ACT_TRAP"}
            ]
        })),
        Abi::X86_64,
    )
    .unwrap();
    // socket(2): argument 0 as written; socketcall(SYS_SOCKET=1, args):
    // argument 0 is the call, the others stay (libseccomp).
    assert_eq!(run(&c, I386, 359, [2, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&c, I386, 359, [1, 3, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&c, I386, 102, [1, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&c, I386, 102, [2, 3, 0, 0, 0, 0]), RET_ALLOW);
    // semop has no i386 number of its own: ipc(SEMOP=1) only.
    assert_eq!(run(&c, I386, 117, [1, 0, 0, 0, 0, 0]), RET_TRAP);
    assert_eq!(run(&c, I386, 117, [2, 0, 0, 0, 0, 0]), RET_ALLOW);
    // x86_64 has no multiplexer.
    assert_eq!(run(&c, X64, 41, [2, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&c, X64, 65, [0; 6]), RET_TRAP);
}

/// libseccomp 2.5.4 never returns on this profile (found by the
/// differential test, seed 5001): merging rule 7 into getpid's tree uses a
/// node an earlier step freed. runc would hang; capsa refuses that rule.
#[test]
fn a_rule_libseccomp_merges_through_freed_memory_is_refused() {
    let e = compile_for(
        &spec(
            json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7, "syscalls": [
                {"action": "SCMP_ACT_KILL", "names": ["getpid"], "args": [
                    {"index": 1, "op": "SCMP_CMP_NE", "value": 8u64}]},
                {"action": "SCMP_ACT_LOG", "names": ["getpid"], "args": [
                    {"index": 1, "op": "SCMP_CMP_GE", "value": 18446744073709551614u64},
                    {"index": 2, "op": "SCMP_CMP_LE", "value": 4294967296u64}]},
                {"action": "SCMP_ACT_TRACE", "names": ["getpid"], "args": [
                    {"index": 1, "op": "SCMP_CMP_GE", "value": 2u64},
                    {"index": 0, "op": "SCMP_CMP_LE", "value": 2u64}]},
                {"action": "SCMP_ACT_KILL_PROCESS", "names": ["getpid"], "args": [
                    {"index": 1, "op": "SCMP_CMP_LE", "value": 4294967301u64},
                    {"index": 0, "op": "SCMP_CMP_LT", "value": 4294967301u64},
                    {"index": 1, "op": "SCMP_CMP_GT", "value": 4294967301u64}]},
                {"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "names": ["getpid"], "args": [
                    {"index": 2, "op": "SCMP_CMP_LE", "value": 1u64},
                    {"index": 1, "op": "SCMP_CMP_LT", "value": 5u64},
                    {"index": 1, "op": "SCMP_CMP_GE", "value": 2u64}]},
                {"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "names": ["getpid"], "args": [
                    {"index": 2, "op": "SCMP_CMP_GT", "value": 4294967296u64},
                    {"index": 0, "op": "SCMP_CMP_EQ", "value": 1u64}]},
                {"action": "SCMP_ACT_ERRNO", "names": ["getpid", "getpid"], "args": [
                    {"index": 0, "op": "SCMP_CMP_NE", "value": 0u64}]},
                {"action": "SCMP_ACT_ERRNO", "errnoRet": 38, "names": ["getpid"], "args": [
                    {"index": 0, "op": "SCMP_CMP_LE", "value": 2u64},
                    {"index": 2, "op": "SCMP_CMP_GE", "value": 18446744073709551614u64},
                    {"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295u64,
                     "valueTwo": 4294967295u64}]}
            ]}),
        ),
        Abi::Aarch64,
    )
    .unwrap_err();
    assert_eq!(e.field, "linux.seccomp.syscalls[7].names[0]");
    assert!(e.msg.contains("freed"), "{}", e.msg);
}
