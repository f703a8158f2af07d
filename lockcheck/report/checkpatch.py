"""`--format checkpatch`: checkpatch.pl's terse lines, for `b4 prep --check`.

`b4 prep --check` and `b4 am --check` run their per-patch check command
(`b4.prep-perpatch-check-cmd`) with the patch on stdin and read its stdout
line by line as checkpatch output: a line holding `ERROR:` fails the patch,
any other line warns, no output passes (b4's `LoreMessage.run_local_check`).
So this format prints `FILE:LINE: ERROR|WARNING|CHECK: message [rule]` per
finding -- checkpatch's `--terse --showfile` shape -- and nothing when clean.
`b4 review` reads JSON instead: see b4.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter

_LEVEL = {"error": "ERROR", "warning": "WARNING", "note": "CHECK"}


class CheckpatchReporter(Reporter):
    name = "checkpatch"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def finding(self, f: Finding) -> None:
        level = _LEVEL.get(f.severity, "WARNING")
        message = " ".join(f.message.split())
        self.lines.append(f"{f.path}:{f.line}: {level}: {message} [{f.rule}]")

    def stop(self, stats: Mapping[str, Any]) -> str:
        return "".join(line + "\n" for line in self.lines)
