"""The diff-aware step: what a patch, or a series, changes in the lock picture.

For every file a patch touches, the pre-image and the post-image are
analysed by the engine. Findings are matched by `Finding.fingerprint` (rule,
file, function, site text: robust to line shifts), so a patch is blamed only
for findings its post-image has and its pre-image had not. Across a series
each such finding remembers the patch that introduced it and the later patch
that removes it (`introduced_by` / `fixed_by`).

The lock context answers the reviewer's question "what is held here now?":
for each check and act site of the functions a patch changes, the surely
held locks (`LockState.describe()`) before and after the patch.

With a tree (a directory, or a git revision) patches are applied in memory
(`lockcheck.inputs.apply`); so is a reply whose quoted hunks are whole.
Without one, or for a reply that quotes only parts of a patch (the whole
patch then comes from the thread: `lockcheck.reply`), the hunks themselves
are analysed (fragment mode): each
side's lines are joined, elisions become comments, and the text is wrapped
in just enough of a function for the grammar to see function bodies. Held
sets are then those the fragment shows, and a quoted fragment's locations
point into the email (the line a note would go under).

API: `review(engine, patches, tree, show_all)` -> `ReviewResult`, whose
`findings` are `ReviewedFinding`s and whose `lock_context` are
`SiteContext`s; each carries `source`, the line of the input patch or email
that shows the site, when a hunk shows it.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from lockcheck.analysis.file import FlowMemo
from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState
from lockcheck.engine import Analysis, Engine, Stats
from lockcheck.errors import InputError
from lockcheck.frontend.macros import CALLED_TEXT_RE
from lockcheck.frontend.parse import count_errors, iter_functions, parse_source
from lockcheck.inputs.apply import DirTree, Series, Tree
from lockcheck.inputs.files import C_SUFFIXES
from lockcheck.inputs.patch import FilePatch, Patch, parse_patch_text
from lockcheck.inputs.quote import quote_complete
from lockcheck.model.extract import LowerMemo
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Act, Check, Function
from lockcheck.rules.base import ReviewRule
from lockcheck.rules.decide import decide
from lockcheck.rules.lock_effect import LockEffectChanged

FRAGMENT_NOTE = (
    "fragment mode: no tree to apply to, so only the lines the hunks show were analysed; "
    "held sets reflect only that code"
)
QUOTED_NOTE = "quoted patch: analysed the hunks the email quotes; locations point into the email"
PARTIAL_NOTE = (
    "the email quotes only part of the patch, so --tree was not used: give the thread "
    "or series with --thread FILE to analyse the whole patch against the tree"
)


@dataclass(frozen=True, slots=True)
class Location:
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class LineOrigin:
    """Where a line of an analysed image comes from."""

    code_line: int | None  # the line in the real file, when known
    source_line: int | None  # the line of the input patch or email showing it
    changed: bool = False
    shift: int = 0  # columns the quote marks and diff prefix add in the input


@dataclass(frozen=True, slots=True)
class Image:
    """One side of one changed file, ready to analyse."""

    path: str
    text: str
    changed: frozenset[int]  # lines of `text` the patch adds (post) or removes (pre)
    origins: tuple[LineOrigin | None, ...] | None = None  # fragment mode: per line
    sources: dict[int, int] = field(default_factory=dict)  # tree mode: line -> source line

    def locate(self, line: int, patch: Patch) -> Location:
        if self.origins is None:
            return Location(self.path, line)
        o = self.origins[line - 1] if 0 < line <= len(self.origins) else None
        if o is not None and patch.quoted and o.source_line is not None:
            return Location(patch.path or patch.origin, o.source_line)
        if o is not None and o.code_line is not None:
            return Location(self.path, o.code_line)
        return Location(self.path, 0)

    def column(self, line: int, column: int, patch: Patch) -> int:
        """`column` of image line `line` where `locate` points (past quote marks)."""
        if self.origins is None or not patch.quoted or not 0 < line <= len(self.origins):
            return column
        o = self.origins[line - 1]
        return column + o.shift if o is not None and o.source_line is not None else column

    def source(self, line: int, patch: Patch) -> Location | None:
        """The line of the patch or email that shows image line `line`."""
        if self.origins is not None:
            o = self.origins[line - 1] if 0 < line <= len(self.origins) else None
            src = o.source_line if o is not None else None
        else:
            src = self.sources.get(line)
        return Location(patch.path or patch.origin, src) if src is not None else None


@dataclass(frozen=True, slots=True)
class SiteContext:
    """The locks held at one check or act site, before and after a patch."""

    patch: Patch
    file: str  # the source file the patch changes
    location: Location
    function: str
    site: str
    kind: str  # "check uffd-wp", "act pt-detach", ...
    before: tuple[str, ...] | None  # None: the site is new
    after: tuple[str, ...] | None  # None: the patch removes the site
    source: Location | None = None

    @property
    def change(self) -> Literal["added", "removed", "changed", "unchanged"]:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "unchanged" if self.before == self.after else "changed"

    def difference(self) -> str:
        """The change spelled out: modes that moved, locks lost and gained."""
        if self.before is None or self.after is None:
            return "site added by the patch" if self.before is None else "site removed"
        b = dict(_split_held(h) for h in self.before)
        a = dict(_split_held(h) for h in self.after)
        parts = [
            f"`{k}` {b[k] or 'held'} -> {a[k] or 'held'}" for k in b if k in a and a[k] != b[k]
        ]
        lost = [k for k in self.before if _split_held(k)[0] not in a]
        gained = [k for k in self.after if _split_held(k)[0] not in b]
        if lost:
            parts.append("no longer held: " + ", ".join(f"`{k}`" for k in lost))
        if gained:
            parts.append("now held: " + ", ".join(f"`{k}`" for k in gained))
        return "; ".join(parts) or "unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "patch": self.patch.subject,
            "path": self.location.path,
            "file": self.file,
            "function": self.function,
            "line": self.location.line,
            "site": self.site,
            "kind": self.kind,
            "before": list(self.before) if self.before is not None else None,
            "after": list(self.after) if self.after is not None else None,
            "change": self.change,
            "difference": self.difference(),
            "source": _loc_dict(self.source),
        }


def _split_held(h: str) -> tuple[str, str]:
    inst, sep, mode = h.rpartition(":")
    if sep and mode in ("read", "write"):
        return inst, mode
    return h, ""


def _loc_dict(loc: Location | None) -> dict[str, Any] | None:
    return {"path": loc.path, "line": loc.line} if loc is not None else None


@dataclass(frozen=True, slots=True)
class ReviewedFinding:
    finding: Finding  # located for the reader (tree file, or the email for quotes)
    introduced_by: Patch | None
    fixed_by: Patch | None
    source: Location | None = None
    image_text: str = field(default="", repr=False, compare=False)  # what `finding` was found in
    # a reply that quotes the patch in part: the patch line meant, when `source` is the
    # end of the quoted hunk because the line itself was not quoted
    unquoted: str | None = None

    def extra(self) -> dict[str, Any]:
        out = {
            "introduced_by": self.introduced_by.subject if self.introduced_by else None,
            "fixed_by": self.fixed_by.subject if self.fixed_by else None,
            "source": _loc_dict(self.source),
        }
        if self.unquoted is not None:
            out["unquoted"] = self.unquoted
        return out


@dataclass(slots=True)
class ReviewResult:
    patches: list[Patch]
    findings: list[ReviewedFinding]
    lock_context: list[SiteContext]
    stats: Stats
    fragment: list[Patch]  # patches analysed from their hunks alone
    tree: str | None
    errors: list[InputError] = field(default_factory=list)  # why `failed` did not apply
    failed: list[Patch] = field(default_factory=list)  # skipped; the rest still reviewed
    remarks: list[str] = field(default_factory=list)  # how the inputs were read, for notes()
    # the function models of each post-image analysed, by (path, text): the
    # simulator's evidence reads them instead of analysing the image again
    models: dict[tuple[str, str], list[Function]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def mode(self) -> str:
        if not self.fragment:
            return "tree"
        return "fragment" if len(self.fragment) == len(self.reviewed) else "mixed"

    @property
    def reviewed(self) -> list[Patch]:
        failed = {id(p) for p in self.failed}
        return [p for p in self.patches if p.files and id(p) not in failed]

    def notes(self) -> list[str]:
        out = list(self.remarks)
        if any(not p.quoted for p in self.fragment):
            out.append(FRAGMENT_NOTE)
        if any(p.quoted for p in self.fragment):
            out.append(QUOTED_NOTE)
            if self.tree is not None and any(not quote_complete(p) for p in self.fragment):
                out.append(PARTIAL_NOTE)
        return out


# ---------------------------------------------------------------------------
# fragment mode: make the hunks' lines parse as C functions

_FUNC_HEAD_RE = re.compile(r"^[A-Za-z_][\w \t*]*?\b([A-Za-z_]\w*)\s*\(")


def _scan(line: str, in_comment: bool) -> tuple[int, bool]:
    """(brace depth change, inside a block comment at the end): C-lexically."""
    delta = 0
    i = 0
    n = len(line)
    while i < n:
        if in_comment:
            j = line.find("*/", i)
            if j < 0:
                return delta, True
            i, in_comment = j + 2, False
            continue
        if line.startswith("/*", i):
            i, in_comment = i + 2, True
            continue
        if line.startswith("//", i):
            break
        c = line[i]
        if c in "\"'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            delta += 1
        elif c == "}":
            delta -= 1
        i += 1
    return delta, in_comment


@dataclass(slots=True)
class _Piece:
    section: str
    new_hunk: bool
    lines: list[tuple[str, LineOrigin]]


def _pieces(
    fp: FilePatch, side: Literal["old", "new"], source_lines: tuple[str, ...]
) -> list[_Piece]:
    skip = "+" if side == "old" else "-"
    out: list[_Piece] = []
    for hunk in fp.hunks:
        piece = _Piece(hunk.section, True, [])
        out.append(piece)
        for ln in hunk.lines:
            if ln.gap_before and piece.lines:
                piece = _Piece(hunk.section, False, [])
                out.append(piece)
            if ln.kind == skip:
                continue
            code = ln.old_line if side == "old" else ln.new_line
            shift = 0
            if ln.source_line is not None and 0 < ln.source_line <= len(source_lines):
                quoted = source_lines[ln.source_line - 1].rstrip("\r\n")
                if quoted.endswith(ln.text):
                    shift = len(quoted) - len(ln.text)
            origin = LineOrigin(code, ln.source_line, ln.kind != " ", shift)
            piece.lines.append((ln.text, origin))
    return [p for p in out if p.lines]


def _section_name(section: str) -> str | None:
    m = CALLED_TEXT_RE.search(section)  # the first name written as a call
    return m.group(1) if m else None


def _depths(lines: list[str]) -> tuple[list[int], int, int]:
    """(depth before each line, minimum depth, final depth) of joined lines."""
    depth = 0
    low = 0
    before: list[int] = []
    in_comment = False
    for text in lines:
        before.append(depth)
        d, in_comment = _scan(text, in_comment)
        depth += d
        low = min(low, depth)
    return before, low, depth


def _current_function(lines: list[str], wrapper: str | None) -> tuple[str | None, int]:
    """(the function the joined lines end inside, the open depth at the end)."""
    before, low, final = _depths(lines)
    base = -low
    name = wrapper if base > 0 else None
    for text, d in zip(lines, before, strict=True):
        if d + base == 0:
            m = _FUNC_HEAD_RE.match(text)
            if m and not text.rstrip().endswith(";"):
                name = m.group(1)
    return name, final + base


def _wrap(
    chunk: list[tuple[str, LineOrigin | None]], name: str
) -> list[tuple[str, LineOrigin | None]]:
    """The chunk inside just enough braces to parse best: fewest ERROR nodes,
    then fewest statements left outside any function (tree-sitter-c takes
    statements at the top level without an error, but no function holds them
    there, so a hunk of statements alone would go unanalysed)."""
    texts = [t for t, _ in chunk]
    _, low, final = _depths(texts)
    best: list[tuple[str, LineOrigin | None]] = []
    best_score = (-1, -1)
    for extra in range(2):
        opens = -low + extra
        head: list[tuple[str, LineOrigin | None]] = []
        if opens > 0:
            head = [(f"void {name}(void)", None), ("{" * opens, None)]
        closes = opens + final
        tail: list[tuple[str, LineOrigin | None]] = [("}" * closes, None)] if closes > 0 else []
        lines = head + chunk + tail
        src = ("\n".join(t for t, _ in lines) + "\n").encode()
        root = parse_source("<fragment>", src).root
        stray = sum(1 for c in root.children if c.type.endswith("_statement"))
        score = (count_errors(root), stray)
        if best_score[0] < 0 or score < best_score:
            best, best_score = lines, score
    return best


def fragment_image(
    fp: FilePatch, side: Literal["old", "new"], source_lines: tuple[str, ...] = ()
) -> Image:
    """One side of a file patch's hunks as C that tree-sitter can take apart.

    `source_lines` (the input the hunks were read from) lets locations carry
    the columns of the quoted text.
    """
    chunks: list[tuple[str, list[tuple[str, LineOrigin | None]]]] = []
    for piece in _pieces(fp, side, source_lines):
        lines: list[tuple[str, LineOrigin | None]] = list(piece.lines)
        if chunks:
            name, chunk = chunks[-1]
            texts = [t for t, _ in chunk]
            cur, open_depth = _current_function(texts, name)
            same = _section_name(piece.section) in (cur, None)
            if not piece.new_hunk or (open_depth > 0 and same):
                in_comment = False
                for t in texts:
                    in_comment = _scan(t, in_comment)[1]
                marker = "*/ /* ... */" if in_comment else "/* ... */"
                chunk.append((marker, None))
                chunk.extend(lines)
                continue
        chunks.append((_section_name(piece.section) or "fragment", lines))
    out: list[tuple[str, LineOrigin | None]] = []
    for name, chunk in chunks:
        if out:
            out.append(("", None))
        out.extend(_wrap(chunk, name))
    text = "".join(t + "\n" for t, _ in out)
    origins = tuple(o for _, o in out)
    changed = frozenset(i for i, o in enumerate(origins, 1) if o is not None and o.changed)
    return Image(fp.path, text, changed, origins)


# ---------------------------------------------------------------------------
# analysing both sides


@dataclass(slots=True)
class _Side:
    image: Image
    analysis: Analysis
    findings: list[Finding]
    # blank lines the analysed text has beyond `image.text`: (after image line,
    # how many), ascending; see `_aligned`
    padding: tuple[tuple[int, int], ...] = ()

    def real(self, line: int) -> int:
        """The image line of a line of the analysed text."""
        out = line
        for after, count in self.padding:
            if out <= after:  # `out` counts no padding before `after` any more
                break
            out -= count
        return out

    def analysed(self, line: int) -> int:
        """The analysed text's line of an image line."""
        return line + sum(count for after, count in self.padding if line > after)

    def held(self, held: Iterable[str]) -> frozenset[str]:
        """Held-lock names with the image's lines (`ptl@120`: a lock taken anew there)."""
        if not self.padding:
            return frozenset(held)
        return frozenset(_AT_LINE_RE.sub(lambda m: f"@{self.real(int(m[1]))}", h) for h in held)


