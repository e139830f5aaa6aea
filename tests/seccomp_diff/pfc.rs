//! libseccomp's pseudo filter code (seccomp_export_pfc), which it prints
//! from its rule tree rather than from the BPF: one syscall's part read
//! back and evaluated, to tell a tree capsa models wrongly from a program
//! libseccomp's generator got wrong.
//!
//! The format (gen_pfc.c): `# filter for arch NAME (TOKEN)`, then per
//! syscall `if ($syscall == N)` and its body indented two spaces per
//! level: `if ($aK.hi32 OP D)` (or `.lo32`, or `$aK` on a 32-bit ABI; OP
//! `==`, `>=`, `>`, `& 0xMASK ==`), its true branch indented below it, an
//! optional `else` with its false branch, and `action NAME;`. A branch
//! that ends without an action goes on with the next statement of the
//! enclosing level, as the BPF does; a syscall none decides gets the
//! default action.

enum Stmt {
    If {
        cond: Cond,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    Action(u32),
}

struct Cond {
    arg: usize,
    /// 0: the low 32 bits, 32: the high ones.
    shift: u32,
    op: &'static str,
    mask: u32,
    datum: u32,
}

impl Cond {
    fn holds(&self, args: &[u64; 6]) -> bool {
        let v = (args[self.arg] >> self.shift) as u32;
        match self.op {
            "==" => v == self.datum,
            ">=" => v >= self.datum,
            ">" => v > self.datum,
            _ => v & self.mask == self.datum,
        }
    }
}

fn action(s: &str) -> Option<u32> {
    let s = s.strip_prefix("action ")?.strip_suffix(';')?;
    let data = |p: &str| -> Option<u32> { s.strip_prefix(p)?.strip_suffix(')')?.parse().ok() };
    Some(match s {
        "KILL_PROCESS" => 0x8000_0000,
        "KILL" => 0,
        "TRAP" => 0x0003_0000,
        "LOG" => 0x7ffc_0000,
        "ALLOW" => 0x7fff_0000,
        _ if s.starts_with("ERRNO(") => 0x0005_0000 | data("ERRNO(")?,
        _ if s.starts_with("TRACE(") => 0x7ff0_0000 | data("TRACE(")?,
        _ => u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()?,
    })
}

fn cond(s: &str) -> Option<Cond> {
    let s = s.strip_prefix("if ($a")?.strip_suffix(')')?;
    let (lhs, rest) = s.split_once(' ')?;
    let (arg, shift) = match lhs.split_once('.') {
        Some((a, "hi32")) => (a, 32),
        Some((a, "lo32")) => (a, 0),
        None => (lhs, 0),
        _ => return None,
    };
    let num = |t: &str| -> Option<u32> {
        match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        }
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    let (op, mask, datum) = match parts.as_slice() {
        ["==", d] => ("==", u32::MAX, num(d)?),
        [">=", d] => (">=", u32::MAX, num(d)?),
        [">", d] => (">", u32::MAX, num(d)?),
        ["&", m, "==", d] => ("&", num(m)?, num(d)?),
        _ => return None,
    };
    Some(Cond {
        arg: arg.parse().ok()?,
        shift,
        op,
        mask,
        datum,
    })
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// The statements at indentation `ind` from `lines[*i]` on.
fn block(lines: &[&str], i: &mut usize, ind: usize) -> Option<Vec<Stmt>> {
    let mut out = Vec::new();
    while *i < lines.len() && indent(lines[*i]) == ind {
        let l = lines[*i].trim();
        *i += 1;
        if let Some(a) = action(l) {
            out.push(Stmt::Action(a));
            continue;
        }
        let cond = cond(l)?;
        let then = block(lines, i, ind + 2)?;
        let els = if *i < lines.len() && indent(lines[*i]) == ind && lines[*i].trim() == "else" {
            *i += 1;
            block(lines, i, ind + 2)?
        } else {
            Vec::new()
        };
        out.push(Stmt::If { cond, then, els });
    }
    Some(out)
}

fn eval(stmts: &[Stmt], args: &[u64; 6]) -> Option<u32> {
    for s in stmts {
        let r = match s {
            Stmt::Action(a) => Some(*a),
            Stmt::If { cond, then, els } => eval(if cond.holds(args) { then } else { els }, args),
        };
        if r.is_some() {
            return r;
        }
    }
    None
}

/// What libseccomp's tree says for syscall `nr` of the architecture
/// libseccomp calls `arch` ("x86_64", "x32", "x86", "aarch64", "arm"):
/// None when the text does not have the shape above.
pub fn decide(pfc: &str, arch: &str, nr: u32, args: &[u64; 6]) -> Option<u32> {
    let lines: Vec<&str> = pfc.lines().filter(|l| !l.trim().is_empty()).collect();
    let head = format!("# filter for arch {arch} (");
    let start = lines.iter().position(|l| l.starts_with(&head))?;
    let want = format!("if ($syscall == {nr})");
    let mut i = start + 1;
    while i < lines.len() && !lines[i].starts_with('#') {
        let l = lines[i].trim();
        if l == want && indent(lines[i]) == 2 {
            i += 1;
            if let Some(a) = eval(&block(&lines, &mut i, 4)?, args) {
                return Some(a);
            }
            continue;
        }
        if l == "# default action" {
            return action(lines.get(i + 1)?.trim());
        }
        i += 1;
    }
    None
}
