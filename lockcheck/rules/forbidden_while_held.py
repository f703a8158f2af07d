"""Kind `forbidden-while-held`: an act or call that must not happen under some lock.

`locks` names the lock classes (`class` or `class:mode`); `acts` the act
kinds and `calls` the functions or primitives that are forbidden while one
of them is surely held by this function. An act inside a same-file helper
is judged in the helper, where the locks it drops first are known.
"""

from __future__ import annotations

from lockcheck.analysis.state import base_inst
from lockcheck.errors import PackError
from lockcheck.model.ir import Act, Call, Event
from lockcheck.packs import RuleSpec
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.check_under_lock import satisfied
from lockcheck.rules.queries import code, held_locks, taken_at


class ForbiddenWhileHeld(Rule):
    kind = "forbidden-while-held"
    params = {"locks": list}
    optional = {"acts": list, "calls": list}

    def __init__(self, spec: RuleSpec) -> None:
        super().__init__(spec)
        if not spec.params.get("acts") and not spec.params.get("calls"):
            raise PackError(f"{spec.where('acts')}: give `acts` or `calls` (or both)")
        self.locks: list[str] = spec.params["locks"]
        self.acts = frozenset(spec.params.get("acts", ()))
        self.calls = frozenset(spec.params.get("calls", ()))

    def _what(self, ev: Event) -> str | None:
        if isinstance(ev, Act) and ev.kind in self.acts and ev.via is None:
            return " ".join(ev.site.text.split())
        if isinstance(ev, Call) and ev.callee in self.calls:
            return f"{ev.callee}()"
        primitive = getattr(ev, "primitive", None)
        if isinstance(primitive, str) and primitive in self.calls:
            return f"{primitive}()"
        return None

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            seen: set[tuple[int, int]] = set()
            for _nid, ev, st in fn.iter_events():
                what = self._what(ev)
                if what is None:
                    continue
                bad = [
                    (ref, held)
                    for ref, held in held_locks(st)
                    if satisfied(frozenset({f"{ref.cls}:{held.mode}"}), self.locks)
                ]
                site = ev.site
                if not bad or (site.line, site.column) in seen:
                    continue
                seen.add((site.line, site.column))
                locks = tuple(sorted({base_inst(ref.inst) for ref, _ in bad}))
                message = self.spec.message.format(
                    what=code(what), locks=", ".join(f"`{lock}`" for lock in locks)
                )
                ctx.report(
                    fn,
                    site,
                    message,
                    held=locks,
                    expected=tuple(f"not {w}" for w in self.locks),
                    related=tuple(sorted({taken_at(ref, held) for ref, held in bad})),
                )
