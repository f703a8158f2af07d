"""Edit classes: where each one applies in a real function, and the edit it makes.

Every class finds its sites in one function's tree-sitter tree (the raw
kernel C as lockcheck's frontend parses it, attribute macros blanked) and
yields `Edit`s: byte spans of the file to replace, one bug (or one benign
change) per edit. Which calls take and drop locks is read from the pack's
vocabulary (`rules/mm.toml`), so a lock is matched to its release by the
same argument templates the analysis uses: `spin_lock(&mm->page_table_lock)`
and `spin_unlock(&mm->page_table_lock)` share the key `mm->page_table_lock`,
`ptl = pmd_lock(mm, pmd)` and `pte_unmap_unlock(pte, ptl)` the key `ptl`.

Each class documents what it does and which rules should catch it
(`EditClass.expect`); benign classes must produce no finding at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from tree_sitter import Node

from lockcheck.frontend.parse import count_errors, function_params, iter_functions, parse_source
from lockcheck.packs import ApiEntry, Vocabulary

ACQUIRING = frozenset({"acquire", "returns-lock", "out-lock"})
JUMPS = frozenset({"return_statement", "goto_statement"})
# page-table acts: writes of an entry or a table that need the covering locks
ACTS = frozenset(
    {
        "set_pte_at",
        "set_pte",
        "set_pmd_at",
        "set_pud_at",
        "pte_clear",
        "pmd_clear",
        "pmd_populate",
        "pmd_populate_kernel",
        "pud_populate",
        "pmdp_collapse_flush",
        "ptep_clear_flush",
        "pmdp_huge_clear_flush",
        "ptep_get_and_clear",
        "ptep_get_and_clear_full",
        "pmdp_huge_get_and_clear",
        "pmdp_invalidate",
        "ptep_set_wrprotect",
        "pmdp_set_wrprotect",
        "ptep_set_access_flags",
        "pmdp_set_access_flags",
        "ptep_modify_prot_commit",
    }
)
# a pairing release turned into a wrong one: name -> new call text from the arguments
SWAPS: dict[str, Callable[[tuple[str, ...]], str | None]] = {
    "pte_unmap_unlock": lambda a: f"spin_unlock({a[1]})" if len(a) == 2 else None,
    "spin_unlock_irqrestore": lambda a: f"spin_unlock({a[0]})" if len(a) == 2 else None,
    "spin_unlock_irq": lambda a: f"spin_unlock({a[0]})" if len(a) == 1 else None,
    "spin_unlock_bh": lambda a: f"spin_unlock({a[0]})" if len(a) == 1 else None,
    "mmap_read_unlock": lambda a: f"mmap_write_unlock({', '.join(a)})",
    "mmap_write_unlock": lambda a: f"mmap_read_unlock({', '.join(a)})",
    "i_mmap_unlock_read": lambda a: f"i_mmap_unlock_write({', '.join(a)})",
    "i_mmap_unlock_write": lambda a: f"i_mmap_unlock_read({', '.join(a)})",
    "anon_vma_unlock_read": lambda a: f"anon_vma_unlock_write({', '.join(a)})",
    "anon_vma_unlock_write": lambda a: f"anon_vma_unlock_read({', '.join(a)})",
    "up_read": lambda a: f"up_write({', '.join(a)})",
    "up_write": lambda a: f"up_read({', '.join(a)})",
    "read_unlock": lambda a: f"write_unlock({', '.join(a)})",
    "write_unlock": lambda a: f"read_unlock({', '.join(a)})",
}
REVALIDATION_RE = re.compile(rb"!\s*(?:pte|pmd|pud)_same\s*\(")
# the entry read again under the lock in a re-validation: `*pte`, `ptep_get(pte)`, `READ_ONCE()`
REREAD_RE = re.compile(rb"\*\s*\(?\s*[A-Za-z_]|\w+_get\w*\s*\(|READ_ONCE\s*\(")
RENAME_SUFFIX = "_mb"
COMMENT = b"/* mutation bench: a comment changes nothing */"


def node_text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def walk(node: Node) -> Iterator[Node]:
    """Every node below `node`, in source order."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(cur.children))


def _strip(arg: str) -> str:
    arg = "".join(arg.split())
    while arg.startswith("(") and arg.endswith(")"):
        arg = arg[1:-1]
    return arg[1:] if arg.startswith("&") else arg


def _fill(template: str, args: tuple[str, ...]) -> str | None:
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        i = int(m.group(1))
        if i >= len(args):
            missing = True
            return ""
        return _strip(args[i])

    out = re.sub(r"\{(\d+)\}", one, template)
    return None if missing or "{" in out else out


