"""Kind `recheck-after-relock`: a test made under a lock decides an act done
after the lock was dropped and taken again, and is not repeated under the new hold.

A test of a page-table entry (read in the condition, or read earlier and
followed through locals) made while L is held stays true only while L
stays held. If L is
released and re-acquired before the act the test decides, the state may
have changed in between; the act needs the test again (the same condition,
or a `revalidate` call) under the new hold.

Parameters: `acts` (act kinds), `locks` (classes of L), `revalidate`
(calls that count as a repeat of any test).
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState, base_inst
from lockcheck.analysis.values import (
    EntryValue,
    act_events,
    entry_values,
    marked_since_taken,
    uses,
)
from lockcheck.model.finding import Related
from lockcheck.model.ir import Act, Call, LockRef, Read
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import code


def _holds(st: LockState | None, key: str) -> bool:
    return st is not None and any(base_inst(r.inst) == key for r in st.must)


class RecheckAfterRelock(Rule):
    kind = "recheck-after-relock"
    params = {"acts": list, "locks": list}
    optional = {"revalidate": list}

    def run(self, ctx: RuleContext) -> None:
        acts = frozenset(self.spec.params["acts"])
        locks = frozenset(self.spec.params["locks"])
        self.revalidators = frozenset(self.spec.params.get("revalidate", ()))
        for fn in ctx.facts.functions:
            self._values: list[EntryValue] | None = None
            reported: set[tuple[int, int]] = set()
            for an, ai, act, st in act_events(fn):
                if act.kind not in acts or st is None:
                    continue
                for ref, held in sorted(st.must.items(), key=lambda kv: kv[1].site):
                    if ref.cls not in locks or held.assumed:
                        continue
                    b = self._stale_test(fn, an, ai, base_inst(ref.inst))
                    if b is None:
                        continue
                    key = (act.site.line, act.site.column)
                    if key not in reported:
                        reported.add(key)
                        self._report(ctx, fn, act, ref, b)
                    break

    def _reads_entry(self, fn: FunctionFacts, b: int) -> bool:
        """Does branch `b` test what a page-table lock protects: an entry it
        reads, or a value read from an entry (followed through locals)?"""
        if self._values is None:
            self._values = entry_values(fn, {"pte_lock", "pmd_lock", "pud_lock"})
        if any(isinstance(ev, Read) for ev in fn.events[b]):
            return True
        return any(v.read is not None and uses(fn, v, b) for v in self._values)

    def _stale_test(self, fn: FunctionFacts, an: int, ai: int, key: str) -> int | None:
        """A branch made under an earlier hold of the lock that decides the act
        and is not repeated under the hold the act runs in; None if none is."""
        nodes = fn.fn.cfg.nodes
        for b, node in enumerate(nodes):
            if node.kind != "branch" or node.atom is None or fn.state_out[b] is None:
                continue
            if not _holds(fn.state_out[b], key) or not self._reads_entry(fn, b):
                continue
            if not fn.gates(b, an):
                continue

            def never(_nid: int, _ev: object, _st: LockState) -> bool:
                return False

            def at_b(nid: int, b: int = b) -> bool:
                return nid == b

            since = marked_since_taken(fn, key, never, at_b)
            if since.get((an, ai), True):
                continue  # made under the hold the act runs in
            text = node.atom.text

            def repeats(nid: int, ev: object, st: LockState) -> bool:
                return isinstance(ev, Call) and ev.callee in self.revalidators and _holds(st, key)

            def same_test(nid: int, b: int = b, text: str = text) -> bool:
                other = nodes[nid]
                return (
                    nid != b
                    and other.kind == "branch"
                    and other.atom is not None
                    and other.atom.text == text
                    and _holds(fn.state_out[nid], key)
                )

            if not marked_since_taken(fn, key, repeats, same_test).get((an, ai), False):
                return b
        return None

    def _report(self, ctx: RuleContext, fn: FunctionFacts, act: Act, ref: LockRef, b: int) -> None:
        node = fn.fn.cfg.nodes[b]
        lock = base_inst(ref.inst)
        what = f"`{act.via}()`" if act.via else code(act.site.text)
        test = code(node.atom.text if node.atom is not None else node.text)
        message = self.spec.message.format(act=what, test=test, lock=lock, line=node.line)
        ctx.report(
            fn,
            act.site,
            message,
            held=(lock,),
            expected=(test,),
            related=(Related(node.line, 1, f"{test} tested under `{lock}` here"),),
        )
