//! Helpers of tests/seccomp_libseccomp.rs: a classic-BPF interpreter for
//! the subset seccomp programs use, what libseccomp 2.5.4's program would
//! do without two defects of its BPF generator (the syscall number not
//! loaded here, libseccomp's own pseudo filter code in pfc.rs), and the
//! inputs.

pub mod pfc;

use std::collections::BTreeSet;

pub const RET_ERRNO: u32 = 0x0005_0000;

pub type Insn = (u16, u8, u8, u32);
/// A rule's comparison: argument index, value, valueTwo.
pub type Comparison = (usize, u64, u64);

/// One step of the cBPF subset seccomp programs use: `Ok(Some(k))` on a
/// return, `Ok(None)` to go on at `pc`, `Err(code)` on any other opcode.
pub fn step(ins: Insn, data: &[u8; 64], a: &mut u32, pc: &mut usize) -> Result<Option<u32>, u16> {
    let (code, jt, jf, k) = ins;
    *pc += 1;
    let cond = |c: bool| if c { jt as usize } else { jf as usize };
    match code {
        0x20 => {
            let o = k as usize;
            *a = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
        }
        0x54 => *a &= k,
        0x05 => *pc += k as usize,
        0x15 => *pc += cond(*a == k),
        0x25 => *pc += cond(*a > k),
        0x35 => *pc += cond(*a >= k),
        0x45 => *pc += cond(*a & k != 0),
        0x06 => return Ok(Some(k)),
        c => return Err(c),
    }
    Ok(None)
}

pub fn run(prog: &[Insn], data: &[u8; 64]) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let ins = *prog.get(pc).expect("pc in bounds");
        match step(ins, data, &mut a, &mut pc) {
            Ok(Some(ret)) => return ret,
            Ok(None) => {}
            Err(c) => panic!("opcode {c:#x} at {}", pc - 1),
        }
    }
}

pub fn data(arch: u32, nr: u32, args: &[u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, v) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_ne_bytes());
    }
    d
}

/// Argument values at the edges of one comparison.
pub fn edges(value: u64, two: u64, out: &mut BTreeSet<u64>) {
    for v in [value, two, two & value, (two & value) | !value] {
        for x in [
            v,
            v.wrapping_sub(1),
            v.wrapping_add(1),
            v ^ (1 << 32),
            v | 0xffff_ffff_0000_0000,
            v & 0xffff_ffff,
        ] {
            out.insert(x);
        }
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce by seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// libseccomp's program run with the syscall-number load it left out:
/// Some(result) when the run compared the accumulator while it still held
/// the architecture after the architecture had matched. libseccomp 2.5.4
/// puts that load in the block of the first syscall in its priority order,
/// and skips that syscall's block when the syscall is a pseudo one (a name
/// the architecture lacks, kept only in its db): when such a name has
/// fewer comparisons than every real syscall of the architecture, every
/// syscall of it is compared with the architecture's audit value (real
/// profiles: one whose only argument-free rules are for names the
/// architecture lacks). The result with the load supplied is what its db
/// tree says, which is what capsa must agree with.
pub fn run_supplying_nr(prog: &[Insn], data: &[u8; 64]) -> Option<u32> {
    let (mut a, mut pc) = (0u32, 0usize);
    // Where A was loaded from; whether A == arch has matched since.
    let (mut from, mut arch_matched, mut supplied) = (None, false, false);
    loop {
        let ins = *prog.get(pc)?;
        let compares = matches!(ins.0, 0x54 | 0x15 | 0x25 | 0x35 | 0x45);
        if compares && from == Some(4) && arch_matched {
            a = u32::from_ne_bytes(data[0..4].try_into().unwrap());
            from = Some(0);
            supplied = true;
        }
        if ins.0 == 0x15 && from == Some(4) && a == ins.3 {
            arch_matched = true;
        }
        if ins.0 == 0x20 {
            from = Some(ins.3);
        }
        match step(ins, data, &mut a, &mut pc) {
            Ok(Some(ret)) => return supplied.then_some(ret),
            Ok(None) => {}
            Err(_) => return None,
        }
    }
}
