"""SARIF 2.1.0, for code hosts and CI dashboards that ingest static analysis.

One run; the driver lists every loaded rule (id, summary, default level, the
pack and kind); each result has its primary location with the source line as
snippet, the function as a logical location, the related sites (where the
lock is taken, the act) as relatedLocations, the stable fingerprint as a
partialFingerprint, and -- when the simulator found an interleaving -- the
trace as a codeFlow with one threadFlow per thread and a global
executionOrder, which is how SARIF spells an interleaving.

Relative paths are given relative to `%SRCROOT%` (the uploader binds it to
the checkout); absolute ones become `file://` URIs. Columns are counted in
Unicode code points (`columnKind`), converted from the frontend's bytes.

Trace entries are dicts with keys `thread`, `line`, `event`, `state_change`
and optionally `path` (the file `line` is in; default: the finding's file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from lockcheck import __version__
from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.report.base import Reporter, char_column, source_line

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "lockcheck/v1"
_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def artifact_location(path: str) -> dict[str, Any]:
    if path.startswith("/"):
        return {"uri": "file://" + quote(path)}
    return {"uri": quote(path), "uriBaseId": "%SRCROOT%"}


def artifact(path: str) -> dict[str, Any]:
    """A file of the run; C only for C files (review may point into an email)."""
    out: dict[str, Any] = {"location": artifact_location(path)}
    if path.endswith((".c", ".h")):
        out["sourceLanguage"] = "c"
    return out


def rule_descriptor(spec: RuleSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": "".join(part.capitalize() for part in spec.id.split("-")),
        "shortDescription": {"text": spec.summary or spec.id},
        "fullDescription": {"text": spec.summary or spec.id},
        "defaultConfiguration": {"level": _LEVEL.get(spec.severity, "warning")},
        "properties": {"kind": spec.kind, "pack": spec.pack},
    }


class SarifReporter(Reporter):
    name = "sarif"

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = []
        self.artifacts: list[str] = []
        self.rule_index: dict[str, int] = {}
        self.rules: list[dict[str, Any]] = []

    def _rule(self, rule_id: str) -> int:
        """The driver index of `rule_id`; rules not loaded get a bare entry."""
        if not self.rules and self.run.rules:
            for spec in sorted(self.run.rules, key=lambda s: s.id):
                self.rule_index[spec.id] = len(self.rules)
                self.rules.append(rule_descriptor(spec))
        if rule_id not in self.rule_index:
            self.rule_index[rule_id] = len(self.rules)
            self.rules.append({"id": rule_id})
        return self.rule_index[rule_id]

    def file(self, path: str, lines: Sequence[str]) -> None:
        super().file(path, lines)
        if path not in self.artifacts:
            self.artifacts.append(path)

    def _physical(self, path: str, line: int, column: int) -> dict[str, Any]:
        loc: dict[str, Any] = {"artifactLocation": artifact_location(path)}
        if path in self.artifacts:
            loc["artifactLocation"]["index"] = self.artifacts.index(path)
        if line > 0:
            text = source_line(self.sources.get(path, ()), line)
            region: dict[str, Any] = {"startLine": line}
            if column > 0:
                region["startColumn"] = char_column(text, column)
            if text is not None:
                region["snippet"] = {"text": text}
            loc["region"] = region
        return loc

    def finding(self, f: Finding) -> None:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": self._rule(f.rule),
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": self._physical(f.path, f.line, f.column),
                    "logicalLocations": [
                        {"name": f.function, "fullyQualifiedName": f.function, "kind": "function"}
                    ],
                }
            ],
            "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
            "properties": {"function": f.function, "held": list(f.held)},
        }
        if f.expected:
            result["properties"]["expected"] = list(f.expected)
        if f.evidence is not None:
            result["properties"]["evidence"] = f.evidence
        if f.related:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "physicalLocation": self._physical(r.path or f.path, r.line, r.column),
                    "message": {"text": r.message},
                }
                for i, r in enumerate(f.related, start=1)
            ]
        if f.trace:
            result["codeFlows"] = [self._code_flow(f)]
        self.results.append(result)

    def _code_flow(self, f: Finding) -> dict[str, Any]:
        """The simulator's interleaving: one threadFlow per thread, steps in global order."""
        flows: dict[str, list[dict[str, Any]]] = {}
        for order, step in enumerate(f.trace, start=1):
            thread = str(step.get("thread", "main"))
            event = str(step.get("event", ""))
            line = step.get("line")
            path = str(step.get("path") or f.path)
            location: dict[str, Any] = {"message": {"text": event or "step"}}
            if isinstance(line, int) and line > 0:
                location["physicalLocation"] = self._physical(path, line, 0)
            tfl: dict[str, Any] = {"location": location, "executionOrder": order}
            change = step.get("state_change")
            if change:
                tfl["state"] = {"change": {"text": str(change)}}
            flows.setdefault(thread, []).append(tfl)
        return {
            "message": {"text": f.evidence or "an interleaving that breaks the invariant"},
            "threadFlows": [
                {"id": thread, "message": {"text": f"thread {thread}"}, "locations": steps}
                for thread, steps in flows.items()
            ],
        }

    def stop(self, stats: Mapping[str, Any]) -> str:
        for spec in sorted(self.run.rules, key=lambda s: s.id):
            self._rule(spec.id)  # list every loaded rule, even without results
        run: dict[str, Any] = {
            "tool": {
                "driver": {
                    "name": "lockcheck",
                    "version": __version__,
                    "semanticVersion": __version__,
                    "rules": self.rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "artifacts": [artifact(p) for p in self.artifacts],
            "results": self.results,
            "properties": {"stats": dict(stats)},
        }
        doc = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
