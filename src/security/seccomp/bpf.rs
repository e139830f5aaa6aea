//! A tiny classic-BPF assembler that builds a program backwards, from its
//! last instruction to its first. Classic BPF only jumps forwards, so every
//! jump target is already emitted when the jump is: a label is an index
//! counted from the END of the program, which never changes as code is
//! prepended. Conditional jumps reach 255 instructions; farther targets get
//! an unconditional `ja` trampoline (32-bit reach), and returns are simply
//! duplicated near the jump instead (a `ret` costs the same as a `ja`).

use std::collections::HashMap;

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// The kernel refuses longer programs (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// Where a jump goes: an emitted instruction, or "return this value" (the
/// assembler finds or emits a reachable `ret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Label(usize),
    Ret(u32),
}

/// Keep a little slack below 255: resolving the second target of a
/// conditional jump may add up to two instructions after the first was
/// checked.
const REACH: usize = 250;

#[derive(Default)]
pub struct Asm {
    /// Instructions in reverse order: rev[0] is the program's last one.
    rev: Vec<Insn>,
    /// The nearest `ret` already emitted for each value.
    rets: HashMap<u32, usize>,
}

impl Asm {
    /// Label of the next instruction to be emitted.
    fn here(&self) -> usize {
        self.rev.len()
    }

    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> usize {
        self.rev.push(Insn { code, jt, jf, k });
        self.rev.len() - 1
    }

    /// How many instructions a jump emitted next must skip to reach `l`.
    fn dist(&self, l: usize) -> usize {
        self.here() - l - 1
    }

    pub fn ret(&mut self, v: u32) -> usize {
        let l = self.push(RET_K, 0, 0, v);
        self.rets.insert(v, l);
        l
    }

    pub fn load(&mut self, off: u32) -> usize {
        self.push(LD_W_ABS, 0, 0, off)
    }

    pub fn and(&mut self, k: u32) -> usize {
        self.push(ALU_AND_K, 0, 0, k)
    }

    /// An unconditional jump (or nothing, when `t` is the next instruction).
    pub fn goto(&mut self, t: Target) -> usize {
        match t {
            Target::Ret(v) => self.ret(v),
            Target::Label(l) if l + 1 == self.here() => l,
            Target::Label(l) => {
                let d = self.dist(l) as u32;
                self.push(JA, 0, 0, d)
            }
        }
    }

    /// A label within conditional-jump reach of the next instruction.
    fn near(&mut self, t: Target) -> usize {
        match t {
            Target::Ret(v) => match self.rets.get(&v) {
                Some(&l) if self.dist(l) <= REACH => l,
                _ => self.ret(v),
            },
            Target::Label(l) if self.dist(l) <= REACH => l,
            Target::Label(l) => {
                let d = self.dist(l) as u32;
                self.push(JA, 0, 0, d)
            }
        }
    }

    /// `if (A <op> k) goto jt else goto jf`.
    pub fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) -> usize {
        let lt = self.near(jt);
        let lf = self.near(jf);
        let (dt, df) = (self.dist(lt), self.dist(lf));
        debug_assert!(dt <= 255 && df <= 255);
        self.push(code, dt as u8, df as u8, k)
    }

    /// The finished program, first instruction first.
    pub fn finish(mut self) -> Vec<Insn> {
        self.rev.reverse();
        self.rev
    }

    pub fn len(&self) -> usize {
        self.rev.len()
    }
}

/// A classic-BPF interpreter for the subset the compiler emits, run against
/// a `struct seccomp_data` image. Tests use it to check programs as data,
/// without the kernel; it also verifies that every jump stays in bounds.
/// The init asks it whether the loaded filter lets it madvise (idle.rs).
pub fn run(prog: &[Insn], data: &[u8; 64]) -> Result<u32, String> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let i = prog.get(pc).ok_or(format!("pc {pc} out of bounds"))?;
        steps += 1;
        if steps > prog.len() {
            return Err("loop".into());
        }
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let o = i.k as usize;
                let b = data.get(o..o + 4).ok_or(format!("load at {o}"))?;
                a = u32::from_ne_bytes(b.try_into().map_err(|_| "load")?);
            }
            ALU_AND_K => a &= i.k,
            JA => pc += i.k as usize,
            JEQ_K | JGT_K | JGE_K => {
                let c = match i.code {
                    JEQ_K => a == i.k,
                    JGT_K => a > i.k,
                    _ => a >= i.k,
                };
                pc += if c { i.jt } else { i.jf } as usize;
            }
            RET_K => return Ok(i.k),
            c => return Err(format!("unknown opcode {c:#x}")),
        }
    }
}
