"""The intermediate representation every later stage reads.

A function is a control-flow graph whose nodes carry events in evaluation
order. Branch nodes carry an `Atom` describing what the two outgoing edges
tell the analysis (a trylock result, a pointer comparison, a NULL test), so
path facts are data here, not code in the analysis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Literal

Mode = Literal["excl", "read", "write"]

# Values a path can remember for a variable: literals, NULL/true/false,
# ALL_CAPS constants and their negations (`-EAGAIN`).
_CONSTANT_RE = re.compile(
    r"^(?:-?\d+[UuLl]*|0x[0-9a-fA-F]+[UuLl]*|true|false|NULL|-?[A-Z][A-Z0-9_]*"
    r"|ERR_PTR\(-[A-Z][A-Z0-9_]*\))$"
)


# An assigned value that is not a constant but is surely a negative error
# code: `err = PTR_ERR(p)` (the kernel takes it only out of an error pointer).
ERR_CODE = "#errcode"
# `Release.released_when` of a callee's release that did not happen when the
# result is the constant written after it (`unless:-EBUSY`, analysis/summaries.py)
KEPT_ON = "unless:"


def is_constant(text: str) -> bool:
    return bool(_CONSTANT_RE.match(text))


# The line that reprs of sites, nodes and functions count from: 0, or a
# function's start while a key that ignores where the function is is spelt
# (model/lines.py).
LINE_ORIGIN: ContextVar[int] = ContextVar("lockcheck_line_origin", default=0)


@dataclass(frozen=True, slots=True, order=True, repr=False)
class Site:
    """A source position: 1-based line and column, and the text there."""

    line: int
    column: int
    text: str = ""

    def __repr__(self) -> str:
        line = self.line - LINE_ORIGIN.get()
        return f"Site(line={line}, column={self.column!r}, text={self.text!r})"


@dataclass(frozen=True, slots=True, order=True)
class LockRef:
    """A lock value: its instance (which lock) and class (what kind of lock).

    The instance is the normalised C expression naming the lock as the code
    under review spells it (`mm->mmap_lock`, `ptl`), so reports stay readable;
    identity is the instance alone, the class is what rules match on.
    """

    inst: str
    cls: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.inst


@dataclass(frozen=True, slots=True)
class Acquire:
    lock: LockRef
    mode: Mode
    site: Site
    primitive: str
    nested: bool = False
    # The lock is held only while `cond_var` is non-NULL/true: undone on the
    # edge where that variable (or the branch atom, "#atom") is known to fail.
    cond_var: str | None = None
    # "err": not held when the result is an ERR_PTR() (`if (IS_ERR(mp))`);
    # "neg": not held when it is negative (`if (id < 0)`), held at 0 and above
    fail_when: Literal["zero", "nonzero", "err", "neg"] = "zero"
    guard: bool = False
    args: tuple[str, ...] = ()  # the call's arguments, normalised (irqsave flags)
    # the lock is whatever the call hands back (`ptl = pmd_lock(...)`): a new
    # value, never provably the lock an earlier name meant
    fresh: bool = False
    until: str | None = None  # held until a lock of this class is released


@dataclass(frozen=True, slots=True)
class Release:
    lock: LockRef
    site: Site
    primitive: str
    guard: bool = False
    maybe: bool = False  # released on some outcomes only (e.g. expand_stack() on failure)
    # with `maybe`: the outcome that releases is known, released exactly where
    # `cond_var` (a variable, or "#atom" for the branch) is `released_when`
    cond_var: str | None = None
    released_when: str = "nonzero"
    args: tuple[str, ...] = ()  # the call's arguments, normalised (irqsave flags)
    # a callee's release (analysis/summaries.py), named as the callee spells it
    # (`bo->bdev->lru_lock`), which may be how the caller never does
    summarised: bool = False


@dataclass(frozen=True, slots=True)
class Downgrade:
    lock: LockRef
    site: Site
    primitive: str


@dataclass(frozen=True, slots=True)
class Check:
    flag: str
    expr: str
    site: Site
    # A test of a variable that holds an earlier check's result: the lock
    # state that matters is the one at the node where the value was read.
    origin_node: int | None = None


class Names(frozenset[str]):
    """A set of names whose repr does not depend on the hash seed: reprs of
    functions and events key dataflows kept on disk (cache.FlowStore)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Names({sorted(self)!r})"


