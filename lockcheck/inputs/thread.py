"""The patch a reply answers, found in a thread or series file.

A reply that quotes only part of a patch cannot be analysed from the quote
alone: the locks it is about are usually taken in lines the reviewer cut.
The whole patch is in the thread (`b4 mbox`, `lei q`) or in a patch file.
It is found, in this order, by the reply's `In-Reply-To` (following replies
to replies up to the patch), by its `References`, by subject (`Re: [PATCH
09/12] x` answers `[PATCH 09/12] x`), and last by the quoted lines
themselves (the patch holding most of their tokens).

API: `read_thread(path)` -> the messages; `find_answered(reply, thread)` ->
`Answered` (the patch, how it was found, the series it belongs to).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lockcheck.errors import InputError
from lockcheck.inputs.patch import Patch, order_series, read_patches, split_subject
from lockcheck.inputs.quote import patch_score

# Below this share of the quote's tokens a patch is not the one quoted.
MIN_QUOTE_SCORE = 0.6


@dataclass(frozen=True, slots=True)
class Answered:
    patch: Patch
    how: str  # "In-Reply-To", "References", "subject", "quoted lines"
    series: list[Patch]  # the patches to apply, in order, ending with or holding `patch`


def read_thread(path: Path) -> list[Patch]:
    """Every message of a thread mbox, series mbox or patch file."""
    return read_patches(path)


def _is_patch(p: Patch) -> bool:
    return bool(p.files) and not p.quoted


def _by_id(reply: Patch, thread: list[Patch]) -> tuple[Patch, str] | None:
    ids = {p.message_id: p for p in thread if p.message_id}
    seen: set[str] = set()
    cur: str | None = reply.in_reply_to
    while cur and cur not in seen:
        seen.add(cur)
        p = ids.get(cur)
        if p is None:
            break
        if _is_patch(p):
            return p, "In-Reply-To"
        cur = p.in_reply_to  # a reply to a reply: up to the patch
    for ref in reversed(reply.references):
        p = ids.get(ref)
        if p is not None and _is_patch(p):
            return p, "References"
    return None


def _subject_key(p: Patch) -> tuple[str, int | None, int | None]:
    subject, number, total = split_subject(p.raw_subject or p.subject)
    return " ".join(subject.lower().split()), number, total


def _by_subject(reply: Patch, patches: list[Patch]) -> Patch | None:
    want = _subject_key(reply)
    if not want[0]:
        return None
    hits = [p for p in patches if _subject_key(p) == want]
    return hits[0] if len(hits) == 1 else None


def _same_hunks(reply: Patch, patch: Patch) -> bool:
    """The `@@` lines the reply quotes are the patch's own (similar code is not enough)."""
    starts = {(h.old_start, h.new_start) for fp in patch.files for h in fp.hunks}
    quoted = {
        (h.old_start, h.new_start) for fp in reply.files for h in fp.hunks if h.source_line
    }
    quoted.discard((0, 0))  # a quote without its @@ line
    return not quoted or bool(quoted & starts)


def _series(patch: Patch, patches: list[Patch]) -> list[Patch]:
    """The answered patch's series: the numbered patches of the same total, in order."""
    if patch.number is None or patch.total is None:
        return [patch]
    same = [p for p in patches if p.total == patch.total and p.number is not None]
    try:
        return order_series(same)
    except InputError:  # two versions of the series in one thread: just the patch
        return [patch]


def find_answered(reply: Patch, thread: list[Patch], thread_name: str) -> Answered:
    """The patch of `thread` that `reply` quotes; an `InputError` when there is none."""
    patches = [p for p in thread if _is_patch(p)]
    if not patches:
        raise InputError(f"{thread_name}: no patch in it (a thread or series mbox, or a patch)")
    found = _by_id(reply, thread)
    if found is None:
        p = _by_subject(reply, patches)
        if p is not None:
            found = (p, "subject")
    if found is None:
        scored = sorted(
            ((patch_score(reply, p), i) for i, p in enumerate(patches) if _same_hunks(reply, p)),
            reverse=True,
        )
        if scored and scored[0][0] >= MIN_QUOTE_SCORE:
            found = (patches[scored[0][1]], "quoted lines")
    if found is None:
        raise InputError(
            f"{thread_name}: no patch in it that {reply.origin} answers "
            "(none by In-Reply-To or References, subject, or the quoted lines)"
        )
    patch, how = found
    return Answered(patch, how, _series(patch, patches))