@dataclass(frozen=True, slots=True)
class LockCall:
    """A call the pack says takes or drops a lock, with the statement it makes up."""

    name: str
    entry: ApiEntry
    key: str | None  # the lock, spelled as a release of it would be
    call: Node
    stmt: Node | None  # the statement that is just this call (or an assignment of it)
    ret: str | None  # the variable its result is assigned to

    @property
    def acquires(self) -> bool:
        return self.entry.effect in ACQUIRING or self.entry.effect == "try"

    @property
    def releases(self) -> bool:
        return self.entry.effect == "release"


def _statement_of(call: Node) -> tuple[Node | None, str | None]:
    """The statement that consists of `call` (plain, assigned, or initialising)."""
    p = call.parent
    if p is None:
        return None, None
    if p.type == "expression_statement":
        return p, None
    if p.type == "assignment_expression" and p.parent is not None:
        right, left = p.child_by_field_name("right"), p.child_by_field_name("left")
        if p.parent.type == "expression_statement" and right is not None and right.id == call.id:
            return p.parent, node_text(left) if left is not None else None
    if p.type == "init_declarator" and p.parent is not None and p.parent.type == "declaration":
        d = p.child_by_field_name("declarator")
        while d is not None and d.type != "identifier":
            d = d.child_by_field_name("declarator")
        return p.parent, node_text(d) if d is not None else None
    return None, None


def _callee(call: Node) -> str | None:
    fn = call.child_by_field_name("function")
    return node_text(fn) if fn is not None and fn.type == "identifier" else None


def _args(call: Node) -> tuple[str, ...]:
    al = call.child_by_field_name("arguments")
    if al is None:
        return ()
    return tuple(node_text(a) for a in al.named_children if a.type != "comment")


def _key(entry: ApiEntry, args: tuple[str, ...], ret: str | None) -> str | None:
    if entry.effect == "returns-lock":
        return _strip(ret) if ret else None
    if entry.effect == "out-lock":
        return _strip(args[entry.out_arg]) if entry.out_arg < len(args) else None
    if entry.effect in ("acquire", "release", "try"):
        return _fill(entry.lock, args)
    return None


@dataclass
class Function:
    """One function definition of a file, with its lock calls in source order."""

    path: str
    name: str
    node: Node
    src: bytes
    calls: list[LockCall]

    @property
    def body(self) -> Node:
        body = self.node.child_by_field_name("body")
        assert body is not None
        return body

    @cached_property
    def nodes(self) -> list[Node]:
        """Every node of the body, in source order (walked once for all classes)."""
        return list(walk(self.body))

    def acquisitions(self, key: str | None) -> list[LockCall]:
        return [c for c in self.calls if c.acquires and c.key == key]

    def releases(self, key: str | None) -> list[LockCall]:
        return [c for c in self.calls if c.releases and c.key == key]

    def lock_stmt(self, stmt: Node) -> LockCall | None:
        return next((c for c in self.calls if c.stmt is not None and c.stmt.id == stmt.id), None)


def functions(path: str, src: bytes, vocab: Vocabulary) -> Iterator[Function]:
    pf = parse_source(path, src)
    for name, node in iter_functions(pf):
        calls: list[LockCall] = []
        for n in walk(node):
            if n.type != "call_expression":
                continue
            callee = _callee(n)
            entry = vocab.api.get(callee) if callee else None
            if callee is None or entry is None:
                continue
            stmt, ret = _statement_of(n)
            calls.append(LockCall(callee, entry, _key(entry, _args(n), ret), n, stmt, ret))
        yield Function(path, name, node, src, calls)


# -- byte-level editing ------------------------------------------------------------------------

Span = tuple[int, int, bytes]


@dataclass(frozen=True, slots=True)
class Edit:
    spans: tuple[Span, ...]  # non-overlapping (start, end, replacement) of the file's bytes
    line: int  # the edited statement's line in the original file
    what: str  # one line for humans
    kind: str = ""  # a variant within the class: sampling takes the variants in turn

    def apply(self, src: bytes) -> bytes:
        out = src
        for start, end, new in sorted(self.spans, key=lambda s: (s[0], s[1]), reverse=True):
            out = out[:start] + new + out[end:]
        return out


def _bol(src: bytes, pos: int) -> int:
    return src.rfind(b"\n", 0, pos) + 1


def _eol(src: bytes, pos: int) -> int:
    """Just past the newline ending the line that holds `pos - 1`."""
    nl = src.find(b"\n", pos)
    return len(src) if nl < 0 else nl + 1


def owns_lines(src: bytes, node: Node) -> bool:
    """Nothing but blanks before the node on its first line and after it on its last."""
    before = src[_bol(src, node.start_byte) : node.start_byte]
    after = src[node.end_byte : _eol(src, node.end_byte)]
    return not before.strip() and not after.strip()


