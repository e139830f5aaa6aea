//! How libseccomp 2.5.4 (db.c) changes a syscall's tree when a rule is
//! added: reference counting (a node freed with its last reference takes
//! its subtrees along and closes the gap in its level), pruning what the
//! new chain makes redundant, and merging the chain in, refusing it
//! (EEXIST) where an action would change under an existing one. The steps
//! and their order are libseccomp's, quirks included, because they decide
//! which rule wins and which profile is refused.

use super::{Act, Conflict, Id, Tree};

/// The flags of libseccomp's pruning walk (struct db_iter_state).
const MATCH: u32 = 0x1;
const MATCH_ONCE: u32 = 0x2;
const X_FINISHED: u32 = 0x10;
const N_FINISHED: u32 = 0x20;
const X_PREFIX: u32 = 0x100;
const N_PREFIX: u32 = 0x200;
const MATCH_SET: u32 = MATCH | MATCH_ONCE;
const REDUNDANT: u32 = MATCH | X_FINISHED | N_PREFIX;

#[derive(Debug, Clone, Copy)]
pub(super) struct State {
    flags: u32,
    action: u32,
}

impl State {
    pub(super) fn new(action: u32) -> State {
        State { flags: 0, action }
    }

    /// The existing tree already covers the new chain: drop it.
    pub(super) fn redundant(&self) -> bool {
        self.flags & REDUNDANT == REDUNDANT
    }
}

/// A pointer to a level that a step may rewrite: the syscall's top, or a
/// node's branch.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    Chains,
    T(Id),
    F(Id),
}

impl Tree {
    fn read(&self, s: Slot) -> Option<Id> {
        match s {
            Slot::Chains => self.chains,
            Slot::T(x) => self.n(x).t,
            Slot::F(x) => self.n(x).f,
        }
    }

    fn write(&mut self, s: Slot, v: Option<Id>) {
        match s {
            Slot::Chains => self.chains = v,
            Slot::T(x) => self.m(x).t = v,
            Slot::F(x) => self.m(x).f = v,
        }
    }

    pub(super) fn get(&mut self, n: Option<Id>) -> Option<Id> {
        if let Some(x) = n {
            self.m(x).refs += 1;
        }
        n
    }

    /// The first node of `x`'s level.
    fn head(&self, mut x: Id) -> Id {
        let mut steps = 0;
        while let Some(p) = self.n(x).prv {
            if steps > self.nodes.len() {
                // Links in a loop: stop (C would not terminate).
                self.stale.set(true);
                break;
            }
            x = p;
            steps += 1;
        }
        x
    }

    /// Drop a reference (_db_node_put): the count of nodes freed, and what
    /// a pointer to the node now points to (a neighbour on its level when
    /// it was freed).
    fn put(&mut self, p: Option<Id>) -> (u32, Option<Id>) {
        let Some(x) = p else { return (0, None) };
        if self.nodes[x].freed {
            // C would decrement freed memory; do nothing, but say so.
            self.stale.set(true);
            return (0, p);
        }
        let node = &mut self.nodes[x];
        node.refs = node.refs.wrapping_sub(1);
        if node.refs != 0 {
            return (0, p);
        }
        let (lp, ln, t, f) = (node.prv, node.nxt, node.t, node.f);
        if let Some(lp) = lp {
            self.m(lp).nxt = None;
        }
        if let Some(ln) = ln {
            self.m(ln).prv = None;
        }
        let mut cnt = 0;
        let (c, lp) = self.put(lp);
        cnt += c;
        let (c, ln) = self.put(ln);
        cnt += c;
        if let Some(lp) = lp {
            let v = self.get(ln);
            self.m(lp).nxt = v;
        }
        if let Some(ln) = ln {
            let v = self.get(lp);
            self.m(ln).prv = v;
        }
        cnt += self.tree_put(t).0;
        cnt += self.tree_put(f).0;
        self.nodes[x].freed = true;
        (cnt + 1, lp.or(ln))
    }

    /// Free a whole level when nothing but its own links refers to it
    /// (_db_level_clean).
    fn level_clean(&mut self, x: Id) -> u32 {
        let start = self.head(x);
        let mut n = Some(start);
        while let Some(i) = n {
            let node = self.n(i);
            let links = node.prv.is_some() as u32 + node.nxt.is_some() as u32;
            if node.refs > links {
                return 0;
            }
            n = node.nxt;
        }
        let mut cnt = 0;
        let mut n = Some(start);
        let mut guard = 0;
        while let Some(i) = n {
            let (c, next) = self.put(Some(i));
            cnt += c;
            n = next;
            guard += 1;
            if guard > 4 * self.nodes.len() {
                self.stale.set(true);
                break;
            }
        }
        cnt
    }

    /// Drop the reference to a (sub)tree and collect its level
    /// (_db_tree_put): nodes freed, and the pointer's new value.
    pub(super) fn tree_put(&mut self, p: Option<Id>) -> (u32, Option<Id>) {
        let (mut cnt, p) = self.put(p);
        if let Some(x) = p {
            cnt += self.level_clean(x);
        }
        (cnt, p)
    }

