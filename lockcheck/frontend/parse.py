"""Parse raw kernel C with tree-sitter and find the function definitions.

Kernel sources are not preprocessed, so attribute-like macros (`__init`,
`__releases(x)`, `__must_check`, ...) confuse the grammar. They are blanked
out byte-for-byte before parsing (offsets and lines stay exact) and the lock
annotations among them are kept, because they are claims about lock state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter_c
from tree_sitter import Language, Node, Parser

# Attribute-like macros that take no arguments and only decorate declarations.
_BARE = [
    "__init",
    "__exit",
    "__meminit",
    "__meminitdata",
    "__initdata",
    "__initconst",
    "__ref",
    "__refdata",
    "__always_inline",
    "noinline",
    "__noinline",
    "__must_check",
    "__cold",
    "__hot",
    "__weak",
    "notrace",
    "__sched",
    "__read_mostly",
    "__ro_after_init",
    "__maybe_unused",
    "__always_unused",
    "__noreturn",
    "asmlinkage",
    "__visible",
    "__latent_entropy",
    "__user",
    "__rcu",
    "__iomem",
    "__percpu",
    "__force",
    "__kprobes",
    "__noinstr",
    "noinstr",
    "__flatten",
    "__pure",
    "__malloc",
    "__init_or_module",
    "__cpuinit",
    "__devinit",
    "__nocfi",
    "__used",
    "__packed",
    "__lockfunc",
    "__net_init",
    "__net_exit",
    "__bitwise",
    "__private",
    "__safe",
    "__attribute_const__",
    "__always_used",
    "__init_memblock",
    "__initdata_memblock",
    "__meminitconst",
    "__exitdata",
    "__head",
    "__weak_alias",
]
# Attribute-like macros with an argument list.
_WITH_ARGS = [
    "__acquires",
    "__releases",
    "__must_hold",
    "__cond_acquires",
    "__cond_releases",
    "__attribute__",
    "__printf",
    "__scanf",
    "__section",
    "__aligned",
    "__alloc_size",
    "__malloc_like",
    "__nonstring",
    "__diagnose_as",
    "__counted_by",
    "__cleanup",
    "__no_sanitize_address",
    "__assume_aligned",
    "__designated_init",
    "__randomize_layout",
    "__no_randomize_layout",
]
ANNOTATIONS = ("__acquires", "__releases", "__must_hold")

_MACRO_RE = re.compile(
    rb"\b(?:(?P<bare>" + b"|".join(re.escape(w.encode()) for w in _BARE) + rb")\b"
    rb"|(?P<call>" + b"|".join(re.escape(w.encode()) for w in _WITH_ARGS) + rb")\s*\()"
)
# Macros that expand to a loop head or a guarded scope: `name(args) { body }`.
# The kernel names iterators `*for_each*`, `*foreach*` and `*_walk*`
# (skb_queue_walk); any other call written without `;` before a statement
# is taken by its shape (see frontend/cfg.py).
ITERATOR_RE = re.compile(r"(for_each|foreach|_walk(?:_|$))", re.I)
# Calls that never return: the path ends there (`__noreturn` functions a file
# declares are added per file, see noreturn_names()).
# MACRO_ESCAPE stands for a `return`/`goto` inside a macro body (frontend/macros.py).
MACRO_ESCAPE = "__lockcheck_macro_escape"
NORETURN = frozenset(
    {
        "BUG",
        "panic",
        "do_exit",
        "make_task_dead",
        "kthread_exit",
        "__noreturn_fail",
        "unreachable",
        MACRO_ESCAPE,
    }
)
_NORETURN_ATTR = rb"(?:__noreturn\b|__attribute__\s*\(\(\s*(?:__)?noreturn(?:__)?\s*\)\))"
_NORETURN_DECL_RE = re.compile(
    _NORETURN_ATTR
    + rb"[^;{()]*?\b([A-Za-z_]\w*)\s*\(|\b([A-Za-z_]\w*)\s*\([^;{)]*\)\s*"
    + _NORETURN_ATTR
)
# `#define reiserfs_panic(s, ...) __reiserfs_panic(s, __func__, ...)`: a
# macro whose body is one call is that call
_ALIAS_MACRO_RE = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\([^)\n]*\)[ \t]*(?:\\[ \t]*\n[ \t]*)?"
    rb"\(?([A-Za-z_]\w*)[ \t]*\(",
    re.M,
)


def noreturn_names(source: bytes, known: frozenset[str] = NORETURN) -> frozenset[str]:
    """Functions the file declares or defines `__noreturn` (or with
    `__attribute__((noreturn))`), and macros that are a call to one, with
    the `known` ones (the kernel's own, those of the headers it includes)."""
    found = set(known)
    # every match spells `noreturn`: a header without it is not searched (the search is slow)
    for m in _NORETURN_DECL_RE.finditer(source) if b"noreturn" in source else ():
        name = (m.group(1) or m.group(2) or b"").decode("ascii", "replace")
        if name:
            found.add(name)
    if b"define" in source:
        for m in _ALIAS_MACRO_RE.finditer(source):
            if m.group(2).decode("ascii", "replace") in found:
                found.add(m.group(1).decode("ascii", "replace"))
    return frozenset(found)
SCOPED_GUARDS = frozenset({"scoped_guard", "scoped_cond_guard"})

_COMMENT_OR_STRING_RE = re.compile(rb'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', re.S)


@dataclass(frozen=True, slots=True)
class Annotation:
    """A sparse lock annotation found in the source: `__releases(&mm->lock)`."""

    kind: str  # "__acquires" | "__releases" | "__must_hold"
    arg: str
    offset: int
    line: int


@dataclass(slots=True)
class ParsedFile:
    path: str
    source: bytes  # the original bytes
    masked: bytes  # what the grammar saw
    root: Node
    annotations: list[Annotation] = field(default_factory=list)


@lru_cache(maxsize=1)
def parser() -> Parser:
    return Parser(Language(tree_sitter_c.language()))


def _close_paren(src: bytes, start: int) -> int:
    """Index just past the parenthesis matching the one at `start`."""
    depth = 0
    for i in range(start, len(src)):
        c = src[i]
        if c == 0x28:  # (
            depth += 1
        elif c == 0x29:  # )
            depth -= 1
            if depth == 0:
                return i + 1
    return len(src)


def mask_macros(src: bytes) -> tuple[bytes, list[Annotation]]:
    """Blank out attribute macros outside comments and strings."""
    skip = [(m.start(), m.end()) for m in _COMMENT_OR_STRING_RE.finditer(src)]
    out = bytearray(src)
    notes: list[Annotation] = []
    si = 0
    pos = 0
    while True:
        m = _MACRO_RE.search(src, pos)
        if m is None:
            break
        while si < len(skip) and skip[si][1] <= m.start():
            si += 1
        if si < len(skip) and skip[si][0] <= m.start() < skip[si][1]:
            pos = skip[si][1]
            continue
        if m.group("bare"):
            end = m.end()
        else:
            end = _close_paren(src, m.end() - 1)
            name = m.group("call").decode()
            if name in ANNOTATIONS:
                arg = src[m.end() : end - 1].decode("utf-8", "replace").strip()
                line = src.count(b"\n", 0, m.start()) + 1
                notes.append(Annotation(name, arg, m.start(), line))
        for i in range(m.start(), end):
            if out[i] != 0x0A:
                out[i] = 0x20
        pos = end
    return bytes(out), notes


# `struct foo` as a macro argument (`hlist_entry(p, struct foo, node)`,
# `offsetof(struct foo, f)`): the grammar then reads the whole call as a
# type and the statement loses its calls. Not a cast: a cast's type is
# followed by `)` after `(`, not after `,`.
_TYPE_ARG_RE = re.compile(
    rb"(?<=[(,])\s*(struct|union|enum)\s+\w+(?=\s*,)|(?<=,)\s*(struct|union|enum)\s+\w+(?=\s*\))"
)


def mask_type_args(src: bytes) -> bytes:
    """Blank the `struct` of a type passed to a macro, keeping its name."""
    if b"struct" not in src and b"union" not in src and b"enum" not in src:
        return src
    skip = [(m.start(), m.end()) for m in _COMMENT_OR_STRING_RE.finditer(src)]
    out = bytearray(src)
    si = 0
    for m in _TYPE_ARG_RE.finditer(src):
        group = 1 if m.start(1) >= 0 else 2
        start, end = m.start(group), m.end(group)
        while si < len(skip) and skip[si][1] <= start:
            si += 1
        if si < len(skip) and skip[si][0] <= start < skip[si][1]:
            continue
        out[start:end] = b" " * (end - start)
    return bytes(out)


# A directive continued over several lines (a backslash before the newline).
_CONTINUED_DIRECTIVE_RE = re.compile(rb"^[ \t]*#(?:[^\n]*\\\n)+[^\n]*", re.M)
_LINE_COMMENT_RE = re.compile(rb"/\*[^\n]*?\*/")


def mask_directive_comments(src: bytes) -> bytes:
    """Blank the one-line comments inside a continued directive.

    `pf(A)  /* note */` before the backslash of a line in an X-macro list
    ends the grammar's reading of the `#define` at the comment; the rest of
    the list then reads as code and can glue everything after it into one
    bogus function. A comment that spans lines is kept (blanking it would
    end the directive)."""
    if b"\\\n" not in src or b"/*" not in src:
        return src
    out: bytearray | None = None
    for d in _CONTINUED_DIRECTIVE_RE.finditer(src):
        for m in _LINE_COMMENT_RE.finditer(src, d.start(), d.end()):
            if out is None:
                out = bytearray(src)
            out[m.start() : m.end()] = b" " * (m.end() - m.start())
    return bytes(out) if out is not None else src


def parse_source(path: str, source: bytes) -> ParsedFile:
    masked, notes = mask_macros(source)
    masked = mask_type_args(masked)
    masked = mask_directive_comments(masked)
    tree = parser().parse(masked)
    return ParsedFile(path, source, masked, tree.root_node, notes)


def function_name(declarator: Node | None) -> str | None:
    """The identifier a (possibly pointer-returning) function declarator names."""
    node = declarator
    while node is not None:
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            while inner is not None and inner.type in (
                "parenthesized_declarator",
                "pointer_declarator",
                "attributed_declarator",
            ):
                inner = inner.child_by_field_name("declarator") or (
                    inner.named_children[0] if inner.named_children else None
                )
            if inner is not None and inner.type == "identifier":
                return text(inner)
            return None
        node = node.child_by_field_name("declarator")
    return None


def function_params(declarator: Node | None) -> tuple[str, ...]:
    node = declarator
    while node is not None and node.type != "function_declarator":
        node = node.child_by_field_name("declarator")
    if node is None:
        return ()
    plist = node.child_by_field_name("parameters")
    names: list[str] = []
    for p in plist.named_children if plist is not None else []:
        if p.type != "parameter_declaration":
            continue
        d = p.child_by_field_name("declarator")
        while d is not None and d.type != "identifier":
            d = d.child_by_field_name("declarator")
        if d is not None:
            names.append(text(d))
    return tuple(names)


def _named_declarators(node: Node) -> list[Node]:
    """The function declarators with a plain name below `node`, in order."""
    found: list[Node] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.type == "function_declarator" and function_name(cur) is not None:
            found.append(cur)
            continue
        stack.extend(reversed(cur.children))
    return found


def definition_declarator(fn: Node) -> Node | None:
    """The declarator that really heads a definition.

    After a construct it cannot read (`for_each_cpu(c)` then `m(c).x = y;`
    with no braces) the grammar may glue that statement's text onto the next
    definition: `m(c)` becomes the declarator and the real head
    (`static int f(long *t)`) lands in an ERROR node before the body. The
    last named declarator in such an ERROR is the head the body belongs to;
    otherwise the grammar's own declarator is.
    """
    body = fn.child_by_field_name("body")
    decl = fn.child_by_field_name("declarator")
    if body is None or decl is None:
        return decl
    last = body.prev_sibling
    while last is not None and last.type == "comment":
        last = last.prev_sibling
    # the ERROR right before the body, after the grammar's declarator, ending
    # in a named declarator (not one inside an `if (f(x) != y)` it misread)
    if last is not None and last.type == "ERROR" and last.start_byte >= decl.end_byte:
        heads = _named_declarators(last)
        if heads and heads[-1].end_byte == last.end_byte:
            return heads[-1]
    return decl


def definition_start(fn: Node) -> Node:
    """The first node of a definition's real head (see definition_declarator):
    its specifiers (`static int`) when the head was recovered from an ERROR."""
    decl = definition_declarator(fn)
    if decl is None or decl.parent is None or decl.parent == fn:
        return fn
    first = decl
    sib = decl.prev_sibling
    while sib is not None and sib.type in _HEAD_PARTS:
        first = sib
        sib = sib.prev_sibling
    return first


_HEAD_PARTS = frozenset(
    {
        "storage_class_specifier",
        "type_qualifier",
        "primitive_type",
        "sized_type_specifier",
        "type_identifier",
        "struct_specifier",
        "union_specifier",
        "enum_specifier",
        "macro_type_specifier",
        "attribute_specifier",
        "ms_declspec_modifier",
        "comment",
    }
)


def is_swallowed_definition(node: Node) -> bool:
    """A real definition inside another one, written at the left margin.

    Kernel C has no nested functions: such a node is a function that error
    recovery (an X-macro list, an `#ifdef` inside a call's arguments, a
    patch hunk cut before a closing brace) put inside the one before it.
    Loop macros read as definitions (`for_each_cpu(cpu) {`) are indented
    and have no plain name.
    """
    return (
        node.type == "function_definition"
        and node.child_by_field_name("body") is not None
        and definition_start(node).start_point[1] == 0
        and function_name(definition_declarator(node)) is not None
    )


def _holds_definitions(fn: Node) -> bool:
    """Does this definition's body contain swallowed ones (see above)?"""
    body = fn.child_by_field_name("body")
    if body is None or not fn.has_error:
        return False
    stack = list(body.children)
    while stack:
        cur = stack.pop()
        if is_swallowed_definition(cur):
            return True
        stack.extend(cur.children)
    return False


def _clean_head(fn: Node) -> bool:
    """A definition whose head the grammar read without an error."""
    body = fn.child_by_field_name("body")
    return (
        body is not None
        and definition_start(fn).start_point[1] == 0
        and not any(c.type == "ERROR" and c.end_byte <= body.start_byte for c in fn.children)
    )


# file-scope constructs that hold no definition unless error recovery put
# one there (a walk makes a Python object of every node below them)
_HOLDS_NO_DEFINITION = frozenset(
    {
        "comment",
        "declaration",
        "enum_specifier",
        "expression_statement",
        "preproc_call",
        "preproc_def",
        "preproc_function_def",
        "preproc_include",
        "string_literal",
        "struct_specifier",
        "type_definition",
        "union_specifier",
    }
)


def iter_functions(pf: ParsedFile) -> Iterator[tuple[str, Node]]:
    """Every function definition outside other functions, in source order.

    Definitions inside ERROR nodes are found too: one bad construct must not
    hide the functions after it. The real definitions error recovery put
    inside another one are taken (is_swallowed_definition), and the outer
    one only when its own head is a real one; a definition whose head was
    recovered from an ERROR is named by that head (definition_declarator).
    """
    if b"{" not in pf.masked:  # a header of macros and prototypes only
        return iter(())
    stack = [pf.root]
    found: list[tuple[str, Node]] = []
    while stack:
        node = stack.pop()
        if node.type in _HOLDS_NO_DEFINITION and not node.has_error:
            continue  # a header's prototypes and tables: nothing to find below
        if node.type == "function_definition":
            name = function_name(definition_declarator(node))
            body = node.child_by_field_name("body")
            if name is not None and body is not None:
                if not _holds_definitions(node):
                    found.append((name, node))
                    continue
                if _clean_head(node):
                    # a real function that swallowed the ones after it: its
                    # flow ends at the first of them (frontend/cfg.py)
                    found.append((name, node))
        stack.extend(reversed(node.children))
    found.sort(key=lambda nf: nf[1].start_byte)
    return iter(found)


def designated_initializers(root: Node) -> list[tuple[int, tuple[tuple[str, str], ...]]]:
    """The `.member = name` pairs of every brace initializer outside function
    bodies, one list per initializer (`{ .prepare = f, .unprepare = g }`),
    with its line: the callbacks one object registers together. A nested
    initializer (an array of such objects) is a list of its own."""
    out: list[tuple[int, tuple[tuple[str, str], ...]]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in ("function_definition", "compound_statement"):
            continue  # bodies: their compound literals are not registrations
        if node.type == "initializer_list":
            pairs: list[tuple[str, str]] = []
            for item in node.named_children:
                if item.type != "initializer_pair":
                    continue
                value = item.child_by_field_name("value")
                designators = item.children_by_field_name("designator")
                if (
                    value is not None
                    and value.type == "identifier"
                    and len(designators) == 1
                    and designators[0].type == "field_designator"
                ):
                    member = designators[0].named_children
                    if member:
                        pairs.append((text(member[0]), text(value)))
            if pairs:
                out.append((node.start_point[0] + 1, tuple(pairs)))
        stack.extend(reversed(node.children))
    out.sort()
    return out


def text(node: Node) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if raw is not None else ""


def is_macro_head(call: Node) -> bool:
    """A call to an iterator or scoped-guard macro (written without `;`)."""
    if call.type != "call_expression":
        return False
    fn = call.child_by_field_name("function")
    if fn is None or fn.type != "identifier":
        return False
    name = text(fn)
    return bool(ITERATOR_RE.search(name)) or name in SCOPED_GUARDS


def macro_head(node: Node) -> tuple[str, list[Node]] | None:
    """The name and arguments of a loop or guard macro's head, or None.

    A head is a call written without `;` before its statement, or
    `name(x) { ... }` with one plain argument, which the grammar reads as a
    nested K&R-style function definition (`for_each_possible_cpu(cpu) {`,
    `scoped_guard(rcu) {`): kernel C has no nested functions.
    """
    if node.type == "call_expression":
        fn = node.child_by_field_name("function")
        if fn is None or fn.type != "identifier":
            return None
        args = node.child_by_field_name("arguments")
        named = args.named_children if args is not None else []
        return text(fn), [a for a in named if a.type != "comment"]
    if node.type != "function_definition":
        return None
    typ = node.child_by_field_name("type")
    decl = node.child_by_field_name("declarator")
    body = node.child_by_field_name("body")
    if (
        typ is None
        or typ.type != "type_identifier"
        or decl is None
        or decl.type != "parenthesized_declarator"
        or body is None
        or node.named_child_count != 3
    ):
        return None
    inner = [c for c in decl.named_children if c.type != "comment"]
    if len(inner) != 1 or inner[0].type != "identifier":
        return None
    return text(typ), inner


def count_errors(node: Node) -> int:
    """ERROR and MISSING nodes below `node` (what the grammar could not place).

    The `;` missing after a loop macro's head is not counted: the CFG builder
    re-joins such heads with their block, so nothing is lost there.
    """
    if not node.has_error:
        return 0
    n = 0
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.is_missing:
            parent = cur.parent
            head = (
                parent.named_children[0] if parent is not None and parent.named_children else None
            )
            if not (
                parent is not None
                and parent.type == "expression_statement"
                and head is not None
                and is_macro_head(head)
            ):
                n += 1
        elif cur.type == "ERROR":
            n += 1
        if cur.has_error:
            stack.extend(cur.children)
    return n
