"""Kind `suppression`: a `lockcheck: ignore` comment that gives no reason.

A reasonless suppression hides nothing (the decision step ignores it) and
is itself reported, so that every silenced finding carries the reviewer's
why next to the code.
"""

from __future__ import annotations

from lockcheck.model.ir import Site
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.decide import suppressions


class SuppressionWithoutReason(Rule):
    kind = "suppression"

    def run(self, ctx: RuleContext) -> None:
        if not ctx.source:
            return
        lines = ctx.source.decode("utf-8", "replace").splitlines()
        for line, entries in sorted(suppressions(lines).items()):
            for rule, reason in entries:
                if reason:
                    continue
                text = lines[line - 1]
                column = text.find("lockcheck:") + 1
                fn = next(
                    (
                        ff
                        for ff in ctx.facts.functions
                        if ff.fn.start_line <= line <= ff.fn.end_line
                    ),
                    None,
                )
                ctx.report(
                    fn,
                    Site(line, max(column, 1), text.strip()),
                    self.spec.message.format(rule=rule),
                    expected=(f"lockcheck: ignore {rule} <reason>",),
                )
