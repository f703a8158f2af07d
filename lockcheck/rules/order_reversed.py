"""Kind `order-reversed`: a patch reverses the order in which a function nests two locks.

What it finds: in a function the patch changes, two locks A and B where,
before the patch, B was taken while A was held and never the other way,
and after it A is taken (blocking, not a trylock) while B is held.

Why: the old code is the evidence of the order the rest of the kernel
follows: every other path that still takes A, then B can now deadlock
with this one (ABBA), and lockdep only says so when both paths run. Inside
one file `lock-order` sees the inversion only if another function shows the
old order; here the patch itself shows it.

Review only: a single image has no "before", so `lockcheck check` never
reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import base_inst
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Acquire
from lockcheck.rules.base import ReviewRule
from lockcheck.rules.queries import single_definitions

_UNORDERED = frozenset({"rcu"})  # read-side sections that take part in no lock order


@dataclass(frozen=True, slots=True)
class Nesting:
    """`inner` taken (blocking) while `outer` is held, at `line`."""

    outer: str
    inner: str
    line: int
    column: int
    outer_line: int


def nestings(ff: FunctionFacts) -> list[Nesting]:
    out: list[Nesting] = []
    for _nid, ev, st in ff.iter_events():
        if not isinstance(ev, Acquire) or "trylock" in ev.primitive:
            continue  # a trylock backs off instead of waiting: no deadlock
        inner = base_inst(ev.lock.inst)
        if inner in _UNORDERED or inner == "*":
            continue
        for ref, held in st.must.items():
            outer = base_inst(ref.inst)
            if held.assumed or outer in (inner, "*") or outer in _UNORDERED:
                continue
            out.append(Nesting(outer, inner, ev.site.line, ev.site.column, held.site.line))
    return out



class OrderReversed(ReviewRule):
    kind = "order-reversed"
    # reversing the order back is a reversal too: the doc test's "the fix
    # is quiet" does not apply to a lone function
    symmetric: ClassVar[bool] = True

    def compare(
        self,
        path: str,
        pre: Sequence[FunctionFacts],
        post: Sequence[FunctionFacts],
        changed: set[str],
        elsewhere: Path | None = None,
    ) -> list[Finding]:
        """Findings for the functions in `changed` that now nest two locks the other way."""
        before = single_definitions(pre)
        # how the rest of the file nests them: a patch that reverses one
        # function to the order the others keep is fixing an inversion
        elsewhere_pairs: dict[tuple[str, str], set[str]] = {}
        for ff in post:
            if ff.fn.name not in changed:
                for n in nestings(ff):
                    elsewhere_pairs.setdefault((n.outer, n.inner), set()).add(ff.fn.name)
        out: list[Finding] = []
        for name, ff in sorted(single_definitions(post).items()):
            old = before.get(name)
            if name not in changed or old is None or ff.budget_exceeded or old.budget_exceeded:
                continue
            was = {(n.outer, n.inner): n for n in nestings(old)}
            seen: set[tuple[str, str]] = set()
            for n in nestings(ff):
                pair = (n.outer, n.inner)
                if pair in was or pair in seen or (n.inner, n.outer) not in was:
                    continue
                if pair in elsewhere_pairs and (n.inner, n.outer) not in elsewhere_pairs:
                    continue  # now like the rest of the file
                seen.add(pair)
                out.append(
                    Finding(
                        rule=self.spec.id,
                        severity=self.spec.severity,
                        path=path,
                        line=n.line,
                        column=n.column,
                        function=name,
                        message=(
                            f"`{name}()` now takes `{n.inner}` while holding `{n.outer}`; "
                            f"before this patch it took `{n.outer}` while holding `{n.inner}`: "
                            f"any path that still nests them the old way can deadlock with "
                            f"this one (ABBA)"
                        ),
                        held=(n.outer,),
                        expected=(n.inner,),
                        related=(Related(n.outer_line, 1, f"`{n.outer}` taken here"),),
                        anchor=f"{n.outer} -> {n.inner}",
                    )
                )
        return out
