"""One function's dataflow to a fixed point.

Conditional holds (a trylock or `pte_offset_map_lock()` result tested
later) and pointer equalities from `if (ptl != pml)` are carried per path;
a second round starts from the locks the caller must have held.
"""

from __future__ import annotations

from typing import TypeGuard

from lockcheck.analysis.function import FunctionFacts, dominators, return_value, reverse_postorder
from lockcheck.analysis.paths import (
    MAX_PATHS,
    Facts,
    NodePaths,
    Path,
    apply_event,
    merge_paths,
    take_edge,
)
from lockcheck.analysis.state import LockState, initial_state, mode_of_release
from lockcheck.analysis.transfer import Transfer
from lockcheck.model.ir import (
    Acquire,
    Claim,
    Downgrade,
    Event,
    Function,
    LockRef,
    Mode,
    Release,
)


def _fixpoint(
    fn: Function,
    events: list[list[Event]],
    tr: Transfer,
    rpo: list[int],
    init: LockState,
    max_visits: int,
    max_paths: int = MAX_PATHS,
) -> tuple[list[NodePaths], bool]:
    nodes = fn.cfg.nodes
    tests: dict[str, int] = {}
    for node in nodes:
        atom = node.atom
        if node.kind == "branch" and atom is not None and atom.factable and atom.text:
            tests[atom.text] = tests.get(atom.text, 0) + 1
    retested = frozenset(t for t, n in tests.items() if n > 1)
    # a retested condition whose branch leads straight to a lock event
    gating = frozenset(
        node.atom.text
        for node in nodes
        if node.kind == "branch"
        and node.atom is not None
        and node.atom.text in retested
        and any(
            isinstance(ev, Acquire | Release) for succ, _ in node.succ for ev in events[succ]
        )
    )
    states = [NodePaths(retested, gating, max_paths) for _ in nodes]
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
                    path = apply_event(tr, path, ev)
                for succ, label in node.succ:
                    edge = take_edge(tr, path, node.atom, label)
                    if edge is not None and states[succ].add(edge):
                        pending.add(succ)
    return states, False


