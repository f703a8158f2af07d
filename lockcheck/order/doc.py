"""Hierarchy comments as an order graph: outer -> inner edges between named locks.

The kernel writes its lock order as an indented list inside a comment,
each entry one level inside the line above it that is less indented, with
remarks in parentheses (possibly spanning lines), alternatives joined by
"or" or commas, and blank lines or "...:" titles starting a new tree. A
list whose entries all share one indent is a chain, outer first (as in
mm/zsmalloc.c). Names are resolved to lock classes with the pack's
`[names]` table; the graph's nodes are the names as the kernel spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_COMMENT_RE = re.compile(rb"/\*.*?\*/", re.S)
_START_RE = re.compile(r"\block(?:ing)?\s+order(?:ing)?\b|\blocks in this order\b", re.I)
_NAME_RE = re.compile(r"^(?:->)?[A-Za-z_][\w]*(?:(?:->|\.)[A-Za-z_]\w*)*$")
_WS_RE = re.compile(r"\s+")


def spelling(name: str) -> str:
    """A lock name as the names table keys it: no leading `->`, one space between words."""
    s = _WS_RE.sub(" ", name.strip())
    return s[2:].strip() if s.startswith("->") else s


@dataclass(frozen=True, slots=True, order=True)
class DocEdge:
    outer: str
    inner: str
    line: int  # the inner entry's line in `path`
    path: str

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class OrderDoc:
    """The documented order: edges between canonical names, and what each name means."""

    edges: list[DocEdge] = field(default_factory=list)
    keys: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> match keys
    blocks: list[tuple[str, int]] = field(default_factory=list)  # (path, line) of each block

    def add(self, other: OrderDoc) -> None:
        seen = {(e.outer, e.inner) for e in self.edges}
        self.edges.extend(e for e in other.edges if (e.outer, e.inner) not in seen)
        for name, keys in other.keys.items():
            self.keys.setdefault(name, keys)
        self.blocks.extend(other.blocks)

    def succ(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for e in self.edges:
            out.setdefault(e.outer, set()).add(e.inner)
        return out

    def path_between(self, outer: str, inner: str) -> list[str] | None:
        """The documented chain from `outer` down to `inner`, if there is one."""
        succ = self.succ()
        prev: dict[str, str] = {}
        todo = [outer]
        seen = {outer}
        while todo:
            cur = todo.pop(0)
            for nxt in sorted(succ.get(cur, ())):
                if nxt in seen:
                    continue
                prev[nxt] = cur
                if nxt == inner:
                    chain = [inner]
                    while chain[-1] != outer:
                        chain.append(prev[chain[-1]])
                    return chain[::-1]
                seen.add(nxt)
                todo.append(nxt)
        return None

    def names_for(self, keys: Iterable[str]) -> set[str]:
        """The documented names a lock with these match keys is."""
        want = set(keys)
        return {name for name, k in self.keys.items() if k & want}


class Names:
    """Resolve a kernel spelling to (canonical name, match keys) with a `[names]` table."""

    def __init__(self, table: Mapping[str, tuple[str, ...]]) -> None:
        self.table = {spelling(k): frozenset(v) for k, v in table.items()}
        self.lower = {k.lower(): k for k in self.table}
        self.canonical: dict[frozenset[str], str] = {}
        for k, v in self.table.items():
            self.canonical.setdefault(v, k)

    def classes(self, name: str, fold_case: bool = False) -> frozenset[str] | None:
        s = spelling(name)
        if s in self.table:
            return self.table[s]
        if fold_case and s.lower() in self.lower:
            return self.table[self.lower[s.lower()]]
        return None

    def resolve(self, name: str) -> tuple[str, frozenset[str]]:
        s = spelling(name)
        classes = self.classes(s)
        if classes is not None:
            return self.canonical[classes], classes
        if "->" in s or "." in s:
            return s, frozenset({s.replace(".", "->")})
        return s, frozenset({s})


def _comment_lines(body: str) -> list[str]:
    """A comment's lines without the `/*`, `*/` and ` * ` decoration, tabs expanded."""
    out = []
    for raw in body.expandtabs(8).split("\n"):
        line = raw.rstrip()
        if line.endswith("*/"):
            line = line[:-2].rstrip()
        stripped = line.lstrip()
        if stripped.startswith("/*"):
            line = " " * (len(line) - len(stripped) + 2) + stripped[2:]
            stripped = line.lstrip()
        if stripped.startswith("*"):
            line = stripped[1:]
        out.append(line)
    return out


