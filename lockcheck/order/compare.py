"""`lockcheck order --claims`: documented edges confirmed, contradicted, never exercised.

The documentation is the tree's hierarchy comments (mm/rmap.c and
mm/filemap.c) when the tree has them, else the pack's `order` list; a
file's own "Lock ordering:" block adds edges that hold for that file only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lockcheck.analysis.file import FileFacts
from lockcheck.errors import LockcheckError
from lockcheck.inputs.files import read_c_source
from lockcheck.order.doc import DocEdge, Names, OrderDoc, pack_order_doc, parse_order_comments
from lockcheck.order.edges import (
    Closure,
    CodeSite,
    code_edges,
    declared_types,
    edge_sites,
    judge,
)
from lockcheck.packs import Vocabulary

TREE_DOCS = ("mm/rmap.c", "mm/filemap.c")


def tree_doc(root: Path | None, vocab: Vocabulary) -> OrderDoc:
    """The tree-wide documented order: its hierarchy comments, else the pack's list."""
    names = Names(vocab.names)
    doc = OrderDoc()
    for rel in TREE_DOCS if root is not None else ():
        assert root is not None
        try:
            source = read_c_source(root / rel)
        except LockcheckError:
            continue
        doc.add(parse_order_comments(source, rel, names))
    if not doc.edges:
        for pack, order in sorted(vocab.orders.items()):
            doc.add(pack_order_doc(order, names, f"pack {pack} order"))
    return doc


@dataclass(slots=True)
class Contradiction:
    outer: str
    inner: str
    chain: list[str]
    sites: tuple[CodeSite, CodeSite]
    source: str

    def as_dict(self) -> dict[str, object]:
        return {
            "outer": self.outer,
            "inner": self.inner,
            "path": self.chain,
            "source": self.source,
            "sites": [s.as_dict() for s in self.sites],
        }


@dataclass(slots=True)
class OrderReport:
    documented: dict[tuple[str, str, str], DocEdge] = field(default_factory=dict)
    confirmed: dict[tuple[str, str, str], list[CodeSite]] = field(default_factory=dict)
    contradicted: list[Contradiction] = field(default_factory=list)

    def add_file(
        self,
        path: str,
        source: bytes,
        facts: FileFacts,
        base: OrderDoc,
        vocab: Vocabulary,
        label: str = "",
    ) -> None:
        """Compare one analysed file's edges with `base` plus the file's own blocks.

        `label` names the file in documented edges' sources (its path in the
        tree, so that mm/rmap.c's block and the tree's are one source).
        """
        names = Names(vocab.names)
        own = parse_order_comments(source, label or path, names)
        doc = OrderDoc(list(base.edges), dict(base.keys), list(base.blocks))
        doc.add(own)
        for e in doc.edges:
            self.documented.setdefault((e.outer, e.inner, e.source), e)
        closure = Closure(doc)
        by_pair: dict[tuple[str, str], list[DocEdge]] = {}
        for e in doc.edges:
            by_pair.setdefault((e.outer, e.inner), []).append(e)
        lines = source.decode("utf-8", "replace").splitlines()
        for fn in facts.functions:
            types = declared_types(lines, fn)
            for edge in code_edges(fn, vocab, types, names):
                verdict = judge(edge, doc, closure)
                sites = edge_sites(path, edge)
                for pair in verdict.confirms:
                    for e in by_pair[pair]:
                        self.confirmed.setdefault((e.outer, e.inner, e.source), []).append(sites[1])
                if verdict.contradicts is not None:
                    outer, inner = verdict.contradicts
                    chain = doc.path_between(outer, inner) or [outer, inner]
                    first = by_pair[(chain[0], chain[1])][0]
                    self.contradicted.append(
                        Contradiction(outer, inner, chain, sites, first.source)
                    )

    def as_dict(self) -> dict[str, object]:
        def edge(e: DocEdge) -> dict[str, object]:
            return {"outer": e.outer, "inner": e.inner, "source": e.source}

        documented = sorted(self.documented.values(), key=_edge_key)
        contradicted_pairs = {(c.outer, c.inner) for c in self.contradicted}
        confirmed = [
            {**edge(e), "sites": [s.as_dict() for s in sorted(set(self.confirmed[k]))]}
            for k, e in sorted(self.documented.items(), key=lambda kv: _edge_key(kv[1]))
            if k in self.confirmed
        ]
        unexercised = [
            edge(e)
            for k, e in sorted(self.documented.items(), key=lambda kv: _edge_key(kv[1]))
            if k not in self.confirmed and (e.outer, e.inner) not in contradicted_pairs
        ]
        contradicted = sorted(self.contradicted, key=lambda c: (c.sites[1], c.outer, c.inner))
        return {
            "documented": [edge(e) for e in documented],
            "confirmed": confirmed,
            "contradicted": [c.as_dict() for c in contradicted],
            "unexercised": unexercised,
        }


def _edge_key(e: DocEdge) -> tuple[str, int, str, str]:
    return (e.path, e.line, e.outer, e.inner)


def render_text(data: dict[str, object]) -> str:
    """The report for a reader: contradictions first, with both acquisition sites."""
    out: list[str] = []
    contradicted = data["contradicted"]
    assert isinstance(contradicted, list)
    for c in contradicted:
        held, taken = c["sites"]
        out.append(
            f"{taken['path']}:{taken['line']}:{taken['column']}: contradicted: "
            f"`{taken['lock']}` taken in {taken['function']}() while `{held['lock']}` "
            f"(taken at line {held['line']}) is held, but {c['source']} documents "
            + " -> ".join(c["path"])
        )
    for key, word in (("confirmed", "confirmed"), ("unexercised", "unexercised")):
        rows = data[key]
        assert isinstance(rows, list)
        for r in rows:
            extra = f" ({len(r['sites'])} sites)" if "sites" in r else ""
            out.append(f"{r['source']}: {word}: {r['outer']} -> {r['inner']}{extra}")
    counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    out.append(
        f"{counts['documented']} documented edges: {counts['confirmed']} confirmed, "
        f"{counts['unexercised']} never exercised; {counts['contradicted']} contradicted"
    )
    return "\n".join(out) + "\n"