_AT_LINE_RE = re.compile(r"@(\d+)")
# comments, and the strings and characters that may hold comment marks
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)


def _aligned(
    pre: str, post: str, removed: frozenset[int], added: frozenset[int]
) -> tuple[str, tuple[tuple[int, int], ...]] | None:
    """The pre-image with blank lines added so that every line the patch
    leaves alone, after a change that adds lines, has its post-image number.

    Then a function the patch does not touch is the same, lines and all, in
    both images, and its dataflow is computed once (analysis/file.py). The
    lines go only after a blank line between definitions (not in a function
    or the four lines after its head, not in a comment, not ending a macro
    line), so no two lines that were next to each other, or near enough for
    any lookup by distance, are moved apart: the analysis is the pre-image's,
    its lines renumbered (`_Side.real`). Returns the text and where the
    lines went, or None: nothing to align.
    """
    lines = pre.splitlines(keepends=True)
    if len(lines) != pre.count("\n") or len(post.splitlines()) != post.count("\n"):
        return None  # a last line without its newline, or a line break other than \n
    kept_pre = [i for i in range(1, len(lines) + 1) if i not in removed]
    kept_post = [j for j in range(1, post.count("\n") + 1) if j not in added]
    if len(kept_pre) != len(kept_post):
        return None
    blocked = bytearray(len(lines) + 2)
    for _name, node in iter_functions(parse_source("<pre>", pre.encode())):
        start, end = node.start_point[0] + 1, node.end_point[0] + 1
        for i in range(start, min(max(end, start + 4), len(lines)) + 1):
            blocked[i] = 1
    for m in _COMMENT_RE.finditer(pre):
        first = pre.count("\n", 0, m.start()) + 1
        for i in range(first + 1, first + m[0].count("\n") + 1):
            blocked[i] = 1  # a line inside a block comment
    safe: set[int] = set()
    for i, text in enumerate(lines, 1):
        prev = lines[i - 2].rstrip("\r\n") if i > 1 else ""
        if not blocked[i] and not text.strip() and not prev.endswith("\\"):
            safe.add(i)
    out: list[str] = []
    pads: list[tuple[int, int]] = []
    pad = 0
    k = 0
    for i, text in enumerate(lines, 1):
        out.append(text)
        if k < len(kept_pre) and kept_pre[k] == i:
            shift = kept_post[k] - i
            k += 1
            if i in safe and shift > pad:
                out.append("\n" * (shift - pad))
                pads.append((i, shift - pad))
                pad = shift
    return ("".join(out), tuple(pads)) if pads else None


