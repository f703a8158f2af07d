"""Kind `stale-value`: an entry value read before its lock decides an act under the lock.

A page-table entry read without the lock that keeps it stable (or under an
earlier hold of it, since dropped) may be out of date by the time the lock
is taken: a racing fault, zap or collapse can have changed it. When such a
value decides an act on the table under the lock (a branch on it gates the
act, or it flows into the act's arguments), the act is safe only after the
entry is re-validated under the lock: a `revalidate` call (`pte_same()`,
`pmd_same()`) or a fresh read of an entry tested by a branch, between the
acquisition and the act, with the lock held throughout.

Parameters: `acts` (act kinds), `locks` (lock classes whose hold protects
them), `reads` (lock classes of the entry reads that count), `revalidate`
(calls that compare a value with the entry, and lock primitives that
re-test it under the lock), `snapshots` (`field:class` rows: fields holding
a value the caller read, such as `vmf->orig_pte`), `asserts` (assertions
whose fresh entry read counts as a re-test), `detach` (acts that take a
table out of every walker's reach: its entries are stable after them), and
`kernel_mms` / `new_mms` (the kernel's mm, and calls making a new mm: a lock
of their tables guards no user table, see rules/tables.py).
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held, LockState, base_inst
from lockcheck.analysis.values import (
    EntryValue,
    act_events,
    entry_pointer,
    entry_values,
    marked_since_taken,
    uses,
)
from lockcheck.errors import PackError
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, Act, Call, LockRef, Read, Site
from lockcheck.packs import RuleSpec
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import code
from lockcheck.rules.tables import TableOwners


class StaleValue(Rule):
    kind = "stale-value"
    params = {"acts": list, "locks": list, "reads": list, "revalidate": list}
    optional = {
        "snapshots": list,
        "asserts": list,
        "detach": list,
        "kernel_mms": list,
        "new_mms": list,
    }

    def __init__(self, spec: RuleSpec) -> None:
        super().__init__(spec)
        self.retesting: frozenset[str] = frozenset()
        self.callee_params: dict[str, tuple[str, ...]] = {}
        p = spec.params
        self.acts = frozenset(p["acts"])
        self.locks = frozenset(p["locks"])
        self.reads = set(p["reads"])
        self.revalidators = frozenset(p["revalidate"])
        self.asserts = frozenset(p.get("asserts", ()))
        self.detach = frozenset(p.get("detach", ()))
        self.kernel_mms = tuple(p.get("kernel_mms", ()))
        self.new_mms = tuple(p.get("new_mms", ()))
        self.owners = TableOwners((), (), ())
        self.snapshots: dict[str, str] = {}
        self.carried: dict[str, str] = {}  # entry pointer field -> its snapshot field
        for i, row in enumerate(p.get("snapshots", [])):
            parts = row.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise PackError(
                    f"{spec.where('snapshots')}[{i}]: must read 'field:lock_class[:pointer_field]'"
                )
            self.snapshots[parts[0]] = parts[1]
            if len(parts) == 3:
                self.carried[parts[2]] = parts[0]

    def run(self, ctx: RuleContext) -> None:
        self.retesting = self._retesting_helpers(ctx)
        self.callee_params = {name: summ.params for name, summ in ctx.facts.summaries.items()}
        self.owners = TableOwners(ctx.facts.functions, self.kernel_mms, self.new_mms)
        self._reached: dict[tuple[int, int], set[int]] = {}
        for fn in ctx.facts.functions:
            self._function(ctx, fn)
        self._reached = {}

    def _retesting_helpers(self, ctx: RuleContext) -> frozenset[str]:
        """Same-file helpers that re-test an entry: they call a `revalidate`
        function or test an entry they read (`vmf_pte_changed()`,
        `pte_range_none()`), directly or through each other."""
        found = set(self.revalidators)
        calls: dict[str, set[str]] = {}
        for ff in ctx.facts.functions:
            nodes = ff.fn.cfg.nodes
            for nid, evs in enumerate(ff.events):
                for ev in evs:
                    if isinstance(ev, Call):
                        calls.setdefault(ff.fn.name, set()).add(ev.callee)
                    elif (
                        isinstance(ev, Read)
                        and ev.cls in self.reads
                        and nodes[nid].kind == "branch"
                        and not any(isinstance(e, Act) for e in ff.events[nid])
                    ):
                        found.add(ff.fn.name)
        # to a fixed point: one round per link when callers come before their callees
        grew = True
        while grew:
            grew = False
            for name, callees in calls.items():
                if name not in found and callees & found:
                    found.add(name)
                    grew = True
        return frozenset(found)

    def _function(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        acts = [
            (nid, i, ev, st)
            for nid, i, ev, st in act_events(fn, self.callee_params)
            if ev.kind in self.acts and st is not None
        ]
        if not acts:
            return
        values: list[EntryValue] | None = None
        reported: set[tuple[int, int]] = set()
        for an, ai, act, st in acts:
            holds = _own_holds(st, self.locks)
            if not holds:
                continue
            if values is None:
                values = entry_values(fn, self.reads, self.snapshots)
            ref, held = holds[-1]  # the lock taken last is the one the act relies on
            if self._unwalked(fn, act, held):
                continue
            key = base_inst(ref.inst)
            candidates = [
                *values,
                *self._carried(fn, act, values),
                *self._param_snapshots(fn, values),
            ]
            # a value that flows into the act explains it best
            candidates.sort(key=lambda v: not uses(fn, v, an))
            for val in candidates:
                if self._fresh(fn, val, key, an, ai) or not self._decides(fn, val, an, act):
                    continue
                if self._detached(ctx, fn):
                    break
                if self._retested_inside(act, val) or self._revalidated(fn, key, an, ai, val):
                    continue  # this value is checked; another may not be
                site = (act.site.line, act.site.column)
                if site not in reported:
                    reported.add(site)
                    self._report(ctx, fn, act, ref, held, val)
                break

    def _unwalked(self, fn: FunctionFacts, act: Act, held: Held) -> bool:
        """Are the tables the kernel's or of a new mm (by the act, or by the
        lock it relies on)? No racing fault or collapse reaches them."""
        if not self.owners:
            return False
        if self.owners.act_on_kernel_mm(act):
            return True
        return any(
            isinstance(ev, Acquire) and ev.site == held.site and self.owners.private_lock(fn, ev)
            for evs in fn.events
            for ev in evs
        )

    @staticmethod
    def _fresh(fn: FunctionFacts, val: EntryValue, key: str, an: int, ai: int) -> bool:
        """Was the value read under the lock, after it was last taken, on every way here?"""
        read = val.read
        if read is None:
            return False

        def is_read(_nid: int, ev: object, st: LockState) -> bool:
            return ev is read and _holds(st, key)

        return marked_since_taken(fn, key, is_read).get((an, ai), False)

    def _carried_names(self, act: Act) -> set[str]:
        base, sep, fld = act.target.rpartition("->")
        snap = self.carried.get(fld) if sep else None
        return {f"{base}->{snap}"} if snap is not None else set()

    def _param_snapshots(self, fn: FunctionFacts, values: list[EntryValue]) -> list[EntryValue]:
        """`pud_t orig_pud` as a parameter: the caller's read of the entry the
        function is about, whether the function compares it or not."""
        named = {n for v in values for n in v.names}
        out = []
        for param in fn.fn.params:
            if param in self.snapshots and param not in named:
                site = Site(fn.fn.start_line, 1, f"{param} (passed by the caller)")
                out.append(
                    EntryValue(
                        self.snapshots[param], fn.fn.cfg.entry, site, None, None, {param}, param
                    )
                )
        return out

    def _carried(self, fn: FunctionFacts, act: Act, values: list[EntryValue]) -> list[EntryValue]:
        """The snapshot a structure carries with the entry pointer the act uses.

        An act on `vmf->pte` in a function given `vmf` acts on the entry the
        caller read into `vmf->orig_pte`, whether this function reads the
        snapshot or not.
        """
        base, sep, fld = act.target.rpartition("->")
        snap = self.carried.get(fld) if sep else None
        if snap is None or base in {w for v in values if v.read for w in v.names}:
            return []
        name = f"{base}->{snap}"
        if any(name in v.names for v in values):
            return []
        site = Site(fn.fn.start_line, 1, f"{name} (set by the caller)")
        return [EntryValue(self.snapshots[snap], fn.fn.cfg.entry, site, None, None, {name}, name)]

    def _reach(self, fn: FunctionFacts, nid: int) -> set[int]:
        key = (id(fn), nid)
        got = self._reached.get(key)
        if got is None:
            got = self._reached[key] = fn.reachable_from(nid)
        return got

    def _decides(self, fn: FunctionFacts, val: EntryValue, an: int, act: Act) -> bool:
        """The value flows into the act, or a branch on it gates an act on its own entry."""
        snapshot = val.node == fn.fn.cfg.entry and val.read is None
        if snapshot and val.names & (self._carried_names(act) | set(fn.fn.params)):
            return True  # the snapshot of the very entry acted on
        if val.read is not None and an not in self._reach(fn, val.node):
            return False  # read on a path that never gets to the act (`goto unlock` before it)
        if uses(fn, val, an):
            return True
        if val.read is not None and act.target and act.via is None and val.read.ptr != act.target:
            return False  # a test of another entry (`*new_pmd` before clearing `old_pmd`)
        nodes = fn.fn.cfg.nodes
        return any(
            nodes[b].kind == "branch" and fn.gates(b, an) and uses(fn, val, b)
            for b in range(len(nodes))
            if fn.state_in[b] is not None and fn.dominates(b, an)
        )

    def _revalidated(self, fn: FunctionFacts, key: str, an: int, ai: int, val: EntryValue) -> bool:
        """Is the entry compared or re-tested under the lock, since it was last taken,
        on every way to the act?

        A `revalidate` call (or an acquisition by a `revalidate` primitive such
        as `pmd_trans_huge_lock()`, which re-tests the pmd under the lock), an
        entry read under the lock in a branch condition or an assertion, a
        fresh read into the stale value's own name, or a read in the act's own
        statement before it.
        """
        nodes = fn.fn.cfg.nodes

        def is_mark(nid: int, ev: object, st: LockState) -> bool:
            if isinstance(ev, Acquire):
                return ev.primitive in self.revalidators
            if not _holds(st, key):
                return False
            if isinstance(ev, Call):
                return ev.callee in self.retesting
            if isinstance(ev, Read) and ev.cls in self.reads:
                return (
                    nid == an
                    or nodes[nid].kind == "branch"
                    or (ev.into is not None and ev.into in val.names)
                    or any(isinstance(e, Call) and e.callee in self.asserts for e in fn.events[nid])
                )
            return False

        return marked_since_taken(fn, key, is_mark).get((an, ai), False)

    def _retested_inside(self, act: Act, val: EntryValue) -> bool:
        """Does the callee doing the act test the entry again under the lock first?

        `follow_devmap_pmd()` asserts the pmd lock and returns unless
        `pmd_present(*pmd) && pmd_devmap(*pmd)` before touching the pmd: the
        caller's lockless read decides only whether to call it. The re-test
        must be of the entry the value was read from (or the act's own) and
        under the caller's hold (nothing released before it) or a lock of
        the rule's classes.
        """
        if act.via is None or not act.rereads:
            return False
        wanted = {entry_pointer(act.target)} if act.target else set()
        if val.read is not None:
            wanted.add(entry_pointer(val.read.ptr))
        for cls, ptr, keys in act.rereads:
            if cls not in self.reads or ptr not in wanted:
                continue
            if "#caller" in keys or any(k.rpartition(":")[0] in self.locks for k in keys):
                return True
        return False

    def _detached(self, ctx: RuleContext, fn: FunctionFacts, depth: int = 0) -> bool:
        """Is the table out of every other walker's reach before this function runs?

        True when every call of `fn` in the file (at least one) comes after a
        `detach` act that dominates it, or is in a function for which this
        holds: the table was taken off its pmd (`pmdp_collapse_flush()`), so
        nothing else can read or change its entries, locked or not.
        """
        if not self.detach or depth > 3:
            return False
        sites = 0
        for caller in ctx.facts.functions:
            if caller is fn:
                continue
            for nid, evs in enumerate(caller.events):
                for ev in evs:
                    if not isinstance(ev, Call) or ev.callee != fn.fn.name:
                        continue
                    if caller.state_in[nid] is None:
                        continue
                    sites += 1
                    if not self._detached_at(caller, nid) and not self._detached(
                        ctx, caller, depth + 1
                    ):
                        return False
        return sites > 0

    def _detached_at(self, fn: FunctionFacts, nid: int) -> bool:
        return any(
            isinstance(ev, Act) and ev.kind in self.detach and fn.dominates(d, nid) and d != nid
            for d, evs in enumerate(fn.events)
            for ev in evs
        )

    def _report(
        self,
        ctx: RuleContext,
        fn: FunctionFacts,
        act: Act,
        ref: LockRef,
        held: Held,
        val: EntryValue,
    ) -> None:
        lock = base_inst(ref.inst)
        name = " ".join(val.label.split())
        if val.read is None:
            when = "read by the caller"
        elif val.state is not None and any(r.cls in self.locks for r in val.state.must):
            when = f"read at line {val.site.line}, under an earlier hold of the lock"
        else:
            when = f"read at line {val.site.line} without the lock"
        what = f"`{act.via}()`" if act.via else code(act.site.text)
        checks = " or ".join(f"`{r}()`" for r in sorted(self.revalidators))
        message = self.spec.message.format(
            act=what, lock=lock, value=name, when=when, revalidate=checks
        )
        related = [Related(held.site.line, held.site.column, f"`{lock}` taken here")]
        if val.read is not None:
            related.append(Related(val.site.line, val.site.column, f"`{name}` read here"))
        ctx.report(
            fn,
            act.site,
            message,
            held=(lock,),
            expected=tuple(sorted(self.revalidators)),
            related=tuple(sorted(related)),
        )


def _holds(st: LockState, key: str) -> bool:
    return any(base_inst(ref.inst) == key for ref in st.must)


def _own_holds(st: LockState, classes: frozenset[str]) -> list[tuple[LockRef, Held]]:
    """Locks of `classes` this function took and surely holds, oldest first."""
    return sorted(
        ((ref, h) for ref, h in st.must.items() if ref.cls in classes and not h.assumed),
        key=lambda kv: kv[1].site,
    )
