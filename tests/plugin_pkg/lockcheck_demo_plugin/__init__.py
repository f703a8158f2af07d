"""Example lockcheck plugin: a lock taken with `*_irqsave()` must be released with `*_irqrestore()`.

It registers one rule kind (Python) and one pack (`--rules demo`) the way
lockcheck's own rules are registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockcheck.model.ir import Release
from lockcheck.rules.base import Rule, RuleContext


class IrqRestoreMismatch(Rule):
    kind = "irq-pairing"

    def run(self, ctx: RuleContext) -> None:
        for fn in ctx.facts.functions:
            for _nid, ev, st in fn.iter_events():
                if not isinstance(ev, Release) or ev.primitive.endswith("irqrestore"):
                    continue
                for ref, held in st.must.items():
                    if ref.inst != ev.lock.inst or held.assumed:
                        continue
                    taken = held.site.text
                    if "_irqsave" in taken:
                        message = self.spec.message.format(lock=ref.inst, release=ev.primitive)
                        ctx.report(fn, ev.site, message, held=(ref.inst,))


def register(registry: Any) -> None:
    registry.add_kind(IrqRestoreMismatch)
    registry.add_pack("demo", Path(__file__).with_name("demo.toml"))
