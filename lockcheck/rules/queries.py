"""Questions several rules ask of one function's facts.

The analysis answers "what is held here"; these answer "who took it" and
"is every way here through a release", so that each rule stays a short
statement of its law.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held, LockState, base_inst
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, LockRef, Release
from lockcheck.packs import Vocabulary


def single_definitions(functions: Sequence[FunctionFacts]) -> dict[str, FunctionFacts]:
    """Functions by name, leaving out names defined more than once (`#ifdef`
    variants): which variant a patch changed is not known."""
    counts: dict[str, int] = {}
    for ff in functions:
        counts[ff.fn.name] = counts.get(ff.fn.name, 0) + 1
    return {ff.fn.name: ff for ff in functions if counts[ff.fn.name] == 1}


def acquirers(fn: FunctionFacts) -> dict[str, set[str]]:
    """Lock spelling -> the primitives that acquire it in this function."""
    out: dict[str, set[str]] = {}
    for evs in fn.events:
        for ev in evs:
            if isinstance(ev, Acquire):
                out.setdefault(base_inst(ev.lock.inst), set()).add(ev.primitive)
    return out


def cannot_wait(vocab: Vocabulary, ev: Acquire) -> bool:
    """A trylock, or a same-file helper that takes the lock only when it says so.

    Neither waits for the lock, so neither can close a deadlock cycle. A
    helper's conditional acquire is trylock-like as far as the caller can
    see: the helper's own acquisitions are judged in the helper.
    """
    if vocab.is_try(ev.primitive):
        return True
    known = ev.primitive in vocab.api or ev.primitive.startswith("guard(")
    return not known and ev.cond_var is not None


def taken_here(held: Held) -> bool:
    """Was the lock taken in this function (not assumed from a claim or the caller)?"""
    return not held.assumed


def held_locks(st: LockState) -> Iterator[tuple[LockRef, Held]]:
    """The surely-held locks taken in this function, in a stable order."""
    for ref, held in sorted(st.must.items(), key=lambda kv: (kv[1].site, kv[0].inst)):
        if taken_here(held):
            yield ref, held


def taken_at(ref: LockRef, held: Held, what: str = "taken here") -> Related:
    return Related(held.site.line, held.site.column, f"`{base_inst(ref.inst)}` {what}")


def release_nodes(fn: FunctionFacts, inst: str) -> set[int]:
    """Nodes that release the lock spelled `inst`."""
    want = base_inst(inst)
    return {
        nid
        for nid, evs in enumerate(fn.events)
        if any(isinstance(ev, Release) and base_inst(ev.lock.inst) == want for ev in evs)
    }


# a store `lhs = value;` whose left side the caller can see: through a
# pointer parameter (`*ptlp = ptl;`, `(*out) = v;`, `out[0] = v;`, `st->flags = v;`)
_STORE_RE = re.compile(r"^\s*([*(\s]*[A-Za-z_]\w*[\w\s()\[\].>-]*?)\s*=(?!=)\s*(.+?)\s*;\s*$", re.S)
_ROOT_RE = re.compile(r"^[*(\s]*([A-Za-z_]\w*)")


def _plain(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def caller_visible(fn: FunctionFacts, lvalue: str) -> bool:
    """Is `lvalue` memory the caller reads back: reached through a pointer
    parameter (`*flagsp`, `(*keyp)`, `out[0]`, `state->flags`), not the
    parameter itself or a local?"""
    lv = _plain(lvalue)
    m = _ROOT_RE.match(lv)
    if m is None or m.group(1) not in fn.fn.params:
        return False
    return lv.startswith(("*", "(*")) or "->" in lv or "[" in lv


def stored_for_caller(fn: FunctionFacts, values: Iterable[str]) -> set[int]:
    """Nodes that store one of `values` (as spelt, spaces aside) where the
    caller finds it after the call: the function hands that value out
    (`*ptlp = ptl;` hands out a lock, `*rflags = flags;` the saved
    interrupt state of one)."""
    want = {_plain(v) for v in values if v}
    out: set[int] = set()
    for nid, node in enumerate(fn.fn.cfg.nodes):
        m = _STORE_RE.match(node.text)
        if m and _plain(m.group(2)).strip("()") in want and caller_visible(fn, m.group(1)):
            out.add(nid)
    return out


def code(text: str) -> str:
    """A C snippet for a message: one line, in backticks."""
    return "`" + " ".join(text.split()) + "`"