@dataclass(slots=True)
class _Site:
    function: str
    line: int
    column: int
    text: str
    kinds: list[str]
    held: frozenset[str]


def _held_at_check(ff: FunctionFacts, ev: Check, st: LockState) -> LockState:
    """A check through a variable is decided where the value was read."""
    if ev.origin_node is None:
        return st
    for other, ost in zip(ff.events[ev.origin_node], ff.before[ev.origin_node], strict=True):
        if isinstance(other, Check) and other.site == ev.site and ost is not None:
            return ost
    return ff.state_in[ev.origin_node] or st


def _sites(side: _Side, names: set[str]) -> list[_Site]:
    out: list[_Site] = []
    for ff in side.analysis.facts.functions:
        if ff.fn.name not in names:
            continue
        seen: dict[tuple[int, int, str], _Site] = {}
        for _nid, ev, st in ff.iter_events():
            if isinstance(ev, Check):
                kind, text = f"check {ev.flag}", ev.expr
                st = _held_at_check(ff, ev, st)
            elif isinstance(ev, Act):
                kind, text = f"act {ev.kind}", ev.site.text
            else:
                continue
            text = " ".join(text.split())
            line = side.real(ev.site.line)
            key = (line, ev.site.column, text)
            held = side.held(st.describe())
            site = seen.get(key)
            if site is None:
                seen[key] = _Site(ff.fn.name, line, ev.site.column, text, [kind], held)
            else:
                site.held &= held
                if kind not in site.kinds:
                    site.kinds.append(kind)
        out.extend(sorted(seen.values(), key=lambda s: (s.line, s.column, s.text)))
    return out


