"""Forward lock-state dataflow over one function's CFG.

Must-hold (locks held on every path) and may-hold (on some path) sets with
modes, plus two kinds of path facts the kernel's idioms need:

* conditional holds: a trylock, `pte_offset_map_lock()` or
  `pmd_trans_huge_lock()` result that is tested later; the lock is taken at
  the call and dropped again on the edge where the test says it failed;
* pointer equalities from `if (ptl != pml)`: on the `==` edge both names are
  one lock, so "take ptl unless it is pml" leaves ptl held on both paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from lockcheck.model.ir import (
    Acquire,
    Act,
    Assign,
    Atom,
    Call,
    Check,
    Claim,
    Downgrade,
    Event,
    Function,
    LockRef,
    Mode,
    Release,
    Site,
    is_constant,
)

RW_CLASS_RE = re.compile(r"(mmap_lock|rwsem|_sem$|rwlock)")
_BASE_RE = re.compile(r"[A-Za-z_]\w*")


def mentions(inst: str, var: str) -> bool:
    """Does a lock expression depend on `var` (`cpu_rq(t)->__lock` on `t`,
    `table[hash]` on `hash`)? Field names after `->`/`.` do not count."""
    expr = inst.split("@")[0]
    for m in _BASE_RE.finditer(expr):
        if m.group(0) == var and not expr[: m.start()].endswith(("->", ".")):
            return True
    return False


def base_var(inst: str) -> str:
    """The variable a lock expression starts from: `mm` in `mm->mmap_lock`."""
    m = _BASE_RE.match(inst)
    return m.group(0) if m else ""


_RELEASING_NAME_RE = re.compile(r"unlock|release|put|drop")


def _escapes_into(call: Call, ref: LockRef) -> bool:
    """May an unknown callee release this lock? Only if it is given the lock
    itself, or is named like a releaser and given the lock's owner."""
    inst = ref.inst.split("@")[0]
    if inst in call.args:
        return True
    if _RELEASING_NAME_RE.search(call.callee):
        owner = base_var(inst)
        return any(base_var(a) == owner for a in call.args)
    return False


def h_assumed(st: LockState, ref: LockRef) -> bool:
    held = st.may.get(ref)
    return held is not None and held.assumed


def _mode_of_release(primitive: str, cls: str) -> Mode:
    if "write" in primitive:
        return "write"
    if "read" in primitive:
        return "read"
    return "read" if RW_CLASS_RE.search(cls) else "excl"


@dataclass(frozen=True, slots=True)
class Held:
    mode: Mode
    site: Site
    cond_var: str | None = None
    fail_when: str = "zero"
    assumed: bool = False  # taken before the function, per a claim or annotation
    # handed to code we cannot see (an unknown `*_unlock()`/`*put()` callee, a
    # may-release primitive): it may have been released there
    escaped: bool = False


@dataclass(frozen=True, slots=True)
class LockState:
    must: Mapping[LockRef, Held]
    may: Mapping[LockRef, Held]
    eqs: frozenset[frozenset[str]] = frozenset()

    def held_keys(self) -> frozenset[str]:
        """`class:mode` for every lock surely held: what rules match against."""
        return frozenset(f"{ref.cls}:{h.mode}" for ref, h in self.must.items())

    def describe(self) -> list[str]:
        """The surely-held locks as a reviewer reads them, sorted."""
        out = []
        for ref, h in self.must.items():
            out.append(f"{ref.inst}:{h.mode}" if h.mode in ("read", "write") else ref.inst)
        return sorted(out)

    def same_lock(self, a: str, b: str) -> bool:
        """One lock under two names: `ptl == pml`, or `cur->lock` after `cur = op`."""
        if a == b or frozenset((a, b)) in self.eqs:
            return True
        ha, hb = base_var(a), base_var(b)
        return (
            ha != hb
            and a[len(ha) :] == b[len(hb) :]
            and a[len(ha) :] != ""
            and frozenset((ha, hb)) in self.eqs
        )


def _meet_mode(a: Mode, b: Mode) -> Mode:
    if a == b:
        return a
    return "read" if "read" in (a, b) else "excl"


def join(a: LockState | None, b: LockState | None) -> LockState | None:
    if a is None:
        return b
    if b is None:
        return a
    must = {}
    for ref, ha in a.must.items():
        hb = b.must.get(ref)
        if hb is not None:
            must[ref] = Held(
                _meet_mode(ha.mode, hb.mode),
                min(ha.site, hb.site),
                ha.cond_var or hb.cond_var,
                ha.fail_when,
                ha.assumed and hb.assumed,
                ha.escaped or hb.escaped,
            )
    may = dict(b.may)
    for ref, ha in a.may.items():
        hb = b.may.get(ref)
        may[ref] = ha if hb is None or hb.escaped <= ha.escaped else replace(ha, escaped=True)
    return LockState(must, may, a.eqs & b.eqs)