def lines_of(src: bytes, node: Node) -> tuple[int, int]:
    return _bol(src, node.start_byte), _eol(src, node.end_byte)


def indent_of(src: bytes, node: Node) -> bytes:
    return src[_bol(src, node.start_byte) : node.start_byte]


def reindent(block: bytes, old: bytes, new: bytes) -> bytes:
    if old == new:
        return block
    out = []
    for ln in block.splitlines(keepends=True):
        out.append(new + ln[len(old) :] if ln.startswith(old) else ln)
    return b"".join(out)


def line_no(node: Node) -> int:
    return node.start_point[0] + 1


def delete_span(src: bytes, stmt: Node) -> Span:
    """Remove a statement: its lines when it owns them; `;` where C needs a statement."""
    parent = stmt.parent
    if parent is not None and parent.type == "compound_statement":
        if owns_lines(src, stmt):
            start, end = lines_of(src, stmt)
            return (start, end, b"")
        return (stmt.start_byte, stmt.end_byte, b"")
    return (stmt.start_byte, stmt.end_byte, b";")


def move_before(src: bytes, stmt: Node, target: Node, body: bytes | None = None) -> list[Span]:
    """Spans moving `stmt`'s lines (or `body`, lines of it) to just above `target`."""
    start, end = lines_of(src, stmt)
    block = src[start:end] if body is None else body
    moved = reindent(block, indent_of(src, stmt), indent_of(src, target))
    at = _bol(src, target.start_byte)
    return [(at, at, moved), (start, end, b"")]


def move_after(src: bytes, stmt: Node, target: Node) -> list[Span]:
    start, end = lines_of(src, stmt)
    moved = reindent(src[start:end], indent_of(src, stmt), indent_of(src, target))
    at = _eol(src, target.end_byte)
    return [(start, end, b""), (at, at, moved)]


def statements(block: Node) -> list[Node]:
    return [c for c in block.named_children if c.type != "comment"]


def next_stmt(stmt: Node) -> Node | None:
    sib = stmt.next_named_sibling
    while sib is not None and sib.type == "comment":
        sib = sib.next_named_sibling
    return sib


def in_block(src: bytes, stmt: Node | None) -> bool:
    """A statement of a `{}` block that owns its lines (so it can be moved or deleted)."""
    return (
        stmt is not None
        and stmt.parent is not None
        and stmt.parent.type == "compound_statement"
        and owns_lines(src, stmt)
    )


def is_arm(block: Node) -> bool:
    """A `{}` block that is the then- or else-arm of an `if`."""
    p = block.parent
    return (
        block.type == "compound_statement"
        and p is not None
        and (
            p.type == "else_clause"
            or (
                p.type == "if_statement"
                and (c := p.child_by_field_name("consequence")) is not None
                and c.id == block.id
            )
        )
    )


def mentions(text_: str, word: str | None) -> bool:
    return bool(word) and re.search(rf"(?<![\w.>]){re.escape(word or '')}(?!\w)", text_) is not None


def _short(node: Node) -> str:
    first = node_text(node).splitlines()[0].strip() if node_text(node) else ""
    return first if len(first) <= 60 else first[:57] + "..."


# -- the edit classes --------------------------------------------------------------------------


def _pure_exit(fn: Function, block: Node) -> bool:
    """`{ unlock(...); ... return ...; }`: only releases, then a return."""
    stmts = statements(block)
    if len(stmts) < 2 or stmts[-1].type != "return_statement":
        return False
    return all((c := fn.lock_stmt(s)) is not None and c.releases for s in stmts[:-1])


def _leakable(fn: Function, rel: LockCall) -> bool:
    """Other paths release the same lock, and this function takes it."""
    others = [c for c in fn.releases(rel.key) if c.call.id != rel.call.id]
    return rel.key is not None and bool(others) and bool(fn.acquisitions(rel.key))


def drop_unlock_error_path(fn: Function) -> Iterator[Edit]:
    """Delete a release in an `if` arm right before its `goto`/`return` (an error path)."""
    for rel in fn.calls:
        s = rel.stmt
        if not rel.releases or s is None or not in_block(fn.src, s) or not _leakable(fn, rel):
            continue
        assert s.parent is not None
        nxt = next_stmt(s)
        if not is_arm(s.parent) or nxt is None or nxt.type not in JUMPS:
            continue
        if _pure_exit(fn, s.parent):
            continue  # the exit-block-leak class
        yield Edit(
            (delete_span(fn.src, s),),
            line_no(s),
            f"deleted `{_short(s)}` before `{_short(nxt)}`",
        )


