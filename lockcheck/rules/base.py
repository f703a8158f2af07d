"""The rule interface: rules read the analysis results and call `ctx.report`.

Rules never walk the syntax tree and never print; selection, suppression and
ordering happen in one place afterwards (`lockcheck.rules.decide`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lockcheck.analysis.file import FileFacts
from lockcheck.analysis.function import FunctionFacts
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import OpsTable, Site
from lockcheck.packs import RuleDoc, RuleSpec, Vocabulary

ParamType = type | tuple[type, ...]


@dataclass(slots=True)
class RuleContext:
    spec: RuleSpec
    path: str
    facts: FileFacts
    findings: list[Finding] = field(default_factory=list)
    # the merged tables of the loaded packs (which primitive spins, the order)
    vocab: Vocabulary = field(default_factory=Vocabulary)
    # the file's text, for rules about comments (suppressions)
    source: bytes = b""
    # the file's functions registered together by one initializer (model)
    ops: tuple[OpsTable, ...] = ()

    def report(
        self,
        fn: FunctionFacts | None,
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
                function=fn.fn.name if fn is not None else "",
                message=message,
                held=held,
                expected=expected,
                related=related,
                anchor=site.text,
            )
        )


class Rule(ABC):
    """One rule kind; an instance is configured by one `[[rule]]` table.

    `params` are the keys the kind requires, `optional` those it accepts;
    the registry checks both before constructing, so a kind may trust them.
    `default_doc` documents every rule of the kind where its TOML entry is
    silent (a plugin's Python kind can carry its whole documentation).
    """

    kind: ClassVar[str]
    params: ClassVar[dict[str, ParamType]] = {}
    optional: ClassVar[dict[str, ParamType]] = {}
    default_doc: ClassVar[RuleDoc] = RuleDoc()

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    @property
    def doc(self) -> RuleDoc:
        return self.spec.doc.merged(self.default_doc)

    @classmethod
    def validate(cls, spec: RuleSpec) -> None:
        """Reject unknown, missing and mistyped parameters, naming file and key."""
        for key, value in spec.params.items():
            want = cls.params.get(key) or cls.optional.get(key)
            if want is None:
                known = ", ".join(sorted({*cls.params, *cls.optional})) or "none"
                raise PackError(f"{spec.where(key)}: unknown key for kind '{cls.kind}' ({known})")
            _check_type(spec, key, value, want)
        for key in cls.params:
            if key not in spec.params:
                raise PackError(f"{spec.where(key)}: required by kind '{cls.kind}'")

    @abstractmethod
    def run(self, ctx: RuleContext) -> None:
        """Inspect `ctx.facts` and report findings."""


class ReviewRule(Rule):
    """A rule that compares the functions a patch changes before and after it.

    `lockcheck review` calls `compare`; a single image has no "before", so
    `check` never reports it (the fixture harness and the docs tests review
    `NAME.orig.c` -> `NAME.c` pairs instead).
    """

    review_only: ClassVar[bool] = True

    def run(self, ctx: RuleContext) -> None:
        """Nothing to compare in one image: the review step calls `compare`."""

    @abstractmethod
    def compare(
        self,
        path: str,
        pre: Sequence[FunctionFacts],
        post: Sequence[FunctionFacts],
        changed: set[str],
        elsewhere: Path | None = None,
    ) -> list[Finding]:
        """Findings for the functions named in `changed` (`elsewhere`: the
        directory of C files beside the patched one, when `--tree` has one)."""


def _check_type(spec: RuleSpec, key: str, value: Any, want: ParamType) -> None:
    name = want.__name__ if isinstance(want, type) else " or ".join(t.__name__ for t in want)
    if not isinstance(value, want) or isinstance(value, bool) and want is int:
        raise PackError(f"{spec.where(key)}: must be {name}")
    if isinstance(value, list) and not all(isinstance(v, str) and v for v in value):
        raise PackError(f"{spec.where(key)}: must be a list of non-empty strings")