def _changed_functions(side: _Side) -> set[str]:
    names: set[str] = set()
    for ff in side.analysis.facts.functions:
        fn = ff.fn
        if any(fn.start_line <= side.analysed(ln) <= fn.end_line for ln in side.image.changed):
            names.add(fn.name)
    return names


def _category(site: _Site) -> str:
    return site.kinds[0].split()[0]


def _callee(text: str) -> str:
    return text.split("(", 1)[0].strip()


def lock_context(patch: Patch, pre: _Side, post: _Side) -> list[SiteContext]:
    """Pair the check/act sites of changed functions by text and occurrence."""
    names = _changed_functions(pre) | _changed_functions(post)
    before = _sites(pre, names)
    after = _sites(post, names)
    pool: dict[tuple[str, str, str], list[_Site]] = {}
    for s in before:
        pool.setdefault((s.function, _category(s), s.text), []).append(s)
    pairs: list[tuple[_Site | None, _Site | None]] = []
    unpaired: list[_Site] = []
    for s in after:
        olds = pool.get((s.function, _category(s), s.text))
        if olds:
            pairs.append((olds.pop(0), s))
        else:
            unpaired.append(s)
    # a call whose arguments changed is still the same act site
    by_callee: dict[tuple[str, str], list[_Site]] = {}
    for olds in pool.values():
        for s in olds:
            if _category(s) == "act":
                by_callee.setdefault((s.function, _callee(s.text)), []).append(s)
    for s in unpaired:
        cands = by_callee.get((s.function, _callee(s.text))) if _category(s) == "act" else None
        old = cands.pop(0) if cands else None
        if old is not None:
            pool[(old.function, _category(old), old.text)].remove(old)
        pairs.append((old, s))
    for olds in pool.values():
        pairs.extend((s, None) for s in olds)
    out: list[SiteContext] = []
    file = post.image.path
    for old, new in pairs:
        side, img = (new, post.image) if new is not None else (old, pre.image)
        assert side is not None
        out.append(
            SiteContext(
                patch,
                file,
                img.locate(side.line, patch),
                side.function,
                side.text,
                ", ".join(side.kinds),
                tuple(sorted(old.held)) if old is not None else None,
                tuple(sorted(new.held)) if new is not None else None,
                img.source(side.line, patch),
            )
        )
    out.sort(key=lambda c: (c.after is None, c.location.line, c.site))
    return out