@dataclass(slots=True)
class Transfer:
    """Applies events and edges; knows the function's local lock pointers."""

    lockvars: Mapping[str, LockRef]

    def _ref_for(self, name: str, like: LockRef) -> LockRef:
        return self.lockvars.get(name, LockRef(name, cls=like.cls))

    def event(self, st: LockState, ev: Event) -> LockState:
        if isinstance(ev, Acquire):
            h = Held(ev.mode, ev.site, ev.cond_var, ev.fail_when)
            return LockState({**st.must, ev.lock: h}, {**st.may, ev.lock: h}, st.eqs)
        if isinstance(ev, Release):
            if ev.maybe:
                if ev.lock.inst == "*":
                    return self._escape(st, lambda ref: ref.cls == ev.lock.cls)
                return self._escape(st, lambda ref: st.same_lock(ref.inst, ev.lock.inst))
            return self._drop(st, ev.lock)
        if isinstance(ev, Call):
            if ev.external and ev.args:
                return self._escape(st, lambda ref: _escapes_into(ev, ref))
            return st
        if isinstance(ev, Downgrade):
            must = dict(st.must)
            may = dict(st.may)
            for d in (must, may):
                if ev.lock in d:
                    d[ev.lock] = replace(d[ev.lock], mode="read")
            return LockState(must, may, st.eqs)
        if isinstance(ev, Claim):
            if ev.kind == "not_held":
                return self._drop(st, ev.lock)
            cur = st.must.get(ev.lock)
            if cur is not None and (ev.mode is None or cur.mode == ev.mode):
                return st
            mode: Mode = ev.mode or ("read" if RW_CLASS_RE.search(ev.lock.cls) else "excl")
            h = Held(mode, ev.site, assumed=True)
            return LockState({**st.must, ev.lock: h}, {**st.may, ev.lock: h}, st.eqs)
        if isinstance(ev, Assign):
            st = self._kill_var(st, ev.var, ev.site.line)
            if ev.alias is not None and ev.alias != ev.var:
                st = LockState(st.must, st.may, st.eqs | {frozenset((ev.var, ev.alias))})
            return st
        return st

    @staticmethod
    def _escape(st: LockState, hit: Callable[[LockRef], bool]) -> LockState:
        if not any(hit(r) and not h.escaped for r, h in st.may.items()):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {r: (replace(h, escaped=True) if hit(r) else h) for r, h in d.items()}

        return LockState(fix(st.must), fix(st.may), st.eqs)

    def _drop(self, st: LockState, lock: LockRef) -> LockState:
        def gone(ref: LockRef) -> bool:
            return st.same_lock(ref.inst, lock.inst)

        return LockState(
            {r: h for r, h in st.must.items() if not gone(r)},
            {r: h for r, h in st.may.items() if not gone(r)},
            st.eqs,
        )

    @staticmethod
    def _kill_var(st: LockState, var: str, line: int) -> LockState:
        """`var = ...`: facts about the old value die, locks named by it are renamed.

        A lock reached through the old value (`cursor` after `cursor = next`)
        is still held, but is no longer the lock the name `cursor` means.
        """
        eqs = frozenset(e for e in st.eqs if var not in e)

        def renamed(ref: LockRef) -> LockRef:
            if mentions(ref.inst, var):
                return LockRef(f"{ref.inst.split('@')[0]}@{line}", cls=ref.cls)
            return ref

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                renamed(r): (replace(h, cond_var=None) if h.cond_var == var else h)
                for r, h in d.items()
            }

        touched = any(h.cond_var == var or mentions(r.inst, var) for r, h in st.may.items())
        if eqs == st.eqs and not touched:
            return st
        return LockState(fix(st.must), fix(st.may), eqs)

    def edge(self, st: LockState, atom: Atom | None, label: bool | None) -> LockState:
        if atom is not None and label is not None:
            if atom.kind == "value":
                st = self._resolve_cond(st, atom.a, label)
                if not label and atom.a != "#atom":
                    st = self._drop_null_owner(st, atom.a)
            elif atom.kind == "eq" and label:
                st = self._add_eq(st, atom.a, atom.b)
        return self._clear_atom(st)

    @staticmethod
    def _resolve_cond(st: LockState, var: str, nonzero: bool) -> LockState:
        failed_when = "nonzero" if nonzero else "zero"

        def keep(h: Held) -> bool:
            return not (h.cond_var == var and h.fail_when == failed_when)

        if all(keep(h) for h in st.may.values()):
            return st
        return LockState(
            {r: h for r, h in st.must.items() if keep(h)},
            {r: h for r, h in st.may.items() if keep(h)},
            st.eqs,
        )

    @staticmethod
    def _drop_null_owner(st: LockState, var: str) -> LockState:
        """`if (!n)`: no lock inside `*n` can be held on this edge."""

        def inside(ref: LockRef) -> bool:
            inst = ref.inst.split("@")[0]
            return inst.startswith((var + "->", var + ".")) and not h_assumed(st, ref)

        if not any(inside(r) for r in st.may):
            return st
        return LockState(
            {r: h for r, h in st.must.items() if not inside(r)},
            {r: h for r, h in st.may.items() if not inside(r)},
            st.eqs,
        )

    @staticmethod
    def _clear_atom(st: LockState) -> LockState:
        if not any(h.cond_var == "#atom" for h in st.may.values()):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                r: (replace(h, cond_var=None) if h.cond_var == "#atom" else h) for r, h in d.items()
            }

        return LockState(fix(st.must), fix(st.may), st.eqs)

    def _add_eq(self, st: LockState, a: str, b: str) -> LockState:
        if a == b:
            return st
        must = dict(st.must)
        may = dict(st.may)
        for src, dst in ((a, b), (b, a)):
            for ref, h in list(st.must.items()):
                if ref.inst == src:
                    must.setdefault(self._ref_for(dst, ref), h)
            for ref, h in list(st.may.items()):
                if ref.inst == src:
                    may.setdefault(self._ref_for(dst, ref), h)
        return LockState(must, may, st.eqs | {frozenset((a, b))})


