//! One syscall's conditional rules as libseccomp 2.5 merges them: a tree of
//! 32-bit comparisons whose levels are ordered (argument, operator, value)
//! and which the BPF walks without backtracking. When rules with different
//! actions match the same call, this order, not the profile's, decides; the
//! tree reproduces it (what runc and crun load): a node whose branch leads
//! nowhere, or to a subtree that decides nothing, goes on to the next node
//! of its level.
//!
//! Which rules exist (covered ones dropped, conflicts refused) is decided
//! before, in compile.rs; this only orders and emits the survivors.

use oci_spec::runtime::LinuxSeccompOperator as Op;

use super::bpf::{self, Asm, Target};
use super::compile::Cmp;

/// The 32-bit comparison of one node (libseccomp rewrites NE, LT and LE to
/// EQ, GE and GT on the other branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Eq,
    MaskedEq,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
struct Node {
    arg: u32,
    hi: bool,
    test: Test,
    /// The profile's operator: it orders the level.
    orig: Op,
    mask: u32,
    datum: u32,
    full: u64,
    nxt_t: Option<usize>,
    nxt_f: Option<usize>,
    /// libseccomp keeps a value with a flag, and once copies the value
    /// alone; kept as it is so the same action wins.
    act_t: (bool, u32),
    act_f: (bool, u32),
}

impl Node {
    fn arg_prio(&self) -> u32 {
        2 * self.arg + self.hi as u32
    }

    fn op_prio(&self) -> u32 {
        match self.orig {
            Op::ScmpCmpEq | Op::ScmpCmpNe | Op::ScmpCmpMaskedEq => 3,
            Op::ScmpCmpLt | Op::ScmpCmpLe => 2,
            Op::ScmpCmpGt | Op::ScmpCmpGe => 1,
        }
    }

    fn same(&self, o: &Node) -> bool {
        self.arg_prio() == o.arg_prio()
            && self.test == o.test
            && self.datum == o.datum
            && self.mask == o.mask
    }

    /// `self` sorts after `o` in a level (libseccomp's _db_chain_lt).
    fn below(&self, o: &Node) -> bool {
        let (a, b) = (self.arg_prio(), o.arg_prio());
        if a != b {
            return a < b;
        }
        let (a, b) = (self.op_prio(), o.op_prio());
        if a != b {
            return a < b;
        }
        match self.orig {
            Op::ScmpCmpLt | Op::ScmpCmpLe => self.datum > o.datum,
            _ => self.datum < o.datum,
        }
    }

    fn leaf(&self) -> bool {
        self.nxt_t.is_none() && self.nxt_f.is_none()
    }
}

/// The tree of one syscall: nodes, and levels (node lists, greatest first).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    levels: Vec<Vec<usize>>,
    top: Option<usize>,
}

