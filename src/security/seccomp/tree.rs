//! One syscall's rules on one ABI as libseccomp 2.5.4 keeps them (what
//! runc and crun load): a tree of 32-bit comparisons whose levels are
//! ordered (argument, operator, value) and which the BPF walks without
//! backtracking. When rules with different actions match the same call,
//! this tree, not the profile's order, decides; and libseccomp refuses a
//! rule (EEXIST) from the same tree.
//!
//! The model is node for node: each node has its level neighbours, its two
//! branches and a reference count, and adding a rule goes through the same
//! steps (`db_rule_add`: build the rule's chain, prune what the new chain
//! makes redundant, merge it; merge.rs). The details decide real results:
//! which node a pruning pass removes, a node left outside its level when
//! other references keep it alive, a merge that starts in the middle of a
//! level. A simpler model (argument-free rule wins, same comparisons with
//! another action refused) disagreed on ~2% of random mixed-action
//! profiles; tests/seccomp_libseccomp.rs compares this one with libseccomp.
//!
//! The emitted program walks the tree as libseccomp's does (a node whose
//! branch leads nowhere, or to a subtree that decides nothing, goes on to
//! the next node of its level) but loads the argument before every
//! comparison: libseccomp skips a load it thinks redundant even where a
//! fall-through from a subtree left another value in the accumulator.

mod merge;

use std::cell::Cell;

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

type Id = usize;

/// An action slot: libseccomp keeps the flag and the value apart (and once
/// copies a value without its flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Act {
    set: bool,
    val: u32,
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
    act_t: Act,
    act_f: Act,
    /// Neighbours on the level.
    prv: Option<Id>,
    nxt: Option<Id>,
    /// The branches.
    t: Option<Id>,
    f: Option<Id>,
    refs: u32,
    freed: bool,
    /// The profile rule that made the node or last set one of its actions
    /// (named when a later rule is refused).
    rule: usize,
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

    /// Same comparison (libseccomp's _db_chain_eq).
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
        self.t.is_none() && self.f.is_none()
    }

    fn zombie(&self) -> bool {
        self.leaf() && !self.act_t.set && !self.act_f.set
    }
}

/// What adding a rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Merged (or found redundant with what is there).
    Merged,
    /// Dropped: the syscall already has an argument-free rule, whose
    /// action stays.
    Shadowed { action: u32 },
}

/// Why a rule cannot be added as libseccomp adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// libseccomp refuses it (EEXIST); `rule`: the profile rule whose
    /// comparison it clashed with.
    Exists { rule: usize },
    /// Merging it makes libseccomp 2.5.4 use a node it has freed: what it
    /// does then depends on its allocator (seen: it never returns).
    Freed,
}

/// The rules of one syscall on one ABI (libseccomp's db_sys_list).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// Some rule was added (the syscall is in the filter).
    present: bool,
    /// The top level (None: the syscall has an argument-free rule).
    chains: Option<Id>,
    /// The action without arguments (meaningful when `chains` is None).
    action: u32,
    /// A freed node was used: the C code reads freed memory there (the
    /// rule is refused, `Conflict::Freed`).
    stale: Cell<bool>,
}

impl Tree {
    fn n(&self, id: Id) -> &Node {
        let n = &self.nodes[id];
        if n.freed {
            self.stale.set(true);
        }
        n
    }

    fn m(&mut self, id: Id) -> &mut Node {
        if self.nodes[id].freed {
            self.stale.set(true);
        }
        &mut self.nodes[id]
    }

    /// Add one rule (comparisons sorted by argument, one per argument)
    /// with its action, as libseccomp's db_rule_add does.
    pub(crate) fn add(
        &mut self,
        cmps: &[Cmp],
        act: u32,
        wide: bool,
        rule: usize,
    ) -> Result<Added, Conflict> {
        let r = self.add_chain(cmps, act, wide, rule);
        if self.stale.get() {
            return Err(Conflict::Freed);
        }
        r
    }

    fn add_chain(
        &mut self,
        cmps: &[Cmp],
        act: u32,
        wide: bool,
        rule: usize,
    ) -> Result<Added, Conflict> {
        let new = self.chain(cmps, act, wide, rule);
        if !self.present {
            self.present = true;
            self.chains = new;
            self.action = if new.is_none() { act } else { 0 };
            return Ok(Added::Merged);
        }
        let mut pruned = false;
        loop {
            match (self.chains, new) {
                (None, _) if pruned => {
                    // The pruning emptied the tree: the new chain is it.
                    self.chains = new;
                    self.action = if new.is_none() { act } else { 0 };
                    return Ok(Added::Merged);
                }
                (None, _) => {
                    self.tree_put(new);
                    return Ok(Added::Shadowed {
                        action: self.action,
                    });
                }
                (Some(_), None) => {
                    // An argument-free rule replaces the conditional ones.
                    self.tree_put(self.chains);
                    self.chains = None;
                    self.action = act;
                    return Ok(Added::Merged);
                }
                (Some(old), Some(n)) => {
                    let mut state = merge::State::new(act);
                    let freed = self.prune(Some(old), Some(n), &mut state);
                    if freed > 0 {
                        pruned = true;
                        if self.chains.is_none() {
                            continue;
                        }
                    } else if state.redundant() {
                        self.tree_put(new);
                        return Ok(Added::Merged);
                    }
                    self.merge(merge::Slot::Chains, n)?;
                    self.tree_put(new);
                    return Ok(Added::Merged);
                }
            }
        }
    }

