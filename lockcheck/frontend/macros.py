"""Function-like macros a file defines, read as the small functions they stand for.

Kernel code wraps its lock helpers in macros of its own
(`#define obj_unlock(o) obj_put_locked(&(o)->base)`,
`#define proc_lock(p) _proc_lock(p, __LINE__)`): the grammar sees only a
call of a name that is defined nowhere, so a helper releasing through the
macro would summarise as doing nothing. Four macro shapes are written out
as C functions of the same name, which the model lowers and the analysis
summarises like any helper of the file:

- one call, `NAME(a, b) CALL(...)`: `{ return CALL(...); }`;
- a statement block, `do { ... } while (0)`: `{ do { ... } while (0); }`;
- a statement expression, `({ stmts; expr; })`: `{ stmts; return expr; }`;
- an expression that only reads its arguments (`(OWNER(c)->s_flags &
  RDONLY)`: no assignment, no call but of ALL_CAPS macros): `{ return expr; }`,
  so that a test of it, made twice, is known to give the same answer (one
  defined again under an `#ifdef` in another shape is left alone, and so is
  a constant stub, `(0)`, for a configuration without the feature).

A macro's free names are the caller's own variables (`ctx` in a body that
never declares it), which is how a summary keeps any name that is not a
parameter, so they mean the same thing here. Macros that paste or
stringify (`#`, `##`), or use a parameter as a member name or a type, are
not functions of their arguments and are left alone.

A `return` or `goto` in a macro's body leaves the caller, not the macro
(`#define TAKE(o) do { if (!try_take(o)) return -EIO; } while (0)`). Written
out as a function, that return would end the helper instead, and a helper
that takes its lock on one path and "returns" on the other summarises as
taking nothing for sure, so the caller's matching release reads as a
release of a lock it never took. Such a statement becomes a call that
ends the path (MACRO_ESCAPE): the helper's summary is what holds when the
caller goes on after the macro, which is the only way a caller does.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from lockcheck.frontend.parse import MACRO_ESCAPE

_DEFINE_RE = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\(([^()\n]*)\)((?:[^\n]*\\\r?\n)*[^\n]*)", re.M
)
_BLOCK_COMMENT_RE = re.compile(r"/\*.*?\*/", re.S)
# a C identifier (also engine.py's and constants.py's)
IDENT_RE = re.compile(r"[A-Za-z_]\w*")
_NOT_EXPR_RE = re.compile(
    r"(?:if|for|while|switch|return|goto|break|continue|do|else|case|default)\b"
    r"|[A-Za-z_]\w*(?:\s+|\s*\*+\s*)[A-Za-z_]\w*\s*(?:=|\[|$)"  # a declaration
)
# a statement leaving the caller: `return [expr];`, `goto label;`
_ESCAPE_RE = re.compile(r"\b(?:return\b[^;{}]*|goto\s+[A-Za-z_]\w*\s*);")
_KEYWORDS = frozenset({"if", "for", "while", "switch", "return", "sizeof", "do", "void"})
# a file defines hundreds at most (register accessors); more is generated code
MAX_MACROS = 400


@dataclass(frozen=True, slots=True)
class Macro:
    """A function-like macro whose body reads as a function body."""

    name: str
    params: tuple[str, ...]  # `...` last for a variadic one
    body: str  # C statements, as written between a function's braces
    # parameters the body runs as statements (`unlock_cmd;`): the caller's
    # code, run inside the macro; such a macro is not a function
    statements: tuple[int, ...] = ()


def _close(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket matching the one at `start`, or -1."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _strip_parens(body: str) -> str:
    """`(x)` -> `x` while the outer parentheses enclose all of it."""
    while body.startswith("(") and _close(body, 0, "(", ")") == len(body) - 1:
        inner = body[1:-1].strip()
        if inner.startswith("{"):
            break  # a statement expression keeps its parentheses
        body = inner
    return body


def _statement_expression(inner: str) -> str | None:
    """`stmts; expr;` -> `stmts; return expr;` (None when the value is not an
    expression statement)."""
    inner = inner.strip()
    if not inner.endswith(";"):
        return None
    depth = 0
    cut = 0  # where the last statement starts
    for i, c in enumerate(inner[:-1]):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
            if c == "}" and depth == 0:
                cut = i + 1
        elif c == ";" and depth == 0:
            cut = i + 1
    last = inner[cut:-1].strip()
    if not last or _NOT_EXPR_RE.match(last) or "{" in last:
        return None
    return f"{_ESCAPE_RE.sub(f'{MACRO_ESCAPE}();', inner[:cut])}\n\treturn {last};"


def _body(text: str) -> str | None:
    """The function body a macro's replacement text stands for, if one of the shapes."""
    body = _strip_parens(text.strip().rstrip(";").strip())
    if body.startswith("({") and body.endswith("})") and _close(body, 1, "{", "}") == len(body) - 2:
        return _statement_expression(body[2:-2])
    m = re.match(r"do\s*\{", body)
    if m is not None:
        end = _close(body, m.end() - 1, "{", "}")
        if end > 0 and re.fullmatch(r"\s*while\s*\(\s*0\s*\)", body[end + 1 :]):
            return _ESCAPE_RE.sub(f"{MACRO_ESCAPE}();", body) + ";"
        return None
    m = IDENT_RE.match(body)
    if m is not None and m.group(0) not in _KEYWORDS:
        rest = body[m.end() :].lstrip()
        start = len(body) - len(rest)
        if rest.startswith("(") and _close(body, start, "(", ")") == len(body) - 1:
            return f"return {body};"
    return f"return {body};" if _reading_expression(body) else None