@dataclass(slots=True)
class FunctionFacts:
    """Everything rules may ask about one function after the dataflow."""

    fn: Function
    events: list[list[Event]]  # effective events per node (callee summaries applied)
    before: list[list[LockState | None]]  # state before each event
    state_in: list[LockState | None]
    state_out: list[LockState | None]
    idom: list[int]  # immediate dominator, -1 for unreachable/entry
    rpo_index: list[int]
    budget_exceeded: bool = False
    # held when the function is entered: annotations, plus locks it releases
    # without taking them first (the caller's locks)
    entry_locks: frozenset[LockRef] = frozenset()
    # (node, state on its edge into the exit, locks surely released on the
    # way, the returned value as this path knows it): one entry per way out
    # and per lock state arriving there
    exits: tuple[tuple[int, LockState, frozenset[str], str], ...] = ()

    def state_at(self, node: int, event: Event) -> LockState | None:
        for ev, st in zip(self.events[node], self.before[node], strict=True):
            if ev is event:
                return st
        return self.state_in[node]

    def dominates(self, a: int, b: int) -> bool:
        if self.rpo_index[b] < 0 or self.rpo_index[a] < 0:
            return False
        cur = b
        while cur != -1:
            if cur == a:
                return True
            nxt = self.idom[cur]
            if nxt == cur:
                return False
            cur = nxt
        return False

    def reaches_avoiding(self, start: int, goal: int, avoid: int) -> bool:
        """Is `goal` reachable from `start` without passing through `avoid`?"""
        if start == avoid:
            return False
        seen = {start}
        stack = [start]
        nodes = self.fn.cfg.nodes
        while stack:
            cur = stack.pop()
            if cur == goal:
                return True
            for s, _ in nodes[cur].succ:
                if s != avoid and s not in seen:
                    seen.add(s)
                    stack.append(s)
        return False

    def gates(self, check_node: int, act_node: int) -> bool:
        """Does the branch at `check_node` decide whether `act_node` runs?

        One outcome reaches the act (in this loop iteration: without coming
        back through the branch) and another does not.
        """
        if check_node == act_node or not self.dominates(check_node, act_node):
            return False
        outcomes = {
            self.reaches_avoiding(s, act_node, check_node)
            for s, _ in self.fn.cfg.nodes[check_node].succ
        }
        return outcomes == {True, False}

    def reachable_from(self, start: int) -> set[int]:
        seen = {start}
        stack = [start]
        nodes = self.fn.cfg.nodes
        while stack:
            cur = stack.pop()
            for s, _ in nodes[cur].succ:
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return seen

    def iter_events(self) -> Iterable[tuple[int, Event, LockState]]:
        """(node, event, state before it) for reachable events, in node order."""
        for nid, evs in enumerate(self.events):
            for ev, st in zip(evs, self.before[nid], strict=True):
                if st is not None:
                    yield nid, ev, st


def _rpo(fn: Function) -> list[int]:
    nodes = fn.cfg.nodes
    seen = [False] * len(nodes)
    order: list[int] = []
    stack: list[tuple[int, int]] = [(fn.cfg.entry, 0)]
    seen[fn.cfg.entry] = True
    while stack:
        nid, i = stack[-1]
        succ = nodes[nid].succ
        if i < len(succ):
            stack[-1] = (nid, i + 1)
            s = succ[i][0]
            if not seen[s]:
                seen[s] = True
                stack.append((s, 0))
        else:
            stack.pop()
            order.append(nid)
    order.reverse()
    return order


def _dominators(fn: Function, rpo: list[int], preds: list[list[int]]) -> list[int]:
    """Cooper, Harvey and Kennedy's iterative algorithm."""
    index = {n: i for i, n in enumerate(rpo)}
    idom = [-1] * len(fn.cfg.nodes)
    entry = fn.cfg.entry
    idom[entry] = entry

    def intersect(a: int, b: int) -> int:
        while a != b:
            while index[a] > index[b]:
                a = idom[a]
            while index[b] > index[a]:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for n in rpo[1:]:
            ps = [p for p in preds[n] if idom[p] != -1]
            if not ps:
                continue
            new = ps[0]
            for p in ps[1:]:
                new = intersect(p, new)
            if idom[n] != new:
                idom[n] = new
                changed = True
    return idom