    fn alloc(&mut self, c: &Cmp, hi: bool, test: Test, rule: usize) -> Id {
        let (mask, datum) = match c.op {
            Op::ScmpCmpMaskedEq => (c.value, c.two),
            _ => (u64::MAX, c.value),
        };
        let shift = if hi { 32 } else { 0 };
        let m = (mask >> shift) as u32;
        self.nodes.push(Node {
            arg: c.index,
            hi,
            test,
            orig: c.op,
            mask: m,
            datum: (datum >> shift) as u32 & m,
            full: datum,
            act_t: Act::default(),
            act_f: Act::default(),
            prv: None,
            nxt: None,
            t: None,
            f: None,
            refs: 0,
            freed: false,
            rule,
        });
        self.nodes.len() - 1
    }

    /// Point `from`'s true or false branch at `to`, taking a reference.
    fn link(&mut self, from: Id, tf: bool, to: Id) {
        self.get(Some(to));
        if tf {
            self.m(from).t = Some(to);
        } else {
            self.m(from).f = Some(to);
        }
    }

    /// The rule's own chain (libseccomp's _db_rule_gen_64 and _32): its top
    /// node, with one reference held for the caller. None: no comparison
    /// is left on this ABI (a MASKED_EQ that masks out every bit it sees).
    fn chain(&mut self, cmps: &[Cmp], act: u32, wide: bool, rule: usize) -> Option<Id> {
        let mut top = None;
        // The nodes the next comparison hangs from, and on which branch.
        let mut prev: Vec<Id> = Vec::new();
        let mut tf = false;
        for c in cmps {
            let seen = if c.op != Op::ScmpCmpMaskedEq {
                u64::MAX
            } else if wide {
                c.value
            } else {
                c.value & u32::MAX as u64
            };
            if seen == 0 {
                continue;
            }
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
                let n = self.alloc(c, false, test, rule);
                (n, vec![n], t)
            } else {
                match c.op {
                    Op::ScmpCmpEq | Op::ScmpCmpNe | Op::ScmpCmpMaskedEq => {
                        let test = if c.op == Op::ScmpCmpMaskedEq {
                            Test::MaskedEq
                        } else {
                            Test::Eq
                        };
                        let h = self.alloc(c, true, test, rule);
                        let l = self.alloc(c, false, test, rule);
                        self.link(h, true, l);
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
                        let gt = self.alloc(c, true, Test::Gt, rule);
                        let eq = self.alloc(c, true, Test::Eq, rule);
                        let l = self.alloc(c, false, lo, rule);
                        self.link(gt, false, eq);
                        self.link(eq, true, l);
                        if matches!(c.op, Op::ScmpCmpGt | Op::ScmpCmpGe) {
                            (gt, vec![gt, l], true)
                        } else {
                            (gt, vec![eq, l], false)
                        }
                    }
                }
            };
            if top.is_none() {
                top = self.get(Some(first));
            }
            for &p in &prev {
                self.link(p, tf, first);
            }
            prev = next;
            tf = t;
        }
        let set = Act {
            set: true,
            val: act,
        };
        for &p in &prev {
            if tf {
                self.m(p).act_t = set;
            } else {
                self.m(p).act_f = set;
            }
        }
        top
    }

    /// The BPF of the tree; `fall`: where a call no rule decides goes.
    pub(crate) fn emit(&self, asm: &mut Asm, fall: Target) -> Target {
        let mut done = Vec::new();
        match self.chains {
            Some(top) => self.emit_level(asm, top, fall, &mut done, 0),
            None => Target::Ret(self.action),
        }
    }

    /// The level of node `l` (from its first node, as libseccomp walks
    /// it): a node whose branch leads nowhere goes on to the next node, and
    /// so does a subtree that decides nothing (its `fall` is the node after
    /// its parent). A level reached from two parents is emitted once per
    /// place it falls to.
    fn emit_level(
        &self,
        asm: &mut Asm,
        l: Id,
        fall: Target,
        done: &mut Vec<((Id, Target), Target)>,
        depth: usize,
    ) -> Target {
        let mut head = l;
        let mut steps = 0;
        while let Some(p) = self.n(head).prv {
            head = p;
            steps += 1;
            if steps > self.nodes.len() {
                // A level whose links loop: nothing libseccomp would emit
                // either (it would not terminate); decide nothing here.
                return fall;
            }
        }
        if let Some((_, t)) = done.iter().find(|(k, _)| *k == (head, fall)) {
            return *t;
        }
        let mut level = vec![head];
        while let Some(x) = self.n(*level.last().unwrap_or(&head)).nxt {
            if level.contains(&x) || depth > self.nodes.len() {
                return fall;
            }
            level.push(x);
        }
        let mut next = fall;
        for &i in level.iter().rev() {
            let n = self.n(i);
            let mut branch = |sub: Option<Id>, act: Act, asm: &mut Asm| match sub {
                Some(s) => self.emit_level(asm, s, next, done, depth + 1),
                None if act.set => Target::Ret(act.val),
                None => next,
            };
            let jt = branch(n.t, n.act_t, asm);
            let jf = branch(n.f, n.act_f, asm);
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
            next = Target::Label(asm.load(if n.hi { hi } else { lo }));
        }
        done.push(((head, fall), next));
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
