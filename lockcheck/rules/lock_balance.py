"""Kind `lock-balance`: a lock taken in a function is released on every way out.

What it finds: a lock acquired in the function that is still held on some
path that leaves it (a return, or the end of a loop iteration that goes
round again), while other paths release it.

Why it is a bug: the caller (or the next iteration) does not know the lock
is held: it deadlocks on the next acquisition or runs with the lock held.

Limits: a function that returns holding a lock on every path is a locking
helper (its summary says so) and is not reported; neither is one whose
holding and non-holding returns return different values (the trylock and
lock-returning helper idiom: `return ptl;` versus `return NULL;`).
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held
from lockcheck.analysis.summaries import signals_holding
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, LockRef, Release
from lockcheck.rules.base import Rule, RuleContext


class LockBalance(Rule):
    kind = "lock-balance"
    optional = {"skip_classes": list}

    def __init__(self, spec):  # type: ignore[no-untyped-def]
        super().__init__(spec)
        self.skip = frozenset(spec.params.get("skip_classes", []))

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            if fn.budget_exceeded:
                continue
            self._exits(ctx, fn)
            self._reacquire(ctx, fn)

    def _releases(self, fn: FunctionFacts) -> set[str]:
        """Instances (by their base spelling) the function itself releases."""
        return {ev.lock.inst for evs in fn.events for ev in evs if isinstance(ev, Release)}

    # -- function exits ---------------------------------------------------

    def _exits(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        cfg = fn.fn.cfg
        exits = [(n, st) for n, st, _, _ in fn.exits]
        if not exits:
            return
        released = self._releases(fn)
        annotated = set(fn.fn.exit_acquires)
        candidates: dict[LockRef, Held] = {}
        for _nid, st in exits:
            for ref, held in st.may.items():
                if held.assumed or held.escaped or ref in annotated or ref in fn.entry_locks:
                    continue
                if ref.cls in self.skip or ref.inst.split("@")[0] not in released:
                    continue  # never released here: a lock-taking helper, not a leak
                candidates.setdefault(ref, held)
        for ref, held in sorted(candidates.items(), key=lambda kv: (kv[1].site, kv[0].inst)):
            holding = [
                (n, ret) for n, st, _, ret in fn.exits if ref in st.may and not st.may[ref].escaped
            ]
            base = ref.inst.split("@")[0]
            releasing = [
                (n, ret) for n, st, rel, ret in fn.exits if ref not in st.may and base in rel
            ]
            if not releasing:
                # returns holding it wherever it took it (a locking helper), or
                # the paths that do not hold it never took it
                continue
            held_vals = {ret for _, ret in holding}
            free_vals = {ret for _, ret in releasing}
            if signals_holding(held_vals, free_vals):
                continue  # the return value tells the caller whether it is held
            leak = min(holding, key=lambda h: cfg.nodes[h[0]].line)[0]
            line = cfg.nodes[leak].line
            name = ref.inst.split("@")[0]
            ctx.report(
                fn,
                held.site,
                f"`{name}` is still held when `{fn.fn.name}()` returns at line {line}, "
                f"but released on other paths",
                held=(name,),
                related=(Related(line, 1, "returns here with the lock held"),),
            )

    # -- taking a lock that may still be held ------------------------------

    def _reacquire(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        """A blocking acquisition of a lock this function may already hold.

        This is how a lock leaked out of a loop iteration (`continue` past
        the unlock) shows: the next time round takes it again.
        """
        reported: set[tuple[int, int]] = set()
        for _nid, ev, st in fn.iter_events():
            if not isinstance(ev, Acquire) or ev.cond_var is not None or ev.guard:
                continue
            if ev.nested:
                continue  # `_nested`: another lock of the class, by declaration
            if ev.lock.cls in self.skip:
                continue
            prev = st.may.get(ev.lock)
            if prev is None or prev.assumed or prev.escaped or ev.lock in fn.entry_locks:
                continue
            if ev.mode == "read" and prev.mode == "read":
                continue  # recursive read of an rwlock/rwsem: not this rule's business
            key = (ev.site.line, ev.site.column)
            if key in reported:
                continue
            reported.add(key)
            ctx.report(
                fn,
                ev.site,
                f"`{ev.lock.inst}` may still be held here: taken at line {prev.site.line} "
                f"and not released on every path back to this point",
                held=tuple(st.describe()),
                related=(Related(prev.site.line, prev.site.column, "taken here before"),),
            )