def effect_findings(
    engine: Engine, pre: _Side, post: _Side, tree: Tree | None, new: Iterable[Finding]
) -> list[Finding]:
    """The review-only rules (`ReviewRule`) on the changed functions, before and
    after: `lock-effect-changed` (what they hold on each kind of return; not repeated
    where the patch already adds a lock-balance finding in the same function,
    the same leak seen from inside), `moved-out-of-lock` (tests and acts
    that left the lock they were made under) and `order-reversed` (two locks
    now nested the other way)."""
    select = engine.config.select
    rules = [
        r
        for r in engine.rules
        if isinstance(r, ReviewRule) and (select is None or r.spec.id in select)
    ]
    if not rules:
        return []
    leaking = {f.function for f in new if f.rule == "lock-balance"}
    changed = _changed_functions(pre) | _changed_functions(post)
    if not changed:
        return []
    where = None
    if isinstance(tree, DirTree):
        where = (tree.root / post.image.path).parent
    raw: list[Finding] = []
    for rule in rules:
        names = changed - leaking if isinstance(rule, LockEffectChanged) else changed
        raw.extend(
            rule.compare(
                post.image.path,
                pre.analysis.facts.functions,
                post.analysis.facts.functions,
                names,
                where,
            )
        )
    lines = post.image.text.splitlines()
    return decide(raw, lines, select, engine.config.baseline)


