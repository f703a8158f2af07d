"""Kind `check-under-lock`: a flag test that decides an act must be locked.

What it finds: a test of a flag (`userfaultfd_wp(vma)`, `vma->anon_vma`)
whose outcome decides whether an act (page-table removal) happens, made
while none of the locks that exclude the flag's writers is held, and never
repeated under such a lock before the act.

Why it is a bug: between the test and the act the flag can change and its
consequences (pte markers, anon ptes) appear in the table being removed.

Limits: path-insensitive beyond trylock results and pointer equalities; an
act inside a callee of the same file counts at the call site.
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState
from lockcheck.errors import PackError
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, Act, Check
from lockcheck.rules.base import Rule, RuleContext

_NAMES = {
    "pte_lock": "the pte lock",
    "pmd_lock": "the pmd lock",
    "mmap_lock:write": "the mmap lock for write",
    "mmap_lock:read": "the mmap lock",
    "mmap_lock": "the mmap lock (either mode)",
}


def lock_phrase(spec: str) -> str:
    return _NAMES.get(spec, f"`{spec}`")


def satisfied(keys: frozenset[str], wanted: list[str]) -> bool:
    """Does a held set (`class:mode` keys) include one of the wanted locks?"""
    for want in wanted:
        cls, _, mode = want.partition(":")
        for key in keys:
            kcls, _, kmode = key.rpartition(":")
            if kcls != cls:
                continue
            if not mode or kmode == mode or (mode == "write" and kmode == "excl"):
                return True
    return False


class CheckUnderLock(Rule):
    kind = "check-under-lock"
    params = {"flag": str, "acts": list, "locks": list}

    def __init__(self, spec):  # type: ignore[no-untyped-def]
        super().__init__(spec)
        p = spec.params
        for key in ("flag", "acts", "locks"):
            if key not in p:
                raise PackError(f"rule pack {spec.pack}: rule {spec.id}: missing '{key}'")
        self.flag: str = p["flag"]
        self.acts: list[str] = list(p["acts"])
        self.locks: list[str] = list(p["locks"])

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            self._function(ctx, fn)

    def _function(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        nodes = fn.fn.cfg.nodes
        acts: list[tuple[int, Act]] = []
        checks: list[tuple[int, Check, LockState]] = []
        for nid, ev, st in fn.iter_events():
            if isinstance(ev, Act) and ev.kind in self.acts:
                acts.append((nid, ev))
            elif isinstance(ev, Check) and ev.flag == self.flag and nodes[nid].kind == "branch":
                if ev.origin_node is not None:
                    origin = fn.state_in[ev.origin_node]
                    st = _state_at_origin(fn, ev) or origin or st
                checks.append((nid, ev, st))
        if not acts or not checks:
            return
        # a check that is made under a wanted lock and decides some act
        good = [
            (cn, c)
            for cn, c, st in checks
            if satisfied(st.held_keys(), self.locks) and any(fn.gates(cn, an) for an, _ in acts)
        ]
        reported: set[tuple[int, int]] = set()
        for an, act in acts:
            if any(fn.dominates(cn, an) for cn, _ in good):
                continue
            if any(f == self.flag and satisfied(keys, self.locks) for f, keys in act.inner_checks):
                continue
            for cn, chk, st in checks:
                key = (chk.site.line, chk.site.column)
                if key in reported or not fn.gates(cn, an):
                    continue
                if satisfied(st.held_keys(), self.locks):
                    continue
                reported.add(key)
                self._report(ctx, fn, cn, chk, st, act)

    def _report(
        self, ctx: RuleContext, fn: FunctionFacts, cn: int, chk: Check, st: LockState, act: Act
    ) -> None:
        wanted = " or ".join(lock_phrase(w) for w in self.locks)
        related: list[Related] = []
        later = fn.reachable_from(cn)
        for nid in sorted(later):
            for ev in fn.events[nid]:
                if isinstance(ev, Acquire) and satisfied(
                    frozenset({f"{ev.lock.cls}:{ev.mode}"}), self.locks
                ):
                    related.append(
                        Related(ev.site.line, ev.site.column, f"`{ev.lock.inst}` taken here")
                    )
        what = f"`{act.via}()` removes the page table" if act.via else f"`{act.site.text}`"
        related.append(Related(act.site.line, act.site.column, f"{what} here"))
        held = tuple(st.describe())
        held_txt = ", ".join(f"`{h}`" for h in held) if held else "no lock"
        message = ctx.spec.message.format(expr=chk.expr, wanted=wanted, flag=self.flag)
        message = f"{message} (held: {held_txt})"
        ctx.report(
            fn,
            chk.site,
            message,
            held=held,
            expected=tuple(self.locks),
            related=tuple(sorted(set(related))),
        )


def _state_at_origin(fn: FunctionFacts, ev: Check) -> LockState | None:
    """The state where a variable-held check was actually read."""
    assert ev.origin_node is not None
    for other, st in zip(fn.events[ev.origin_node], fn.before[ev.origin_node], strict=True):
        if isinstance(other, Check) and other.site == ev.site:
            return st
    return None
