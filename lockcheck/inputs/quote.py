"""Which lines of a patch a reply quotes: matched by tokens, not bytes.

A reply rarely quotes a patch as it was sent. Archives collapse or drop
indentation, mailers wrap long lines, reviewers cut lines out (`...`,
`[snip]`). So the quoted lines and the patch's lines are both cut into
C-ish tokens and the two token streams are aligned (`difflib`): a line of
the patch is quoted when most of its tokens are found, in order, in the
reply, and it is quoted *at* the last reply line holding them (for a
wrapped line, the note goes under its last piece).

API: `complete(fp)` says whether quoted hunks are whole (they can then be
applied like a patch file); `align(quoted, full)` gives a `QuoteMap` from
the lines of `full`'s hunks to lines of the reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import cast

from lockcheck.inputs.patch import (
    ELISION_RE,
    HEADER_RE,
    FilePatch,
    Hunk,
    HunkLine,
    LineKind,
    Patch,
    guess_path,
    quote_split,
)

_TOKEN_RE = re.compile(
    r"[A-Za-z_]\w*|\d[\w.]*|->|\+\+|--|<<=?|>>=?|[<>=!+\-*/%&|^]=|&&|\|\||\S"
)
# A patch line counts as quoted when this share of its tokens is found.
QUOTED_SHARE = 0.6


def tokens(text: str) -> list[str]:
    """C-ish tokens: words, numbers, multi-character operators, single marks."""
    return _TOKEN_RE.findall(text)


def complete(fp: FilePatch) -> bool:
    """Every quoted hunk of `fp` is whole: no elision, and its header's line counts."""
    for hunk in fp.hunks:
        if any(ln.gap_before for ln in hunk.lines):
            return False
        old = sum(1 for ln in hunk.lines if ln.kind != "+")
        new = sum(1 for ln in hunk.lines if ln.kind != "-")
        if (old, new) != (hunk.old_len, hunk.new_len):
            return False
    return bool(fp.hunks)


def quote_complete(patch: Patch) -> bool:
    """A quoted patch whose hunks are all whole: it can be applied as it is."""
    return patch.quoted and bool(patch.files) and all(complete(fp) for fp in patch.files)


LineKey = tuple[int, int]  # (hunk index, line index in the hunk) of the full patch


@dataclass(slots=True)
class QuoteMap:
    """Lines of one file of a full patch, as a reply quotes them."""

    lines: dict[LineKey, int] = field(default_factory=dict)  # -> reply line (1-based)
    hunk_end: dict[int, int] = field(default_factory=dict)  # hunk -> last reply line of it
    matched: int = 0  # tokens of the quote found in the patch
    quoted: int = 0  # tokens the quote has

    @property
    def score(self) -> float:
        return self.matched / self.quoted if self.quoted else 0.0


def _quoted_stream(fp: FilePatch) -> tuple[list[str], list[int]]:
    toks: list[str] = []
    where: list[int] = []
    for hunk in fp.hunks:
        for ln in hunk.lines:
            if ln.source_line is None:
                continue
            for t in tokens(ln.text):
                toks.append(t)
                where.append(ln.source_line)
    return toks, where


_QLine = tuple[int, list[str]]  # (reply line, tokens)
_FLine = tuple[LineKey, list[str]]


@dataclass(slots=True)
class _Tally:
    """Per patch line: how many of its tokens were found, and the last reply line holding one."""

    found: dict[LineKey, int] = field(default_factory=dict)
    last: dict[LineKey, int] = field(default_factory=dict)
    matched: int = 0

    def add(self, key: LineKey, n: int, src: int) -> None:
        self.found[key] = self.found.get(key, 0) + n
        self.last[key] = max(self.last.get(key, 0), src)
        self.matched += n


def _by_tokens(qlines: list[_QLine], flines: list[_FLine], tally: _Tally) -> None:
    """Token-level alignment of a stretch: wrapped lines, lines the archive mangled."""
    qtoks = [t for _, ts in qlines for t in ts]
    qwhere = [src for src, ts in qlines for _ in ts]
    ftoks = [t for _, ts in flines for t in ts]
    fwhere = [key for key, ts in flines for _ in ts]
    size = {key: len(ts) for key, ts in flines}
    if not qtoks or not ftoks:
        return
    for block in SequenceMatcher(None, qtoks, ftoks, autojunk=False).get_matching_blocks():
        if block.size < 2 and not _whole_line(fwhere, block.b, block.size, size):
            continue  # a lone `;` or `}` across an elision says nothing
        for k in range(block.size):
            tally.add(fwhere[block.b + k], 1, qwhere[block.a + k])