def _keyed(findings: Iterable[Finding]) -> dict[tuple[str, int], Finding]:
    """Findings by (fingerprint, occurrence): two identical sites stay two."""
    out: dict[tuple[str, int], Finding] = {}
    count: dict[str, int] = {}
    for f in sorted(findings, key=Finding.sort_key):
        k = count.get(f.fingerprint, 0)
        count[f.fingerprint] = k + 1
        out[(f.fingerprint, k)] = f
    return out


@dataclass(slots=True)
class _Episode:
    """One finding's life in a series: from the patch that adds it to the one that drops it."""

    finding: Finding
    image: Image
    patch: Patch  # where the finding's image comes from
    introduced_by: Patch | None
    fixed_by: Patch | None = None


def _located(ep: _Episode) -> ReviewedFinding:
    f = ep.finding
    loc = ep.image.locate(f.line, ep.patch)
    related = []
    for r in f.related:
        if r.path and r.path != f.path:
            related.append(r)
            continue
        rloc = ep.image.locate(r.line, ep.patch)
        if rloc.line:
            col = ep.image.column(r.line, r.column, ep.patch)
            related.append(Related(rloc.line, col, r.message, rloc.path))
    out = replace(
        f,
        path=loc.path,
        line=loc.line,
        column=ep.image.column(f.line, f.column, ep.patch),
        related=tuple(sorted(set(related))),
    )
    src = ep.image.source(f.line, ep.patch)
    text = ep.image.text if ep.image.origins is None else ""
    if ep.image.origins is not None and ep.patch.quoted:
        text = "".join(line + "\n" for line in ep.patch.source_lines)
    return ReviewedFinding(out, ep.introduced_by, ep.fixed_by, src, text)


def _source_map(
    fp: FilePatch, side: Literal["old", "new"], offsets: tuple[int, ...] = ()
) -> dict[int, int]:
    """Image line -> input line, for the lines the hunks show (where they landed)."""
    out: dict[int, int] = {}
    for k, hunk in enumerate(fp.hunks):
        shift = offsets[k] if k < len(offsets) else 0
        for ln in hunk.lines:
            code = ln.old_line if side == "old" else ln.new_line
            if code is not None and ln.source_line is not None:
                out[code + shift] = ln.source_line
    return out


def fragment_of(patch: Patch, series: Series | None) -> bool:
    """Analysed from its hunks alone: no tree, or a quote that is not whole."""
    return series is None or (patch.quoted and not quote_complete(patch))


