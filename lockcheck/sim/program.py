"""The thread programs the explorer runs: a flat list of small operations.

Both the model of the code under review and the actor models compile to this
one shape, so the explorer knows nothing about C. Lock operands are resolved
per VMA at compile time (`locks[vma]` is an index into the scenario's lock
table), because which lock a name means depends on the VMA a thread is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

OpKind = Literal[
    "start",  # thread entry: always enabled, shows where a thread begins
    "acquire",  # how: block | try | table (pte_offset_map_lock: NULL when the table is gone)
    "release",
    "downgrade",
    "read",  # var := flag of the current VMA
    "set",  # flag of the current VMA := value
    "install",  # a pte (var "pte") or marker (var "marker") in the current VMA's table
    "zap",  # clear the entries of the current VMA's table
    "detach",  # the current VMA's pmd lets go of its table; the thread keeps it
    "free",  # free the table this thread detached
    "branch",  # how: var | eq | nondet | vma
    "assign",  # a tested local variable gets a constant (how=const) or is forgotten
    "exit",
]

# Operations that only touch the thread's own state: with the reduction on,
# they run in the same atomic step as the visible operation before them.
LOCAL_KINDS = frozenset({"branch", "assign"})

ENTRY_BITS = {"pte": 1, "marker": 2}
FREED = 4


@dataclass(frozen=True, slots=True)
class Op:
    kind: OpKind
    line: int
    text: str
    nxt: int = -1  # next op (the true edge of a branch)
    alt: int = -1  # false edge of a branch
    locks: tuple[int, ...] = ()  # lock index per VMA
    mode: str = "excl"
    how: str = ""
    var: str = ""
    flag: int = -1  # index into the scenario's flag list
    value: bool = True
    eq: tuple[bool, ...] = ()  # branch how=eq: are the two locks one, per VMA


@dataclass(slots=True)
class Program:
    """One thread: its ops, where it came from, and the locks its caller holds."""

    name: str
    path: str
    ops: list[Op]
    entry_held: tuple[tuple[int, ...], ...] = ()  # lock index per VMA, held at entry
    vma_loop: bool = False  # walks the VMAs itself (starts before the first)


@dataclass(slots=True)
class LockTable:
    """The scenario's abstract locks: names, which are rw, and class templates."""

    templates: dict[str, str]
    nvmas: int
    names: list[str] = field(default_factory=list)
    rw: set[int] = field(default_factory=set)
    index: dict[str, int] = field(default_factory=dict)

    def intern(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]

    def resolve(self, cls: str, inst: str, mode: str) -> tuple[int, ...] | None:
        """Lock index per VMA for a lock of class `cls`; None when ignored.

        A class the scenario does not know is one global lock named by its
        instance, so two threads spelling a lock the same way share it.
        """
        tpl = self.templates.get(cls)
        if tpl is None:
            tpl = inst
        if not tpl:
            return None
        out = tuple(self.intern(tpl.replace("{vma}", str(v))) for v in range(self.nvmas))
        if mode in ("read", "write"):
            self.rw.update(out)
        return out


class Asm:
    """Emit ops with symbolic labels; `finish` resolves them to indices.

    A label placed where no op follows (an empty CFG node) is an alias of
    another label, so empty nodes cost nothing at run time.
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.refs: list[tuple[int, int]] = []  # (nxt label, alt label) per op
        self.at: dict[int, int] = {}
        self.alias: dict[int, int] = {}
        self._next = 0

    def label(self) -> int:
        self._next += 1
        return self._next

    def place(self, label: int) -> None:
        self.at[label] = len(self.ops)

    def same(self, label: int, other: int) -> None:
        self.alias[label] = other

    def emit(self, op: Op, nxt: int, alt: int = 0) -> None:
        self.ops.append(op)
        self.refs.append((nxt, alt))

    def _where(self, label: int, exit_at: int) -> int:
        seen: set[int] = set()
        while label in self.alias and label not in seen:
            seen.add(label)
            label = self.alias[label]
        return self.at.get(label, exit_at)

    def finish(self, name: str, path: str, last_line: int) -> list[Op]:
        exit_at = len(self.ops)
        ops = [
            replace(op, nxt=self._where(n, exit_at), alt=self._where(a, exit_at) if a else -1)
            for op, (n, a) in zip(self.ops, self.refs, strict=True)
        ]
        ops.append(Op("exit", last_line, f"return from {name}()"))
        return ops