def exit_block_leak(fn: Function) -> Iterator[Edit]:
    """Turn `{ unlock(L); return X; }` (an early exit) into `{ return X; }`."""
    for block in fn.nodes:
        if block.type != "compound_statement" or not is_arm(block) or not _pure_exit(fn, block):
            continue
        stmts = statements(block)
        rel = fn.lock_stmt(stmts[-2])
        if rel is None or not in_block(fn.src, rel.stmt) or not _leakable(fn, rel):
            continue
        assert rel.stmt is not None
        yield Edit(
            (delete_span(fn.src, rel.stmt),),
            line_no(rel.stmt),
            f"deleted `{_short(rel.stmt)}` from an early exit: now `{{ {_short(stmts[-1])} }}`",
        )


_CONST_RETURN = re.compile(r"return\s+(-?[A-Z][A-Z0-9_]*|-?\d+|false|true|NULL)\s*;")


def _early_return(fn: Function) -> str | None:
    """A `return X;` the function already makes with a constant (or `return;` when void)."""
    ty = fn.node.child_by_field_name("type")
    decl = fn.node.child_by_field_name("declarator")
    void = ty is not None and node_text(ty) == "void"
    if void and decl is not None and decl.type == "function_declarator":  # not `void *f()`
        return "return;"
    for n in fn.nodes:
        if n.type == "return_statement" and _CONST_RETURN.fullmatch(node_text(n)):
            return " ".join(node_text(n).split())
    return None


def new_exit_leak(fn: Function) -> Iterator[Edit]:
    """Give an `if` taken while a lock is held a new `else { return X; }` that keeps the lock."""
    ret = _early_return(fn)
    if ret is None:
        return
    for acq in fn.calls:
        a = acq.stmt
        if acq.entry.effect not in ACQUIRING or acq.key is None or not in_block(fn.src, a):
            continue
        assert a is not None
        sib = next_stmt(a)
        while sib is not None:
            c = fn.lock_stmt(sib)
            if c is not None and c.releases and c.key == acq.key:
                break
            arm = sib.child_by_field_name("consequence") if sib.type == "if_statement" else None
            if (
                arm is not None
                and arm.type == "compound_statement"
                and sib.child_by_field_name("alternative") is None
                and owns_lines(fn.src, sib)
                and not any(x.releases and x.key == acq.key for x in _calls_in(fn, arm))
            ):
                ind = indent_of(fn.src, sib).decode()
                text = f" else {{\n{ind}\t{ret}\n{ind}}}"
                yield Edit(
                    ((arm.end_byte, arm.end_byte, text.encode()),),
                    line_no(sib),
                    f"added `else {{ {ret} }}` to `{_short(sib)}` under `{_short(a)}`",
                )
                break  # one site per acquisition: the first test under it
            sib = next_stmt(sib)


def _calls_in(fn: Function, node: Node) -> list[LockCall]:
    return [c for c in fn.calls if node.start_byte <= c.call.start_byte < node.end_byte]


def unlock_above_lock(fn: Function) -> Iterator[Edit]:
    """Move a release that follows its acquisition in the same block to just above it."""
    for acq in fn.calls:
        a = acq.stmt
        if acq.entry.effect not in ACQUIRING or acq.key is None or not in_block(fn.src, a):
            continue
        assert a is not None
        sib = next_stmt(a)
        while sib is not None:
            c = fn.lock_stmt(sib)
            if c is not None and c.releases and c.key == acq.key:
                if owns_lines(fn.src, sib):
                    yield Edit(
                        tuple(move_before(fn.src, sib, a)),
                        line_no(sib),
                        f"moved `{_short(sib)}` above `{_short(a)}`",
                    )
                break
            sib = next_stmt(sib)


def double_unlock(fn: Function) -> Iterator[Edit]:
    """Repeat a release right after itself."""
    for rel in fn.calls:
        s = rel.stmt
        if not rel.releases or not in_block(fn.src, s) or not fn.acquisitions(rel.key):
            continue
        assert s is not None
        start, end = lines_of(fn.src, s)
        yield Edit(((end, end, fn.src[start:end]),), line_no(s), f"repeated `{_short(s)}`")


def delete_only_unlock(fn: Function) -> Iterator[Edit]:
    """Delete the only release of a lock the function takes (its exit effect changes)."""
    for rel in fn.calls:
        s = rel.stmt
        if not rel.releases or s is None or rel.key is None:
            continue
        if len(fn.releases(rel.key)) != 1 or not fn.acquisitions(rel.key):
            continue
        yield Edit((delete_span(fn.src, s),), line_no(s), f"deleted the only `{_short(s)}`")


def swap_pairing_release(fn: Function) -> Iterator[Edit]:
    """Release with the wrong partner: `pte_unmap_unlock(pte, ptl)` -> `spin_unlock(ptl)` ..."""
    for rel in fn.calls:
        swap = SWAPS.get(rel.name)
        if not rel.releases or swap is None or rel.stmt is None or not fn.acquisitions(rel.key):
            continue
        new = swap(_args(rel.call))
        if new is None:
            continue
        yield Edit(
            ((rel.call.start_byte, rel.call.end_byte, new.encode()),),
            line_no(rel.call),
            f"`{_short(rel.call)}` -> `{new}`",
            rel.name,
        )