class _Analyser:
    """Analyses images once each (a series revisits the same text)."""

    def __init__(self, engine: Engine, root: Path | None = None, fast: bool = True) -> None:
        self.engine = engine
        # dataflows shared between the images of a file (analysis/file.py), and
        # pre-images aligned with their post-images (`_aligned`) so they share most
        self.fast = fast
        self.memos: dict[str, FlowMemo] = {}
        self.lowered: dict[str, LowerMemo] = {}
        # the tree on disk, so its headers are found wherever lockcheck runs
        self.root = root
        self.stats = Stats()
        self.cache: dict[tuple[str, str], tuple[Analysis, list[Finding]]] = {}
        # a function is counted once however many images of its file are
        # analysed: (path, name, n-th of that name) -> (over budget, parse errors)
        self.functions: dict[tuple[str, str, int], tuple[bool, bool]] = {}
        self.parse_errors: dict[str, int] = {}

    def side(self, image: Image) -> _Side:
        key = (image.path, hashlib.sha256(image.text.encode()).hexdigest())
        hit = self.cache.get(key)
        if hit is None:
            memo = lowered = None
            if self.fast:
                memo = self.memos.get(image.path)
                if memo is None:
                    memo = self.memos[image.path] = self.engine.flow_memo()
                lowered = self.lowered.get(image.path)
                if lowered is None:
                    lowered = self.lowered[image.path] = self.engine.lower_memo()
            source = image.text.encode()
            analysis = self.engine.analyse_source(image.path, source, self.root, memo, lowered)
            self._count(image.path, analysis)
            hit = (analysis, self.engine.findings_for(analysis))
            self.cache[key] = hit
        return _Side(image, hit[0], hit[1])

    def before(self, image: Image, after: Image) -> _Side:
        """The pre-image's side, analysed aligned with the post-image's lines.

        Its findings count only by fingerprint (what the post-image adds) and
        its sites are read back in the image's lines (`_Side.real`).
        """
        if not self.fast or image.origins is not None or after.origins is not None:
            return self.side(image)
        aligned = _aligned(image.text, after.text, image.changed, after.changed)
        if aligned is None:
            return self.side(image)
        side = self.side(replace(image, text=aligned[0]))
        return _Side(image, side.analysis, side.findings, aligned[1])

    def _count(self, path: str, analysis: Analysis) -> None:
        self.parse_errors[path] = max(self.parse_errors.get(path, 0), analysis.model.parse_errors)
        seen: dict[str, int] = {}
        for fn, ff in zip(analysis.model.functions, analysis.facts.functions, strict=True):
            nth = seen[fn.name] = seen.get(fn.name, -1) + 1
            over, bad = self.functions.get((path, fn.name, nth), (False, False))
            self.functions[(path, fn.name, nth)] = (
                over or ff.budget_exceeded,
                bad or bool(fn.parse_errors),
            )
        st = self.stats
        st.functions = len(self.functions)
        st.budget_outs = sum(over for over, _ in self.functions.values())
        st.functions_analysed = st.functions - st.budget_outs
        st.parse_error_functions = sum(bad for _, bad in self.functions.values())
        st.parse_errors = sum(self.parse_errors.values())


def _images(patch: Patch, series: Series | None) -> list[tuple[Image, Image]]:
    if series is None or fragment_of(patch, series):
        src = patch.source_lines
        return [
            (fragment_image(fp, "old", src), fragment_image(fp, "new", src)) for fp in patch.files
        ]
    out = []
    for ch in series.apply(patch):
        path, fp = ch.path, ch.file
        out.append(
            (
                Image(path, ch.pre or "", ch.removed, None, _source_map(fp, "old", ch.offsets)),
                Image(path, ch.post or "", ch.added, None, _source_map(fp, "new", ch.offsets)),
            )
        )
    return out


def review(
    engine: Engine,
    patches: list[Patch],
    tree: Tree | None,
    show_all: bool = False,
    keep_going: bool = False,
    fast: bool = True,
) -> ReviewResult:
    """Review `patches` in order (a series) against `tree`, or as fragments.

    A patch that does not apply raises, or with `keep_going` is skipped and
    recorded in `errors`/`failed` so the rest of the series is still reported.
    `fast`: analyse again only what a patch changes (`_Analyser.before`);
    the result is the same either way (tests/test_review_fast.py). With
    `show_all` the pre-image's own findings are shown, so it is analysed as is.
    The files beside the patched ones are summarised only for the functions
    the patched files call (a first review in a tree would otherwise
    summarise each of them whole).
    """
    with engine.callees_by_name():
        return _review(engine, patches, tree, show_all, keep_going, fast)


