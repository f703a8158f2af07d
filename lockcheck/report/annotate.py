"""`lockcheck annotate`: notes inserted into an existing review email.

The email is returned as it came, byte for byte, with lockcheck's notes as
new lines directly under the quoted lines they concern: the findings at a
site the email quotes, and the lock context of each quoted check site the
patch adds or changes ("what is held here now?"). Every note line starts
with `[lockcheck]`, so a reader -- or a script -- tells them from the
reviewers' own words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter, RunInfo, drive
from lockcheck.report.notes import context_note, finding_paragraphs, wrap

PREFIX = "[lockcheck] "


def insert_notes(text: str, notes: Mapping[int, list[str]]) -> str:
    """`text` with `notes[n]` inserted after its line `n` (1-based), nothing else changed."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for n, line in enumerate(lines, start=1):
        out.append(line)
        if n in notes:
            eol = line[len(line.rstrip("\r\n")) :] or "\n"
            if not line.endswith(("\n", "\r")):
                out.append(eol)  # the last line had no newline: the notes need one
            out.extend(note + eol for note in notes[n])
    return "".join(out)


class AnnotateReporter(Reporter):
    """Not a `--format`: renders `RunInfo.review` of one email into that email."""

    name = "annotate"

    def __init__(self, text: str, source: str) -> None:
        super().__init__()
        self.text = text
        self.source = source  # how the review names the email (Location.path)
        self.findings: list[Finding] = []

    def finding(self, f: Finding) -> None:
        self.findings.append(f)

    def notes(self) -> dict[int, list[str]]:
        review = self.run.review
        if review is None:
            return {}
        reviewed = self.run.reviewed()
        contexts = {
            c.source.line: c
            for c in review.lock_context
            if c.source is not None and c.source.path == self.source
        }
        blocks: dict[int, list[list[str]]] = {}
        for f in self.findings:
            rf = reviewed.get(f)
            if rf is None or rf.source is None or rf.source.path != self.source:
                continue
            ctx = contexts.get(rf.source.line)
            paras = finding_paragraphs(f, rf, ctx, lead=f"{f.rule}: ")
            if rf.unquoted is not None:
                paras.insert(1, f"Not quoted above: this is about {rf.unquoted}.")
            blocks.setdefault(rf.source.line, []).append(wrap(paras, prefix=PREFIX))
        for line, ctx in sorted(contexts.items()):
            if line in blocks or not ctx.kind.startswith("check"):
                continue
            if ctx.change in ("added", "changed"):
                note = context_note(ctx, self.run.rules, lead="")
                blocks[line] = [wrap(note, prefix=PREFIX)]
        out: dict[int, list[str]] = {}
        for line, parts in blocks.items():
            merged: list[str] = []
            for part in parts:
                merged += ([PREFIX.rstrip()] if merged else []) + part
            out[line] = merged
        return out

    def stop(self, stats: Mapping[str, Any]) -> str:
        return insert_notes(self.text, self.notes())


def render_annotated(text: str, source: str, findings: Sequence[Finding], run: RunInfo) -> str:
    """`text` (the email `source` names) with notes for `run.review` inserted."""
    return drive(AnnotateReporter(text, source), findings, {}, None, run)