def _strip_remarks(line: str, depth: int) -> tuple[str, int]:
    """The text outside parentheses, and the depth left open at the end of the line."""
    keep = []
    for c in line:
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            keep.append(c)
    return "".join(keep), depth


def _alternatives(entry: str) -> list[str] | None:
    """`a or b`, `a,b`: the lock names of one entry; None when it is prose, not names."""
    parts = [p.strip() for p in re.split(r",|\bor\b", entry)]
    names = [spelling(p) for p in parts if p.strip()]
    if not names:
        return None
    for n in names:
        words = n.split(" ")
        if len(words) > 3 or not all(_NAME_RE.match(w) for w in words):
            return None
    return names


@dataclass(slots=True)
class _Entry:
    indent: int
    names: list[str]
    line: int


def _trees(lines: list[str], first_line: int) -> list[list[_Entry]]:
    """Split a block into trees at blank lines and titles; each a list of entries."""
    trees: list[list[_Entry]] = [[]]
    depth = 0
    for i, line in enumerate(lines):
        if depth > 0:  # a remark continued from the line above
            _, depth = _strip_remarks(line, depth)
            continue
        text, depth = _strip_remarks(line, 0)
        if not text.strip() or text.rstrip().endswith(":"):
            if trees[-1]:
                trees.append([])
            continue
        names = _alternatives(text)
        if names is None:
            continue
        indent = len(text) - len(text.lstrip())
        trees[-1].append(_Entry(indent, names, first_line + i))
    return [t for t in trees if t]


def parse_block(
    comment: str, path: str, start_line: int, names: Names
) -> tuple[list[DocEdge], dict[str, frozenset[str]], int]:
    """The edges of one hierarchy comment and the line of its "Lock ordering" title.

    `start_line` is the comment's first line.
    """
    lines = _comment_lines(comment)
    head = next(
        (i for i, ln in enumerate(lines) if _START_RE.search(ln) and ln.endswith(":")), None
    )
    if head is None:
        return [], {}, start_line
    edges: list[DocEdge] = []
    keys: dict[str, frozenset[str]] = {}
    seen: set[tuple[str, str]] = set()
    for tree in _trees(lines[head + 1 :], start_line + head + 1):
        flat = len({e.indent for e in tree}) == 1
        stack: list[tuple[int, list[str]]] = []
        for entry in tree:
            resolved = [names.resolve(n) for n in entry.names]
            for name, k in resolved:
                keys.setdefault(name, k)
            here = [name for name, _ in resolved]
            if flat:
                parents = stack[-1][1] if stack else []
            else:
                while stack and stack[-1][0] >= entry.indent:
                    stack.pop()
                parents = stack[-1][1] if stack else []
            for outer in parents:
                for inner in here:
                    if outer != inner and (outer, inner) not in seen:
                        seen.add((outer, inner))
                        edges.append(DocEdge(outer, inner, entry.line, path))
            stack.append((entry.indent, here))
    return edges, keys, start_line + head


def parse_order_comments(source: bytes, path: str, names: Names) -> OrderDoc:
    """Every hierarchy comment in a file, as one graph."""
    doc = OrderDoc()
    for m in _COMMENT_RE.finditer(source):
        body = m.group(0).decode("utf-8", "replace")
        if not _START_RE.search(body):
            continue
        line = source.count(b"\n", 0, m.start()) + 1
        edges, keys, title = parse_block(body, path, line, names)
        if edges:
            part = OrderDoc(edges, keys, [(path, title)])
            doc.add(part)
    return doc


def pack_order_doc(order: list[str], names: Names, label: str) -> OrderDoc:
    """The pack's `order` list (classes, outer first, `a | b` one level) as a chain."""
    doc = OrderDoc()
    prev: list[str] = []
    for i, level in enumerate(order):
        here = []
        for cls in (c.strip() for c in level.split("|")):
            if not cls:
                continue
            canon = names.canonical.get(frozenset({cls}), cls)
            doc.keys.setdefault(canon, frozenset({cls}))
            here.append(canon)
        doc.edges.extend(DocEdge(o, n, i + 1, label) for o in prev for n in here if o != n)
        prev = here
    return doc
