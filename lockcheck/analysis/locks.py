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
from collections.abc import Iterable, Mapping
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
)

RW_CLASS_RE = re.compile(r"(mmap_lock|rwsem|_sem$|rwlock)")


@dataclass(frozen=True, slots=True)
class Held:
    mode: Mode
    site: Site
    cond_var: str | None = None
    fail_when: str = "zero"
    assumed: bool = False  # taken before the function, per a claim or annotation


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
        return a == b or frozenset((a, b)) in self.eqs


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
            )
    may = dict(b.may)
    may.update(a.may)
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
            return self._drop(st, ev.lock)
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
            return self._kill_var(st, ev.var)
        return st

    def _drop(self, st: LockState, lock: LockRef) -> LockState:
        def gone(ref: LockRef) -> bool:
            return st.same_lock(ref.inst, lock.inst)

        return LockState(
            {r: h for r, h in st.must.items() if not gone(r)},
            {r: h for r, h in st.may.items() if not gone(r)},
            st.eqs,
        )

    @staticmethod
    def _kill_var(st: LockState, var: str) -> LockState:
        eqs = frozenset(e for e in st.eqs if var not in e)

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                r: (replace(h, cond_var=None) if h.cond_var == var else h) for r, h in d.items()
            }

        if eqs == st.eqs and not any(h.cond_var == var for h in st.may.values()):
            return st
        return LockState(fix(st.must), fix(st.may), eqs)

    def edge(self, st: LockState, atom: Atom | None, label: bool | None) -> LockState:
        if atom is not None and label is not None:
            if atom.kind == "value":
                st = self._resolve_cond(st, atom.a, label)
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


def initial_state(fn: Function) -> LockState:
    must: dict[LockRef, Held] = {}
    for claim in fn.entry_claims:
        mode: Mode = claim.mode or ("read" if RW_CLASS_RE.search(claim.lock.cls) else "excl")
        must[claim.lock] = Held(mode, claim.site, assumed=True)
    return LockState(must, dict(must))


def analyse(
    fn: Function,
    effective: list[list[Event]] | None = None,
    max_visits: int = 200_000,
) -> FunctionFacts:
    """Run the dataflow to a fixed point; `effective` overrides node events."""
    nodes = fn.cfg.nodes
    events = effective if effective is not None else [n.events for n in nodes]
    tr = Transfer(fn.lockvars)
    rpo = _rpo(fn)
    rpo_index = [-1] * len(nodes)
    for i, n in enumerate(rpo):
        rpo_index[n] = i
    preds = fn.cfg.preds()
    idom = _dominators(fn, rpo, preds)
    state_in: list[LockState | None] = [None] * len(nodes)
    state_out: list[LockState | None] = [None] * len(nodes)
    state_in[fn.cfg.entry] = initial_state(fn)
    pending = set(rpo)
    visits = 0
    budget = fn.budget_exceeded
    while pending and not budget:
        for nid in rpo:
            if nid not in pending:
                continue
            pending.discard(nid)
            visits += 1
            if visits > max_visits:
                budget = True
                break
            st = state_in[nid]
            if st is None:
                continue
            for ev in events[nid]:
                st = tr.event(st, ev)
            state_out[nid] = st
            node = nodes[nid]
            for succ, label in node.succ:
                new = join(state_in[succ], tr.edge(st, node.atom, label))
                if new != state_in[succ]:
                    state_in[succ] = new
                    pending.add(succ)
    before: list[list[LockState | None]] = []
    for nid, node_events in enumerate(events):
        st = state_in[nid]
        row: list[LockState | None] = []
        for ev in node_events:
            row.append(st)
            if st is not None:
                st = tr.event(st, ev)
        before.append(row)
    return FunctionFacts(fn, events, before, state_in, state_out, idom, rpo_index, budget)


def substitute(inst: str, params: tuple[str, ...], args: tuple[str, ...]) -> str | None:
    """A callee's lock expression in the caller's terms, or None if it is local."""
    mapping = dict(zip(params, args, strict=False))
    head = re.match(r"[A-Za-z_]\w*", inst)
    if head is None:
        return None
    if head.group(0) not in mapping:
        return inst if head.group(0) in ("rcu",) or head.group(0).isupper() else None
    arg = mapping[head.group(0)]
    rest = inst[head.end() :]
    if arg.startswith("&") and rest.startswith("->"):
        return arg[1:] + "." + rest[2:]
    return arg + rest


@dataclass(frozen=True, slots=True)
class Summary:
    """What a call to a function does, for its callers in the same file."""

    params: tuple[str, ...] = ()
    acts: tuple[Act, ...] = ()
    acquires: tuple[tuple[LockRef, Mode], ...] = ()
    releases: tuple[LockRef, ...] = ()


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


def _effective_events(fn: Function, summaries: Mapping[str, Summary]) -> list[list[Event]]:
    out: list[list[Event]] = []
    for node in fn.cfg.nodes:
        evs: list[Event] = []
        for ev in node.events:
            evs.append(ev)
            if not isinstance(ev, Call):
                continue
            summ = summaries.get(ev.callee)
            if summ is None:
                continue
            callee_params = summ.params
            for ref in summ.releases:
                inst = substitute(ref.inst, callee_params, ev.args)
                if inst is not None:
                    evs.append(Release(LockRef(inst, cls=ref.cls), ev.site, ev.callee))
            for ref, mode in summ.acquires:
                inst = substitute(ref.inst, callee_params, ev.args)
                if inst is not None:
                    evs.append(Acquire(LockRef(inst, cls=ref.cls), mode, ev.site, ev.callee))
            for act in summ.acts:
                evs.append(Act(act.kind, act.target, ev.site, ev.callee, act.inner_checks))
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
    acquires: list[tuple[LockRef, Mode]] = []
    exit_st = facts.state_in[fn.cfg.exit]
    if exit_st is not None:
        for ref, h in exit_st.must.items():
            if not h.assumed:
                acquires.append((ref, h.mode))
    for ref in fn.exit_acquires:
        if all(r != ref for r, _ in acquires):
            acquires.append((ref, "excl"))
    releases = list(fn.exit_releases)
    for _nid, ev, st in facts.iter_events():
        if isinstance(ev, Release) and ev.lock not in st.may and ev.lock not in releases:
            releases.append(ev.lock)
        if isinstance(ev, Release):
            held = st.must.get(ev.lock)
            if held is not None and held.assumed and ev.lock not in releases:
                releases.append(ev.lock)
    return Summary(fn.params, tuple(acts), tuple(acquires), tuple(releases))


def analyse_file(functions: list[Function]) -> FileFacts:
    """Analyse callees first so that callers see their summaries."""
    out = FileFacts()
    facts_by_index: dict[int, FunctionFacts] = {}
    for i in _call_graph_order(functions):
        fn = functions[i]
        facts = analyse(fn, _effective_events(fn, out.summaries))
        facts_by_index[i] = facts
        summ = summarise(facts)
        if summ.acts or summ.acquires or summ.releases:
            out.summaries[fn.name] = summ
    out.functions = [facts_by_index[i] for i in range(len(functions))]
    return out