impl Tree {
    fn node(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn level(&mut self, n: usize) -> usize {
        self.levels.push(vec![n]);
        self.levels.len() - 1
    }

    /// Add one rule (comparisons sorted by argument) with its action.
    pub(crate) fn add(&mut self, cmps: &[Cmp], act: u32, wide: bool) {
        let Some(n) = self.chain(cmps, act, wide) else {
            return;
        };
        match self.top {
            None => {
                let l = self.level(n);
                self.top = Some(l);
            }
            // A conflict was refused before (compile.rs): give up on it.
            Some(l) => {
                let _ = self.merge(l, n);
            }
        }
    }

    /// The rule's own chain (libseccomp's _db_rule_gen): its top node.
    fn chain(&mut self, cmps: &[Cmp], act: u32, wide: bool) -> Option<usize> {
        let mut top = None;
        let mut prev: Vec<usize> = Vec::new();
        let mut tf = false;
        for c in cmps {
            let (mask, datum) = match c.op {
                Op::ScmpCmpMaskedEq => (c.value, c.two),
                _ => (u64::MAX, c.value),
            };
            let seen = if wide { mask } else { mask & u32::MAX as u64 };
            if c.op == Op::ScmpCmpMaskedEq && seen == 0 {
                continue;
            }
            let mk = |hi: bool, test: Test| {
                let shift = if hi { 32 } else { 0 };
                let m = (mask >> shift) as u32;
                Node {
                    arg: c.index,
                    hi,
                    test,
                    orig: c.op,
                    mask: m,
                    datum: (datum >> shift) as u32 & m,
                    full: datum,
                    nxt_t: None,
                    nxt_f: None,
                    act_t: (false, 0),
                    act_f: (false, 0),
                }
            };
            let (first, next, t) = if !wide {
                let (test, t) = match c.op {
                    Op::ScmpCmpEq => (Test::Eq, true),
                    Op::ScmpCmpNe => (Test::Eq, false),
                    Op::ScmpCmpMaskedEq => (Test::MaskedEq, true),
                    Op::ScmpCmpGt => (Test::Gt, true),
                    Op::ScmpCmpGe => (Test::Ge, true),
                    Op::ScmpCmpLt => (Test::Ge, false),
                    Op::ScmpCmpLe => (Test::Gt, false),
                };
                let n = self.node(mk(false, test));
                (n, vec![n], t)
            } else {
                match c.op {
                    Op::ScmpCmpEq | Op::ScmpCmpNe | Op::ScmpCmpMaskedEq => {
                        let test = if c.op == Op::ScmpCmpMaskedEq {
                            Test::MaskedEq
                        } else {
                            Test::Eq
                        };
                        let h = self.node(mk(true, test));
                        let l = self.node(mk(false, test));
                        let ll = self.level(l);
                        self.nodes[h].nxt_t = Some(ll);
                        if c.op == Op::ScmpCmpNe {
                            (h, vec![h, l], false)
                        } else {
                            (h, vec![l], true)
                        }
                    }
                    _ => {
                        let lo = match c.op {
                            Op::ScmpCmpGt | Op::ScmpCmpLe => Test::Gt,
                            _ => Test::Ge,
                        };
                        let gt = self.node(mk(true, Test::Gt));
                        let eq = self.node(mk(true, Test::Eq));
                        let l = self.node(mk(false, lo));
                        let (le, ll) = (self.level(eq), self.level(l));
                        self.nodes[gt].nxt_f = Some(le);
                        self.nodes[eq].nxt_t = Some(ll);
                        if matches!(c.op, Op::ScmpCmpGt | Op::ScmpCmpGe) {
                            (gt, vec![gt, l], true)
                        } else {
                            (gt, vec![eq, l], false)
                        }
                    }
                }
            };
            if !prev.is_empty() {
                let fl = self.level(first);
                for &p in &prev {
                    if tf {
                        self.nodes[p].nxt_t = Some(fl);
                    } else {
                        self.nodes[p].nxt_f = Some(fl);
                    }
                }
            }
            top.get_or_insert(first);
            prev = next;
            tf = t;
        }
        for &p in &prev {
            if tf {
                self.nodes[p].act_t = (true, act);
            } else {
                self.nodes[p].act_f = (true, act);
            }
        }
        top
    }

    /// Every action under level `l` is `act` (libseccomp's act_check).
    fn all(&self, l: Option<usize>, act: u32) -> bool {
        let Some(l) = l else { return true };
        self.levels[l].iter().all(|&x| {
            let x = &self.nodes[x];
            (!x.act_t.0 || x.act_t.1 == act)
                && (!x.act_f.0 || x.act_f.1 == act)
                && self.all(x.nxt_t, act)
                && self.all(x.nxt_f, act)
        })
    }

    /// Merge node `n` (with its subtree) into level `l` (_db_tree_add).
    /// Err: libseccomp's EEXIST.
    fn merge(&mut self, l: usize, n: usize) -> Result<(), ()> {
        let mut i = 0;
        loop {
            let x = self.levels[l][i];
            if self.nodes[x].same(&self.nodes[n]) {
                let (xn, nn) = (self.nodes[x].clone(), self.nodes[n].clone());
                if nn.act_t.0 {
                    if !xn.act_t.0 {
                        if !self.all(xn.nxt_t, nn.act_t.1) {
                            return Err(());
                        }
                        self.nodes[x].nxt_t = None;
                        self.nodes[x].act_t = nn.act_t;
                    } else if nn.act_t.1 != xn.act_t.1 {
                        if nn.hi && nn.full > xn.full {
                            self.nodes[x].act_t.1 = nn.act_t.1;
                        }
                        if xn.leaf() || nn.leaf() {
                            return Err(());
                        }
                    }
                }
                if nn.act_f.0 {
                    let xn = self.nodes[x].clone();
                    if !xn.act_f.0 {
                        if !self.all(xn.nxt_f, nn.act_f.1) {
                            return Err(());
                        }
                        self.nodes[x].nxt_f = None;
                        self.nodes[x].act_f = nn.act_f;
                    } else if nn.act_f.1 != xn.act_f.1 {
                        // libseccomp copies the true action here.
                        if nn.hi && nn.full < xn.full {
                            self.nodes[x].act_t.1 = nn.act_t.1;
                        }
                        if xn.leaf() || nn.leaf() {
                            return Err(());
                        }
                    }
                }
                if let Some(nt) = nn.nxt_t {
                    let xn = &self.nodes[x];
                    match xn.nxt_t {
                        Some(xt) => {
                            let head = self.levels[nt][0];
                            self.merge(xt, head)?;
                        }
                        None if !xn.act_t.0 => self.nodes[x].nxt_t = Some(nt),
                        None => return Ok(()),
                    }
                }
                if let Some(nf) = nn.nxt_f {
                    let xn = &self.nodes[x];
                    match xn.nxt_f {
                        Some(xf) => {
                            let head = self.levels[nf][0];
                            self.merge(xf, head)?;
                        }
                        None if !xn.act_f.0 => self.nodes[x].nxt_f = Some(nf),
                        None => return Ok(()),
                    }
                }
                return Ok(());
            } else if !self.nodes[x].below(&self.nodes[n]) {
                if i + 1 == self.levels[l].len() {
                    self.levels[l].push(n);
                    return Ok(());
                }
                i += 1;
            } else {
                self.levels[l].insert(i, n);
                return Ok(());
            }
        }
    }

    /// The BPF of the tree; `fall`: where a call no rule decides goes.
    pub(crate) fn emit(&self, asm: &mut Asm, fall: Target, wide: bool) -> Target {
        let mut done = Vec::new();
        match self.top {
            Some(l) => self.emit_level(asm, l, fall, wide, &mut done),
            None => fall,
        }
    }

    /// A level's nodes in order: a node whose branch leads nowhere goes on
    /// to the next node, and so does a subtree that decides nothing (its
    /// `fall` is the node after its parent). A level shared by two parents
    /// is emitted once per place it falls to.
    fn emit_level(
        &self,
        asm: &mut Asm,
        l: usize,
        fall: Target,
        wide: bool,
        done: &mut Vec<((usize, Target), Target)>,
    ) -> Target {
        if let Some((_, t)) = done.iter().find(|(k, _)| *k == (l, fall)) {
            return *t;
        }
        let mut next = fall;
        for &i in self.levels[l].iter().rev() {
            let n = &self.nodes[i];
            let mut branch = |sub: Option<usize>, act: (bool, u32), asm: &mut Asm| match sub {
                Some(s) => self.emit_level(asm, s, next, wide, done),
                None if act.0 => Target::Ret(act.1),
                None => next,
            };
            let jt = branch(n.nxt_t, n.act_t, asm);
            let jf = branch(n.nxt_f, n.act_f, asm);
            let (code, k) = match n.test {
                Test::Eq | Test::MaskedEq => (bpf::JEQ_K, n.datum),
                Test::Gt => (bpf::JGT_K, n.datum),
                Test::Ge => (bpf::JGE_K, n.datum),
            };
            asm.jump(code, k, jt, jf);
            if n.test == Test::MaskedEq {
                asm.and(n.mask);
            }
            let (lo, hi) = arg_offsets(n.arg);
            // On a 32-bit ABI the argument is its low half.
            let off = if n.hi && wide { hi } else { lo };
            next = Target::Label(asm.load(off));
        }
        done.push(((l, fall), next));
        next
    }
}

/// Offsets of an argument's halves in struct seccomp_data.
fn arg_offsets(index: u32) -> (u32, u32) {
    let base = 16 + 8 * index;
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}
