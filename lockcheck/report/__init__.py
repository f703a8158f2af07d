"""Renderers: one module per `--format`, all behind `base.Reporter`.

`render_report(fmt, findings, stats, sources, run)` is what a command calls;
`make_reporter` builds the reporter for a format name (see `FORMATS`).
`explain.py` (the lock timeline) is a separate view, not a findings format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lockcheck.errors import InputError
from lockcheck.model.finding import Finding
from lockcheck.report.b4 import B4Reporter
from lockcheck.report.base import Reporter, RunInfo, drive
from lockcheck.report.checkpatch import CheckpatchReporter
from lockcheck.report.email_reply import EmailReporter
from lockcheck.report.github import GithubReporter
from lockcheck.report.json_report import JsonReporter
from lockcheck.report.sarif import SarifReporter
from lockcheck.report.text import TextReporter

FORMATS: tuple[str, ...] = ("text", "json", "sarif", "github", "b4", "checkpatch")
# formats that need a reviewed patch (`RunInfo.review`)
REVIEW_FORMATS: tuple[str, ...] = (*FORMATS, "email")

__all__ = ["FORMATS", "REVIEW_FORMATS", "Reporter", "RunInfo", "make_reporter", "render_report"]


def make_reporter(fmt: str, *, color: bool = False, quiet: bool = False) -> Reporter:
    if fmt == "text":
        return TextReporter(color=color, quiet=quiet)
    if fmt == "json":
        return JsonReporter()
    if fmt == "sarif":
        return SarifReporter()
    if fmt == "github":
        return GithubReporter()
    if fmt == "b4":
        return B4Reporter()
    if fmt == "checkpatch":
        return CheckpatchReporter()
    if fmt == "email":
        return EmailReporter()
    raise InputError(f"unknown output format '{fmt}' (one of: {', '.join(REVIEW_FORMATS)})")


def render_report(
    fmt: str,
    findings: Sequence[Finding],
    stats: Mapping[str, Any],
    sources: Mapping[str, Sequence[str]] | None = None,
    run: RunInfo | None = None,
    *,
    color: bool = False,
    quiet: bool = False,
) -> str:
    """The whole output of format `fmt` for `findings`."""
    return drive(make_reporter(fmt, color=color, quiet=quiet), findings, stats, sources, run)