def initial_state(fn: Function, inferred: Mapping[LockRef, Mode] | None = None) -> LockState:
    must: dict[LockRef, Held] = {}
    for claim in fn.entry_claims:
        mode: Mode = claim.mode or ("read" if RW_CLASS_RE.search(claim.lock.cls) else "excl")
        must[claim.lock] = Held(mode, claim.site, assumed=True)
    for ref, rmode in (inferred or {}).items():
        must.setdefault(
            ref, Held(rmode, Site(fn.start_line, 1, "(held by the caller)"), assumed=True)
        )
    return LockState(must, dict(must))


_ZERO = frozenset({"0", "0UL", "0L", "0U", "NULL", "false"})
MAX_PATHS = 8  # distinct lock states kept apart per node before they are merged


@dataclass(frozen=True, slots=True)
class Facts:
    """What a path has learnt: branch outcomes and constant assignments.

    They let the analysis skip edges a path cannot take, which is how
    `if (!nolock) spin_lock(l); ... if (!nolock) spin_unlock(l);` and
    `locked = true; ... if (locked) unlock` stay balanced.
    """

    atoms: frozenset[tuple[str, bool, tuple[str, ...]]] = frozenset()
    consts: frozenset[tuple[str, str]] = frozenset()
    released: frozenset[str] = frozenset()  # locks this path has surely released

    def meet(self, other: Facts) -> Facts:
        # `ret = 0` on one path and `if (ret)` false on the other agree that
        # ret is zero: compare constants as the truth facts they imply too
        return Facts(
            self._truths() & other._truths(),
            self.consts & other.consts,
            self.released & other.released,
        )

    def _truths(self) -> frozenset[tuple[str, bool, tuple[str, ...]]]:
        implied = {(var, value not in _ZERO, (var,)) for var, value in self.consts}
        return self.atoms | implied if implied else self.atoms

    def assign(self, var: str, value: str | None) -> Facts:
        atoms = frozenset(a for a in self.atoms if var not in a[2])
        consts = frozenset(c for c in self.consts if c[0] != var)
        if value is not None:
            consts = consts | {(var, value)}
        if atoms == self.atoms and consts == self.consts:
            return self
        return Facts(atoms, consts, self.released)

    def const(self, name: str) -> str | None:
        for var, value in self.consts:
            if var == name:
                return value
        return None

    def decide(self, atom: Atom) -> bool | None:
        """The atom's outcome if this path already knows it."""
        if atom.factable:
            for text, truth, _vars in self.atoms:
                if text == atom.text:
                    return truth
        if atom.kind == "value" and atom.a != "#atom":
            value = self.const(atom.a)
            if value is not None:
                if not atom.factable and not (value in _ZERO or value.startswith("-")):
                    return None  # a sign test (`ret < 0`) of a positive value
                return value not in _ZERO
        if atom.kind == "eq":
            a = self.const(atom.a) or (atom.a if is_constant(atom.a) else None)
            b = self.const(atom.b) or (atom.b if is_constant(atom.b) else None)
            if a is not None and b is not None:
                return a == b or (a in _ZERO and b in _ZERO)
        return None

    def describe_value(self, expr: str) -> str:
        """A returned expression, refined by what the path knows about it:
        `vma` becomes `vma:zero` after `if (!vma)`, `NULL` after `vma = NULL`."""
        value = self.const(expr)
        if value is not None:
            return value
        for text, truth, _vars in self.atoms:
            if text == expr:
                return f"{expr}:{'nonzero' if truth else 'zero'}"
        return expr

    def learn(self, atom: Atom, truth: bool) -> Facts:
        if not atom.factable or not atom.text:
            return self
        return Facts(self.atoms | {(atom.text, truth, atom.vars)}, self.consts, self.released)




Path = tuple[LockState, Facts]


def _path_key(st: LockState) -> tuple[frozenset[tuple[str, str, str | None]], ...]:
    def keys(d: Mapping[LockRef, Held]) -> frozenset[tuple[str, str, str | None]]:
        return frozenset((r.inst, h.mode, h.cond_var) for r, h in d.items())

    return (keys(st.must), keys(st.may))


def _merge_all(paths: Iterable[Path]) -> Path | None:
    out: Path | None = None
    for st, facts in paths:
        if out is None:
            out = (st, facts)
        else:
            merged = join(out[0], st)
            assert merged is not None
            out = (merged, out[1].meet(facts))
    return out


class _NodePaths:
    """The paths reaching one node, kept apart while their lock states differ."""

    __slots__ = ("paths", "collapsed")

    def __init__(self) -> None:
        self.paths: dict[object, Path] = {}
        self.collapsed = False

    def add(self, path: Path) -> bool:
        if self.collapsed:
            old = next(iter(self.paths.values()))
            merged = _merge_all((old, path))
            assert merged is not None
            if merged == old:
                return False
            self.paths = {"*": merged}
            return True
        key = _path_key(path[0])
        prev = self.paths.get(key)
        if prev is None:
            self.paths[key] = path
            if len(self.paths) > MAX_PATHS:
                merged = _merge_all(self.paths.values())
                assert merged is not None
                self.paths = {"*": merged}
                self.collapsed = True
            return True
        merged = _merge_all((prev, path))
        assert merged is not None
        if merged == prev:
            return False
        self.paths[key] = merged
        return True

    def ordered(self) -> list[Path]:
        return [self.paths[k] for k in sorted(self.paths, key=repr)]

    def merged(self) -> LockState | None:
        m = _merge_all(self.ordered())
        return m[0] if m is not None else None