# what an expression must not contain to only read: an assignment (`=`,
# `+=`, `<<=`, but not `==`, `<=`), `++`/`--`, a statement
_WRITES_RE = re.compile(r"(?:<<|>>|[-+*/%&|^])?=(?!=)|\+\+|--|[;{}]")
# a name written as a call, `name(` or `name (`
_CALL = r"([A-Za-z_]\w*)\s*\("
_CALL_RE = re.compile(_CALL)
# the same as a whole word (so not `x1f` in `0x1f(`), in a file's bytes and
# in a macro's text: the calls engine.py follows from a file into its macros
CALLED_RE = re.compile(rb"\b" + _CALL.encode())
CALLED_TEXT_RE = re.compile(r"\b" + _CALL)


def _reading_expression(body: str) -> bool:
    """Does a macro's replacement text read as an expression without side
    effects: calls only of ALL_CAPS macros (`OWNER(c)`) and `sizeof`?"""
    if not body or "#" in body or _NOT_EXPR_RE.match(body):
        return False
    bare = re.sub(r"[=!<>]=", " ", re.sub(r"(?:<<|>>)=", "=", body))
    if _WRITES_RE.search(bare):
        return False
    return all(
        c.group(1) == "sizeof" or re.fullmatch(r"[A-Z_][A-Z0-9_]*", c.group(1))
        for c in _CALL_RE.finditer(body)
    )


def _params(raw: str, body: str) -> tuple[tuple[str, ...], str] | None:
    """The parameters and the body (`args...` spelt `__VA_ARGS__`), or None
    when a parameter is not used as a value."""
    params = [p.strip() for p in raw.split(",")] if raw.strip() else []
    out: list[str] = []
    for i, p in enumerate(params):
        if p.endswith("...") and i == len(params) - 1:
            name = p[:-3].strip()
            if name:  # `args...`: the GNU spelling of __VA_ARGS__
                if not IDENT_RE.fullmatch(name):
                    return None
                body = re.sub(rf"\b{name}\b", "__VA_ARGS__", body)
            out.append("...")
            continue
        if not IDENT_RE.fullmatch(p) or p in _KEYWORDS:
            return None
        member = rf"(?:->|(?<![\w\s])\s*\.|[\w)\]]\s*\.)\s*{p}\b"
        if re.search(member, body) or re.search(rf"\b(?:struct|union|enum)\s+{p}\b", body):
            return None  # a field name or a type: not a value
        out.append(p)
    return tuple(out), body


def _unparen(body: str, params: tuple[str, ...]) -> str:
    """`(t)->base` -> `t->base`: the parentheses a macro puts around its
    parameters guard a textual expansion; around a variable they say
    nothing, and a lock spelt `(t)->lock` would not be named through `t`.
    Not after a name or a `)` (a call's or a cast's)."""
    if not params:
        return body
    alts = "|".join(re.escape(p) for p in params if p != "...")
    if not alts:
        return body
    out: list[str] = []
    pos = 0
    for m in re.finditer(rf"\(\s*({alts})\s*\)", body):
        before = body[: m.start()].rstrip()
        if (
            before
            and (before[-1].isalnum() or before[-1] in "_)]")
            and not re.search(r"\breturn$", before)
        ):
            continue
        out.append(body[pos : m.start()])
        out.append(m.group(1))
        pos = m.end()
    out.append(body[pos:])
    return "".join(out)


