"""The code's lock order against the documented one.

An edge of the code is "B acquired (and waited for) while A was surely
held", per function, A taken in that function: the relation lockdep
builds. A code edge confirms a documented edge it matches directly; it
contradicts the documentation when the graph puts B outside A and nowhere
A outside B (the kernel documents a few orders both ways, e.g. the
hugetlbfs i_mmap_rwsem before the page lock, and code following either is
not a contradiction).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lockcheck.analysis.function import FunctionFacts
from lockcheck.model.ir import Acquire, LockRef, Site
from lockcheck.order.doc import Names, OrderDoc
from lockcheck.packs import Vocabulary

_STRUCT_VAR_RE = re.compile(r"\bstruct\s+(\w+)\s*\*+\s*(?:const\s+)?(\w+)")
_FIELD_RE = re.compile(r"^([A-Za-z_]\w*)(?:->|\.)([A-Za-z_]\w*)$")


def declared_types(lines: list[str], fn: FunctionFacts) -> dict[str, str]:
    """Variable -> struct type, from the function's own parameters and locals."""
    out: dict[str, str] = {}
    body = "\n".join(lines[fn.fn.start_line - 1 : fn.fn.end_line])
    for m in _STRUCT_VAR_RE.finditer(body):
        out.setdefault(m.group(2), m.group(1))
    return out


def lock_keys(ref: LockRef, types: dict[str, str], names: Names) -> frozenset[str]:
    """What a documented name may call this lock: its class, spelling, `type->field`.

    A class the names table knows (`ptl`, from `vmf->ptl`) also stands for
    the classes it lists.
    """
    inst = ref.inst.split("@", 1)[0]
    keys = {ref.cls, inst.replace(".", "->")}
    keys |= names.classes(ref.cls) or set()
    m = _FIELD_RE.match(inst)
    if m and m.group(1) in types:
        keys.add(f"{types[m.group(1)]}->{m.group(2)}")
    return frozenset(k for k in keys if k)


@dataclass(frozen=True, slots=True, order=True)
class CodeSite:
    path: str
    line: int
    column: int
    function: str
    lock: str
    what: str

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "function": self.function,
            "lock": self.lock,
            "what": self.what,
        }


@dataclass(frozen=True, slots=True)
class CodeEdge:
    """`inner` acquired at `inner_site` while `outer` (taken at `outer_site`) was held."""

    function: str
    outer: LockRef
    outer_site: Site
    outer_keys: frozenset[str]
    inner: LockRef
    inner_site: Site
    inner_keys: frozenset[str]


_QUIET: dict[int, tuple[Vocabulary, frozenset[str]]] = {}


def _quiet_classes(vocab: Vocabulary) -> frozenset[str]:
    """The classes of the rows and guards whose lock never waits, per vocabulary."""
    known = _QUIET.get(id(vocab))
    if known is None or known[0] is not vocab:
        quiet = {r.cls for r in vocab.api.values() if r.cls and not r.waits}
        quiet |= {g.cls for g in vocab.guards.values() if g.cls and not g.waits}
        known = (vocab, frozenset(quiet))
        _QUIET[id(vocab)] = known
    return known[1]


def waits(vocab: Vocabulary, ev: Acquire) -> bool:
    """Can this acquisition block? Trylocks and helpers that lock only on success cannot;
    nor does a helper its own name calls a trylock (`z3fold_page_trylock()`)."""
    if vocab.is_try(ev.primitive) or "trylock" in ev.primitive:
        return False
    # the RCU read side waits for nobody, also when a helper takes it for the
    # caller (its class is that of a `waits = false` row)
    if vocab.never_waits(ev.primitive) or ev.lock.cls in _quiet_classes(vocab):
        return False
    known = ev.primitive in vocab.api or ev.primitive.startswith("guard(")
    return known or ev.cond_var is None


def code_edges(
    fn: FunctionFacts, vocab: Vocabulary, types: dict[str, str], names: Names
) -> Iterator[CodeEdge]:
    """The function's waiting acquisitions made while a lock it took is surely held."""
    seen: set[tuple[str, Site, Site]] = set()
    for _nid, ev, st in fn.iter_events():
        if not isinstance(ev, Acquire) or not waits(vocab, ev):
            continue
        for ref, held in sorted(st.must.items(), key=lambda kv: (kv[1].site, kv[0].inst)):
            if held.assumed or st.same_lock(ref.inst, ev.lock.inst):
                continue
            key = (ref.inst, held.site, ev.site)
            if key in seen:
                continue
            seen.add(key)
            yield CodeEdge(
                fn.fn.name,
                ref,
                held.site,
                lock_keys(ref, types, names),
                ev.lock,
                ev.site,
                lock_keys(ev.lock, types, names),
            )


@dataclass(slots=True)
class Closure:
    """Reachability in the documented graph, computed once per graph."""

    doc: OrderDoc
    below: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        succ = self.doc.succ()
        for start in self.doc.keys:
            seen: set[str] = set()
            todo = list(succ.get(start, ()))
            while todo:
                cur = todo.pop()
                if cur not in seen:
                    seen.add(cur)
                    todo.extend(succ.get(cur, ()))
            self.below[start] = seen

    def outside(self, a: str, b: str) -> bool:
        return b in self.below.get(a, set())


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one code edge says about the documentation."""

    confirms: tuple[tuple[str, str], ...]  # documented direct edges it exercises
    # (documented outer, documented inner) the code took the other way round
    contradicts: tuple[str, str] | None


def judge(edge: CodeEdge, doc: OrderDoc, closure: Closure) -> Verdict:
    held = doc.names_for(edge.outer_keys)
    taken = doc.names_for(edge.inner_keys)
    if not held or not taken or held & taken:
        return Verdict((), None)
    direct = {(e.outer, e.inner) for e in doc.edges}
    confirms = tuple(sorted((a, b) for a in held for b in taken if (a, b) in direct))
    if any(closure.outside(a, b) for a in held for b in taken):
        return Verdict(confirms, None)
    against = sorted((b, a) for a in held for b in taken if closure.outside(b, a))
    return Verdict(confirms, against[0] if against else None)


def edge_sites(path: str, edge: CodeEdge) -> tuple[CodeSite, CodeSite]:
    """Both acquisition sites: the held lock's, then the one taken under it."""
    o, i = edge.outer_site, edge.inner_site
    base = edge.outer.inst.split("@", 1)[0]
    return (
        CodeSite(path, o.line, o.column, edge.function, base, "held"),
        CodeSite(path, i.line, i.column, edge.function, edge.inner.inst.split("@", 1)[0], "taken"),
    )


def file_inversions(
    fn: FunctionFacts, lines: list[str], doc: OrderDoc, vocab: Vocabulary
) -> Iterator[tuple[CodeEdge, str, str]]:
    """(code edge, documented outer, documented inner) where the function inverts `doc`."""
    names = Names(vocab.names)
    closure = Closure(doc)
    for edge in code_edges(fn, vocab, declared_types(lines, fn), names):
        verdict = judge(edge, doc, closure)
        if verdict.contradicts is not None:
            yield edge, verdict.contradicts[0], verdict.contradicts[1]
