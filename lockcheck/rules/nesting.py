"""Kind `nesting-annotation`: a second lock of a held class, taken without `_nested`.

Lockdep knows locks by class, not by instance: taking a second lock of a
class already held looks like recursive locking unless the acquisition says
it nests (`spin_lock_nested`, `mmap_write_lock_nested`). `classes` lists the
classes to watch; `a | b` makes model classes one lockdep class.
"""

from __future__ import annotations

from lockcheck.analysis.state import base_inst
from lockcheck.model.ir import Acquire
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import cannot_wait, held_locks, taken_at


class NestedSameClass(Rule):
    kind = "nesting-annotation"
    params = {"classes": list}

    def run(self, ctx: RuleContext) -> None:
        group: dict[str, str] = {}
        for entry in self.spec.params["classes"]:
            for cls in entry.split("|"):
                group[cls.strip()] = entry
        for fn in ctx.facts.functions:
            for _nid, ev, st in fn.iter_events():
                if not isinstance(ev, Acquire) or ev.nested or ev.guard:
                    continue
                mine = group.get(ev.lock.cls)
                if mine is None or cannot_wait(ctx.vocab, ev):
                    continue
                others = [
                    (ref, held)
                    for ref, held in held_locks(st)
                    if group.get(ref.cls) == mine
                    and not st.same_lock(ref.inst, ev.lock.inst)
                    and base_inst(ref.inst) != base_inst(ev.lock.inst)
                ]
                if not others:
                    continue
                ref, held = others[0]
                message = self.spec.message.format(
                    lock=base_inst(ev.lock.inst),
                    other=base_inst(ref.inst),
                    cls=mine.replace("|", "/").replace(" ", ""),
                    primitive=ev.primitive,
                )
                ctx.report(
                    fn,
                    ev.site,
                    message,
                    held=tuple(base_inst(r.inst) for r, _ in others),
                    expected=(f"{ev.primitive}_nested()",),
                    related=tuple(taken_at(r, h) for r, h in others),
                )