def function_macros(source: bytes, skip: Collection[str] = ()) -> list[Macro]:
    """The file's function-like macros of one of the three shapes, in source
    order (an `#ifdef` may define one twice), except the names in `skip`."""
    if b"define" not in source:
        return []
    out: list[Macro] = []
    # names defined (under an `#ifdef`) in a shape not written out: an
    # expression definition of theirs does not say what the macro does
    unknown: set[str] = set()
    expressions: set[str] = set()
    for m in _DEFINE_RE.finditer(source):
        name = m.group(1).decode("ascii", "replace")
        if name in skip:
            continue
        text = m.group(3).decode("utf-8", "replace")
        text = re.sub(r"\\\r?\n", "\n", text)
        text = _BLOCK_COMMENT_RE.sub(" ", text)
        if "#" in text or "//" in text:
            unknown.add(name)
            continue
        body = _body(text)
        if body is None:
            unknown.add(name)
            continue
        reading = _reading_expression(body[len("return ") : -1])
        found = _params(m.group(2).decode("utf-8", "replace"), body)
        if found is None:
            continue
        params, body = found
        if reading:
            if not any(re.search(rf"\b{re.escape(p)}\b", body) for p in params if p != "..."):
                continue  # `(0)`: a stub for a configuration that lacks the feature
            expressions.add(name)
        body = _unparen(body, params)
        statements = tuple(
            i
            for i, p in enumerate(params)
            if p != "..." and re.search(rf"(?:^|[;{{}})]|\belse)\s*{p}\s*;", body)
        )
        out.append(Macro(name, params, body, statements))
        if len(out) >= MAX_MACROS:
            break
    if expressions & unknown:
        out = [mac for mac in out if mac.name not in (expressions & unknown)]
    return out


def helper_source(macros: list[Macro]) -> bytes:
    """The macros as C function definitions, one after another (not those
    that run an argument as a statement)."""
    parts: list[str] = []
    for mac in macros:
        if mac.statements:
            continue
        params = ", ".join("..." if p == "..." else f"long {p}" for p in mac.params) or "void"
        parts.append(f"static long {mac.name}({params})\n{{\n\t{mac.body}\n}}\n")
    return "\n".join(parts).encode()


def _top_level(body: str, sep: str) -> list[int]:
    """Where `sep` occurs outside any brackets in `body`."""
    out: list[int] = []
    depth = 0
    for i, c in enumerate(body):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and body.startswith(sep, i):
            out.append(i)
    return out


def _passed(body: str, params: list[str]) -> int | None:
    """The parameter whose value the macro's value is on every way, if one:
    `(x)`, or `(x) ?: (retry(), (x))` (tried, and tried again after some
    work, as `try_again_loading(x, name)` wrappers do)."""
    body = _strip_parens(body)
    if not IDENT_RE.fullmatch(body or "?") and "?" not in body:
        return None
    if body in params:
        return params.index(body)
    elvis = _top_level(body, "?")
    if len(elvis) != 1 or not body[elvis[0] + 1 :].lstrip().startswith(":"):
        return None
    first = _strip_parens(body[: elvis[0]].strip())
    other = body[elvis[0] + 1 :].lstrip()[1:].strip()
    other = _strip_parens(other)
    commas = _top_level(other, ",")
    last = _strip_parens(other[commas[-1] + 1 :].strip()) if commas else other
    if first in params and last == first and IDENT_RE.fullmatch(first):
        return params.index(first)
    return None


def value_macros(source: bytes) -> dict[str, int]:
    """Function-like macros whose value is one of their arguments, by name:
    the argument's position. A call written inside one (`p =
    WRAP(lookup_locked(..), ..)`) hands its result on unchanged, so a lock
    the inner call holds only on success is held exactly when the macro's
    value says so. A name defined twice (`#ifdef`) counts only if every
    definition passes the same argument."""
    if b"define" not in source:
        return {}
    out: dict[str, int] = {}
    bad: set[str] = set()
    for m in _DEFINE_RE.finditer(source):
        name = m.group(1).decode("ascii", "replace")
        text = re.sub(r"\\\r?\n", "\n", m.group(3).decode("utf-8", "replace"))
        text = _BLOCK_COMMENT_RE.sub(" ", text).strip()
        params = [p.strip() for p in m.group(2).decode("utf-8", "replace").split(",")]
        at = _passed(text, params) if "#" not in text and "//" not in text else None
        if at is None or out.get(name, at) != at:
            bad.add(name)
        else:
            out[name] = at
    return {n: i for n, i in sorted(out.items()) if n not in bad}