    /// Find `node` under the level `tree` points to and take it out of its
    /// level with its subtrees, removing the empty nodes met on the way
    /// (_db_tree_remove). Stops after the first removal on a level.
    fn remove(&mut self, tree: Slot, node: Id) -> u32 {
        let Some(top) = self.read(tree) else { return 0 };
        let mut c = self.head(top);
        let mut cnt = 0;
        loop {
            if c == node {
                break;
            }
            cnt += self.remove(Slot::T(c), node);
            cnt += self.remove(Slot::F(c), node);
            if self.n(c).zombie() {
                break;
            }
            match self.n(c).nxt {
                Some(x) if cnt == 0 => c = x,
                _ => return cnt,
            }
        }
        let (prv, nxt) = (self.n(c).prv, self.n(c).nxt);
        if self.read(tree) == Some(c) {
            self.write(tree, prv.or(nxt));
        }
        // The neighbours keep the references they had to `c` (libseccomp
        // does not drop them): `c` may outlive its place in the level.
        if let Some(p) = prv {
            self.m(p).nxt = nxt;
        }
        if let Some(x) = nxt {
            self.m(x).prv = prv;
        }
        self.m(c).prv = None;
        self.m(c).nxt = None;
        cnt + self.put(Some(c)).0
    }

    /// Every action on `tree`'s level and below is `act`
    /// (_db_tree_act_check); Err: a node that has another.
    fn act_check(&self, tree: Option<Id>, act: u32) -> Result<(), Id> {
        let Some(top) = tree else { return Ok(()) };
        let mut c = Some(self.head(top));
        while let Some(i) = c {
            let n = self.n(i);
            if (n.act_t.set && n.act_t.val != act) || (n.act_f.set && n.act_f.val != act) {
                return Err(i);
            }
            self.act_check(n.t, act)?;
            self.act_check(n.f, act)?;
            c = n.nxt;
        }
        Ok(())
    }

