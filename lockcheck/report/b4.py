"""b4's external check protocol, so maintainers see lockcheck beside checkpatch.

`b4 review` runs each `b4.review-perpatch-check-cmd` with one patch mail on
stdin and reads a JSON array of results from stdout, each
`{"tool", "status": "pass"|"warn"|"fail", "summary", "url", "details"}`
(b4's docs/maintainer/review.rst, "Writing an external check script";
src/b4/review/checks.py). lockcheck prints one entry per patch of the
reviewed series -- a single patch on stdin gives the one entry b4 expects --
or, without a series (`lockcheck check`), one entry for the whole run.

A patch fails when a finding of severity error is attributed to it (its
`introduced_by`), warns on lesser findings, and passes otherwise; a finding
that a later patch fixes still fails the patch that introduced it (the
series must bisect), and the details say which patch fixes it.

`b4 prep --check` and `b4 am --check` read checkpatch-style lines instead of
JSON (`--format checkpatch`, checkpatch.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lockcheck.model.finding import SEVERITY_RANK, Finding
from lockcheck.report.base import Reporter

TOOL = "lockcheck"


def status_of(findings: list[Finding]) -> str:
    worst = max((SEVERITY_RANK.get(f.severity, 0) for f in findings), default=-1)
    if worst >= SEVERITY_RANK["error"]:
        return "fail"
    return "warn" if worst >= 0 else "pass"


def summary_of(findings: list[Finding]) -> str:
    if not findings:
        return "no lock findings"
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "note")}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    rules = sorted({f.rule for f in findings})
    return f"{', '.join(parts)}: {', '.join(rules)}"


class B4Reporter(Reporter):
    name = "b4"

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[Finding] = []

    def finding(self, f: Finding) -> None:
        self.findings.append(f)

    def _details(self, findings: list[Finding]) -> str:
        reviewed = self.run.reviewed()
        out = []
        for f in findings:
            out.append(f"{f.path}:{f.line}: {f.severity}: {f.message} [{f.rule}]")
            out.append(f"  in {f.function}(); held here: {{{', '.join(f.held) or '-'}}}")
            out.extend(f"  {r.path or f.path}:{r.line}: {r.message}" for r in f.related)
            rf = reviewed.get(f)
            if rf is not None and rf.fixed_by is not None:
                out.append(f"  fixed later in the series by: {rf.fixed_by.label}")
        if self.run.command:
            out.append(f"reproduce: {self.run.command}")
        return "\n".join(out)

    def _entry(self, findings: list[Finding]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "tool": TOOL,
            "status": status_of(findings),
            "summary": summary_of(findings),
        }
        if findings:
            entry["details"] = self._details(findings)
        return entry

    def stop(self, stats: Mapping[str, Any]) -> str:
        review = self.run.review
        if review is None:
            entries = [self._entry(self.findings)]
        else:
            reviewed = self.run.reviewed()
            entries = []
            for patch in review.reviewed:  # the patches with a diff: not a cover letter
                mine = [
                    f for f in self.findings if f in reviewed and reviewed[f].introduced_by is patch
                ]
                entry = self._entry(mine)
                entry["patch"] = patch.label
                if patch.message_id:
                    entry["msgid"] = patch.message_id
                entries.append(entry)
        return json.dumps(entries, indent=2, sort_keys=True) + "\n"