def _before_states(
    events: list[list[Event]], states: list[NodePaths], tr: Transfer
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
                path = apply_event(tr, path, ev)
            outs.append(path)
        merged_rows: list[LockState | None] = []
        for row in rows:
            if len(row) == 1:  # one path, the usual case: its state is the merge
                merged_rows.append(row[0])
                continue
            m = merge_paths((st, Facts()) for st in row)
            merged_rows.append(m[0] if m is not None else None)
        before.append(merged_rows)
        m_out = merge_paths(outs)
        state_out.append(m_out[0] if m_out is not None else None)
    return before, state_in, state_out


def _callers_locks(
    events: list[list[Event]], before: list[list[LockState | None]]
) -> tuple[dict[LockRef, Mode], dict[LockRef, list[int]]]:
    """Locks released where they are not surely held: the caller took them.

    (A release in a retry loop that re-takes the lock later is reached both
    with and without it; the first time round it is the caller's.) Also
    the nodes of those releases, per lock.
    """
    out: dict[LockRef, Mode] = {}
    where: dict[LockRef, list[int]] = {}
    for nid, (evs, states) in enumerate(zip(events, before, strict=True)):
        for ev, st in zip(evs, states, strict=True):
            if (
                isinstance(ev, Release)
                and st is not None
                and not ev.guard
                and not ev.maybe
                and not any(st.same_lock(r.inst, ev.lock.inst) for r in st.must)
            ):
                out.setdefault(ev.lock, mode_of_release(ev.primitive, ev.lock.cls))
                where.setdefault(ev.lock, []).append(nid)
    return out, where


def _inconsistent(
    fn: Function,
    events: list[list[Event]],
    before: list[list[LockState | None]],
    inferred: dict[LockRef, Mode],
    releases: dict[LockRef, list[int]],
) -> set[LockRef]:
    """Inferred caller locks the function itself takes while still holding them.

    A caller-held lock that the function takes again before releasing it
    would deadlock: the release that suggested it was the caller's is an
    unlock of a lock not held (a test moved above its lock, a second unlock
    after the lock's own), not a function "called with L held". A lock
    dropped and taken again (one of the releases that suggested it can
    reach the acquisition, as in a retry loop) stays the caller's, and so
    does one the function takes only on paths that never release it.
    """
    out: set[LockRef] = set()
    for nid, (evs, states) in enumerate(zip(events, before, strict=True)):
        for ev, st in zip(evs, states, strict=True):
            if not isinstance(ev, Acquire) or st is None or ev.cond_var is not None or ev.guard:
                continue
            if ev.fresh:
                continue  # `ptl = pmd_lock(...)`: a new lock value, maybe not the caller's
            for ref, held in st.may.items():
                if not (held.assumed and ref in inferred and st.same_lock(ref.inst, ev.lock.inst)):
                    continue
                rels = releases.get(ref, ())
                if any(_reaches(fn, r, nid) for r in rels):
                    continue
                if rels and not any(_reaches(fn, nid, r) for r in rels):
                    # never both on one path: a helper that locks or unlocks
                    # as its argument says (`do_map_lock(sbi, flag, lock)`)
                    continue
                out.add(ref)
    return out


def _reaches(fn: Function, start: int, goal: int) -> bool:
    seen = {start}
    stack = [start]
    nodes = fn.cfg.nodes
    while stack:
        cur = stack.pop()
        for s, _ in nodes[cur].succ:
            if s == goal:
                return True
            if s not in seen:
                seen.add(s)
                stack.append(s)
    return False


def _unheld_releases(
    events: list[list[Event]],
    before: list[list[LockState | None]],
    states: list[NodePaths],
    tr: Transfer,
) -> tuple[tuple[int, Release, bool], ...]:
    """Releases of a lock not held: no path reaching them holds it (an unlock
    before the lock), or one path reaching them surely released it already
    and has not taken it again (a double unlock: the flag)."""

    def held(st: LockState, lock: str) -> bool:
        # a lock renamed by a later assignment (`p->lock@12`) may be this one
        return any(st.same_lock(r.inst.split("@")[0], lock) for r in st.may)

    out: list[tuple[int, Release, bool]] = []
    for nid, (evs, merged) in enumerate(zip(events, before, strict=True)):
        if not any(isinstance(ev, Release) for ev in evs):
            continue
        hits: dict[int, bool] = {}
        for i, (ev, st) in enumerate(zip(evs, merged, strict=True)):
            if _plain_release(ev) and st is not None and not held(st, ev.lock.inst):
                hits[i] = False
        for path in states[nid].ordered():
            for i, ev in enumerate(evs):
                if (
                    i not in hits
                    and _plain_release(ev)
                    and ev.lock.inst in path[1].released
                    # exactly this lock: a renamed one (`p@12`) is an older object
                    and not any(path[0].same_lock(r.inst, ev.lock.inst) for r in path[0].may)
                ):
                    hits[i] = True
                path = apply_event(tr, path, ev)
        out.extend(
            (nid, ev, hits[i]) for i, ev in enumerate(evs) if i in hits and _plain_release(ev)
        )
    return tuple(out)


def _plain_release(ev: Event) -> TypeGuard[Release]:
    return isinstance(ev, Release) and not ev.guard and not ev.maybe and ev.lock.inst != "*"


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
    rpo = reverse_postorder(fn)
    rpo_index = [-1] * len(nodes)
    for i, n in enumerate(rpo):
        rpo_index[n] = i
    preds = fn.cfg.preds()
    idom = dominators(fn, rpo, preds)
    init = initial_state(fn)
    if not fn.entry_claims and not any(
        isinstance(ev, (Acquire, Release, Claim, Downgrade)) for evs in events for ev in evs
    ):
        return _lockless(fn, events, rpo, idom, rpo_index)
    states, budget = _fixpoint(fn, events, tr, rpo, init, max_visits)
    before, state_in, state_out = _before_states(events, states, tr)
    inferred, _unheld_at = _callers_locks(events, before) if not budget else ({}, {})
    released_at: dict[LockRef, list[int]] = {}
    for nid, evs in enumerate(events):
        for ev in evs:
            if isinstance(ev, Release) and not ev.maybe and ev.lock in inferred:
                released_at.setdefault(ev.lock, []).append(nid)
    if inferred:
        first = (states, budget, before, state_in, state_out)
        init = initial_state(fn, inferred)
        states, budget = _fixpoint(fn, events, tr, rpo, init, max_visits)
        before, state_in, state_out = _before_states(events, states, tr)
        bad = _inconsistent(fn, events, before, inferred, released_at) if not budget else set()
        if bad:
            inferred = {r: m for r, m in inferred.items() if r not in bad}
            if inferred:
                init = initial_state(fn, inferred)
                states, budget = _fixpoint(fn, events, tr, rpo, init, max_visits)
                before, state_in, state_out = _before_states(events, states, tr)
            else:
                init = initial_state(fn)
                states, budget, before, state_in, state_out = first
    budget = budget or fn.budget_exceeded
    unheld = _unheld_releases(events, before, states, tr) if not budget else ()
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
                    path = apply_event(tr, path, ev)
                edge = take_edge(tr, path, node.atom, label)
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
        unheld,
    )
