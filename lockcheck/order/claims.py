"""Prose claims about lock state ("called with the page lock held") against the code.

A comment in a function body speaks about the program point after it (a
trailing comment, or one on a statement that takes or drops the lock it
names: about the point after that statement); the comment just
above a definition speaks about the function's entry. A claim names a lock
in the kernel's words; it is resolved to a lock of the function (by its
spelling) or to lock classes (through the pack's `[names]` table) and
checked against the computed state. Only contradictions the code proves
count: "X is held" where every path here released X, "X is not held" where
this function surely took X; at entry, the function waiting for an X of
its caller's object the claim says is held, or releasing an X it never
took although the claim says the caller does not hold it. Claims about a
lock that cannot be resolved are counted, not judged.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from lockcheck.analysis.file import FileFacts
from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState
from lockcheck.model.ir import Acquire, Call, LockRef, Release, Site
from lockcheck.order.doc import Names
from lockcheck.order.edges import declared_types, lock_keys
from lockcheck.packs import Vocabulary

Kind = Literal["held", "not_held"]

_BLOCK_RE = re.compile(rb"/\*.*?\*/|//[^\n]*", re.S)
_CHEAP_RE = re.compile(rb"held|hold|under|locked|taken", re.I)
# every claim pattern needs one of these words: skip other sentences before
# running the (unanchored, costly) patterns
_SENTENCE_CHEAP_RE = re.compile(r"held|hold|under|locked|taken|acquired", re.I)
_ARTICLE = r"(?:(?:the|its|their|our|this|that|a|an|same|corresponding|relevant)\s+)*"
_TOKEN = r"&?[A-Za-z_][\w]*(?:(?:->|\.)[A-Za-z_]\w*|\[\w*\])*(?:\(\))?"
_LOCKWORD = r"(?:table\s+lock|read\s+lock|map\s+lock|lock|locks|rwsem|sem|mutex|spinlock|semaphore)"
_X = rf"{_ARTICLE}(?P<x>{_TOKEN}(?:\s+{_LOCKWORD})?)"
_RAW_PATTERNS: tuple[tuple[Kind, str], ...] = (
    ("not_held", rf"\bwithout\s+(?:holding|taking)\s+{_X}"),
    ("not_held", rf"\bwithout\s+{_X}\s+(?:being\s+)?(?:held|taken|locked)\b"),
    ("not_held", rf"\bnot\s+holding\s+{_X}"),
    (
        "not_held",
        rf"{_X}\s+(?:is|are|must|should|was)\s+not\s+(?:be\s+)?(?:held|taken|locked)\b",
    ),
    ("not_held", rf"{_X}\s+(?:isn't|aren't|wasn't)\s+(?:held|taken|locked)\b"),
    (
        "held",
        rf"\b(?:with|while)\s+{_X}\s+(?:is\s+|being\s+|still\s+|already\s+)*"
        r"(?:held|taken|locked|acquired)\b",
    ),
    (
        "held",
        rf"{_X}\s+(?:is|are|must\s+be|should\s+be|has\s+been|remains)\s+"
        r"(?:still\s+|already\s+|always\s+)*(?:held|taken|locked)\b",
    ),
    ("held", rf"(?<!not )(?<!without )\bholding\s+{_X}"),
    ("held", rf"\bunder\s+{_X}"),
    ("held", rf"\b(?:we|i)\s+(?:still\s+|already\s+|now\s+)*hold\s+{_X}"),
    ("held", rf"\bcallers?\s+(?:must\s+|should\s+)?(?:holds?|have\s+taken)\s+{_X}"),
)
_PATTERNS = tuple((kind, re.compile(p, re.I)) for kind, p in _RAW_PATTERNS)
# a claim is about what is, not what may or will be
_HEDGE_RE = re.compile(
    r"\b(?:if|unless|whether|when|whenever|once|until|before|after|in case|so that|"
    r"may|might|can|could|would|will|likely|usually|normally|typically|generally|mostly|"
    r"otherwise|either|except|instead|no longer|cannot|can't|"
    # what a checker is told, not the state (`__acquire()` "for sparse")
    r"pretend|pretends|sparse|why|unclear|not clear|"
    # advice and statements about other code, not the state here
    r"avoid|avoids|don't|do not|never|no one|nobody|"
    r"that's done|is done|are done)\b",
    re.I,
)
# "read concurrently without X held" (on the store that needs WRITE_ONCE):
# without the lock next to concurrency is what other threads do; a "held"
# claim there says what the lock keeps away, and stays a claim
_OTHERS_RE = re.compile(r"\b(?:concurrent(?:ly)?|lockless(?:ly)?|racily|in\s+parallel)\b", re.I)
# a negated call turns the "held" it qualifies around: "must NOT be called
# with X held", "not to be called from irq context, or while X is held"
_NEGATED_CALL_RE = re.compile(
    r"(?:\bnot|n't)\s+(?:to\s+)?(?:be\s+|been\s+|get\s+)?"
    r"(?:called|invoked|entered|used)\b",
    re.I,
)
# a contrast ends what a negation before it says
_CONTRAST_RE = re.compile(r"\b(?:but|however)\b", re.I)
# the mode a "held" claim names: "we hold the mmap lock for write"
_WRITE_RE = re.compile(r"\bfor\s+writ(?:e|ing)\b|\bwrite[- ]locked\b|\bexclusively\b", re.I)
_ENTRY_RE = re.compile(r"\b(?:call(?:ed|er|ers|ing)?|must|context)\b", re.I)
_RETURN_RE = re.compile(r"\b(?:return|returns|returned|returning|on exit|exits)\b", re.I)
_LOCKISH_RE = re.compile(r"lock|sem\b|rwsem|mutex|ptl|\brcu\b|PG_locked", re.I)
_VAGUE = frozenset({"lock", "locks", "it", "them", "this", "that", "one", "spinlock", "mutex"})


@dataclass(frozen=True, slots=True)
class Comment:
    start: int  # byte offset
    line: int
    end_line: int
    column: int
    trailing: bool  # code precedes it on its first line
    text: str


@dataclass(frozen=True, slots=True)
class ProseClaim:
    kind: Kind
    lock: str  # the lock as the comment names it
    quote: str  # the sentence that says it
    comment: Comment
    header: bool  # about the function's entry
    write: bool = False  # claims the lock is held for write


@dataclass(frozen=True, slots=True)
class Resolved:
    """A claim's lock: a spelling the function uses, or classes it may be."""

    inst: str | None
    keys: frozenset[str]

    def matches(self, ref: LockRef, types: dict[str, str], names: Names) -> bool:
        if self.inst is not None:
            return ref.inst.split("@", 1)[0] == self.inst
        return bool(lock_keys(ref, types, names) & self.keys)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A prose claim the code contradicts; `related` as (line, column, message)."""

    fn: FunctionFacts
    claim: ProseClaim
    lock: str
    state: str
    site: Site
    related: tuple[tuple[int, int, str], ...]


@dataclass(slots=True)
class ClaimStats:
    checked: int = 0
    unresolved: int = 0


def comments(source: bytes) -> list[Comment]:
    out = []
    # line numbers counted forward from the previous comment: counting from
    # the start of the file for each one made big files quadratic
    pos, line = 0, 1
    for m in _BLOCK_RE.finditer(source):
        line_start = source.rfind(b"\n", 0, m.start()) + 1
        before = source[line_start : m.start()]
        line += source.count(b"\n", pos, m.start())
        pos = m.start()
        raw = m.group(0).decode("utf-8", "replace")
        out.append(
            Comment(
                m.start(),
                line,
                line + raw.count("\n"),
                m.start() - line_start + 1,
                bool(before.strip()),
                raw,
            )
        )
    return out


def prose(raw: str) -> str:
    body = raw[2:-2] if raw.startswith("/*") else raw[2:]
    lines = [ln.strip().lstrip("*").strip() for ln in body.split("\n")]
    return " ".join(" ".join(lines).split())


def sentences(text: str) -> Iterator[str]:
    for s in re.split(r"(?<=[.;!?:])\s+", text):
        if s.strip():
            yield s.strip()


def prose_claims(comment: Comment, header: bool) -> Iterator[ProseClaim]:
    """The lock-state claims a comment makes, one per sentence and lock.

    A header comment also describes what the function returns with ("@ptl
    is locked"), so only sentences about calling it count there.
    """
    for sentence in sentences(prose(comment.text)):
        if "?" in sentence or not _SENTENCE_CHEAP_RE.search(sentence):
            continue
        if header and (not _ENTRY_RE.search(sentence) or _RETURN_RE.search(sentence)):
            continue
        seen: set[str] = set()
        for kind, pattern in _PATTERNS:
            for m in pattern.finditer(sentence):
                x = " ".join(m.group("x").split())
                if x.lower() in _VAGUE or x in seen or not _LOCKISH_RE.search(x):
                    continue
                if _HEDGE_RE.search(sentence):
                    continue
                seen.add(x)
                said = _negated(kind, sentence[: m.start()])
                if said == "not_held" and _OTHERS_RE.search(sentence):
                    continue
                write = said == "held" and bool(_WRITE_RE.search(sentence, m.end("x")))
                yield ProseClaim(said, x, sentence, comment, header, write)


def _negated(kind: Kind, before: str) -> Kind:
    """The claim's kind once a negated call before it ("must not be called with") is read."""
    clause = _CONTRAST_RE.split(before)[-1]
    if not _NEGATED_CALL_RE.search(clause):
        return kind
    return "not_held" if kind == "held" else "held"


def resolve(spelt: str, fn: FunctionFacts, names: Names, types: dict[str, str]) -> Resolved | None:
    """The lock a claim names, as this function knows it, or None."""
    s = spelt.lstrip("&").removesuffix("()")
    refs = [ev.lock for evs in fn.events for ev in evs if isinstance(ev, Acquire | Release)]
    refs += list(fn.fn.lockvars.values())
    insts = {r.inst.split("@", 1)[0] for r in refs}
    if s in insts:
        return Resolved(s, frozenset())
    classes = names.classes(s, fold_case=True)
    if classes is None:
        bare = re.sub(rf"\s+{_LOCKWORD}$", "", s, flags=re.I)
        classes = names.classes(bare, fold_case=True)
        if classes is None and any(r.cls == bare for r in refs) and bare not in _VAGUE:
            classes = frozenset({bare})
        if classes is None and bare in insts:
            return Resolved(bare, frozenset())
    if classes is None:
        return _by_spelling(s)
    return Resolved(None, frozenset(classes))


def _by_spelling(s: str) -> Resolved | None:
    """`hugetlb_lock`, `zone->lock`: a lock named in C is its own class or spelling."""
    if " " in s or not re.fullmatch(_TOKEN, s):
        return None
    last = re.split(r"->|\.", s)[-1]
    keys = {s.replace(".", "->")}
    if last.lower() not in _VAGUE and _LOCKISH_RE.search(last):
        keys.add(last)
    return Resolved(None, frozenset(keys))


def _point(fn: FunctionFacts, c: Comment) -> tuple[int, LockState] | None:
    """The node a body comment speaks about and the lock state there."""
    nodes = fn.fn.cfg.nodes
    if c.trailing:
        same = [n for n in nodes if n.line == c.line and n.kind in ("stmt", "branch")]
        if same:
            nid = max(same, key=lambda n: n.id).id
            st = fn.state_out[nid]
            return (nid, st) if st is not None else None
    after = [
        n for n in nodes if n.kind in ("stmt", "branch") and c.end_line < n.line <= fn.fn.end_line
    ]
    if not after:
        return None
    nid = min(after, key=lambda n: (n.line, n.id)).id
    st = fn.state_in[nid]
    return (nid, st) if st is not None else None


@dataclass(slots=True)
class _Judge:
    fn: FunctionFacts
    names: Names
    types: dict[str, str]
    vocab: Vocabulary

    def waits(self, ev: Acquire) -> bool:
        return ev.cond_var is None and not self.vocab.is_try(ev.primitive)

    def match(self, lock: Resolved, ref: LockRef) -> bool:
        return lock.matches(ref, self.types, self.names)

    def releases(self, lock: Resolved) -> dict[int, list[Release]]:
        out: dict[int, list[Release]] = {}
        for nid, evs in enumerate(self.fn.events):
            for ev in evs:
                if isinstance(ev, Release) and not ev.maybe and self.match(lock, ev.lock):
                    out.setdefault(nid, []).append(ev)
        return out

    def body(self, claim: ProseClaim, lock: Resolved) -> Mismatch | None:
        point = _point(self.fn, claim.comment)
        if point is None:
            return None
        nid, st = point
        site = Site(claim.comment.line, claim.comment.column, claim.quote)
        first = self._first_statement(nid)
        if not claim.comment.trailing and self._makes_true(claim, lock, first):
            after = self.fn.state_out[first]
            if after is None:
                return None
            nid, st = first, after
        if claim.kind == "not_held":
            for ref, held in sorted(st.must.items(), key=lambda kv: (kv[1].site, kv[0].inst)):
                if self.match(lock, ref) and not held.assumed and not held.escaped:
                    where = (held.site.line, held.site.column, f"`{_base(ref)}` taken here")
                    return Mismatch(self.fn, claim, _base(ref), "is held here", site, (where,))
            return None
        if any(self.match(lock, ref) for ref in st.may):
            return self._mode(claim, lock, st, site)
        rel = self.releases(lock)
        if claim.comment.trailing and nid in rel:  # state after the node: its release counts
            return self._released(claim, site, rel[nid])
        avoid = set(rel) - {nid}
        if not avoid or self.fn.entry_reaches_avoiding(nid, avoid):
            return None
        return self._released(claim, site, [r for n in sorted(avoid) for r in rel[n]])

    def _first_statement(self, nid: int) -> int:
        """The first statement run from `nid`: past a bare `for (;;)` or `do` head."""
        nodes = self.fn.fn.cfg.nodes
        seen = {nid}
        while not self.fn.events[nid] and not nodes[nid].text and len(nodes[nid].succ) == 1:
            nxt = nodes[nid].succ[0][0]
            if nxt in seen or nodes[nxt].kind not in ("stmt", "join", "branch"):
                break
            seen.add(nxt)
            nid = nxt
        return nid

    def _makes_true(self, claim: ProseClaim, lock: Resolved, nid: int) -> bool:
        """The statement under the comment takes (or drops) the lock it names.

        "Wait without holding the lock" above the unlock, "claim it under
        the lock" above the lock call: the comment tells what that statement
        and the code after it do, so it is judged on the state after it.
        """
        if claim.kind == "held":
            refs = [ev.lock for ev in self.fn.events[nid] if isinstance(ev, Acquire)]
        else:
            refs = [
                ev.lock for ev in self.fn.events[nid] if isinstance(ev, Release) and not ev.maybe
            ]
        return any(self.match(lock, ref) for ref in refs)

    def _mode(
        self, claim: ProseClaim, lock: Resolved, st: LockState, site: Site
    ) -> Mismatch | None:
        """"held for write" where this function surely holds it only for read."""
        if not claim.write:
            return None
        may = [(r, h) for r, h in st.may.items() if self.match(lock, r)]
        if not may or any(h.mode != "read" or h.assumed or h.escaped for _, h in may):
            return None
        if not all(r in st.must for r, _ in may):
            return None
        ref, held = min(may, key=lambda kv: (kv[1].site, kv[0].inst))
        where = ((held.site.line, held.site.column, f"`{_base(ref)}` taken for read here"),)
        return Mismatch(self.fn, claim, _base(ref), "is held only for read here", site, where)

    def _slot_releases(self, ref: LockRef) -> set[int]:
        """Releases of a lock of the same class in a slot of a table that
        the function filled with the lock's owner (`init(&set, rq)`, then
        `spin_unlock(&set.q[i]->lock)`): perhaps the claimed lock, so an
        acquisition one of them reaches proves nothing."""
        owner = _owner(ref)
        tables = {
            a
            for evs in self.fn.events
            for ev in evs
            if isinstance(ev, Call) and owner in ev.args
            for a in ev.args
            if a != owner and re.fullmatch(r"[A-Za-z_]\w*", a)
        }
        out: set[int] = set()
        for nid, evs in enumerate(self.fn.events):
            for ev in evs:
                if not isinstance(ev, Release) or ev.maybe or ev.lock.cls != ref.cls:
                    continue
                root = re.match(r"([A-Za-z_]\w*)[^\[]*\[", _base(ev.lock))
                if root is not None and root.group(1) in tables:
                    out.add(nid)
        return out

    def _released(self, claim: ProseClaim, site: Site, rels: list[Release]) -> Mismatch:
        lock = _base(rels[0].lock)
        related = tuple(
            sorted({(r.site.line, r.site.column, f"`{_base(r.lock)}` released here") for r in rels})
        )
        return Mismatch(self.fn, claim, lock, "was released on every path here", site, related)

    def header(self, claim: ProseClaim, lock: Resolved) -> Mismatch | None:
        site = Site(claim.comment.line, claim.comment.column, claim.quote)
        if claim.kind == "not_held":
            # what an annotation says the caller holds, not what the analysis inferred
            for ref in sorted({c.lock for c in self.fn.fn.entry_claims}, key=lambda r: r.inst):
                if self.match(lock, ref):
                    rel = self.releases(Resolved(_base(ref), frozenset()))
                    related = tuple(
                        sorted(
                            {
                                (r.site.line, r.site.column, f"`{_base(r.lock)}` released here")
                                for evs in rel.values()
                                for r in evs
                            }
                        )
                    )
                    return Mismatch(
                        self.fn, claim, _base(ref), "is the caller's: released here", site, related
                    )
            return None
        params = set(self.fn.fn.params)
        avoid = set(self.releases(lock))
        for nid, ev, st in self.fn.iter_events():
            if not isinstance(ev, Acquire) or ev.nested or not self.match(lock, ev.lock):
                continue
            if not self.waits(ev) or _owner(ev.lock) not in params:
                continue
            if any(self.match(lock, ref) for ref in st.may):
                continue
            if any(nid in self.fn.reachable_from(r) for r in self._slot_releases(ev.lock)):
                continue  # dropped before, perhaps, under the name of a table slot
            if nid in avoid or not self.fn.entry_reaches_avoiding(nid, avoid):
                continue
            where = ((ev.site.line, ev.site.column, f"`{_base(ev.lock)}` taken here"),)
            return Mismatch(
                self.fn, claim, _base(ev.lock), "is taken again by the function", site, where
            )
        return None


def _base(ref: LockRef) -> str:
    return ref.inst.split("@", 1)[0]


def _owner(ref: LockRef) -> str:
    m = re.match(r"[A-Za-z_]\w*", _base(ref))
    return m.group(0) if m else ""


def _is_header(c: Comment, fn: FunctionFacts) -> bool:
    """The block comment that ends on the line before the definition."""
    return c.end_line == fn.fn.start_line - 1 and not c.trailing and c.text.startswith("/*")


def header_comment(fn: FunctionFacts, cs: list[Comment]) -> Comment | None:
    return next((c for c in cs if _is_header(c, fn)), None)


def _function_comments(
    fn: FunctionFacts, cs: list[Comment], lines: list[int], ends: list[int]
) -> Iterator[tuple[Comment, bool]]:
    """Its header comment, then those in its body, in source order. `cs` is
    in source order, so `lines` and `ends` (their first and last lines) are
    sorted: each function looks only at its own, not at the whole file's."""
    start, end = fn.fn.start_line, fn.fn.end_line
    for i in range(bisect_left(ends, start - 1), bisect_right(ends, start - 1)):
        if _is_header(cs[i], fn):
            yield cs[i], True
    for i in range(bisect_right(lines, start), bisect_right(lines, end)):
        yield cs[i], False


# The last file's answer: the engine asks for the stats and the claim-mismatch
# rule for the mismatches of the same analysis, one after the other.
_last: tuple[FileFacts, bytes, Vocabulary, list[Mismatch], ClaimStats] | None = None


def check_comment_claims(
    facts: FileFacts, source: bytes, vocab: Vocabulary, stats: ClaimStats | None = None
) -> list[Mismatch]:
    """Every prose claim in the file's functions the computed state contradicts."""
    global _last
    last = _last
    if last is not None and last[0] is facts and last[1] is source and last[2] is vocab:
        if stats is not None:
            stats.checked += last[4].checked
            stats.unresolved += last[4].unresolved
        return list(last[3])
    mine = ClaimStats()
    out = _check_comment_claims(facts, source, vocab, mine)
    _last = (facts, source, vocab, out, mine)
    if stats is not None:
        stats.checked += mine.checked
        stats.unresolved += mine.unresolved
    return list(out)


def _check_comment_claims(
    facts: FileFacts, source: bytes, vocab: Vocabulary, stats: ClaimStats
) -> list[Mismatch]:
    if not _CHEAP_RE.search(source):
        return []
    names = Names(vocab.names)
    cs = comments(source)
    firsts, lasts = [c.line for c in cs], [c.end_line for c in cs]
    lines = source.decode("utf-8", "replace").splitlines()
    out: list[Mismatch] = []
    for fn in facts.functions:
        if fn.budget_exceeded:
            continue
        found = [
            (c, header, claim)
            for c, header in _function_comments(fn, cs, firsts, lasts)
            for claim in prose_claims(c, header)
        ]
        if not found:
            continue
        types = declared_types(lines, fn)
        judge = _Judge(fn, names, types, vocab)
        for _c, header, claim in found:
            lock = resolve(claim.lock, fn, names, types)
            stats.checked += 1
            stats.unresolved += lock is None
            if lock is None:
                continue
            mismatch = judge.header(claim, lock) if header else judge.body(claim, lock)
            if mismatch is not None:
                out.append(mismatch)
    return out


__all__ = ["ClaimStats", "Mismatch", "check_comment_claims"]
