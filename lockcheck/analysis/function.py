"""What rules may ask about one analysed function: states, dominators, exits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lockcheck.analysis.state import LockState
from lockcheck.model.ir import (
    Event,
    Function,
    LockRef,
    Release,
)


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
    # releases reached only on paths where the lock is not held (after the
    # caller's locks are accounted for): unlocks before locks, and double
    # unlocks (flag: a path reaching it surely released the lock already)
    unheld_releases: tuple[tuple[int, Release, bool], ...] = ()
    # `iter_events`, once asked (not part of what the facts say)
    reached: tuple[tuple[int, Event, LockState], ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

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

    def entry_reaches_avoiding(self, goal: int, avoid: set[int]) -> bool:
        """Can `goal` be reached from the entry without passing a node in `avoid`?"""
        start = self.fn.cfg.entry
        if start in avoid:
            return False
        seen = {start}
        stack = [start]
        nodes = self.fn.cfg.nodes
        while stack:
            cur = stack.pop()
            if cur == goal:
                return True
            for s, _ in nodes[cur].succ:
                if s not in seen and s not in avoid:
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
        """(node, event, state before it) for reachable events, in node order.

        Listed once: the summary, every rule and the order graph ask again."""
        if self.reached is None:
            self.reached = tuple(
                (nid, ev, st)
                for nid, evs in enumerate(self.events)
                for ev, st in zip(evs, self.before[nid], strict=True)
                if st is not None
            )
        return self.reached


def reverse_postorder(fn: Function) -> list[int]:
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


def dominators(fn: Function, rpo: list[int], preds: list[list[int]]) -> list[int]:
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


def return_value(text: str) -> str:
    """The expression of a `return ...;` statement's text, or ''."""
    t = " ".join(text.split())
    if t.startswith("return"):
        return t[len("return") :].strip().rstrip(";").strip()
    return ""
