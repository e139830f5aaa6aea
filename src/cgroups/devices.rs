//! Device access control: linux.resources.devices, then runc's default
//! allowed devices; later rules win. linux.devices entries get no rule of
//! their own: whoever lists a device there and wants it usable allows it in
//! linux.resources.devices, as Docker and podman do for `--device` (runc
//! 1.1 and crun 1.8 apply exactly these rules too). On v1 the rules go to devices.allow/devices.deny in order;
//! on v2 they become one BPF_PROG_TYPE_CGROUP_DEVICE program, attached to
//! the container's cgroup in place of the one attached before.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn};
use super::{Cgroup, CgroupError, Controller, Leaf, write_file};
use crate::sys::{Ctx, SysError};

/// One rule: `typ` is 'a' (all), 'c' or 'b'; None major/minor is a wildcard;
/// `access` is a non-empty subset of "rwm".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

fn rule(typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
    Rule {
        allow: true,
        typ,
        major,
        minor,
        access: access.into(),
    }
}

/// Devices every container may use (runc's list): mknod of any device,
/// and the usual character devices, pseudo-terminals and /dev/net/tun.
pub fn default_rules() -> Vec<Rule> {
    vec![
        rule('c', None, None, "m"),
        rule('b', None, None, "m"),
        rule('c', Some(1), Some(3), "rwm"),
        rule('c', Some(1), Some(8), "rwm"),
        rule('c', Some(1), Some(7), "rwm"),
        rule('c', Some(5), Some(0), "rwm"),
        rule('c', Some(1), Some(5), "rwm"),
        rule('c', Some(1), Some(9), "rwm"),
        rule('c', Some(136), None, "rwm"),
        rule('c', Some(5), Some(2), "rwm"),
        rule('c', Some(10), Some(200), "rwm"),
    ]
}

/// The full rule list for linux.resources.devices.
pub fn rules(resources: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    let mut out = Vec::with_capacity(resources.len() + 11);
    for (i, d) in resources.iter().enumerate() {
        let field = format!("devices[{i}]");
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::P => {
                return Err(CgroupError::Resource {
                    field: format!("{field}.type"),
                    msg: "\"p\" (FIFO) is not a device the device cgroup controls; use a, b or c"
                        .into(),
                });
            }
        };
        // runc refuses a rule without access (the spec leaves it optional,
        // but an absent access is a config mistake, not "rwm").
        let access = match d.access().as_deref() {
            None | Some("") => {
                return Err(CgroupError::Resource {
                    field: format!("{field}.access"),
                    msg: format!("device access at {i} field cannot be empty"),
                });
            }
            Some(a) => match normalize_access(a) {
                Some(n) => n,
                // A deny rule with other letters besides r, w or m denies
                // what it names (runc takes it so; its own tests write
                // "rwa"); an allow rule must be exact.
                None if !d.allow() && a.chars().any(|c| "rwm".contains(c)) => {
                    eprintln!(
                        "capsa: warning: linux.resources.{field}.access: {a:?}: only r, w and m are denied"
                    );
                    let mut n = String::new();
                    n.extend(['r', 'w', 'm'].into_iter().filter(|&c| a.contains(c)));
                    n
                }
                None => {
                    return Err(CgroupError::Resource {
                        field: format!("{field}.access"),
                        msg: format!("{a:?} is not a combination of r, w and m"),
                    });
                }
            },
        };
        for (name, v) in [("major", d.major()), ("minor", d.minor())] {
            if let Some(n) = v
                && !(0..=i64::from(u32::MAX >> 1)).contains(&n)
            {
                return Err(CgroupError::Resource {
                    field: format!("{field}.{name}"),
                    msg: format!("{n} is out of range"),
                });
            }
        }
        out.push(Rule {
            allow: d.allow(),
            typ,
            major: d.major(),
            minor: d.minor(),
            access,
        });
    }
    out.extend(default_rules());
    Ok(out)
}

fn normalize_access(a: &str) -> Option<String> {
    let mut s = String::new();
    for c in ['r', 'w', 'm'] {
        if a.contains(c) {
            s.push(c);
        }
    }
    (a.chars().all(|c| "rwm".contains(c)) && !s.is_empty()).then_some(s)
}

impl Cgroup {
    /// Replace the container's device rules with `rules`.
    pub fn set_devices(&self, rules: &[Rule]) -> Result<(), CgroupError> {
        let leaf = self
            .locate(Controller::Devices)
            .map_err(|msg| CgroupError::Resource {
                field: "devices".into(),
                msg,
            })?;
        match leaf {
            Leaf::V1 { dir, .. } => set_v1(&dir, rules),
            Leaf::V2(dir) => set_v2(&dir, rules),
        }
    }
}