def drop_revalidation(fn: Function) -> Iterator[Edit]:
    """Delete an `if (!pte_same(...)) ...` / `if (unlikely(!pmd_same(...))) goto ...;` re-check."""
    first_lock = min((c.call.start_byte for c in fn.calls if c.acquires), default=None)
    if first_lock is None:
        return
    for node in fn.nodes:
        if node.type != "if_statement" or node.start_byte < first_lock:
            continue
        cond = node.child_by_field_name("condition")
        if cond is None or not REVALIDATION_RE.search(cond.text or b""):
            continue
        if not REREAD_RE.search(cond.text or b""):
            continue  # two values compared, no entry read again under the lock
        if node.child_by_field_name("alternative") is not None or not in_block(fn.src, node):
            continue
        m = REVALIDATION_RE.search(cond.text or b"")
        kind = m.group(0).decode().lstrip("!").strip(" (") if m else ""
        yield Edit((delete_span(fn.src, node),), line_no(node), f"deleted `{_short(node)}`", kind)


def _hoist_sites(fn: Function) -> Iterator[tuple[LockCall, Node, Node]]:
    """`LOCK; if (test) { ...; unlock; ... }`: the acquisition, the if and its arm."""
    for acq in fn.calls:
        a = acq.stmt
        if acq.entry.effect not in ACQUIRING or acq.key is None or not in_block(fn.src, a):
            continue
        assert a is not None
        if a.type == "declaration":
            continue  # the test would move above a declaration its arm uses
        nxt = next_stmt(a)
        if nxt is None or nxt.type != "if_statement" or not owns_lines(fn.src, nxt):
            continue
        cond, arm = nxt.child_by_field_name("condition"), nxt.child_by_field_name("consequence")
        if cond is None or arm is None or arm.type != "compound_statement":
            continue
        if nxt.child_by_field_name("alternative") is not None:
            continue
        if mentions(node_text(cond), acq.ret) or mentions(node_text(cond), acq.key):
            continue  # the test reads what the acquisition produced
        rels = [c for s in statements(arm) if (c := fn.lock_stmt(s)) is not None]
        if any(c.releases and c.key == acq.key for c in rels):
            yield acq, nxt, arm


def _test_kind(test: Node) -> str:
    """Re-validations (`!pte_same()`, `!pmd_same()`) and other tests are sampled in turn."""
    cond = test.child_by_field_name("condition")
    same = cond is not None and REVALIDATION_RE.search(cond.text or b"") is not None
    return "revalidation" if same else "test"


def hoist_check_keep_unlock(fn: Function) -> Iterator[Edit]:
    """Move the test that follows an acquisition above it, its arm unchanged (unlock unheld)."""
    for acq, test, _arm in _hoist_sites(fn):
        assert acq.stmt is not None
        yield Edit(
            tuple(move_before(fn.src, test, acq.stmt)),
            line_no(test),
            f"moved `{_short(test)}` above `{_short(acq.stmt)}`, its unlock kept",
            _test_kind(test),
        )


def hoist_check_drop_unlock(fn: Function) -> Iterator[Edit]:
    """Move the test above the acquisition and drop the arm's unlock: test-then-lock."""
    for acq, test, arm in _hoist_sites(fn):
        assert acq.stmt is not None
        start, end = lines_of(fn.src, test)
        spans = []
        for s in statements(arm):
            c = fn.lock_stmt(s)
            if c is not None and c.releases and c.key == acq.key:
                if not owns_lines(fn.src, s):
                    break
                s0, s1 = lines_of(fn.src, s)
                spans.append((s0 - start, s1 - start, b""))
        else:
            body = Edit(tuple(spans), 0, "").apply(fn.src[start:end])
            yield Edit(
                tuple(move_before(fn.src, test, acq.stmt, body)),
                line_no(test),
                f"moved `{_short(test)}` above `{_short(acq.stmt)}`, its unlock dropped",
                _test_kind(test),
            )