def _apply(tr: Transfer, path: Path, ev: Event) -> Path:
    st, facts = path
    if isinstance(ev, Assign):
        facts = facts.assign(ev.var, ev.value)
    elif isinstance(ev, Release) and not ev.maybe and ev.lock.inst not in facts.released:
        facts = Facts(facts.atoms, facts.consts, facts.released | {ev.lock.inst})
    return tr.event(st, ev), facts


def _fixpoint(
    fn: Function,
    events: list[list[Event]],
    tr: Transfer,
    rpo: list[int],
    init: LockState,
    max_visits: int,
) -> tuple[list[_NodePaths], bool]:
    nodes = fn.cfg.nodes
    states = [_NodePaths() for _ in nodes]
    states[fn.cfg.entry].add((init, Facts()))
    pending = {fn.cfg.entry}
    visits = 0
    while pending:
        for nid in rpo:
            if nid not in pending:
                continue
            pending.discard(nid)
            visits += 1
            if visits > max_visits:
                return states, True
            node = nodes[nid]
            for path in states[nid].ordered():
                for ev in events[nid]:
                    path = _apply(tr, path, ev)
                for succ, label in node.succ:
                    edge = _take_edge(tr, path, node.atom, label)
                    if edge is not None and states[succ].add(edge):
                        pending.add(succ)
    return states, False


def _take_edge(tr: Transfer, path: Path, atom: Atom | None, label: bool | None) -> Path | None:
    """The path along one edge, or None when its facts rule the edge out."""
    st, facts = path
    if atom is not None and label is not None:
        known = facts.decide(atom)
        if known is not None and known != label:
            return None
        if (
            not label
            and atom.kind == "value"
            and any(
                r.inst == atom.a and h.cond_var is None and not h.escaped
                for r, h in st.must.items()
            )
        ):
            return None  # `if (!pml)` while pml is a held lock: not this path
        facts = facts.learn(atom, label)
    return tr.edge(st, atom, label), facts


def _before_states(
    events: list[list[Event]], states: list[_NodePaths], tr: Transfer
) -> tuple[list[list[LockState | None]], list[LockState | None], list[LockState | None]]:
    """Merged states: before each event, into each node, out of each node."""
    before: list[list[LockState | None]] = []
    state_in: list[LockState | None] = []
    state_out: list[LockState | None] = []
    for nid, node_events in enumerate(events):
        paths = states[nid].ordered()
        state_in.append(states[nid].merged())
        rows: list[list[LockState]] = [[] for _ in node_events]
        outs: list[Path] = []
        for path in paths:
            for i, ev in enumerate(node_events):
                rows[i].append(path[0])
                path = _apply(tr, path, ev)
            outs.append(path)
        merged_rows: list[LockState | None] = []
        for row in rows:
            m = _merge_all((st, Facts()) for st in row)
            merged_rows.append(m[0] if m is not None else None)
        before.append(merged_rows)
        m_out = _merge_all(outs)
        state_out.append(m_out[0] if m_out is not None else None)
    return before, state_in, state_out


def _callers_locks(
    events: list[list[Event]], before: list[list[LockState | None]]
) -> dict[LockRef, Mode]:
    """Locks released where they are not surely held: the caller took them.

    (A release in a retry loop that re-takes the lock later is reached both
    with and without it; the first time round it is the caller's.)
    """
    out: dict[LockRef, Mode] = {}
    for evs, states in zip(events, before, strict=True):
        for ev, st in zip(evs, states, strict=True):
            if (
                isinstance(ev, Release)
                and st is not None
                and not ev.guard
                and not ev.maybe
                and not any(st.same_lock(r.inst, ev.lock.inst) for r in st.must)
            ):
                out.setdefault(ev.lock, _mode_of_release(ev.primitive, ev.lock.cls))
    return out


def _lockless(
    fn: Function,
    events: list[list[Event]],
    rpo: list[int],
    idom: list[int],
    rpo_index: list[int],
) -> FunctionFacts:
    """A function that touches no lock: every reachable point holds nothing.

    Most kernel functions are like this; they skip the fixed point.
    """
    empty = LockState({}, {})
    reach = set(rpo)
    state_in = [empty if n in reach else None for n in range(len(events))]
    before = [[st] * len(evs) for st, evs in zip(state_in, events, strict=True)]
    exits = tuple(
        (nid, empty, frozenset[str](), return_value(fn.cfg.nodes[nid].text))
        for nid in rpo
        for succ, _ in fn.cfg.nodes[nid].succ
        if succ == fn.cfg.exit
    )
    return FunctionFacts(
        fn,
        events,
        before,
        state_in,
        list(state_in),
        idom,
        rpo_index,
        fn.budget_exceeded,
        frozenset(),
        exits,
    )


