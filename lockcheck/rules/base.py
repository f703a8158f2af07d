"""The rule interface: rules read the analysis results and call `ctx.report`.

Rules never walk the syntax tree and never print; selection, suppression and
ordering happen in one place afterwards (`lockcheck.rules.decide`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from lockcheck.analysis.locks import FileFacts, FunctionFacts
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Site
from lockcheck.packs import RuleSpec


@dataclass(slots=True)
class RuleContext:
    spec: RuleSpec
    path: str
    facts: FileFacts
    findings: list[Finding] = field(default_factory=list)

    def report(
        self,
        fn: FunctionFacts,
        site: Site,
        message: str,
        *,
        held: tuple[str, ...] = (),
        expected: tuple[str, ...] = (),
        related: tuple[Related, ...] = (),
    ) -> None:
        self.findings.append(
            Finding(
                rule=self.spec.id,
                severity=self.spec.severity,
                path=self.path,
                line=site.line,
                column=site.column,
                function=fn.fn.name,
                message=message,
                held=held,
                expected=expected,
                related=related,
                anchor=site.text,
            )
        )


class Rule(ABC):
    """One rule kind; an instance is configured by one `[[rule]]` table."""

    kind: ClassVar[str]
    params: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    @abstractmethod
    def run(self, ctx: RuleContext) -> None:
        """Inspect `ctx.facts` and report findings."""