def act_out_of_lock(fn: Function) -> Iterator[Edit]:
    """Move a page-table act (`set_pte_at`, `pte_clear`, ...) below the spinlock release."""
    for node in fn.nodes:
        if node.type != "call_expression" or _callee(node) not in ACTS:
            continue
        s, _ret = _statement_of(node)
        if s is None or s.type == "declaration" or not in_block(fn.src, s):
            continue
        # the spinning locks taken before it and not released since (in text
        # order, counting unlocks in a block around the act, not those on an
        # early way out beside it): the page-table locks that cover the act.
        # An act after its lock's unlock (a table built privately before it
        # is published) is not under the lock: moving it down is no locking bug
        last: dict[str | None, bool] = {}
        for c in sorted(fn.calls, key=lambda c: c.call.start_byte):
            if c.call.start_byte >= s.start_byte or c.key == "rcu":
                continue
            if c.acquires and c.entry.atomic:
                last[c.key] = True
            elif c.releases and c.key in last and _encloses(_block_of(c.call), s):
                last[c.key] = False  # not an early-exit unlock in a branch beside the act
        held = {k for k, on in last.items() if on}
        sib = next_stmt(s)
        while sib is not None and sib.type != "labeled_statement":  # other paths join there
            if _spin_release(fn, sib, held):
                # below the whole run of releases (`spin_unlock(dst); spin_unlock(src);`),
                # so no other covering lock is still held, even one taken by a helper
                last, more = sib, next_stmt(sib)
                while more is not None and _spin_release(fn, more, None):
                    last, more = more, next_stmt(more)
                if owns_lines(fn.src, last):
                    yield Edit(
                        tuple(move_after(fn.src, s, last)),
                        line_no(s),
                        f"moved `{_short(s)}` below `{_short(last)}`",
                    )
                break
            sib = next_stmt(sib)


def _block_of(node: Node) -> Node | None:
    cur = node.parent
    while cur is not None and cur.type != "compound_statement":
        cur = cur.parent
    return cur


def _encloses(block: Node | None, node: Node) -> bool:
    return block is not None and block.start_byte <= node.start_byte < block.end_byte


def _spin_release(fn: Function, stmt: Node, held: set[str | None] | None) -> bool:
    """A release of a held lock (of any lock: None), or `if (...) release;`."""
    if stmt.type == "if_statement" and stmt.child_by_field_name("alternative") is None:
        arm = stmt.child_by_field_name("consequence")
        if arm is not None and arm.type == "compound_statement" and len(statements(arm)) == 1:
            arm = statements(arm)[0]
        if arm is None:
            return False
        stmt = arm
    c = fn.lock_stmt(stmt)
    return c is not None and c.releases and (held is None or c.key in held)


def _null_test(cond: str, var: str | None) -> bool:
    """`(!pte)`, `(unlikely(!pte))`, `(pte == NULL)`: the test that a lock call failed."""
    if not var:
        return False
    v = re.escape("".join(var.split()))
    c = "".join(cond.split())
    return re.fullmatch(rf"\((?:unlikely\()?(?:!{v}|{v}==NULL)\)?\)", c) is not None


def _taken_test(cond: str, var: str) -> bool:
    """`(ptl)`, `(likely(ptl))`, `(ptl != NULL)`: the test that a lock call succeeded."""
    v = re.escape("".join(var.split()))
    c = "".join(cond.split())
    return re.fullmatch(rf"\((?:likely\()?{v}(?:!=NULL)?\)?\)", c) is not None


def sleep_under_spinlock(fn: Function) -> Iterator[Edit]:
    """Insert `cond_resched();` (or `might_sleep();`) right after a spinning acquisition."""
    for acq in fn.calls:
        a = acq.stmt
        if acq.entry.effect not in ACQUIRING or not acq.entry.atomic or acq.key == "rcu":
            continue
        if not in_block(fn.src, a):
            continue
        assert a is not None
        at, indent, where = _eol(fn.src, a.end_byte), indent_of(fn.src, a), f"after `{_short(a)}`"
        nxt = next_stmt(a)
        cond = nxt.child_by_field_name("condition") if nxt is not None else None
        if nxt is not None and nxt.type == "if_statement" and cond is not None and acq.ret:
            test = node_text(cond)
            if _null_test(test, acq.ret) and owns_lines(fn.src, nxt):
                # the failure test of a lock that may not be taken: sleep after it
                at, where = _eol(fn.src, nxt.end_byte), f"after `{_short(nxt)}`"
            elif _taken_test(test, acq.ret):
                # `if (ptl) { ... }`: the lock is held inside the arm
                arm = nxt.child_by_field_name("consequence")
                first = statements(arm)[0] if arm is not None and statements(arm) else None
                if arm is None or arm.type != "compound_statement" or first is None:
                    continue
                if not owns_lines(fn.src, first):
                    continue
                at, indent = _bol(fn.src, first.start_byte), indent_of(fn.src, first)
                where = f"inside `{_short(nxt)}`"
            elif mentions(test, acq.ret):
                continue  # some other test of what the acquisition returned
        call = b"might_sleep();" if line_no(a) % 2 else b"cond_resched();"
        yield Edit(
            ((at, at, indent + call + b"\n"),),
            line_no(a),
            f"inserted `{call.decode()}` {where}",
        )