    /// Remove what the new chain `new` makes redundant in the level of
    /// `existing` (_db_tree_prune): the number of nodes freed.
    pub(super) fn prune(
        &mut self,
        existing: Option<Id>,
        new: Option<Id>,
        state: &mut State,
    ) -> u32 {
        let mut cnt = 0;
        let mut sn = *state;
        let fell_through = 'ret: {
            let (Some(x0), Some(n)) = (existing, new) else {
                break 'ret false;
            };
            if state.flags & MATCH_SET == MATCH_ONCE {
                break 'ret false;
            }
            let mut x = self.head(x0);
            loop {
                let x_next = self.n(x).nxt;
                'next: {
                    if self.n(x).same(self.n(n)) {
                        sn.flags |= MATCH_SET;
                        if self.n(n).leaf() {
                            sn.flags |= N_FINISHED;
                        }
                        if self.n(x).leaf() {
                            sn.flags |= X_FINISHED;
                        }
                        let (xn, nn) = (self.n(x), self.n(n));
                        if (xn.act_t.set || xn.t.is_some()) && !(nn.act_t.set || nn.t.is_some()) {
                            break 'ret false;
                        }
                        if (xn.act_f.set || xn.f.is_some()) && !(nn.act_f.set || nn.f.is_some()) {
                            break 'ret false;
                        }
                        if sn.flags & N_FINISHED != 0
                            && sn.flags & X_FINISHED != 0
                            && (nn.act_t != xn.act_t || nn.act_f != xn.act_f)
                        {
                            break 'ret false;
                        }
                        for tf in [true, false] {
                            let sub = if tf { self.n(n).t } else { self.n(n).f };
                            let Some(sub) = sub else { continue };
                            let xsub = if tf { self.n(x).t } else { self.n(x).f };
                            self.get(Some(x));
                            let mut st = *state;
                            st.flags |= MATCH_SET;
                            cnt += self.prune(xsub, Some(sub), &mut st);
                            let (c, after) = self.put(Some(x));
                            cnt += c;
                            if st.flags & MATCH != 0 {
                                sn.flags |= st.flags;
                            }
                            match after {
                                Some(a) => x = a,
                                None => break 'next,
                            }
                        }
                        let covered =
                            self.act_check(Some(x), sn.action).is_ok() && sn.flags & MATCH != 0;
                        if covered && sn.flags & N_FINISHED != 0 && sn.flags & X_PREFIX != 0 {
                            // The new chain is shorter: drop the old one.
                            cnt += self.remove(Slot::Chains, x);
                            if self.chains.is_none() {
                                break 'ret false;
                            }
                        } else if covered && sn.flags & X_FINISHED != 0 && sn.flags & N_PREFIX != 0
                        {
                            // The new chain is longer.
                            break 'ret false;
                        }
                    } else if self.n(x).below(self.n(n)) {
                        if state.flags & N_PREFIX != 0 {
                            break 'ret false;
                        }
                        for tf in [true, false] {
                            let xsub = if tf { self.n(x).t } else { self.n(x).f };
                            if xsub.is_none() {
                                continue;
                            }
                            self.get(Some(x));
                            let mut st = *state;
                            st.flags &= !MATCH;
                            st.flags |= X_PREFIX;
                            cnt += self.prune(xsub, Some(n), &mut st);
                            let (c, after) = self.put(Some(x));
                            cnt += c;
                            if st.flags & MATCH != 0 {
                                sn.flags |= st.flags;
                                break 'ret false;
                            }
                            match after {
                                Some(a) => x = a,
                                None => break 'next,
                            }
                        }
                    } else {
                        if state.flags & X_PREFIX != 0 {
                            break 'ret false;
                        }
                        for tf in [true, false] {
                            let nsub = if tf { self.n(n).t } else { self.n(n).f };
                            if nsub.is_none() {
                                continue;
                            }
                            self.get(Some(x));
                            let mut st = *state;
                            st.flags &= !MATCH;
                            st.flags |= N_PREFIX;
                            cnt += self.prune(Some(x), nsub, &mut st);
                            let (c, after) = self.put(Some(x));
                            cnt += c;
                            if st.flags & MATCH != 0 {
                                sn.flags |= st.flags;
                                break 'ret false;
                            }
                            match after {
                                Some(a) => x = a,
                                None => break 'next,
                            }
                        }
                    }
                }
                match x_next {
                    Some(v) => x = v,
                    None => break 'ret true,
                }
            }
        };
        if fell_through {
            // Walked the whole level: nothing matched.
            sn.flags &= !MATCH;
        }
        if sn.flags & MATCH != 0 {
            state.flags |= sn.flags;
        } else {
            state.flags &= !MATCH;
        }
        cnt
    }

    /// Merge the new chain's node `n` into the level `existing` points to
    /// (_db_tree_add), from that node on. Err: EEXIST.
    pub(super) fn merge(&mut self, existing: Slot, n: Id) -> Result<(), Conflict> {
        let Some(mut x) = self.read(existing) else {
            return Ok(());
        };
        loop {
            if self.n(x).same(self.n(n)) {
                for tf in [true, false] {
                    let na = self.side(n, tf).0;
                    let (xa, xsub) = self.side(x, tf);
                    if !na.set {
                        continue;
                    }
                    if !xa.set {
                        // The new chain ends here: whatever was below must
                        // already have its action.
                        if let Err(c) = self.act_check(xsub, na.val) {
                            return Err(Conflict::Exists {
                                rule: self.n(c).rule,
                            });
                        }
                        self.put(xsub);
                        let rule = self.n(n).rule;
                        let xm = self.m(x);
                        if tf {
                            xm.t = None;
                            xm.act_t = na;
                        } else {
                            xm.f = None;
                            xm.act_f = na;
                        }
                        xm.rule = rule;
                    } else if na.val != xa.val {
                        // libseccomp's 64-bit adjustment; on the false
                        // side it copies the true action (as it does).
                        let (nn, xn) = (self.n(n), self.n(x));
                        let take = nn.hi
                            && if tf {
                                nn.full > xn.full
                            } else {
                                nn.full < xn.full
                            };
                        if take {
                            let v = nn.act_t.val;
                            self.m(x).act_t.val = v;
                        }
                        if self.n(x).leaf() || self.n(n).leaf() {
                            return Err(Conflict::Exists {
                                rule: self.n(x).rule,
                            });
                        }
                    }
                }
                for tf in [true, false] {
                    let (_, nsub) = self.side(n, tf);
                    let (xa, xsub) = self.side(x, tf);
                    let Some(nsub) = nsub else { continue };
                    if xsub.is_some() {
                        let slot = if tf { Slot::T(x) } else { Slot::F(x) };
                        self.merge(slot, nsub)?;
                    } else if !xa.set {
                        let v = self.get(Some(nsub));
                        self.write(if tf { Slot::T(x) } else { Slot::F(x) }, v);
                    } else {
                        // The existing chain is shorter.
                        return Ok(());
                    }
                }
                return Ok(());
            } else if !self.n(x).below(self.n(n)) {
                match self.n(x).nxt {
                    Some(next) => x = next,
                    None => {
                        // Last on the level.
                        self.m(n).prv = self.get(Some(x));
                        self.m(x).nxt = self.get(Some(n));
                        return Ok(());
                    }
                }
            } else {
                // Before `x`.
                match self.n(x).prv {
                    Some(p) => {
                        self.m(p).nxt = self.get(Some(n));
                        self.m(n).prv = Some(p);
                        self.m(x).prv = self.get(Some(n));
                        self.m(n).nxt = Some(x);
                    }
                    None => {
                        self.m(x).prv = self.get(Some(n));
                        self.m(n).nxt = self.get(Some(x));
                    }
                }
                if self.read(existing) == Some(x) {
                    let v = self.get(Some(n));
                    self.write(existing, v);
                    self.put(Some(x));
                }
                return Ok(());
            }
        }
    }

    /// A node's action and branch on its true or false side.
    fn side(&self, x: Id, tf: bool) -> (Act, Option<Id>) {
        let n = self.n(x);
        if tf { (n.act_t, n.t) } else { (n.act_f, n.f) }
    }
}
