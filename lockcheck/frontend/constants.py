"""Named integer constants a file (and its own headers) define.

A lock is often taken in one mode or the other by a comparison with an
enumerator (`if (code >= EV_OOB) write_lock(..) else read_lock(..)`), and a
`switch` on the same value then enters only the cases that comparison
allows. Deciding that needs the constants' values: an enumerator's (given,
or one more than the one before) and a `#define NAME 0x5`'s. Read from the
text, without preprocessing: a name defined twice with different values
(under an `#ifdef`) has no value here.
"""

from __future__ import annotations

import re

from lockcheck.frontend.macros import IDENT_RE

_COMMENT_RE = re.compile(rb"/\*.*?\*/|//[^\n]*", re.S)
_ENUM_RE = re.compile(rb"\benum\b\s*\w*\s*\{([^{}]*)\}")
_DEFINE_RE = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+\(?([-+]?\w+)\)?[ \t]*$", re.M
)
_INT_RE = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)[uUlL]*")


def _int(text: str, known: dict[str, int | None]) -> int | None:
    """A literal, or a name already given a value (`B = A`)."""
    text = text.strip()
    if _INT_RE.fullmatch(text):
        digits = text.rstrip("uUlL")
        return int(digits, 0) if not re.fullmatch(r"[-+]?0[0-7]+", digits) else int(digits, 8)
    if IDENT_RE.fullmatch(text):
        return known.get(text)
    return None


def named_constants(source: bytes) -> dict[str, int]:
    """NAME -> value for the enumerators and integer `#define`s of `source`."""
    if b"enum" not in source and b"define" not in source:
        return {}
    text = _COMMENT_RE.sub(b" ", source)
    found: dict[str, int | None] = {}

    def put(name: str, value: int | None) -> None:
        if name in found and found[name] != value:
            found[name] = None  # two values: which one holds is not known here
        else:
            found[name] = value

    for m in _DEFINE_RE.finditer(text):
        name = m.group(1).decode("ascii", "replace")
        put(name, _int(m.group(2).decode("ascii", "replace"), found))
    for m in _ENUM_RE.finditer(text):
        body = m.group(1).decode("utf-8", "replace")
        if "#" in body:
            continue  # entries under an `#ifdef`: the numbering after them is unknown
        nxt: int | None = 0
        for entry in body.split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, _, value = entry.partition("=")
            name = name.strip()
            if not IDENT_RE.fullmatch(name):
                break
            cur = _int(value, found) if value else nxt
            put(name, cur)
            nxt = cur + 1 if cur is not None else None
    return {k: v for k, v in found.items() if v is not None}