/// v1 lines for one rule. "a" in the kernel means every device whatever
/// follows, so a typed-'a' rule with a number or partial access becomes
/// its 'c' and 'b' halves.
fn v1_lines(r: &Rule) -> Vec<String> {
    let num = |n: Option<i64>| n.map_or("*".to_owned(), |n| n.to_string());
    if r.typ == 'a' && r.major.is_none() && r.minor.is_none() && r.access == "rwm" {
        return vec!["a".into()];
    }
    let types: &[char] = if r.typ == 'a' {
        &['c', 'b']
    } else {
        std::slice::from_ref(&r.typ)
    };
    types
        .iter()
        .map(|t| format!("{t} {}:{} {}", num(r.major), num(r.minor), r.access))
        .collect()
}

fn set_v1(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let list = dir.join("devices.list");
    let old = std::fs::read_to_string(&list).ctx_at("read", &list)?;
    let result = (|| {
        for (i, r) in rules.iter().enumerate() {
            let file = dir.join(if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            });
            for line in v1_lines(r) {
                write_file(&file, line.as_bytes()).map_err(|e| CgroupError::Write {
                    field: format!("devices (rule {i})"),
                    path: file.clone(),
                    value: line.clone(),
                    reason: e.errno.desc().to_lowercase(),
                })?;
            }
        }
        Ok(())
    })();
    if result.is_err() {
        // Back to the old list: deny everything, re-allow what was listed
        // ("a *:* rwm" when everything was allowed).
        let _ = write_file(&dir.join("devices.deny"), b"a");
        for l in old.lines() {
            let l = if l.starts_with("a ") { "a" } else { l };
            let _ = write_file(&dir.join("devices.allow"), l.as_bytes());
        }
    }
    result
}

fn set_v2(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let cg = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx_at("open", dir)?;
    let old_ids = bpf::query_device_progs(cg.as_fd()).map_err(|e| bpf_err(dir, e, ""))?;
    let old: Vec<_> = old_ids
        .iter()
        .filter_map(|&id| bpf::prog_fd_by_id(id).ok())
        .collect();
    // Nothing denied: no program is the cheapest allow-all.
    let new = if rules.iter().any(|r| !r.allow) {
        let insns = program(rules);
        Some(bpf::load_device_prog(&insns).map_err(|(e, log)| bpf_err(dir, e, &log))?)
    } else {
        None
    };
    if let Some(prog) = &new {
        let replace = match old.as_slice() {
            [one] => Some(one.as_fd()),
            _ => None,
        };
        match bpf::attach(cg.as_fd(), prog.as_fd(), replace) {
            Ok(()) if replace.is_some() => return Ok(()),
            Ok(()) => {}
            // Kernels before 5.6 lack BPF_F_REPLACE: attach, then detach.
            Err(e) if replace.is_some() && e.errno == nix::errno::Errno::EINVAL => {
                bpf::attach(cg.as_fd(), prog.as_fd(), None).map_err(|e| bpf_err(dir, e, ""))?;
            }
            Err(e) => return Err(bpf_err(dir, e, "")),
        }
    }
    for p in &old {
        bpf::detach(cg.as_fd(), p.as_fd()).map_err(|e| bpf_err(dir, e, ""))?;
    }
    Ok(())
}

fn bpf_err(dir: &Path, e: SysError, log: &str) -> CgroupError {
    let mut reason = e.to_string();
    if !log.is_empty() {
        reason.push_str(&format!(" (verifier: {log})"));
    }
    CgroupError::Write {
        field: "devices".into(),
        path: dir.to_owned(),
        value: "BPF_CGROUP_DEVICE program".into(),
        reason,
    }
}

const LDXW: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

fn access_bits(a: &str) -> i32 {
    // BPF_DEVCG_ACC_MKNOD 1, _READ 2, _WRITE 4
    (if a.contains('m') { 1 } else { 0 })
        | (if a.contains('r') { 2 } else { 0 })
        | (if a.contains('w') { 4 } else { 0 })
}

