"""The tree-wide lock-order graph: "B taken while A held", merged over files.

Each function contributes its edges (`code_edges`: waiting acquisitions made
while a lock it took is surely held, callee summaries included); the graph
joins them by lock class across every file of a run, keeping for each edge
the smallest witness (file, function, both acquisition sites) so the result
is the same however the files were split between workers or shards. A cycle
in the class graph is a potential ABBA deadlock: each of its edges is shown
by a witness a reviewer can open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from lockcheck.analysis.file import FileFacts
from lockcheck.model.ir import LockRef
from lockcheck.order.doc import Names
from lockcheck.order.edges import code_edges, declared_types
from lockcheck.packs import Vocabulary


@dataclass(frozen=True, slots=True, order=True)
class OrderEdge:
    """`inner` (a lock class) taken at `inner_line` while `outer` was held since `outer_line`."""

    outer: str
    inner: str
    path: str
    function: str
    outer_line: int
    inner_line: int
    outer_lock: str  # the locks as the code spells them
    inner_lock: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "outer": self.outer,
            "inner": self.inner,
            "path": self.path,
            "function": self.function,
            "outer_line": self.outer_line,
            "inner_line": self.inner_line,
            "outer_lock": self.outer_lock,
            "inner_lock": self.inner_lock,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrderEdge:
        return cls(
            str(d["outer"]),
            str(d["inner"]),
            str(d["path"]),
            str(d["function"]),
            int(d["outer_line"]),
            int(d["inner_line"]),
            str(d["outer_lock"]),
            str(d["inner_lock"]),
        )


_TYPED_RE = re.compile(r"^([A-Za-z_]\w*)->([A-Za-z_]\w*)$")
_FIELD_RE = re.compile(r"^([A-Za-z_]\w*)(?:->|\.)(?:[A-Za-z_]\w*(?:->|\.))*([A-Za-z_]\w*)$")


def _node(ref: LockRef, named: set[str], types: dict[str, str]) -> str:
    """The lock's class as lockdep would tell it apart: a class the pack names
    (`mmap_lock`, `pte_lock`), else `struct type->field` when the function
    declares the owner's type (a bare field name such as `lock` would join
    unrelated structures' locks into false cycles), else the bare class."""
    inst = ref.inst.split("@", 1)[0]
    if ref.cls in named:
        return ref.cls
    m = _FIELD_RE.match(inst)
    if m and m.group(1) in types and "->" not in inst[m.end(1) + 2 :]:
        return f"{types[m.group(1)]}->{m.group(2)}"
    return ref.cls or inst


def file_order_edges(
    path: str, facts: FileFacts, vocab: Vocabulary, source: bytes
) -> list[OrderEdge]:
    """Every function's edges between two different lock classes, one per site pair."""
    names = Names(vocab.names)
    named = {a.cls for a in vocab.api.values() if a.cls}
    lines: list[str] | None = None
    out: set[OrderEdge] = set()
    for fn in facts.functions:
        if fn.budget_exceeded:
            continue
        found = list(code_edges(fn, vocab, {}, names))
        if not found:
            continue
        if lines is None:
            lines = source.decode("utf-8", "replace").splitlines()
        types = declared_types(lines, fn)
        for e in found:
            outer, inner = _node(e.outer, named, types), _node(e.inner, named, types)
            if outer == inner:  # nesting one class is the nested-same-class rule's business
                continue
            out.add(
                OrderEdge(
                    outer,
                    inner,
                    path,
                    e.function,
                    e.outer_site.line,
                    e.inner_site.line,
                    e.outer.inst.split("@", 1)[0],
                    e.inner.inst.split("@", 1)[0],
                )
            )
    return sorted(out)