def analyse(
    fn: Function,
    effective: list[list[Event]] | None = None,
    max_visits: int = 200_000,
) -> FunctionFacts:
    """Run the dataflow to a fixed point; `effective` overrides node events.

    A second round starts from the locks the first round saw released
    without being taken (the caller's), so that code after such a release
    and re-acquisition is judged with the right entry state.
    """
    nodes = fn.cfg.nodes
    events = effective if effective is not None else [n.events for n in nodes]
    tr = Transfer(fn.lockvars)
    rpo = _rpo(fn)
    rpo_index = [-1] * len(nodes)
    for i, n in enumerate(rpo):
        rpo_index[n] = i
    preds = fn.cfg.preds()
    idom = _dominators(fn, rpo, preds)
    init = initial_state(fn)
    if not fn.entry_claims and not any(
        isinstance(ev, (Acquire, Release, Claim, Downgrade)) for evs in events for ev in evs
    ):
        return _lockless(fn, events, rpo, idom, rpo_index)
    states, budget = _fixpoint(fn, events, tr, rpo, init, max_visits)
    before, state_in, state_out = _before_states(events, states, tr)
    inferred = _callers_locks(events, before) if not budget else {}
    if inferred:
        init = initial_state(fn, inferred)
        states, budget = _fixpoint(fn, events, tr, rpo, init, max_visits)
        before, state_in, state_out = _before_states(events, states, tr)
    budget = budget or fn.budget_exceeded
    # a lock the function asserts it holds is the caller's too
    claimed = {
        ev.lock for evs in events for ev in evs if isinstance(ev, Claim) and ev.kind == "held"
    }
    entry_locks = frozenset(init.must) | claimed
    exits: list[tuple[int, LockState, frozenset[str], str]] = []
    for nid in rpo:
        node = nodes[nid]
        for succ, label in node.succ:
            if succ != fn.cfg.exit:
                continue
            arriving: list[Path] = []
            for path in states[nid].ordered():
                for ev in events[nid]:
                    path = _apply(tr, path, ev)
                edge = _take_edge(tr, path, node.atom, label)
                if edge is not None:
                    arriving.append(edge)
            ret = return_value(node.text)
            for st, facts in arriving:
                exits.append((nid, st, facts.released, facts.describe_value(ret)))
    return FunctionFacts(
        fn,
        events,
        before,
        state_in,
        state_out,
        idom,
        rpo_index,
        budget,
        entry_locks,
        tuple(exits),
    )


def substitute(
    inst: str,
    params: tuple[str, ...],
    args: tuple[str, ...],
    local_names: frozenset[str] = frozenset(),
) -> str | None:
    """A callee's lock expression in the caller's terms, or None if it is local.

    Expressions rooted at a parameter are rewritten with the argument;
    those rooted at a name the callee never assigns (a global such as
    `hugetlb_fault_mutex_table[hash]`) are kept as they are.
    """
    mapping = dict(zip(params, args, strict=False))
    inst = inst.split("@")[0]
    head = re.match(r"[A-Za-z_]\w*", inst)
    if head is None:
        return None
    name = head.group(0)
    if any(mentions(inst, local) for local in local_names):
        return None  # `table[idx].lock` with the callee's own idx
    if name not in mapping:
        return inst
    arg = mapping[name]
    rest = inst[head.end() :]
    if arg.startswith("&") and rest.startswith("->"):
        return arg[1:] + "." + rest[2:]
    return arg + rest


@dataclass(frozen=True, slots=True)
class Summary:
    """What a call to a function does, for its callers in the same file."""

    params: tuple[str, ...] = ()
    acts: tuple[Act, ...] = ()
    # (lock, mode, success): success "nonzero"/"zero" when the lock is held
    # only if the call returns non-zero/zero (trylock-like helpers), else None
    acquires: tuple[tuple[LockRef, Mode, str | None], ...] = ()
    releases: tuple[LockRef, ...] = ()
    returns: str | None = None  # the constant every way out returns, if one
    may_release: tuple[LockRef, ...] = ()  # the caller's locks dropped on some ways out
    locals: frozenset[str] = frozenset()  # names assigned inside: not the caller's

    def has_effects(self) -> bool:
        return bool(
            self.acts
            or self.acquires
            or self.releases
            or self.may_release
            or self.returns is not None
        )

    def effect_key(self) -> tuple[object, ...]:
        """What a caller sees, without source positions: for comparing variants."""
        return (
            self.acquires,
            self.releases,
            self.may_release,
            self.returns,
            tuple(sorted(a.kind for a in self.acts)),
        )


def return_value(text: str) -> str:
    """The expression of a `return ...;` statement's text, or ''."""
    t = " ".join(text.split())
    if t.startswith("return"):
        return t[len("return") :].strip().rstrip(";").strip()
    return ""


def _acquire_outcome(facts: FunctionFacts, ref: LockRef) -> str:
    """How a caller can tell whether `ref` is held after the call.

    "always": on every way out; "nonzero"/"zero": exactly when the return
    value is non-zero/zero (a trylock-like helper); "never": no telling.
    """
    holding = [(st, ret) for _, st, _, ret in facts.exits if ref in st.may]
    free = [ret for _, st, _, ret in facts.exits if ref not in st.may]
    conds = {st.may[ref].cond_var for st, _ in holding}
    if conds == {"#ret"}:
        fails = {st.may[ref].fail_when for st, _ in holding}
        return "nonzero" if fails == {"zero"} else "zero" if fails == {"nonzero"} else "never"
    if not free and all(ref in st.must for st, _ in holding):
        return "always"
    held_vals = {ret for _, ret in holding}
    free_vals = set(free)
    if signals_holding(held_vals, free_vals):
        return "zero" if all(_is_zeroish(v) for v in held_vals) else "nonzero"
    return "never"


