"""The lock-state lattice: what is held, in which mode, and how paths join.

Must-hold (on every path) and may-hold (on some path) sets with modes,
plus pointer equalities (`ptl == pml`) that make two names one lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from lockcheck.frontend.macros import IDENT_RE
from lockcheck.model.ir import (
    Function,
    LockRef,
    Mode,
    Site,
    pickle_by_fields,
)

RW_CLASS_RE = re.compile(r"(mmap_lock|rwsem|_sem$|rwlock)")


def mentions(inst: str, var: str) -> bool:
    """Does a lock expression depend on `var` (`cpu_rq(t)->__lock` on `t`,
    `table[hash]` on `hash`)? Field names after `->`/`.` do not count."""
    if var not in inst:  # the usual answer, without a scan
        return False
    expr = inst.split("@")[0]
    for m in IDENT_RE.finditer(expr):
        if m.group(0) == var and not expr[: m.start()].endswith(("->", ".")):
            return True
    return False


def below(inst: str, prefix: str) -> bool:
    """Is `inst` a member reached from `prefix` (`p->q->lock` from `p->q`)?"""
    return inst.startswith(prefix) and inst[len(prefix) :].startswith(("->", "."))


def base_inst(inst: str) -> str:
    """The lock's spelling without the analysis' rename suffix (`cursor@12`):
    what pairs an acquisition with its release."""
    return inst.split("@", 1)[0]


def base_var(inst: str) -> str:
    """The variable a lock expression starts from: `mm` in `mm->mmap_lock`."""
    m = IDENT_RE.match(inst)
    return m.group(0) if m else ""


def h_assumed(st: LockState, ref: LockRef) -> bool:
    held = st.may.get(ref)
    return held is not None and held.assumed


def mode_of_release(primitive: str, cls: str) -> Mode:
    if "write" in primitive:
        return "write"
    if "read" in primitive:
        return "read"
    return "read" if RW_CLASS_RE.search(cls) else "excl"


@dataclass(frozen=True, slots=True)
class Held:
    mode: Mode
    site: Site
    cond_var: str | None = None
    fail_when: str = "zero"
    assumed: bool = False  # taken before the function, per a claim or annotation
    # handed to code we cannot see (an unknown `*_unlock()`/`*put()` callee, a
    # may-release primitive): it may have been released there
    escaped: bool = False
    until: str | None = None  # ends with the release of a lock of this class


@dataclass(frozen=True, slots=True)
class LockState:
    must: Mapping[LockRef, Held]
    may: Mapping[LockRef, Held]
    eqs: frozenset[frozenset[str]] = frozenset()

    def held_keys(self) -> frozenset[str]:
        """`class:mode` for every lock surely held: what rules match against."""
        return frozenset(f"{ref.cls}:{h.mode}" for ref, h in self.must.items())

    def describe(self) -> list[str]:
        """The surely-held locks as a reviewer reads them, sorted."""
        out = []
        for ref, h in self.must.items():
            out.append(f"{ref.inst}:{h.mode}" if h.mode in ("read", "write") else ref.inst)
        return sorted(out)

    def same_lock(self, a: str, b: str) -> bool:
        """One lock under two names: `ptl == pml`, or `cur->lock` after `cur = op`."""
        if a == b or frozenset((a, b)) in self.eqs:
            return True
        ha, hb = base_var(a), base_var(b)
        if (
            ha != hb
            and a[len(ha) :] == b[len(hb) :]
            and a[len(ha) :] != ""
            and frozenset((ha, hb)) in self.eqs
        ):
            return True
        # `dio->inode->i_rwsem` and `inode->i_rwsem` after `dio->inode = inode`
        for pair in self.eqs:
            for x in pair:
                (y,) = pair - {x} or (x,)
                if below(a, x) and below(b, y) and a[len(x) :] == b[len(y) :]:
                    return True
        return False

    def without(self, gone: Callable[[LockRef, Held], bool]) -> LockState:
        """The state less the holds `gone` picks (itself when it picks none)."""
        if not any(gone(r, h) for d in (self.must, self.may) for r, h in d.items()):
            return self
        return LockState(
            {r: h for r, h in self.must.items() if not gone(r, h)},
            {r: h for r, h in self.may.items() if not gone(r, h)},
            self.eqs,
        )


pickle_by_fields(Held, LockState)


def _meet_mode(a: Mode, b: Mode) -> Mode:
    if a == b:
        return a
    return "read" if "read" in (a, b) else "excl"


def join(a: LockState | None, b: LockState | None) -> LockState | None:
    if a is None:
        return b
    if b is None:
        return a
    must = {}
    for ref, ha in a.must.items():
        hb = b.must.get(ref)
        if hb is not None:
            must[ref] = Held(
                _meet_mode(ha.mode, hb.mode),
                min(ha.site, hb.site),
                ha.cond_var or hb.cond_var,
                ha.fail_when,
                ha.assumed and hb.assumed,
                ha.escaped or hb.escaped,
            )
    may = dict(b.may)
    for ref, ha in a.may.items():
        hb = b.may.get(ref)
        may[ref] = ha if hb is None or hb.escaped <= ha.escaped else replace(ha, escaped=True)
    return LockState(must, may, a.eqs & b.eqs)


def initial_state(fn: Function, inferred: Mapping[LockRef, Mode] | None = None) -> LockState:
    must: dict[LockRef, Held] = {}
    for claim in fn.entry_claims:
        mode: Mode = claim.mode or ("read" if RW_CLASS_RE.search(claim.lock.cls) else "excl")
        must[claim.lock] = Held(mode, claim.site, assumed=True)
    for ref, rmode in (inferred or {}).items():
        must.setdefault(
            ref, Held(rmode, Site(fn.start_line, 1, "(held by the caller)"), assumed=True)
        )
    return LockState(must, dict(must))
