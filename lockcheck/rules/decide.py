"""The one place that decides which findings are shown.

Inline suppressions (`/* lockcheck: ignore RULE-ID reason */` on the line or
the line above), rule selection and ordering live here so that rules only
ever report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lockcheck.model.finding import Finding

SUPPRESS_RE = re.compile(r"lockcheck:\s*ignore\s+([\w.-]+)(?:\s+(.*?))?\s*(?:\*/|$)")


def suppressions(source_lines: list[str]) -> dict[int, list[tuple[str, str]]]:
    """line number -> [(rule id, reason)] for every suppression comment."""
    out: dict[int, list[tuple[str, str]]] = {}
    for i, line in enumerate(source_lines, start=1):
        for m in SUPPRESS_RE.finditer(line):
            out.setdefault(i, []).append((m.group(1), (m.group(2) or "").strip()))
    return out


def is_suppressed(f: Finding, sup: dict[int, list[tuple[str, str]]]) -> bool:
    for line in (f.line, f.line - 1):
        for rule, reason in sup.get(line, []):
            if rule == f.rule and reason:
                return True
    return False


def decide(
    findings: Iterable[Finding],
    source_lines: list[str] | None = None,
    select: set[str] | None = None,
    baseline: set[str] | None = None,
) -> list[Finding]:
    sup = suppressions(source_lines) if source_lines else {}
    kept = [
        f
        for f in findings
        if (select is None or f.rule in select)
        and not is_suppressed(f, sup)
        and (baseline is None or f.fingerprint not in baseline)
    ]
    unique = {(f.sort_key(), f.fingerprint): f for f in kept}
    return [unique[k] for k in sorted(unique)]
