"""The reporter interface: one `Finding` list, one renderer per format.

A reporter is driven in one fixed order -- `start(run)`, then for each file
(sorted) `file(path, lines)` followed by that file's findings (sorted), then
`stop(stats)`, which returns the whole output as a string. Every format sees
the same findings in the same order, so formats cannot disagree about what
was found, and output is byte-stable. A reporter never reads files, the
environment or the clock: everything it prints comes through this interface.

`RunInfo` carries what is known about the run besides the findings: the rule
specs (SARIF's rules metadata), the command that reproduces the run (the
email sign-off), and for patch review the `ReviewResult` (the series, which
patch introduced each finding, the input line showing it, the lock context),
which the json, b4 and email formats use. A review command feeds
`[rf.finding for rf in result.findings]` with `RunInfo(review=result, ...)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec

if TYPE_CHECKING:  # the review step runs before reporting; only its types are needed
    from lockcheck.review import ReviewedFinding, ReviewResult


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a reporter may know about the run beyond the findings."""

    rules: tuple[RuleSpec, ...] = ()
    command: str = ""  # the lockcheck command line that reproduces this run
    extra: Mapping[str, Any] = field(default_factory=dict)  # JSON top-level additions
    # patch review (`lockcheck review`/`annotate`): the series, which patch
    # introduced or fixed each finding, the input line showing each site, and
    # the lock context of the changed sites
    review: ReviewResult | None = None
    sender: str = ""  # the From: of an email reply
    date: str = ""  # the Date: of an email reply (RFC 5322 form)

    def reviewed(self) -> dict[Finding, ReviewedFinding]:
        """Each reviewed finding by its `Finding` (what reporters are fed)."""
        if self.review is None:
            return {}
        return {rf.finding: rf for rf in self.review.findings}


class Reporter(ABC):
    """One output format. Subclasses keep their state on the instance."""

    #: the `--format` value that selects this reporter
    name: str = ""

    def __init__(self) -> None:
        self.run = RunInfo()
        self.sources: dict[str, Sequence[str]] = {}

    def start(self, run: RunInfo) -> None:
        self.run = run

    def file(self, path: str, lines: Sequence[str]) -> None:
        """A file with findings begins; `lines` is its text (may be empty)."""
        self.sources[path] = lines

    @abstractmethod
    def finding(self, f: Finding) -> None:
        """One finding of the current file, in sorted order."""

    @abstractmethod
    def stop(self, stats: Mapping[str, Any]) -> str:
        """The rendered output for everything seen since `start`."""


def drive(
    reporter: Reporter,
    findings: Sequence[Finding],
    stats: Mapping[str, Any],
    sources: Mapping[str, Sequence[str]] | None = None,
    run: RunInfo | None = None,
) -> str:
    """Feed `findings` to `reporter` in the interface's order; return its output."""
    reporter.start(run or RunInfo())
    ordered = sorted(findings, key=Finding.sort_key)
    for path, group in groupby(ordered, key=lambda f: f.path):
        reporter.file(path, (sources or {}).get(path, ()))
        for f in group:
            reporter.finding(f)
    return reporter.stop(stats)


def source_line(lines: Sequence[str], line: int) -> str | None:
    """Line `line` (1-based) of `lines`, without its end of line, if it exists."""
    if 0 < line <= len(lines):
        return lines[line - 1].rstrip("\r\n")
    return None


def char_column(text: str | None, byte_column: int) -> int:
    """The 1-based character column of a 1-based UTF-8 byte column in `text`.

    The frontend counts bytes (tree-sitter points); editors, SARIF and the
    caret under a source line count characters.
    """
    if text is None or byte_column <= 1:
        return max(byte_column, 1)
    prefix = text.encode("utf-8")[: byte_column - 1]
    return len(prefix.decode("utf-8", "replace")) + 1