def _annotated_success(facts: FunctionFacts) -> str | None:
    """When `__acquires(x)` holds: a function that returns 0 on some ways out
    and something else on others follows the kernel's 0-is-success rule, and
    its error paths are not promised to hold the lock."""
    values = {ret for _, _, _, ret in facts.exits}
    if "0" in values and "" not in values and len(values) > 1:
        return "zero"
    return None


def _is_zeroish(value: str) -> bool:
    return value in _ZERO or value.endswith(":zero")


def is_failure_value(value: str) -> bool:
    """A return value that reads as "did not happen": NULL, false, -Exxx, ERR_PTR()."""
    v = value.strip("() ")
    return v in ("NULL", "false") or v.startswith(("-", "ERR_PTR"))


def signals_holding(held_vals: set[str], free_vals: set[str]) -> bool:
    """Do the returns tell the caller whether the lock is held?

    `return ptl;` versus `return NULL;`, `return 0;` versus `return -EINTR;`,
    `return 1;` versus `return 0;`, or one variable that is known zero on
    every path without the lock (`return vma;` after `if (!vma) unlock`):
    the holding returns report success and the others failure. A lock still
    held at `return -EINVAL;` is the opposite: a leak on an error path.
    """
    if not held_vals or not free_vals or "" in held_vals or held_vals & free_vals:
        return False
    names = {v.rsplit(":", 1)[0] for v in held_vals | free_vals if not is_constant(v)}
    if len(names) == 1:
        (var,) = names
        # the same variable returned everywhere: zero exactly without the lock
        free_zero = all(_is_zeroish(v) for v in free_vals)
        held_nonzero = all(
            v in (var, f"{var}:nonzero") or (is_constant(v) and not _is_zeroish(v))
            for v in held_vals
        )
        if free_zero and held_nonzero:
            return True
        # 0 with the lock, a known non-zero (error) value without it
        held_zero = all(_is_zeroish(v) for v in held_vals)
        free_nonzero = all(
            v == f"{var}:nonzero" or (is_constant(v) and not _is_zeroish(v)) for v in free_vals
        )
        return held_zero and free_nonzero
    bool_like = all(is_constant(v) for v in held_vals | free_vals)
    held_true = all(not _is_zeroish(v) and not is_failure_value(v) for v in held_vals)
    if bool_like and held_true and all(v in ("0", "false", "NULL") for v in free_vals):
        return True  # `return 1;` / `return true;` with the lock, 0 without
    if (
        bool_like
        and all(v in ("0", "false") for v in held_vals)
        and all(v in ("1", "true") for v in free_vals)
    ):
        return True  # `return false;` with the lock, `return true;` ("done") without
    return not any(is_failure_value(v) for v in held_vals) and all(
        is_failure_value(v) for v in free_vals
    )


@dataclass(slots=True)
class FileFacts:
    functions: list[FunctionFacts] = field(default_factory=list)
    summaries: dict[str, Summary] = field(default_factory=dict)


def _call_graph_order(functions: list[Function]) -> list[int]:
    """Indices of `functions`, callees before callers.

    A name defined twice (#ifdef variants) counts as both definitions; cycles
    are broken deterministically, in source order.
    """
    by_name: dict[str, list[int]] = {}
    for i, f in enumerate(functions):
        by_name.setdefault(f.name, []).append(i)
    calls: list[list[int]] = []
    for f in functions:
        seen: list[int] = []
        for n in f.cfg.nodes:
            for ev in n.events:
                if isinstance(ev, Call):
                    for j in by_name.get(ev.callee, ()):
                        if j not in seen:
                            seen.append(j)
        calls.append(seen)
    order: list[int] = []
    state = [0] * len(functions)
    for root in range(len(functions)):
        if state[root]:
            continue
        stack = [(root, 0)]
        state[root] = 1
        while stack:
            cur, i = stack[-1]
            if i < len(calls[cur]):
                stack[-1] = (cur, i + 1)
                c = calls[cur][i]
                if not state[c]:
                    state[c] = 1
                    stack.append((c, 0))
            else:
                stack.pop()
                state[cur] = 2
                order.append(cur)
    return order


