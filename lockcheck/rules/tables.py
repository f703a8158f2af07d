"""Whose page tables a lock or an act is about: user tables, or tables no user walker reaches.

The page-table rules guard against actors that only walk the tables of user
address spaces (faults, THP collapse and split, userfaultfd write-protect,
reclaim, migration). Two kinds of table are out of their reach, and the
code says so by the mm it names:

- the kernel's own mm (`kernel_mms`, `init_mm`): `spin_lock(&init_mm.page_table_lock)`,
  `pud_lock(&init_mm, pud)`, `pte_clear(&init_mm, addr, pte)`;
- an mm the code just made (`new_mms`, `mm = mm_alloc()`) and keeps in a
  local, or in a field of a local object a same-file helper it passes that
  object to fills (`init(&args)` doing `args->mm = mm_alloc()`): no task
  runs in it, so nothing else walks its tables.

Both lists are rule parameters in the pack; an empty list asks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import base_inst
from lockcheck.model.ir import Acquire, Act, Call, Handover

_FIELD_RE = re.compile(r"^(.*?)(?:\.|->)[A-Za-z_]\w*$")
_ROOT_RE = re.compile(r"^[A-Za-z_]\w*")


def call_args(text: str) -> list[str]:
    """The top-level arguments of the call spelt `text` (`f(a, g(b, c))` -> `a`, `g(b, c)`)."""
    start = text.find("(")
    if start < 0 or not text.rstrip().endswith(")"):
        return []
    body = text[start + 1 : text.rstrip().rfind(")")]
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in body:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [a for a in (_plain(a) for a in out) if a]


def _plain(expr: str) -> str:
    """`&(args.mm)` -> `args.mm`: an object expression without address-of,
    parentheses or blanks."""
    text = "".join(expr.split())
    while True:
        if text.startswith("&"):
            text = text[1:]
        elif text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        else:
            return text


def lock_mm(ev: Acquire) -> str | None:
    """The object a page-table lock belongs to, as the acquisition spells it.

    A lock taken by address (`spin_lock(&init_mm.page_table_lock)`) belongs
    to the object holding the field; one a primitive computes from its
    arguments (`pmd_lock(mm, pmd)`, `pte_offset_map_lock(mm, pmd, addr,
    &ptl)`) to the mm that comes first.
    """
    if ev.args:
        m = _FIELD_RE.match(_plain(base_inst(ev.args[0])))
        return m.group(1) if m else None
    args = call_args(ev.site.text)
    return args[0] if args else None


class TableOwners:
    """Answers "are these tables out of every user walker's reach?" for one file."""

    def __init__(
        self, functions: Iterable[FunctionFacts], kernel: Iterable[str], new: Iterable[str]
    ) -> None:
        self.kernel = frozenset(kernel)
        self.new = frozenset(new)
        self.by_name = {ff.fn.name: ff for ff in functions}
        self._fills: dict[tuple[str, int], frozenset[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.kernel or self.new)

    def act_on_kernel_mm(self, act: Act) -> bool:
        """`pte_clear(&init_mm, addr, pte)`: the act names the kernel's mm."""
        return act.via is None and any(a in self.kernel for a in call_args(act.site.text))

    def private_lock(self, fn: FunctionFacts, ev: Acquire) -> bool:
        """Is the lock `ev` takes one of the kernel's mm or of an mm `fn` made?"""
        if not self:
            return False
        mm = lock_mm(ev)
        if mm is None:
            return False
        return mm in self.kernel or self._fresh(fn, mm)

    def _fresh(self, fn: FunctionFacts, mm: str) -> bool:
        """`mm` is a local of `fn` (or a field of one) set from an allocator of
        new mms, here or in a same-file helper given the local's address, and
        the local is not handed to the caller."""
        if not self.new:
            return False
        root = _ROOT_RE.match(mm)
        if root is None or root.group(0) not in fn.fn.local_names:
            return False
        local = root.group(0)
        rest = mm[len(local) :]
        field = rest.lstrip(".") if rest.startswith(".") else None
        handed = False
        made = False
        for evs in fn.events:
            for ev in evs:
                if isinstance(ev, Handover) and ev.var == local:
                    handed = True
                if not isinstance(ev, Call):
                    continue
                if ev.callee in self.new and ev.result is not None:
                    made |= _same_object(ev.result, mm)
                elif field is not None and not ev.external:
                    for i, arg in enumerate(ev.args):
                        if arg == local and i in ev.addressed:
                            made |= field in self._filled(ev.callee, i)
        return made and not handed

    def _filled(self, name: str, index: int) -> frozenset[str]:
        """Fields of its `index`th parameter the helper `name` sets from an allocator of new mms."""
        key = (name, index)
        got = self._fills.get(key)
        if got is None:
            got = frozenset()
            helper = self.by_name.get(name)
            if helper is not None and index < len(helper.fn.params):
                param = helper.fn.params[index]
                got = frozenset(
                    ev.result[len(param) + 2 :]
                    for evs in helper.events
                    for ev in evs
                    if isinstance(ev, Call)
                    and ev.callee in self.new
                    and ev.result is not None
                    and ev.result.startswith(f"{param}->")
                    and ev.result[len(param) + 2 :].isidentifier()
                )
            self._fills[key] = got
        return got


def _same_object(a: str, b: str) -> bool:
    return a.replace("->", ".") == b.replace("->", ".")