/// The device program: r2 = type, r3 = access, r4 = major, r5 = minor from
/// struct bpf_cgroup_dev_ctx; then the rules from last to first, each
/// returning its verdict when it matches; no match allows (as an untouched
/// v1 cgroup does; the spec's usual first rule denies everything).
/// An allow rule matches if the requested access is within its access, a
/// deny rule if they overlap.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        ins(LDXW, 2, 1, 0, 0),
        ins(MOV64_X, 3, 2, 0, 0),
        ins(AND64_K, 2, 0, 0, 0xffff),
        ins(RSH64_K, 3, 0, 0, 16),
        ins(LDXW, 4, 1, 4, 0),
        ins(LDXW, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Conditions, each jumping past the block when unmet; offsets are
        // filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        match r.typ {
            'c' => {
                jumps.push(block.len());
                block.push(ins(JNE_K, 2, 0, 0, 2));
            }
            'b' => {
                jumps.push(block.len());
                block.push(ins(JNE_K, 2, 0, 0, 1));
            }
            _ => {}
        }
        let bits = access_bits(&r.access);
        if bits != 7 {
            block.push(ins(MOV64_X, 6, 3, 0, 0));
            block.push(ins(
                AND64_K,
                6,
                0,
                0,
                if r.allow { !bits & 7 } else { bits },
            ));
            jumps.push(block.len());
            // allow: no requested bit outside the rule; deny: some inside.
            block.push(if r.allow {
                ins(JNE_K, 6, 0, 0, 0)
            } else {
                ins(JEQ_K, 6, 0, 0, 0)
            });
        }
        for (reg, v) in [(4u8, r.major), (5u8, r.minor)] {
            if let Some(n) = v {
                jumps.push(block.len());
                block.push(ins(JNE_K, reg, 0, 0, n as i32));
            }
        }
        block.push(ins(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        block.push(ins(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let unconditional = jumps.is_empty();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
        // It matches everything: the rules before it (and the default)
        // can never decide, and the verifier rejects unreachable code.
        if unconditional {
            return p;
        }
    }
    p.push(ins(MOV64_K, 0, 0, 0, 1));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

/// Run `program` on one access, for tests: a tiny interpreter of exactly
/// the instructions `program` emits.
#[cfg(test)]
fn eval(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
    let ctx = [(access << 16) | typ, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = p[pc];
        let (dst, src) = ((i.regs & 15) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDXW => r[dst] = u64::from(ctx[i.off as usize / 4]),
            MOV64_X => r[dst] = r[src],
            MOV64_K => r[dst] = i.imm as i64 as u64,
            AND64_K => r[dst] &= i.imm as i64 as u64,
            RSH64_K => r[dst] >>= i.imm,
            JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
            JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
            JNE_K | JEQ_K => {}
            EXIT => return r[0],
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u32 = 2;
    const B: u32 = 1;
    const R: u32 = 2;
    const W: u32 = 4;
    const M: u32 = 1;

    fn deny_all() -> Rule {
        Rule {
            allow: false,
            typ: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }
    }

    #[test]
    fn default_spec_rules() {
        let mut rules = vec![deny_all()];
        rules.extend(default_rules());
        let p = program(&rules);
        assert_eq!(eval(&p, C, R | W, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, C, R, 136, 7), 1, "pts");
        assert_eq!(eval(&p, B, M, 8, 0), 1, "mknod any block");
        assert_eq!(eval(&p, B, R, 8, 0), 0, "read a disk");
        assert_eq!(eval(&p, C, R, 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, C, M | R, 1, 3), 1);
        assert_eq!(
            eval(&p, C, M | R, 4, 1),
            0,
            "mknod+read of a tty is beyond 'm'"
        );
    }

    #[test]
    fn later_rules_win_and_partial_access() {
        let rules = vec![
            deny_all(),
            rule('c', Some(1), None, "r"),
            Rule {
                allow: false,
                typ: 'c',
                major: Some(1),
                minor: Some(5),
                access: "w".into(),
            },
        ];
        let p = program(&rules);
        assert_eq!(eval(&p, C, R, 1, 9), 1);
        assert_eq!(eval(&p, C, W, 1, 9), 0, "only r allowed");
        assert_eq!(eval(&p, C, R, 1, 5), 1, "deny w leaves r");
        assert_eq!(eval(&p, C, R | W, 1, 5), 0, "overlap with a deny");
        assert_eq!(eval(&p, B, R, 1, 9), 0, "type checked");
        // Whatever follows an unconditional rule is not emitted.
        let p = program(&[deny_all()]);
        assert_eq!(p.len(), 6 + 2);
        assert_eq!(eval(&p, C, R, 1, 3), 0);
        // No rule at all, or only allows: everything allowed.
        assert_eq!(eval(&program(&[]), B, R | W | M, 8, 0), 1);
    }

    #[test]
    fn rules_from_spec() {
        let json = r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"}]"#;
        let res: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap_or_default();
        let r = rules(&res).unwrap_or_default();
        assert_eq!(r[0], deny_all());
        assert_eq!(r[1], rule('c', Some(10), Some(229), "rw"));
        assert_eq!(r.len(), 2 + default_rules().len());
        let bad: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"access":"rx"}]"#).unwrap_or_default();
        let msg = rules(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("linux.resources.devices[0].access:"),
            "{msg}"
        );
        for access in [r#","access":null"#, r#","access":"""#, ""] {
            let json = format!(r#"[{{"allow":false,"access":"rwm"}},{{"allow":true{access}}}]"#);
            let bad: Vec<LinuxDeviceCgroup> = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(bad.len(), 2, "{json}");
            let msg = rules(&bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert_eq!(
                msg,
                "linux.resources.devices[1].access: device access at 1 field cannot be empty"
            );
        }
    }

    #[test]
    fn v1_line_forms() {
        assert_eq!(v1_lines(&deny_all()), vec!["a"]);
        assert_eq!(
            v1_lines(&rule('c', Some(136), None, "rwm")),
            vec!["c 136:* rwm"]
        );
        assert_eq!(
            v1_lines(&rule('a', Some(1), None, "r")),
            vec!["c 1:* r", "b 1:* r"]
        );
    }
}
