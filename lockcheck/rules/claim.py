"""Kind `claim`: a lockdep assertion or sparse annotation the computed state contradicts.

Only contradictions are reported, never gaps in knowledge: a claim that a
lock is held counts against the code only when every path to it released
that lock (a claim about a lock the function never touched is the caller's
business), and a claim that it is not held only when the function surely
holds it.

Prose claims in comments ("called with the page lock held") are a second
source (`lockcheck.order.claims`), judged as conservatively and reported
under the same rule quoting the comment.
"""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState, base_inst
from lockcheck.analysis.summaries import substitute
from lockcheck.model.finding import Related
from lockcheck.model.ir import Call, Claim, Release
from lockcheck.order.claims import Mismatch, check_comment_claims
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import (
    code,
    held_locks,
    release_nodes,
    taken_at,
)


def _released_on_every_path(fn: FunctionFacts, nid: int, claim: Claim) -> list[Release]:
    """The releases of the claimed lock that every path to the claim passes, or []."""
    want = base_inst(claim.lock.inst)
    here: list[Release] = []
    for ev in fn.events[nid]:
        if ev is claim:
            break
        if isinstance(ev, Release) and base_inst(ev.lock.inst) == want:
            here.append(ev)
    if here:
        return here[-1:]
    avoid = release_nodes(fn, want) - {nid}
    if not avoid or fn.entry_reaches_avoiding(nid, avoid):
        return []
    return [
        ev
        for n in sorted(avoid)
        for ev in fn.events[n]
        if isinstance(ev, Release) and base_inst(ev.lock.inst) == want
    ]


class ClaimMismatch(Rule):
    kind = "claim"

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            for nid, ev, st in fn.iter_events():
                if isinstance(ev, Claim):
                    self._claim(ctx, fn, nid, ev, st)
                elif isinstance(ev, Call):
                    self._callee_asserts(ctx, fn, ev, st)
        for mismatch in check_comment_claims(ctx.facts, ctx.source, ctx.vocab):
            self._comment(ctx, mismatch)

    def _callee_asserts(
        self, ctx: RuleContext, fn: FunctionFacts, ev: Call, st: LockState
    ) -> None:
        """A callee asserting a lock held for write that this caller holds for read."""
        summ = ctx.facts.summaries.get(ev.callee)
        if summ is None or not summ.asserts_write:
            return
        for ref, source in summ.asserts_write:
            inst = substitute(ref.inst, summ.params, ev.args, summ.locals)
            if inst is None:
                continue
            lock = base_inst(inst)
            same = [
                (r, h)
                for r, h in st.may.items()
                if base_inst(r.inst) == lock or st.same_lock(r.inst, inst)
            ]
            if not same or any(h.mode != "read" or h.assumed or h.escaped for _, h in same):
                continue
            if not all(r in st.must for r, _ in same):
                continue
            r, h = min(same, key=lambda kv: (kv[1].site, kv[0].inst))
            message = self.spec.message.format(
                claim=f"{code(ev.callee + '()')} (it asserts {code(source)})",
                lock=lock,
                state="is held only for read here",
            )
            ctx.report(
                fn,
                ev.site,
                message,
                held=(lock,),
                expected=(f"{lock} held for write",),
                related=(taken_at(r, h, "taken for read here"),),
            )
            return

    def _comment(self, ctx: RuleContext, m: Mismatch) -> None:
        message = self.spec.message.format(
            claim=f"the comment {code(m.claim.quote)}", lock=m.lock, state=m.state
        )
        kind = m.claim.kind.replace("_", " ")
        related = tuple(Related(line, col, what) for line, col, what in m.related)
        held = (m.lock,) if m.claim.kind == "not_held" else ()
        ctx.report(
            m.fn, m.site, message, held=held, expected=(f"{m.lock} {kind}",), related=related
        )

    def _claim(
        self, ctx: RuleContext, fn: FunctionFacts, nid: int, ev: Claim, st: LockState
    ) -> None:
        lock = base_inst(ev.lock.inst)
        same = [
            (ref, held)
            for ref, held in held_locks(st)
            if base_inst(ref.inst) == lock or st.same_lock(ref.inst, ev.lock.inst)
        ]
        if ev.kind == "not_held":
            if same:
                ref, held = same[0]
                self._report(ctx, fn, ev, "is held here", (lock,), (taken_at(ref, held),))
            return
        if any(
            base_inst(ref.inst) == lock or st.same_lock(ref.inst, ev.lock.inst) for ref in st.may
        ):
            if ev.mode == "write" and same and all(h.mode == "read" for _, h in same):
                ref, held = same[0]
                read_site = (taken_at(ref, held, "taken for read here"),)
                self._report(ctx, fn, ev, "is held only for read here", (lock,), read_site)
            return
        releases = _released_on_every_path(fn, nid, ev)
        if releases:
            related = tuple(
                sorted(
                    {
                        Related(r.site.line, r.site.column, f"`{lock}` released here")
                        for r in releases
                    }
                )
            )
            self._report(ctx, fn, ev, "was released on every path here", (), related)

    def _report(
        self,
        ctx: RuleContext,
        fn: FunctionFacts,
        ev: Claim,
        state: str,
        held: tuple[str, ...],
        related: tuple[Related, ...],
    ) -> None:
        message = self.spec.message.format(
            claim=code(ev.source), lock=base_inst(ev.lock.inst), state=state
        )
        expected = (f"{base_inst(ev.lock.inst)} {ev.kind.replace('_', ' ')}",)
        ctx.report(fn, ev.site, message, held=held, expected=expected, related=related)