def _effective_events(
    fn: Function, summaries: Mapping[str, Summary], defined: frozenset[str] = frozenset()
) -> list[list[Event]]:
    out: list[list[Event]] = []
    for node in fn.cfg.nodes:
        evs: list[Event] = []
        for ev in node.events:
            if isinstance(ev, Call) and ev.callee not in defined:
                ev = replace(ev, external=True)
            evs.append(ev)
            if not isinstance(ev, Call):
                continue
            summ = summaries.get(ev.callee)
            if summ is None:
                continue
            callee_params = summ.params
            for ref in summ.releases:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals)
                if inst is not None:
                    evs.append(Release(LockRef(inst, cls=ref.cls), ev.site, ev.callee))
                else:  # a lock we cannot name here: any lock of its class may be gone
                    evs.append(Release(LockRef("*", cls=ref.cls), ev.site, ev.callee, maybe=True))
            for ref in summ.may_release:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals)
                evs.append(
                    Release(LockRef(inst or "*", cls=ref.cls), ev.site, ev.callee, maybe=True)
                )
            for ref, mode, success in summ.acquires:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals)
                if inst is None:
                    continue
                cond = ev.result if success is not None else None
                fail = "zero" if success == "nonzero" else "nonzero"
                evs.append(
                    Acquire(LockRef(inst, cls=ref.cls), mode, ev.site, ev.callee, False, cond, fail)  # type: ignore[arg-type]
                )
            for act in summ.acts:
                evs.append(Act(act.kind, act.target, ev.site, ev.callee, act.inner_checks))
            if summ.returns is not None and ev.result and not ev.result.startswith("#"):
                evs.append(Assign(ev.result, ev.site, summ.returns))
        out.append(evs)
    return out


def summarise(facts: FunctionFacts) -> Summary:
    fn = facts.fn
    own = [(nid, ev) for nid, ev, _ in facts.iter_events() if isinstance(ev, Act)]
    # checks that decide some act of this function, with the locks held there
    deciding = [
        (nid, ev, st)
        for nid, ev, st in facts.iter_events()
        if isinstance(ev, Check)
        and fn.cfg.nodes[nid].kind == "branch"
        and any(facts.gates(nid, an) for an, _ in own)
    ]
    acts: list[Act] = []
    for nid, act in own:
        inner = list(act.inner_checks)
        for cnid, chk, cst in deciding:
            if facts.dominates(cnid, nid):
                inner.append((chk.flag, cst.held_keys()))
        acts.append(Act(act.kind, act.target, act.site, act.via, tuple(inner)))
    acquires: list[tuple[LockRef, Mode, str | None]] = []
    releases: list[LockRef] = list(fn.exit_releases)
    may_release: list[LockRef] = []
    exit_st = facts.state_in[fn.cfg.exit]
    if exit_st is not None:
        # only what the function itself releases: a lock it merely asserts
        # (lockdep_assert_held() on one branch) is not dropped by calling it
        released_here = {
            ev.lock for evs in facts.events for ev in evs if isinstance(ev, Release)
        }
        for ref in facts.entry_locks:
            if ref not in released_here:
                continue
            if ref not in exit_st.may and ref not in releases:
                releases.append(ref)
            elif ref not in exit_st.must or exit_st.may[ref].escaped:
                may_release.append(ref)
        for ref, held in exit_st.may.items():
            if held.assumed or ref in facts.entry_locks:
                continue
            success = _acquire_outcome(facts, ref)
            if success != "never":
                acquires.append((ref, held.mode, None if success == "always" else success))
    for ref in fn.exit_acquires:
        if all(r != ref for r, _, _ in acquires):
            acquires.append((ref, "excl", _annotated_success(facts)))
    values = {return_value(fn.cfg.nodes[n].text) for n, _, _, _ in facts.exits}
    returns = next(iter(values)) if len(values) == 1 else None
    if returns is not None and not is_constant(returns):
        returns = None
    assigned = frozenset(
        ev.var for evs in facts.events for ev in evs if isinstance(ev, Assign)
    ) - frozenset(fn.params)
    return Summary(
        fn.params,
        tuple(acts),
        tuple(acquires),
        tuple(releases),
        returns,
        tuple(may_release),
        assigned,
    )


def library_summaries(functions: list[Function]) -> dict[str, Summary]:
    """Summaries of helpers defined elsewhere (header inlines), for callers here."""
    return analyse_file(functions).summaries


def analyse_file(
    functions: list[Function], library: Mapping[str, Summary] | None = None
) -> FileFacts:
    """Analyse callees first so that callers see their summaries.

    `library` holds summaries of functions defined outside the file (the
    tree's header inlines); the file's own definitions take precedence.
    """
    out = FileFacts()
    out.summaries.update(library or {})
    facts_by_index: dict[int, FunctionFacts] = {}
    defined = frozenset(f.name for f in functions) | frozenset(library or {})
    effects: dict[str, tuple[object, ...]] = {}
    ambiguous: set[str] = set()  # #ifdef variants that disagree: effects unknown
    for i in _call_graph_order(functions):
        fn = functions[i]
        facts = analyse(fn, _effective_events(fn, out.summaries, defined - ambiguous))
        facts_by_index[i] = facts
        summ = summarise(facts)
        key = summ.effect_key()
        if effects.setdefault(fn.name, key) != key:
            ambiguous.add(fn.name)
        if fn.name in ambiguous:
            out.summaries.pop(fn.name, None)
        elif summ.has_effects():
            out.summaries[fn.name] = summ
        else:
            out.summaries.pop(fn.name, None)  # a local definition hides a header's
    out.functions = [facts_by_index[i] for i in range(len(functions))]
    return out
