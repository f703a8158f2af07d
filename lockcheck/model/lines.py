"""Functions and their facts moved to other lines, and keys that ignore where they are.

A patch that adds a line moves every function below it. Lowering and the
dataflow depend on a function's lines only through its sites, node lines,
start and end, and the `name@LINE` names the dataflow gives a lock whose
pointer is assigned anew; they order lines by their numbers, and such
names as text (see `movable`). So a function that merely moved lowers and
analyses to what it did at its old place, every line shifted by the same
amount: a review keys its stores by lines relative to the function's start
and shifts what it reads back.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar, cast

from lockcheck.model.ir import LINE_ORIGIN, Assign, Event, Function, Node, Site

_T = TypeVar("_T")

# `ptl@120`: a lock the dataflow renamed when its pointer was assigned at line 120
AT_LINE_RE = re.compile(r"@(\d+)")

# the fields that hold line numbers, per class
_LINE_FIELDS: dict[type, tuple[str, ...]] = {
    Site: ("line",),
    Node: ("line",),
    Function: ("start_line", "end_line"),
}


def relative_repr(obj: object, start: int) -> str | None:
    """`repr(obj)` with every line of a site, a node or a function counted
    from `start`; None when a name in it spells a line (`ptl@120`), which no
    relative key can move."""
    token = LINE_ORIGIN.set(start)
    try:
        text = repr(obj)
    finally:
        LINE_ORIGIN.reset(token)
    return None if AT_LINE_RE.search(text) else text


def named_lines(events: list[list[Event]]) -> tuple[int, int] | None:
    """The lowest and highest line a name the dataflow gives may spell: the
    lines of assignments (a lock reached through the variable is renamed
    `name@LINE` there); None without assignments."""
    lines = [ev.site.line for evs in events for ev in evs if isinstance(ev, Assign)]
    return (min(lines), max(lines)) if lines else None


def movable(low: int, high: int, delta: int) -> bool:
    """May names that spell lines `low`..`high` move by `delta`? Only if
    every such line has as many digits before and after: `p@119` sorts
    before `p@1200`, `p@121` after `p@1202`, and the dataflow may pick the
    first of such names."""
    if delta == 0:
        return True
    if low + delta < 1:
        return False
    return len(str(min(low, low + delta))) == len(str(max(high, high + delta)))


def shifted(obj: _T, delta: int, known: dict[int, Any] | None = None) -> _T:
    """`obj` with every line moved by `delta`: sites, node lines, a
    function's start and end, and `@LINE` in names (see `Shifter`)."""
    if delta == 0:
        return obj
    return cast(_T, Shifter(delta, known)(obj))


class Shifter:
    """Moves objects by `delta` lines. Objects held twice are copied once
    (by identity); `known` maps objects already moved (by id) to what stands
    for them; what holds no line is shared. `renamed` tells whether a name
    spelt a line (`ptl@120`)."""

    def __init__(self, delta: int, known: dict[int, Any] | None = None) -> None:
        self.delta = delta
        self.known = {} if known is None else known
        self.strings: dict[str, str] = {}
        self.renamed = False

    def _line(self, m: re.Match[str]) -> str:
        return f"@{int(m.group(1)) + self.delta}"

    def __call__(self, obj: Any) -> Any:
        kind = type(obj)
        if obj is None or kind in (int, bool, float):
            return obj
        if kind is str:
            if "@" not in obj:
                return obj
            out = self.strings.get(obj)
            if out is None:
                out = self.strings[obj] = AT_LINE_RE.sub(self._line, obj)
                self.renamed = self.renamed or out != obj
            return out
        done = self.known.get(id(obj))
        if done is not None:
            return done
        new = self._copy(obj, kind)
        self.known[id(obj)] = new
        return new

    def _copy(self, obj: Any, kind: type) -> Any:
        if kind is Site:
            return Site(obj.line + self.delta, obj.column, obj.text)
        if kind is list:
            return [self(x) for x in obj]
        if kind is dict:
            return {self(k): self(v) for k, v in obj.items()}
        if kind is tuple or issubclass(kind, frozenset):
            items = [self(x) for x in obj]
            if all(a is b for a, b in zip(items, obj, strict=True)):
                return obj
            return kind(items)
        if dataclasses.is_dataclass(kind):
            return self._dataclass(obj, kind)
        raise TypeError(f"cannot move {kind.__name__} to other lines")

    def _dataclass(self, obj: Any, kind: type) -> Any:
        names = _field_names(kind)
        lines = _LINE_FIELDS.get(kind, ())
        values = {}
        same = True
        for name in names:
            old = getattr(obj, name)
            new = old + self.delta if name in lines else self(old)
            if new is not old:
                same = False
            values[name] = new
        if same and not _mutable(kind):
            return obj
        out: Any = object.__new__(kind)
        for name, value in values.items():
            object.__setattr__(out, name, value)
        return out


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _mutable(kind: type) -> bool:
    """A class whose objects are changed after they are made: never shared
    between two copies."""
    params: Any = getattr(kind, "__dataclass_params__", None)
    return params is None or not params.frozen


def identity_for(pairs: list[tuple[object, object]]) -> dict[int, Any]:
    """`known` for `shifted`: each old object (by id) stands for its new one."""
    return {id(old): new for old, new in pairs}
