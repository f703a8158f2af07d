"""Kind `lock-order`: a lock taken while a lock the hierarchy puts inside it is held.

The hierarchy is a list of lock classes, outer first (`a | b` for one
level): the rule's own `order`, else its pack's. A trylock of the outer
lock is the sanctioned way round an inversion and is not reported.
`acquisition_edges` is the per-function "B taken while A held" relation
other checks (documented-order claims) build on. A file that documents its
own order in a "Lock ordering:" comment is checked against that instead,
and the findings cite it (`lockcheck.order`).
"""

from __future__ import annotations

from collections.abc import Iterator

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held, base_inst
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, LockRef
from lockcheck.order.doc import Names, OrderDoc, parse_order_comments
from lockcheck.order.edges import file_inversions
from lockcheck.packs import order_levels
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import cannot_wait, held_locks, taken_at


def acquisition_edges(fn: FunctionFacts) -> Iterator[tuple[LockRef, Held, Acquire]]:
    """(held lock, how it is held, the acquisition made meanwhile), in event order."""
    for _nid, ev, st in fn.iter_events():
        if not isinstance(ev, Acquire):
            continue
        for ref, held in held_locks(st):
            if not st.same_lock(ref.inst, ev.lock.inst):
                yield ref, held, ev


class LockOrder(Rule):
    kind = "lock-order"
    optional = {"order": list, "comment_message": str}

    def run(self, ctx: RuleContext) -> None:
        doc = parse_order_comments(ctx.source, ctx.path, Names(ctx.vocab.names))
        if doc.edges:
            self._documented(ctx, doc)
            return
        order = (
            self.spec.params.get("order") or ctx.vocab.orders.get(self.spec.pack) or ctx.vocab.order
        )
        ranks = order_levels(list(order))
        if not ranks:
            return
        for fn in ctx.facts.functions:
            seen: set[tuple[int, int, str]] = set()
            for outer, held, inner in acquisition_edges(fn):
                if cannot_wait(ctx.vocab, inner):
                    continue
                r_out, r_in = ranks.get(outer.cls), ranks.get(inner.lock.cls)
                if r_out is None or r_in is None or r_in >= r_out:
                    continue
                key = (inner.site.line, inner.site.column, base_inst(outer.inst))
                if key in seen:
                    continue
                seen.add(key)
                fields = {
                    "inner": base_inst(inner.lock.inst),
                    "outer": base_inst(outer.inst),
                    "inner_class": inner.lock.cls,
                    "outer_class": outer.cls,
                }
                ctx.report(
                    fn,
                    inner.site,
                    self.spec.message.format(**fields),
                    held=(base_inst(outer.inst),),
                    expected=(f"{inner.lock.cls} before {outer.cls}",),
                    related=(taken_at(outer, held, "(the inner lock) taken here"),),
                )

    def _documented(self, ctx: RuleContext, doc: OrderDoc) -> None:
        """Against the file's own "Lock ordering:" comment, cited at its first line."""
        template = self.spec.params.get("comment_message") or self.spec.message
        block = doc.blocks[0][1]
        lines = ctx.source.decode("utf-8", "replace").splitlines()
        for fn in ctx.facts.functions:
            seen: set[tuple[int, int, str]] = set()
            for edge, outer, inner in file_inversions(fn, lines, doc, ctx.vocab):
                held, taken = base_inst(edge.outer.inst), base_inst(edge.inner.inst)
                key = (edge.inner_site.line, edge.inner_site.column, held)
                if key in seen:
                    continue
                seen.add(key)
                fields = {
                    "inner": taken,
                    "outer": held,
                    "inner_class": outer,
                    "outer_class": inner,
                    "line": block,
                }
                o = edge.outer_site
                ctx.report(
                    fn,
                    edge.inner_site,
                    template.format(**fields),
                    held=(held,),
                    expected=(f"{outer} before {inner}",),
                    related=(
                        Related(o.line, o.column, f"`{held}` (the inner lock) taken here"),
                        Related(block, 1, "the file's lock ordering comment"),
                    ),
                )
