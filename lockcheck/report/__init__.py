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
from lockcheck.report.base import Reporter, RunInfo, drive

FORMATS: tuple[str, ...] = ("text", "json", "sarif", "github", "b4", "checkpatch")
# formats that need a reviewed patch (`RunInfo.review`)
REVIEW_FORMATS: tuple[str, ...] = (*FORMATS, "email")

__all__ = ["FORMATS", "REVIEW_FORMATS", "Reporter", "RunInfo", "make_reporter", "render_report"]


def make_reporter(fmt: str, *, color: bool = False, quiet: bool = False) -> Reporter:
    # each format's module imported when asked for: a run writes one (start-up time)
    if fmt == "text":
        from lockcheck.report.text import TextReporter

        return TextReporter(color=color, quiet=quiet)
    if fmt == "json":
        from lockcheck.report.json_report import JsonReporter

        return JsonReporter()
    if fmt == "sarif":
        from lockcheck.report.sarif import SarifReporter

        return SarifReporter()
    if fmt == "github":
        from lockcheck.report.github import GithubReporter

        return GithubReporter()
    if fmt == "b4":
        from lockcheck.report.b4 import B4Reporter

        return B4Reporter()
    if fmt == "checkpatch":
        from lockcheck.report.checkpatch import CheckpatchReporter

        return CheckpatchReporter()
    if fmt == "email":
        from lockcheck.report.email_reply import EmailReporter

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