def _review(
    engine: Engine,
    patches: list[Patch],
    tree: Tree | None,
    show_all: bool,
    keep_going: bool,
    fast: bool,
) -> ReviewResult:
    series = Series(tree) if tree is not None else None
    root = tree.root if isinstance(tree, DirTree) else None
    analyser = _Analyser(engine, root, fast and not show_all)
    open_eps: dict[tuple[str, str, int], _Episode] = {}
    done: list[_Episode] = []
    standing: dict[tuple[str, str, int], _Episode] = {}
    contexts: list[SiteContext] = []
    models: dict[tuple[str, str], list[Function]] = {}
    fragment: list[Patch] = []
    errors: list[InputError] = []
    failed: list[Patch] = []
    remarks: list[str] = []
    for patch in patches:
        if not patch.files:
            continue
        if fragment_of(patch, series):
            fragment.append(patch)
        try:
            images = _images(patch, series)
        except InputError as exc:  # the series goes on without it, as `git am --skip`
            if patch.quoted and not fragment_of(patch, series):
                # a reply's whole hunks that do not apply here: still read as fragments
                remarks.append(f"the quoted hunks do not apply, so they were analysed alone: {exc}")
                fragment.append(patch)
                images = _images(patch, None)
            elif not keep_going:
                raise
            else:
                errors.append(exc)
                failed.append(patch)
                continue
        for pre_img, post_img in images:
            if not pre_img.path.endswith(C_SUFFIXES):
                continue  # applied (later patches may build on it), not analysed
            pre, post = analyser.before(pre_img, post_img), analyser.side(post_img)
            models[(post_img.path, post_img.text)] = post.analysis.model.functions
            a, b = _keyed(pre.findings), _keyed(post.findings)
            added = [f for key, f in b.items() if key not in a]
            b.update(_keyed(effect_findings(engine, pre, post, tree, added)))
            path = post_img.path
            for key, f in b.items():
                k = (path, *key)
                if key not in a and k not in open_eps:
                    open_eps[k] = _Episode(f, post_img, patch, patch)
                elif key in a and k not in open_eps:
                    standing[k] = _Episode(f, post_img, patch, None)
            for key, f in a.items():
                if key in b:
                    continue
                k = (path, *key)
                if k in open_eps:
                    ep = open_eps.pop(k)
                    ep.fixed_by = patch
                    done.append(ep)
                else:
                    standing.pop(k, None)
                    done.append(_Episode(f, pre_img, patch, None, patch))
            contexts.extend(lock_context(patch, pre, post))
    episodes = done + list(open_eps.values())
    if show_all:
        episodes += list(standing.values())
    else:
        episodes = [ep for ep in episodes if ep.introduced_by is not None]
    # a file's versions are analysed separately; the reader counts files
    analyser.stats.files = len({key[0] for key in analyser.cache})
    analyser.stats.input_errors = len(errors)
    order = {id(p): i for i, p in enumerate(patches)}
    located = [_located(ep) for ep in episodes]
    located.sort(
        key=lambda rf: (
            rf.finding.sort_key(),
            order.get(id(rf.introduced_by), -1),
            order.get(id(rf.fixed_by), len(patches)),
        )
    )
    return ReviewResult(
        list(patches),
        located,
        contexts,
        analyser.stats,
        fragment,
        tree.describe() if tree is not None else None,
        errors,
        failed,
        remarks,
        models,
    )


@dataclass(frozen=True, slots=True)
class _OneFile:
    """A tree holding one file: the before image of `review_versions`."""

    path: str
    text: str

    def read(self, path: str) -> str | None:
        return self.text if path == self.path else None

    def describe(self) -> str:
        return f"<{self.path} before>"


def review_versions(
    engine: Engine, path: str, before: str, after: str, fast: bool = True
) -> ReviewResult:
    """Review the change from `before` to `after` of one file, as a patch onto it.

    How fixtures of review-only rules are run: no tree or diff on disk.
    """
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )
    if not diff:
        raise InputError(f"{path}: the two versions are the same")
    patches = parse_patch_text(diff, f"<{path} change>")
    return review(engine, patches, _OneFile(path, before), fast=fast)
