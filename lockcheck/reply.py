"""A review email: what to analyse for it, and where its findings go in it.

A reply quotes a patch, rarely all of it. Three cases, best first:

* with the thread (`--thread FILE`): the patch the reply answers is found in
  the thread (`inputs.thread`) and reviewed whole, with its series, against
  the tree (or as fragments without one). Its hunk lines are matched to the
  quoted lines by tokens (`inputs.quote`), so findings and lock context are
  placed under the lines the reviewer quoted; a finding on a line the reply
  does not quote goes at the end of the quoted part of its hunk, saying
  which line of the patch it means.
* with a tree and a quote whose hunks are whole: the quote is applied like
  a patch file (`review` does that itself).
* otherwise fragment mode: only the quoted lines are analysed, and the
  notes say so.

API: `review_reply(engine, reply, tree, thread, source)` -> `ReplyReview`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lockcheck.engine import Engine
from lockcheck.inputs.apply import Tree
from lockcheck.inputs.patch import FilePatch, Hunk, Patch
from lockcheck.inputs.quote import QuoteMap, best_file
from lockcheck.inputs.thread import Answered, find_answered
from lockcheck.review import Location, ReviewedFinding, ReviewResult, review


@dataclass(frozen=True, slots=True)
class Thread:
    name: str  # how messages name the thread file
    messages: list[Patch]


@dataclass(slots=True)
class ReplyReview:
    result: ReviewResult  # findings: those the notes are about
    mode: str  # "thread", "applied", "fragment"
    answered: Answered | None = None

    def notes(self) -> list[str]:
        return self.result.notes()


@dataclass(frozen=True, slots=True)
class _FileMap:
    full: FilePatch  # the answered patch's file, hunk lines now pointing into the reply
    quote: QuoteMap


def _onto_reply(patch: Patch, reply: Patch, source: str) -> tuple[Patch, list[_FileMap]]:
    """`patch` with its hunk lines' `source_line` moved to the reply lines quoting them."""
    maps: dict[int, QuoteMap] = {}
    for q in reply.files:
        got = best_file(q, patch.files)
        if got is None:
            continue
        fp, qmap = got
        k = patch.files.index(fp)
        prev = maps.get(k)
        if prev is not None:  # the file quoted in two places: keep both
            for key, line in qmap.lines.items():
                prev.lines[key] = max(prev.lines.get(key, 0), line)
            for h, end in qmap.hunk_end.items():
                prev.hunk_end[h] = max(prev.hunk_end.get(h, 0), end)
        else:
            maps[k] = qmap
    files: list[FilePatch] = []
    out: list[_FileMap] = []
    for k, fp in enumerate(patch.files):
        qmap = maps.get(k, QuoteMap())
        hunks = tuple(
            replace(
                h,
                lines=tuple(
                    replace(ln, source_line=qmap.lines.get((hi, li)))
                    for li, ln in enumerate(h.lines)
                ),
                source_line=None,
            )
            for hi, h in enumerate(fp.hunks)
        )
        nfp = replace(fp, hunks=hunks)
        files.append(nfp)
        out.append(_FileMap(nfp, qmap))
    return replace(patch, files=tuple(files), path=source), out


def _hunk_of(hunks: tuple[Hunk, ...], line: int) -> int:
    """The hunk whose post-image range holds `line`, else the nearest one."""

    def distance(h: Hunk) -> int:
        lo, hi = h.new_start, h.new_start + max(h.new_len, 1) - 1
        return 0 if lo <= line <= hi else min(abs(line - lo), abs(line - hi))

    return min(range(len(hunks)), key=lambda i: (distance(hunks[i]), i))


def _place(rf: ReviewedFinding, maps: list[_FileMap], source: str) -> ReviewedFinding:
    """A finding of the answered patch on a line the reply does not quote."""
    f = rf.finding
    fm = next((m for m in maps if m.full.path == f.path and m.full.hunks), None)
    if fm is None or not fm.quote.hunk_end:
        return rf
    hi = _hunk_of(fm.full.hunks, f.line)
    quoted = sorted(fm.quote.hunk_end, key=lambda h: (abs(h - hi), h))
    end = fm.quote.hunk_end[quoted[0]]
    hunk = fm.full.hunks[hi]
    line = next((ln for ln in hunk.lines if ln.kind != "-" and ln.new_line == f.line), None)
    site = " ".join((line.text if line is not None else f.anchor).split())
    what = f"`{line.kind if line is not None else ''}{site}` " if site else ""
    unquoted = f"{what}({f.path}:{f.line} after the patch, in its hunk {hi + 1}: {hunk.header})"
    return replace(rf, source=Location(source, end), unquoted=unquoted)


def _thread_review(
    engine: Engine, reply: Patch, tree: Tree | None, thread: Thread, source: str, onto: bool
) -> ReplyReview:
    answered = find_answered(reply, thread.messages, thread.name)
    mapped, maps = _onto_reply(answered.patch, reply, source)
    if not onto:  # a review of the patch itself: its lines stay the thread's
        mapped = answered.patch
    series = [mapped if p is answered.patch else p for p in answered.series]
    result = review(engine, series, tree, keep_going=True)
    for p, err in zip(result.failed, result.errors, strict=True):
        if p is mapped:
            raise err
    findings = []
    for rf in result.findings:
        if rf.introduced_by is not mapped:
            continue  # another patch of the series: not what the reply is about
        if onto and (rf.source is None or rf.source.path != source):
            rf = _place(rf, maps, source)
        findings.append(rf)
    result.findings = findings
    result.lock_context = [c for c in result.lock_context if c.patch is mapped]
    quoted = sum(len(m.quote.lines) for m in maps)
    where = f"against {result.tree}" if tree is not None else "as fragments (no --tree)"
    remarks = [
        f"{reply.origin} answers {answered.patch.label} (found by {answered.how} in "
        f"{thread.name}); the whole patch was analysed {where}, and {quoted} of its lines "
        "were matched to the quoted ones"
    ]
    if not quoted:
        remarks.append(
            "none of the quoted lines were found in that patch (another version of it?): "
            "its findings have no quoted line to go under"
        )
    for err in result.errors:
        remarks.append(f"another patch of the series did not apply: {err}")
    result.errors, result.failed = [], []
    result.remarks = remarks
    return ReplyReview(result, "thread", answered)


def review_reply(
    engine: Engine,
    reply: Patch,
    tree: Tree | None,
    thread: Thread | None,
    source: str,
    onto_reply: bool = True,
) -> ReplyReview:
    """Review what `reply` (an email named `source`) quotes, the best way the inputs allow.

    With a thread and `onto_reply`, locations of the answered patch's lines
    are the reply's lines quoting them (for notes in the reply); without,
    they stay those of the thread file (for a review of the patch itself).
    """
    if thread is not None:
        return _thread_review(engine, reply, tree, thread, source, onto_reply)
    result = review(engine, [reply], tree)
    return ReplyReview(result, "applied" if not result.fragment else "fragment")
