"""JSON output: version 1 of the documented schema, byte-stable.

The schema (keys sorted, two-space indent, one trailing newline)::

    {"version": 1,
     "findings": [{"rule", "severity": "note"|"warning"|"error",
                   "path", "line", "column" (1-based; column counts bytes),
                   "function", "message", "held": [lock...],
                   "expected": [lock...], "fingerprint" (16 hex digits,
                   stable under line shifts),
                   "related": [{"path", "line", "column", "message"}],
                   "evidence"? (simulator verdict, when it ran)}],
     "stats": {"files", "functions", "functions_analysed", ...}}

`lockcheck review` adds, per finding, `introduced_by`/`fixed_by` (patch
subjects or null) and `source` (the input line showing the site), and at the
top level `review` and `lock_context` (see lockcheck/review.py). Version 1
only ever gains keys; removing or retyping one bumps `version`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter, RunInfo, drive

if TYPE_CHECKING:
    from lockcheck.review import ReviewedFinding

SCHEMA_VERSION = 1


def finding_dict(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": f.rule,
        "severity": f.severity,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "function": f.function,
        "message": f.message,
        "held": list(f.held),
        "expected": list(f.expected),
        "related": [
            {"path": r.path or f.path, "line": r.line, "column": r.column, "message": r.message}
            for r in f.related
        ],
        "fingerprint": f.fingerprint,
    }
    if f.evidence is not None:
        out["evidence"] = f.evidence
    return out


class JsonReporter(Reporter):
    """Version 1 of the documented schema; keys sorted, so byte-stable."""

    name = "json"

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[dict[str, Any]] = []
        self.reviewed: dict[Finding, ReviewedFinding] = {}

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.reviewed = run.reviewed()

    def finding(self, f: Finding) -> None:
        d = finding_dict(f)
        rf = self.reviewed.get(f)
        if rf is not None:  # a reviewed series: say which patch did it
            d.update(rf.extra())
        self.findings.append(d)

    def stop(self, stats: Mapping[str, Any]) -> str:
        doc: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "findings": self.findings,
            "stats": dict(stats),
        }
        if self.run.extra:
            doc.update(self.run.extra)
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_json(
    findings: list[Finding], stats: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> str:
    return drive(JsonReporter(), findings, stats, run=RunInfo(extra=dict(extra or {})))