_ASSIGNED = re.compile(r"([A-Za-z_]\w*(?:(?:->|\.)\w+)*)\s*(?:[-+*/|&^]|<<|>>)?=(?!=)")


def reorder_nested(fn: Function) -> Iterator[Edit]:
    """Swap two acquisitions of different locks that follow each other in one block."""
    for first in fn.calls:
        a = first.stmt
        if first.entry.effect not in ACQUIRING or first.key in (None, "rcu"):
            continue  # rcu_read_lock() has no place in the lock order
        if not in_block(fn.src, a):
            continue
        assert a is not None
        if a.type == "declaration":
            continue
        between: list[Node] = []
        sib = next_stmt(a)
        while sib is not None and len(between) <= 3:
            c = fn.lock_stmt(sib)
            if c is not None and c.releases:
                break
            if (
                c is not None
                and c.entry.effect in ACQUIRING
                and c.key not in (None, "rcu", first.key)
            ):
                if sib.type == "declaration" or not owns_lines(fn.src, sib):
                    break
                words = set(re.findall(r"[A-Za-z_]\w*", node_text(c.call)))
                if first.ret:
                    words.add(first.ret)
                assigned = {
                    w
                    for b in between
                    for m in _ASSIGNED.finditer(node_text(b))
                    for w in re.findall(r"[A-Za-z_]\w*", m.group(1))
                }
                if b_decl := [b for b in between if b.type == "declaration"]:
                    assigned.update(re.findall(r"[A-Za-z_]\w*", " ".join(map(node_text, b_decl))))
                if words & assigned:
                    break
                a0, a1 = lines_of(fn.src, a)
                s0, s1 = lines_of(fn.src, sib)
                ia, isb = indent_of(fn.src, a), indent_of(fn.src, sib)
                yield Edit(
                    (
                        (a0, a1, reindent(fn.src[s0:s1], isb, ia)),
                        (s0, s1, reindent(fn.src[a0:a1], ia, isb)),
                    ),
                    line_no(a),
                    f"swapped `{_short(a)}` and `{_short(sib)}`",
                )
                break
            between.append(sib)
            sib = next_stmt(sib)


def _block_statements(fn: Function) -> Iterator[Node]:
    for block in fn.nodes:
        if block.type == "compound_statement":
            for s in statements(block):
                if owns_lines(fn.src, s):
                    yield s


def benign_comment(fn: Function) -> Iterator[Edit]:
    """Add a comment line above a statement."""
    for s in _block_statements(fn):
        at = _bol(fn.src, s.start_byte)
        yield Edit(
            ((at, at, indent_of(fn.src, s) + COMMENT + b"\n"),),
            line_no(s),
            f"comment above `{_short(s)}`",
        )


def benign_rename_local(fn: Function) -> Iterator[Edit]:
    """Rename a local variable everywhere in the function (consistently)."""
    params = set(function_params(fn.node.child_by_field_name("declarator")))
    ids: dict[str, list[Node]] = {}
    fields: set[str] = set()
    masked = bytearray(fn.src[fn.node.start_byte : fn.node.end_byte])
    for n in walk(fn.node):
        if n.type == "identifier":
            ids.setdefault(node_text(n), []).append(n)
        elif n.type == "field_identifier":
            fields.add(node_text(n))
        elif n.type in ("comment", "string_literal", "char_literal", "system_lib_string"):
            for i in range(n.start_byte - fn.node.start_byte, n.end_byte - fn.node.start_byte):
                masked[i] = 0x20
    code = masked.decode("utf-8", "replace")
    seen: set[str] = set()
    for decl in fn.nodes:
        if decl.type != "declaration":
            continue
        for d in decl.children_by_field_name("declarator"):
            while d is not None and d.type != "identifier":
                d = d.child_by_field_name("declarator")
            name = node_text(d) if d is not None else ""
            if not name or name in seen or name in params or name in fields:
                continue
            seen.add(name)
            new = name + RENAME_SUFFIX
            uses = ids.get(name, [])
            if new in ids or re.search(rf"\b{new}\b", code):
                continue
            if len(re.findall(rf"(?<![\w.>]){re.escape(name)}(?!\w)", code)) != len(uses):
                continue  # a use tree-sitter does not see as the identifier (macro text)
            yield Edit(
                tuple((u.start_byte, u.end_byte, new.encode()) for u in uses),
                line_no(decl),
                f"renamed local `{name}` to `{new}` ({len(uses)} uses)",
            )