@dataclass(frozen=True, slots=True)
class Act:
    kind: str
    target: str
    site: Site
    via: str | None = None  # the callee that performs it, for summarised acts
    # checks inside `via` that decide it: (flag, lock keys held at that check)
    inner_checks: tuple[tuple[str, frozenset[str]], ...] = ()
    # entries `via` re-tests under a lock on its way to the act (the pmd
    # re-tested by follow_devmap_pmd()): (entry lock class, pointer in the
    # terms of the function holding this event, lock keys held at the test,
    # with "#caller" when nothing was released before it)
    rereads: tuple[tuple[str, str, frozenset[str]], ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    callee: str
    site: Site
    args: tuple[str, ...] = ()
    external: bool = False  # not defined in the file: its lock effects are unknown
    # where the result goes: an assigned variable, "#atom" (tested by the
    # branch), "#ret" (returned), or None
    result: str | None = None
    addressed: tuple[int, ...] = ()  # arguments written `&x` (args drop the `&`)
    # `kref_put(&obj->ref, release)`: the function the call may run on the
    # object that contains its first argument (`obj`)
    callback: str | None = None
    callback_obj: str = ""
    # what `result` is when the callback ran ("nonzero": kref_put() returns 1
    # exactly when it called `release`), None if the call does not say
    callback_ran: str | None = None
    # the callee never returns a positive value (its summary says): after
    # `x = f()` a path that finds `x` not negative knows it is zero
    nonpos: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """A statement in the code that a lock is (not) held here."""

    kind: Literal["held", "not_held"]
    lock: LockRef
    mode: Mode | None
    site: Site
    source: str  # the assertion or annotation as written


@dataclass(frozen=True, slots=True)
class Sleep:
    """A call that may sleep."""

    site: Site
    primitive: str


@dataclass(frozen=True, slots=True)
class Assign:
    """`var = ...`: kills path facts about `var`; `value` when it is a constant."""

    var: str
    site: Site
    value: str | None = None
    alias: str | None = None  # `var = other;`: both name one object from here on
    # `var |= MASK;` with a constant mask: the bits `var` had stay set, and
    # those of the mask are set too
    bits: str | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """A page-table entry read (`*pte`, `ptep_get(pte)`, `pmdp_get_lockless(pmd)`).

    `cls` is the lock class that keeps the entry stable; `into` the variable
    or field the value is stored in when the read is the whole right-hand
    side. Value provenance (analysis/values.py) follows it from there.
    """

    ptr: str
    cls: str
    site: Site
    into: str | None = None


@dataclass(frozen=True, slots=True)
class Handover:
    """`ac->ac_inode = inode`, `*out = inode` with `ac`/`out` a parameter:
    the object (and the locks held in it) is handed to the caller."""

    var: str
    site: Site


Event = (
    Acquire | Release | Downgrade | Check | Act | Call | Claim | Sleep | Assign | Read | Handover
)


@dataclass(frozen=True, slots=True)
class Atom:
    """What a branch node's true/false edges mean.

    kind "value": the branch tests `var` (or "#atom", the node's own try
    result) for non-zero. kind "eq": the branch tests `a == b`.
    kind "opaque": nothing known.
    """

    kind: Literal["value", "eq", "opaque"]
    a: str = ""
    b: str = ""
    # For path facts: the tested expression (in the edge's "true" sense), the
    # variables it reads, and whether re-testing it gives the same answer
    # (no calls, no side effects) so that a decision can be remembered.
    text: str = ""
    vars: tuple[str, ...] = ()
    factable: bool = False
    # a sign test lowered to non-zero (`ret < 0`): its true edge still tells
    # that the (pure) value is non-zero, its false edge tells nothing
    sign: bool = False
    # the functions the test calls, when their calls are its only side
    # effects: the test is as stable as they are pure (their summaries say;
    # analysis/file.py)
    stable_if: tuple[str, ...] = ()
    # a comparison of a value with a constant whose number is known
    # (`code >= EV_OOB`, `case EV_EOT:`): (value, operator, number), its
    # true edge in the operator's sense (`!=` is lowered to `==`)
    num: tuple[str, str, int] | None = None


@dataclass(slots=True, repr=False)
class Node:
    id: int
    line: int
    kind: Literal["entry", "exit", "stmt", "branch", "join"]
    events: list[Event] = field(default_factory=list)
    atom: Atom | None = None
    # successors: (node id, edge label) with label True/False for branches
    succ: list[tuple[int, bool | None]] = field(default_factory=list)
    text: str = ""

    def __repr__(self) -> str:
        line = self.line - LINE_ORIGIN.get()
        return (
            f"Node(id={self.id!r}, line={line}, kind={self.kind!r}, events={self.events!r},"
            f" atom={self.atom!r}, succ={self.succ!r}, text={self.text!r})"
        )


@dataclass(slots=True)
class Cfg:
    nodes: list[Node]
    entry: int
    exit: int

    def preds(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for n in self.nodes:
            for s, _ in n.succ:
                out[s].append(n.id)
        return out


@dataclass(frozen=True, slots=True)
class Declared:
    """A prototype's sparse annotations (`int f(struct it *it) __acquires(RCU);`):
    what a call does, by its declaration, when no body is in view."""

    name: str
    params: tuple[str, ...]
    acquires: tuple[LockRef, ...] = ()
    releases: tuple[LockRef, ...] = ()


@dataclass(slots=True, repr=False)
class Function:
    name: str
    path: str
    start_line: int
    end_line: int
    cfg: Cfg
    params: tuple[str, ...] = ()
    entry_claims: tuple[Claim, ...] = ()  # sparse annotations: held at entry
    exit_acquires: tuple[LockRef, ...] = ()  # __acquires(): returns holding
    exit_releases: tuple[LockRef, ...] = ()  # __releases(): returns released
    lockvars: dict[str, LockRef] = field(default_factory=dict)  # local lock pointers
    parse_errors: int = 0
    budget_exceeded: bool = False
    # `obj = container_of(param, T, member)`: local -> the parameter it contains
    containers: dict[str, str] = field(default_factory=dict)
    # `obj = to_obj(param)`: local -> (parameter, callee), a container when the
    # callee is a function of the file that is `return container_of(p, ...)`
    container_calls: dict[str, tuple[str, str]] = field(default_factory=dict)
    # `owner = obj->owner` set once from such a local: local -> (that local, `->owner`)
    container_members: dict[str, tuple[str, str]] = field(default_factory=dict)
    returns_container: bool = False  # the body is `return container_of(first parameter, ...)`
    # stable copies: expression -> the local set once to it (model/extract.py)
    canon: dict[str, str] = field(default_factory=dict)
    # the names the body declares (not `static`): state no other CPU sees
    local_names: frozenset[str] = frozenset()
    # the body has no side effects of its own (it changes only its locals):
    # the functions it calls, which must be pure too; None if it has some
    pure_calls: tuple[str, ...] | None = None
    # a name in it spells a line (an inner variable shadowing an outer one is
    # `name__LINE`): lowered elsewhere, it would not be this one moved
    line_names: bool = False

    def __repr__(self) -> str:
        origin = LINE_ORIGIN.get()
        parts = []
        for name in _FUNCTION_FIELDS:
            value = getattr(self, name)
            if name in ("start_line", "end_line"):
                parts.append(f"{name}={value - origin}")
            else:
                parts.append(f"{name}={value!r}")
        return f"Function({', '.join(parts)})"


_FUNCTION_FIELDS = tuple(f.name for f in fields(Function))


@dataclass(frozen=True, slots=True)
class OpsTable:
    """The functions of the file one designated initializer registers
    together (`.prepare = f, .unprepare = g`): callbacks of one object that
    its user calls as a set, so a lock one of them returns holding may be
    the one another releases."""

    line: int
    members: tuple[tuple[str, str], ...]  # (member, function), as written

    def functions(self) -> frozenset[str]:
        return frozenset(fn for _member, fn in self.members)


def pickle_by_fields(*classes: type) -> None:
    """Pickle each of `classes` (frozen dataclasses with slots) as its
    constructor and its fields' values: `dataclasses` would unpickle every
    object through `fields()`, most of what reading a review's stores back
    (cache.FlowStore) costs."""
    for cls in classes:
        names = [f.name for f in fields(cls) if f.init]
        get = attrgetter(*names) if len(names) > 1 else (lambda obj, n=names[0]: (getattr(obj, n),))

        def reduce(self: object, cls: type = cls, get: Callable[[object], Any] = get) -> object:
            return cls, get(self)

        setattr(cls, "__reduce__", reduce)  # noqa: B010


pickle_by_fields(
    Site,
    LockRef,
    Acquire,
    Release,
    Downgrade,
    Check,
    Act,
    Call,
    Claim,
    Sleep,
    Assign,
    Read,
    Handover,
    Atom,
    Declared,
    OpsTable,
)
