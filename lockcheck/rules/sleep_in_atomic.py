"""Kind `sleep-in-atomic`: a call that may sleep while a spinning lock is held.

Which locks spin is data: an `atomic = true` on the pack row (or guard)
that acquired the lock. A lock the function did not take itself, or took
through a primitive the tables do not describe, is not assumed atomic.
"""

from __future__ import annotations

from lockcheck.analysis.state import base_inst
from lockcheck.model.ir import Sleep
from lockcheck.packs import Vocabulary
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import acquirers, code, held_locks, taken_at


def _atomic(vocab: Vocabulary, primitives: set[str]) -> bool:
    return bool(primitives) and all(vocab.is_atomic(p) for p in primitives)


def _name(lock: str) -> str:
    return "`rcu_read_lock()`" if lock == "rcu" else f"`{lock}`"


class SleepInAtomic(Rule):
    kind = "sleep-in-atomic"

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            by_lock = acquirers(fn)
            seen: set[tuple[int, int]] = set()
            for _nid, ev, st in fn.iter_events():
                if not isinstance(ev, Sleep):
                    continue
                spinning = [
                    (ref, held)
                    for ref, held in held_locks(st)
                    if _atomic(ctx.vocab, by_lock.get(base_inst(ref.inst), set()))
                ]
                key = (ev.site.line, ev.site.column)
                if not spinning or key in seen:
                    continue
                seen.add(key)
                locks = tuple(sorted({base_inst(ref.inst) for ref, _ in spinning}))
                message = self.spec.message.format(
                    call=code(ev.primitive + "()"),
                    locks=", ".join(_name(lock) for lock in locks),
                )
                ctx.report(
                    fn,
                    ev.site,
                    message,
                    held=locks,
                    expected=("no spinning lock held",),
                    related=tuple(sorted({taken_at(ref, held) for ref, held in spinning})),
                )