def benign_blank_lines(fn: Function) -> Iterator[Edit]:
    """Add a blank line above a statement, taking one away elsewhere in the function if any."""
    body = fn.body
    start, end = body.start_byte, body.end_byte
    blanks = [
        m.start() + 1
        for m in re.finditer(rb"\n[ \t]*(?=\n)", fn.src[start:end])
        if start + m.start() + 1 < end
    ]
    for s in _block_statements(fn):
        at = _bol(fn.src, s.start_byte)
        if not fn.src[_bol(fn.src, at - 1) : at].rstrip().endswith((b";", b"}")):
            continue  # a blank line belongs after a statement, not after `{` or a comment
        spans: list[Span] = [(at, at, b"\n")]
        here = fn.src.count(b"\n", 0, at)
        far = [start + b for b in blanks if abs(fn.src.count(b"\n", 0, start + b) - here) > 2]
        what = "added a blank line"
        if far:
            b0 = far[len(far) // 2]
            spans.append((b0, _eol(fn.src, b0), b""))
            what = "moved a blank line"
        yield Edit(tuple(spans), line_no(s), f"{what} above `{_short(s)}`")


@dataclass(frozen=True, slots=True)
class EditClass:
    name: str
    family: str  # "issue-13" (lock balance), "issue-14" (pairing, stale values ...), "benign"
    expect: tuple[str, ...]  # the rules that should catch it (none for benign)
    find: Callable[[Function], Iterator[Edit]]

    @property
    def doc(self) -> str:
        return (self.find.__doc__ or "").strip()

    @property
    def benign(self) -> bool:
        return self.family == "benign"


CLASSES: tuple[EditClass, ...] = (
    EditClass("drop-unlock-error-path", "issue-13", ("lock-balance",), drop_unlock_error_path),
    EditClass("unlock-above-lock", "issue-13", ("lock-balance",), unlock_above_lock),
    EditClass("exit-block-leak", "issue-13", ("lock-balance",), exit_block_leak),
    EditClass("new-exit-leak", "issue-13", ("lock-balance",), new_exit_leak),
    EditClass("double-unlock", "issue-13", ("lock-balance",), double_unlock),
    EditClass(
        "delete-only-unlock",
        "issue-13",
        ("lock-effect-changed", "lock-balance"),
        delete_only_unlock,
    ),
    EditClass("swap-pairing-release", "issue-14", ("lock-pairing",), swap_pairing_release),
    EditClass(
        "drop-revalidation", "issue-14", ("pte-revalidate", "pmd-revalidate"), drop_revalidation
    ),
    EditClass(
        "hoist-check-keep-unlock",
        "issue-14",
        ("moved-out-of-lock", "recheck-after-relock", "lock-balance"),
        hoist_check_keep_unlock,
    ),
    EditClass(
        "hoist-check-drop-unlock",
        "issue-14",
        ("moved-out-of-lock", "recheck-after-relock", "pte-revalidate", "pmd-revalidate"),
        hoist_check_drop_unlock,
    ),
    EditClass(
        "act-out-of-lock",
        "issue-14",
        ("pt-act-unlocked", "pt-detach-locks", "moved-out-of-lock"),
        act_out_of_lock,
    ),
    EditClass("sleep-under-spinlock", "issue-14", ("sleep-in-atomic",), sleep_under_spinlock),
    EditClass(
        "reorder-nested-locks",
        "issue-14",
        ("lock-order", "nested-same-class", "order-reversed"),
        reorder_nested,
    ),
    EditClass("benign-comment", "benign", (), benign_comment),
    EditClass("benign-rename-local", "benign", (), benign_rename_local),
    EditClass("benign-blank-lines", "benign", (), benign_blank_lines),
)
BY_NAME = {c.name: c for c in CLASSES}


@dataclass(frozen=True, slots=True)
class Mutant:
    """One edit of one function, ready to be written as a patch."""

    cls: str
    path: str
    function: str
    line: int
    what: str
    text: bytes  # the whole mutated file

    @property
    def ident(self) -> str:
        return f"{self.cls}:{self.path}:{self.function}:{self.line}"


@dataclass(frozen=True, slots=True)
class Site:
    cls: str
    path: str
    function: str
    fn_start: int
    edit: Edit

    def mutate(self, src: bytes, errors_before: int) -> Mutant | None:
        """The mutant, or None when the edit is a no-op or breaks the parse."""
        new = self.edit.apply(src)
        if new == src:
            return None
        if count_errors(parse_source(self.path, new).root) > errors_before:
            return None
        return Mutant(self.cls, self.path, self.function, self.edit.line, self.edit.what, new)


def sites(
    path: str, src: bytes, vocab: Vocabulary, classes: tuple[EditClass, ...] = CLASSES
) -> list[Site]:
    """Every site of every class in one file, in source order."""
    out: list[Site] = []
    for fn in functions(path, src, vocab):
        for ec in classes:
            for edit in ec.find(fn):
                out.append(Site(ec.name, path, fn.name, fn.node.start_byte, edit))
    return out
