"""Kind `recheck-after-lock`: a decision read before the lock, not re-read under it.

A flag tested before a lock is taken may be an optimisation; the act it
decides is safe only if the flag (or a revalidating check named in
`recheck`) is tested again after the lock is taken and before the act,
with the lock held from that re-check to the act: a re-check made under
the lock and then left behind by an unlock/relock protects nothing.
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState
from lockcheck.model.finding import Related
from lockcheck.model.ir import Act, Check, Release
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.check_under_lock import lock_phrase, satisfied
from lockcheck.rules.queries import taken_at


def released_between(fn: FunctionFacts, start: int, goal: int, classes: set[str]) -> bool:
    """Does some path from node `start` to node `goal` release a lock of `classes`?"""
    preds = fn.fn.cfg.preds()
    back = {goal}
    stack = [goal]
    while stack:
        cur = stack.pop()
        for p in preds[cur]:
            if p not in back:
                back.add(p)
                stack.append(p)
    between = (fn.reachable_from(start) & back) - {start, goal}
    return any(
        isinstance(ev, Release) and ev.lock.cls in classes for n in between for ev in fn.events[n]
    )


class RecheckAfterLock(Rule):
    kind = "recheck-after-lock"
    params = {"flag": str, "acts": list, "locks": list}
    optional = {"recheck": list}

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            self._function(ctx, fn)

    def _function(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        p = self.spec.params
        locks: list[str] = p["locks"]
        rechecks = set(p.get("recheck", [p["flag"]]))
        classes = {w.partition(":")[0] for w in locks}
        events = list(fn.iter_events())
        acts = [
            (nid, ev, st)
            for nid, ev, st in events
            if isinstance(ev, Act) and ev.kind in p["acts"] and satisfied(st.held_keys(), locks)
        ]
        checks = [
            (nid, ev, st)
            for nid, ev, st in events
            if isinstance(ev, Check) and fn.fn.cfg.nodes[nid].kind == "branch"
        ]
        reported: set[tuple[int, int]] = set()
        for an, act, ast in acts:
            fresh = any(
                c.flag in rechecks
                and satisfied(cst.held_keys(), locks)
                and fn.dominates(cn, an)
                and not released_between(fn, cn, an, classes)
                for cn, c, cst in checks
            )
            if fresh:
                continue
            for cn, chk, cst in checks:
                key = (chk.site.line, chk.site.column)
                if chk.flag == p["flag"] and key not in reported and fn.gates(cn, an):
                    reported.add(key)
                    self._report(ctx, fn, chk, cst, act, ast)

    def _report(
        self,
        ctx: RuleContext,
        fn: FunctionFacts,
        chk: Check,
        st: LockState,
        act: Act,
        act_state: LockState,
    ) -> None:
        locks: list[str] = self.spec.params["locks"]
        related = {
            taken_at(ref, held)
            for ref, held in act_state.must.items()
            if not held.assumed and satisfied(frozenset({f"{ref.cls}:{held.mode}"}), locks)
        }
        what = f"`{act.via}()`" if act.via else f"`{' '.join(act.site.text.split())}`"
        related.add(Related(act.site.line, act.site.column, f"{what} acts here"))
        wanted = " or ".join(lock_phrase(w) for w in locks)
        message = self.spec.message.format(expr=chk.expr, wanted=wanted, flag=chk.flag)
        ctx.report(
            fn,
            chk.site,
            message,
            held=tuple(st.describe()),
            expected=tuple(locks),
            related=tuple(sorted(related)),
        )