@dataclass(slots=True)
class LockGraph:
    """Class -> class edges, each with its witness count and smallest witness."""

    witness: dict[tuple[str, str], OrderEdge]
    count: dict[tuple[str, str], int]

    @classmethod
    def build(cls, edges: Iterable[OrderEdge]) -> LockGraph:
        """The graph of `edges`, a bare field name read as the one structure's
        field the edges know by that name (`d_lock` reached through
        `target->d_parent` is `dentry->d_lock`); a name several structures use
        (`lock`) stays apart. Nesting within one class is no edge."""
        edges = list(edges)
        owners: dict[str, set[str]] = {}
        for e in edges:
            for node in (e.outer, e.inner):
                m = _TYPED_RE.match(node)
                if m:
                    owners.setdefault(m.group(2), set()).add(m.group(1))
        alias = {f: f"{next(iter(ts))}->{f}" for f, ts in owners.items() if len(ts) == 1}
        witness: dict[tuple[str, str], OrderEdge] = {}
        count: dict[tuple[str, str], int] = {}
        for e in edges:
            outer, inner = alias.get(e.outer, e.outer), alias.get(e.inner, e.inner)
            if outer == inner:
                continue
            if (outer, inner) != (e.outer, e.inner):
                e = replace(e, outer=outer, inner=inner)
            key = (e.outer, e.inner)
            count[key] = count.get(key, 0) + 1
            if key not in witness or e < witness[key]:
                witness[key] = e
        return cls(witness, count)

    def succ(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for a, b in sorted(self.witness):
            out.setdefault(a, []).append(b)
        return out

    def cycles(self) -> list[list[OrderEdge]]:
        """One shortest cycle through each class that lies on one, deduplicated.

        Each cycle is rotated to start at its smallest class, so the list is
        stable; a cycle is its edges' witnesses in order.
        """
        succ = self.succ()
        found: set[tuple[str, ...]] = set()
        for start in sorted(succ):
            path = _shortest_cycle(start, succ)
            if path is None:
                continue
            i = path.index(min(path))
            found.add(tuple(path[i:] + path[:i]))
        out = []
        for ring in sorted(found, key=lambda r: (len(r), r)):
            pairs = zip(ring, ring[1:] + ring[:1], strict=True)
            out.append([self.witness[(a, b)] for a, b in pairs])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": sorted({c for pair in self.witness for c in pair}),
            "edges": [
                {**self.witness[k].as_dict(), "witnesses": self.count[k]}
                for k in sorted(self.witness)
            ],
            "cycles": [[e.as_dict() for e in ring] for ring in self.cycles()],
        }

    def dot(self) -> str:
        """Graphviz DOT: edges on a cycle in red, each labelled with its witness."""
        on_cycle = {(e.outer, e.inner) for ring in self.cycles() for e in ring}
        lines = ["digraph lock_order {", "  rankdir=LR;", "  node [shape=box];"]
        for node in sorted({c for pair in self.witness for c in pair}):
            lines.append(f"  {_q(node)};")
        for key in sorted(self.witness):
            w = self.witness[key]
            label = f"{w.path}:{w.inner_line} {w.function}()"
            if self.count[key] > 1:
                label += f" (+{self.count[key] - 1})"
            attrs = f"label={_q(label)}"
            if key in on_cycle:
                attrs += ", color=red"
            lines.append(f"  {_q(key[0])} -> {_q(key[1])} [{attrs}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        cycles = self.cycles()
        out = [
            f"lock-order graph: {len({c for p in self.witness for c in p})} lock classes,"
            f" {len(self.witness)} edges, {len(cycles)} cycle(s)"
        ]
        for n, ring in enumerate(cycles, 1):
            out.append(f"cycle {n}: " + " -> ".join([e.outer for e in ring] + [ring[0].outer]))
            for e in ring:
                out.append(
                    f"  {e.inner} taken while {e.outer} held: {e.path}:{e.inner_line}"
                    f" in {e.function}() ({e.outer_lock} taken at line {e.outer_line},"
                    f" {e.inner_lock} at line {e.inner_line})"
                )
        return "\n".join(out) + "\n"


def _shortest_cycle(start: str, succ: dict[str, list[str]]) -> list[str] | None:
    """The classes of a shortest cycle through `start` (breadth first, sorted)."""
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for cur in frontier:
            for b in succ.get(cur, ()):
                if b == start:
                    ring = [cur]
                    while ring[-1] != start:
                        ring.append(parent[ring[-1]])
                    return ring[::-1]
                if b not in seen:
                    seen.add(b)
                    parent[b] = cur
                    nxt.append(b)
        frontier = nxt
    return None


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["LockGraph", "OrderEdge", "file_order_edges"]
