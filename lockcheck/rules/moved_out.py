"""Kind `moved-out-of-lock`: a patch moves a test or an act out from under a lock.

What it finds: in a function the patch changes, a branch condition that
reads shared state (a field through a pointer, a global, a call) or a
page-table act, made with lock L held before the patch and, after it, made
only where L is not held, although the function still takes L. The usual
shapes: a test hoisted above the `spin_lock()` whose critical section it
belonged to ("check, then lock"), the in-lock half of a double-checked test
dropped, an act moved below the unlock.

Why: a lock makes a test meaningful only while it is held. Tested before
the lock is taken, the answer may be stale by the time the code acts on it
under the lock: another CPU can change the state in between. This is the
time-of-check/time-of-use race that reviewers look for first in a patch
that "only moves a check".

Review only: the evidence is the patch itself (the function's own code held
L there before), so `lockcheck check` never reports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import LockState, base_inst
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Acquire, Act
from lockcheck.rules.base import ReviewRule
from lockcheck.rules.queries import single_definitions

# calls that only wrap a condition: what they are given decides
_WRAPPERS = frozenset(
    {
        "likely",
        "unlikely",
        "IS_ENABLED",
        "IS_ERR",
        "IS_ERR_OR_NULL",
        "PTR_ERR",
        "sizeof",
        "ARRAY_SIZE",
        "WARN_ON",
        "WARN_ON_ONCE",
        "WARN",
        "WARN_ONCE",
        "BUG_ON",
        "VM_BUG_ON",
        "VM_WARN_ON",
        "VM_WARN_ON_ONCE",
    }
)
_CALL_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")
_NAME_RE = re.compile(r"(?<![\w>.])([A-Za-z_]\w*)(?!\w)(?!\s*\()")
_CONSTANTS = frozenset({"true", "false", "NULL"})


def _norm(text: str) -> str:
    return " ".join(text.split())


def _own(st: LockState | None) -> frozenset[str]:
    """Locks this function surely holds by its own acquisitions (not a caller's)."""
    if st is None:
        return frozenset()
    return frozenset(base_inst(r.inst) for r, h in st.must.items() if not h.assumed)


def _maybe(st: LockState | None) -> frozenset[str]:
    """Locks this function possibly holds by its own acquisitions. A join may
    keep one path's `assumed` hold in may and another path's own hold of the
    same lock in must: that lock is possibly held too."""
    if st is None:
        return frozenset()
    own = {r for r, h in st.must.items() if not h.assumed}
    return frozenset(base_inst(r.inst) for r, h in st.may.items() if not h.assumed or r in own) | {
        base_inst(r.inst) for r in own
    }


def locals_of(ff: FunctionFacts) -> frozenset[str]:
    """Parameters and the names the body declares: state no other CPU sees.
    (A global the function assigns, `nr_running++`, is still shared.)"""
    return frozenset(ff.fn.params) | ff.fn.local_names


def reads_shared(text: str, local: frozenset[str]) -> bool:
    """Does a condition read state another CPU can change: a field through a
    pointer, a dereference, a call that is not a mere wrapper, a global?"""
    if "->" in text or re.search(r"(?<![\w)\]])\*\s*[A-Za-z_(]", text):
        return True
    if any(m.group(1) not in _WRAPPERS for m in _CALL_RE.finditer(text)):
        return True
    for m in _NAME_RE.finditer(text):
        name = m.group(1)
        if name in local or name in _CONSTANTS or name.isupper():
            continue
        return True  # a name the function never sets: a global
    return False


@dataclass(slots=True)
class _Use:
    """One test or act of a function, with the locks held there."""

    line: int
    column: int
    must: frozenset[str]
    may: frozenset[str]


@dataclass(slots=True)
class _Uses:
    tests: dict[str, list[_Use]] = field(default_factory=dict)
    acts: dict[str, list[_Use]] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)  # lock -> first acquisition line