def align(quoted: FilePatch, full: FilePatch) -> QuoteMap:
    """Map the lines of `full`'s hunks to the reply lines of `quoted` showing them.

    Two passes, so that a long patch costs little: whole lines first (each
    compared as its token string), then token by token in the stretches
    between the lines that matched whole (wrapped and mangled lines).
    """
    qlines: list[_QLine] = [
        (ln.source_line, tokens(ln.text))
        for hunk in quoted.hunks
        for ln in hunk.lines
        if ln.source_line is not None
    ]
    flines: list[_FLine] = [
        ((hi, li), tokens(ln.text))
        for hi, hunk in enumerate(full.hunks)
        for li, ln in enumerate(hunk.lines)
    ]
    size = {key: len(ts) for key, ts in flines}
    out = QuoteMap(quoted=sum(len(ts) for _, ts in qlines))
    if not out.quoted or not any(size.values()):
        return out
    qi = [i for i, (_, ts) in enumerate(qlines) if ts]
    fi = [j for j, (_, ts) in enumerate(flines) if ts]
    qkeys = [" ".join(qlines[i][1]) for i in qi]
    fkeys = [" ".join(flines[j][1]) for j in fi]
    tally = _Tally()
    anchors: list[tuple[int, int]] = []
    for block in SequenceMatcher(None, qkeys, fkeys, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            a, b = qi[block.a + k], fi[block.b + k]
            anchors.append((a, b))
            tally.add(flines[b][0], size[flines[b][0]], qlines[a][0])
    bounds = [(-1, -1), *anchors, (len(qlines), len(flines))]
    for (a0, b0), (a1, b1) in zip(bounds, bounds[1:], strict=False):
        if a1 - a0 > 1 and b1 - b0 > 1:
            _by_tokens(qlines[a0 + 1 : a1], flines[b0 + 1 : b1], tally)
    out.matched = tally.matched
    for key, n in tally.found.items():
        if n >= QUOTED_SHARE * size[key]:
            out.lines[key] = tally.last[key]
            out.hunk_end[key[0]] = max(out.hunk_end.get(key[0], 0), tally.last[key])
    return out


def _whole_line(fwhere: list[LineKey], start: int, n: int, size: dict[LineKey, int]) -> bool:
    """The block is all of one line's tokens (a one-token line such as `continue;`'s `}`)."""
    if n == 0:
        return False
    key = fwhere[start]
    return all(fwhere[start + k] == key for k in range(n)) and size[key] == n


def best_file(quoted: FilePatch, files: tuple[FilePatch, ...]) -> tuple[FilePatch, QuoteMap] | None:
    """The file of a full patch that `quoted` shows: by name, else the best token match."""
    if not files:
        return None
    if not quoted.path_guessed:
        for fp in files:
            if fp.path == quoted.path:
                return fp, align(quoted, fp)
    scored = [(fp, align(quoted, fp)) for fp in files]
    return max(scored, key=lambda pair: pair[1].score)


def patch_score(reply: Patch, candidate: Patch) -> float:
    """The share of the reply's quoted tokens found in the candidate patch."""
    matched = total = 0
    for q in reply.files:
        got = best_file(q, candidate.files)
        if got is not None:
            matched += got[1].matched
            total += got[1].quoted
        else:
            total += len(_quoted_stream(q)[0])
    return matched / total if total else 0.0


def headerless_quote(patch: Patch) -> Patch:
    """A reply quoting patch lines without their `@@` header, as one hunk of unknown place.

    Only the thread can say where such lines belong (`align` needs no line
    numbers): quoted runs holding `+`/`-` lines are kept, the rest of the
    reply (comments, other quote levels, `...`) separates them as gaps.
    """
    if patch.files or not patch.source_lines:
        return patch
    lines = list(patch.source_lines)
    start = next((i + 1 for i, ln in enumerate(lines) if not ln.strip()), 0)
    if not any(HEADER_RE.match(ln) for ln in lines[:start]):
        start = 0  # an archive copy: no mail headers
    votes: dict[int, int] = {}
    for ln in lines[start:]:
        depth, text = quote_split(ln)
        if depth and text[:1] in ("+", "-") and not text.startswith(("+++", "---")):
            votes[depth] = votes.get(depth, 0) + 1
    if not votes:
        return patch
    depth = max(sorted(votes), key=lambda d: votes[d])
    blocks: list[list[tuple[int, str]]] = [[]]
    for i, ln in enumerate(lines[start:], start + 1):
        d, text = quote_split(ln)
        if d != depth or ELISION_RE.match(text):
            if blocks[-1]:
                blocks.append([])
            continue
        blocks[-1].append((i, text))
    hunk_lines: list[HunkLine] = []
    for block in blocks:
        if not any(t[:1] in ("+", "-") for _, t in block):
            continue
        for k, (src, text) in enumerate(block):
            kind: LineKind = cast(LineKind, text[0]) if text[:1] in ("+", "-") else " "
            body = text[1:] if text[:1] in ("+", "-", " ") else text
            hunk_lines.append(HunkLine(kind, body, None, None, src, k == 0 and bool(hunk_lines)))
    if not hunk_lines:
        return patch
    path = guess_path(patch.subject)
    hunk = Hunk(0, 0, 0, 0, "", tuple(hunk_lines), None)
    return replace(patch, files=(FilePatch(path, path, (hunk,), path_guessed=True),), quoted=True)
