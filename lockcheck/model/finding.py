"""Findings are data: rules fill them, reporters render them, nothing parses them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

SEVERITY_RANK = {"note": 0, "warning": 1, "error": 2}


@dataclass(frozen=True, slots=True, order=True)
class Related:
    """Another site that explains a finding: where the lock is taken, the act."""

    line: int
    column: int
    message: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    path: str
    line: int
    column: int
    function: str
    message: str
    held: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    related: tuple[Related, ...] = ()
    anchor: str = ""  # the source text of the site, for fingerprints
    evidence: str | None = None
    trace: tuple[dict[str, object], ...] = field(default=(), compare=False)

    @property
    def fingerprint(self) -> str:
        """Stable under line shifts: rule, file, function and the site's text."""
        key = "\0".join((self.rule, self.path, self.function, " ".join(self.anchor.split())))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.column, self.rule, self.message)