def uses_of(ff: FunctionFacts) -> _Uses:
    out = _Uses()
    local = locals_of(ff)
    for node in ff.fn.cfg.nodes:
        st = ff.state_in[node.id]
        if st is None:
            continue
        if node.kind == "branch" and node.text:
            text = _norm(node.text)
            if reads_shared(text, local):
                col = ff.events[node.id][0].site.column if ff.events[node.id] else 1
                use = _Use(node.line, col, _own(st), _maybe(st))
                out.tests.setdefault(text, []).append(use)
    for _nid, ev, st in ff.iter_events():
        if isinstance(ev, Act) and ev.via is None:
            use = _Use(ev.site.line, ev.site.column, _own(st), _maybe(st))
            out.acts.setdefault(_norm(ev.site.text), []).append(use)
        elif isinstance(ev, Acquire):
            lock = base_inst(ev.lock.inst)
            out.taken[lock] = min(ev.site.line, out.taken.get(lock, ev.site.line))
    for uses in (*out.tests.values(), *out.acts.values()):
        uses.sort(key=lambda u: (u.line, u.column))  # occurrences pair in source order
    return out


def _left(was: list[_Use], now: list[_Use]) -> list[tuple[str, _Use]]:
    """(lock, where it is missing now) for the occurrences of one test or act.

    As many occurrences as before: each is its old self, in order (the
    second of two identical tests hoisted, the first still under the lock).
    Otherwise (one added or dropped): a lock held at some occurrence before
    and possibly held at none now, reported at the first.
    """
    out: list[tuple[str, _Use]] = []
    if len(was) == len(now):
        for old, new in zip(was, now, strict=True):
            out.extend((lock, new) for lock in sorted(old.must - new.may))
        return out
    before = frozenset().union(*(u.must for u in was))
    maybe = frozenset().union(*(u.may for u in now))
    first = min(now, key=lambda u: (u.line, u.column))
    return [(lock, first) for lock in sorted(before - maybe)]



class MovedOutOfLock(ReviewRule):
    kind = "moved-out-of-lock"

    def compare(
        self,
        path: str,
        pre: Sequence[FunctionFacts],
        post: Sequence[FunctionFacts],
        changed: set[str],
        elsewhere: Path | None = None,
    ) -> list[Finding]:
        """Findings for the functions in `changed` whose tests or acts left a lock."""
        before = single_definitions(pre)
        out: list[Finding] = []
        for name, ff in sorted(single_definitions(post).items()):
            old = before.get(name)
            if name not in changed or old is None or ff.budget_exceeded or old.budget_exceeded:
                continue
            was, now = uses_of(old), uses_of(ff)
            out.extend(self._moved(path, ff, was.tests, now.tests, now.taken, "tested"))
            out.extend(self._moved(path, ff, was.acts, now.acts, now.taken, "done"))
        return out

    def _moved(
        self,
        path: str,
        ff: FunctionFacts,
        was: dict[str, list[_Use]],
        now: dict[str, list[_Use]],
        taken: dict[str, int],
        verb: str,
    ) -> Iterable[Finding]:
        for text in sorted(set(was) & set(now)):
            for lock, use in _left(was[text], now[text]):
                if lock not in taken:
                    continue
                why = (
                    "another holder of the lock can change the entry at the same time"
                    if verb == "done"
                    else "its answer can be out of date by the time the lock is held"
                )
                yield Finding(
                    rule=self.spec.id,
                    severity=self.spec.severity,
                    path=path,
                    line=use.line,
                    column=use.column,
                    function=ff.fn.name,
                    message=(
                        f"`{text}` was {verb} under `{lock}` before this patch and is now "
                        f"{verb} without it, while `{ff.fn.name}()` still takes `{lock}` "
                        f"(line {taken[lock]}): {why}"
                    ),
                    held=tuple(sorted(use.must)),
                    expected=(lock,),
                    related=(Related(taken[lock], 1, f"`{lock}` taken here"),),
                    anchor=text,
                )
