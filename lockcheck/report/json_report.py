"""JSON output: version 1 of the documented schema, byte-stable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lockcheck.model.finding import Finding

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


def render_json(
    findings: list[Finding], stats: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> str:
    doc: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "findings": [finding_dict(f) for f in findings],
        "stats": dict(stats),
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
