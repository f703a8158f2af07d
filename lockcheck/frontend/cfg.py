"""Build a statement-level control-flow graph from a tree-sitter function body.

This is pure syntax: nodes hold the tree-sitter expressions they evaluate and
branch nodes hold one condition *atom*. `&&`, `||`, `!`, `likely()` and
comparisons with 0/NULL are lowered into separate branch nodes here, so that
every later stage sees short-circuit evaluation and trylock results as plain
edges. Kernel iterator macros (`list_for_each_entry(...) { }`) and
`scoped_guard(...) { }` parse as a call missing its `;` followed by a block;
they are re-joined into loops and guarded scopes, and `guard()` scopes are
released on every exit from their block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tree_sitter import Node

from lockcheck.frontend.parse import (
    NORETURN,
    SCOPED_GUARDS,
    is_macro_head,
    is_swallowed_definition,
    macro_head,
    text,
)

Edge = tuple[int, bool | None]
Preds = list[Edge]

_TRANSPARENT_CALLS = frozenset(
    # calls whose value is their first argument's truth: `if (WARN_ON_ONCE(!trylock(..)))`
    {
        "likely",
        "unlikely",
        "__builtin_expect",
        "data_race",
        "WARN_ON",
        "WARN_ON_ONCE",
        "WARN",
        "WARN_ONCE",
    }
)
_ZERO = frozenset({"0", "NULL", "false", "0UL", "0L", "0U"})


class BudgetExceeded(Exception):
    """The function is too large to analyse within the per-function budget."""


@dataclass(slots=True)
class GuardOp:
    op: Literal["acquire", "release"]
    gtype: str
    args: tuple[Node, ...]
    line: int
    column: int


@dataclass(slots=True)
class SynNode:
    id: int
    kind: Literal["entry", "exit", "stmt", "branch", "join"]
    line: int
    items: list[Node] = field(default_factory=list)
    cond: Node | None = None  # branch atom; edge True means the atom is non-zero
    guard: GuardOp | None = None
    succ: list[Edge] = field(default_factory=list)
    # the branch is a sign test lowered to non-zero (`ret < 0`): good for a
    # lock call's result, not an exact fact about the value
    inexact: bool = False
    # `case V:` of `switch (E)`: the branch tests `E == V` (cond is V)
    switch: Node | None = None
    # the head of a loop macro (`list_for_each_entry(pos, ...)`): its call,
    # whose cursor arguments get a new value each time round
    macro: Node | None = None
    # an `#if`/`#ifdef` branch: its condition as written (`#if BITS == 32`),
    # true along the edge into the block
    preproc: str | None = None
    # one arm of `return c ? a : b;`: the value this node returns (its item)
    ret: Node | None = None
    # one arm of `x = c ? f(..) : b;`: the variable its item is assigned to
    assign: Node | None = None


@dataclass(slots=True)
class SynCfg:
    nodes: list[SynNode]
    entry: int
    exit: int
    errors: int = 0  # statements the grammar could not place


@dataclass(slots=True)
class _Scope:
    compound_id: int | None
    guards: list[GuardOp] = field(default_factory=list)


@dataclass(slots=True)
class _Jump:
    brk: Preds
    cont: Preds | None  # None: `continue` passes through (switch)
    cont_target: int | None
    depth: int  # scope depth at the construct


def _strip(node: Node) -> Node:
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def call_name(node: Node) -> str | None:
    if node.type != "call_expression":
        return None
    fn = node.child_by_field_name("function")
    return text(fn) if fn is not None and fn.type == "identifier" else None


def _assigned_arms(expr: Node) -> tuple[Node, Node, Node, Node] | None:
    """(variable, condition, then, else) of `x = c ? a : b` with a call in an arm."""
    expr = _strip(expr)
    if expr.type == "declaration":
        # `int rv = c ? f(..) : b;`, one variable declared
        inits = [c for c in expr.named_children if c.type == "init_declarator"]
        if len(inits) != 1 or len(expr.children_by_field_name("declarator")) != 1:
            return None
        left = inits[0].child_by_field_name("declarator")
        right = inits[0].child_by_field_name("value")
    elif expr.type == "assignment_expression":
        op = expr.child_by_field_name("operator")
        if op is None or op.text != b"=":
            return None
        left = expr.child_by_field_name("left")
        right = expr.child_by_field_name("right")
    else:
        return None
    if left is None or left.type != "identifier" or right is None:
        return None
    value = _strip(right)
    cond = value.child_by_field_name("condition")
    yes = value.child_by_field_name("consequence")
    no = value.child_by_field_name("alternative")
    if value.type != "conditional_expression" or cond is None or yes is None or no is None:
        return None
    if not any(_strip(arm).type == "call_expression" for arm in (yes, no)):
        return None
    return left, cond, yes, no


def _headless_call(stmt: Node) -> Node | None:
    """The iterator/guard call of `macro(args) { ... }` whose block was split off.

    Known names aside, the shape decides: a call statement whose `;` the
    grammar had to invent, followed by a statement, is a loop macro's head
    (kernel C always has the `;` after a real call), unless its arguments
    hold a block of code.
    """
    if stmt.type != "expression_statement" or stmt.named_child_count != 1:
        return None
    if not any(c.is_missing for c in stmt.children):
        return None
    call = stmt.named_children[0]
    args = call.child_by_field_name("arguments") if call.type == "call_expression" else None
    if args is not None and any(c.type == "compound_statement" for c in args.named_children):
        # `D2(list_for_each_entry(..) { .. })`: a macro given code (debug
        # builds keep it), a statement of its own, not the head of the next one
        return None
    if is_macro_head(call):
        return call
    fn = call.child_by_field_name("function") if call.type == "call_expression" else None
    return call if fn is not None and fn.type == "identifier" else None


def _reads_as_body(stmt: Node, nxt: Node) -> bool:
    """Is `nxt` the body of the headless macro call `stmt`, by its layout?

    A macro of iterator naming, or followed by a block, heads a loop. Any
    other call written without `;` is a loop head only when the next
    statement is laid out as its body (on the same line, or indented deeper):
    a statement-like macro whose `;` its definition supplies
    (`RESET_STATUS(x)` above a `switch` at the same depth) is a statement.
    """
    call = _headless_call(stmt)
    if call is None or is_macro_head(call) or nxt.type == "compound_statement":
        return True
    if nxt.start_point[0] == call.end_point[0]:
        return True
    return nxt.start_point[1] > call.start_point[1]


def _preproc_key(node: Node) -> tuple[str | None, bool]:
    """The condition of `#if X`/`#ifdef X`/`#ifndef X` (and their `#elif`
    forms) as a key, and whether the block is compiled when it is false."""
    cond = node.child_by_field_name("condition")
    if cond is not None:
        return "#if " + " ".join(text(cond).split()), False
    name = node.child_by_field_name("name")
    if name is None:
        return None, False
    head = text(node).lstrip()
    negated = head.startswith(("#ifndef", "#elifndef")) or head.startswith("# ifndef")
    return "#ifdef " + text(name), negated


def _trailing_headless(stmt: Node) -> Node | None:
    """A headless macro statement that ends `stmt` (e.g. as an if's branch)."""
    node: Node | None = stmt
    while node is not None:
        if _headless_call(node) is not None:
            return node
        if node.type == "if_statement":
            alt = node.child_by_field_name("alternative")
            node = alt if alt is not None else node.child_by_field_name("consequence")
        elif node.type == "else_clause" or node.type in (
            "labeled_statement",
            "for_statement",
            "while_statement",
        ):
            node = node.named_children[-1] if node.named_children else None
        else:
            return None
    return None


class CfgBuilder:
    def __init__(
        self, body: Node, max_nodes: int = 20000, noreturn: frozenset[str] = NORETURN
    ) -> None:
        self.noreturn = noreturn
        self.nodes: list[SynNode] = []
        self.max_nodes = max_nodes
        self.errors = 0
        self.labels: dict[str, int] = {}
        self.label_scopes: dict[str, set[int]] = {}
        self.attached: dict[int, Node] = {}  # headless stmt id -> its split-off body
        self.scopes: list[_Scope] = []
        self.jumps: list[_Jump] = []
        self.entry = self._new("entry", body.start_point[0] + 1)
        self.exit = self._new("exit", body.end_point[0] + 1)
        if b"goto" in (body.text or b""):  # the scopes serve only the gotos
            self._find_labels(body, [body.id])
        self.scopes.append(_Scope(body.id))
        out = self._seq(self._children(body), [(self.entry, None)])
        out = self._release_scope(self.scopes.pop(), out)
        self._link(out, self.exit)

    def result(self) -> SynCfg:
        return SynCfg(self.nodes, self.entry, self.exit, self.errors)

    # -- plumbing ---------------------------------------------------------

    def _new(self, kind: Literal["entry", "exit", "stmt", "branch", "join"], line: int) -> int:
        if len(self.nodes) >= self.max_nodes:
            raise BudgetExceeded(f"more than {self.max_nodes} CFG nodes")
        node = SynNode(len(self.nodes), kind, line)
        self.nodes.append(node)
        return node.id

    def _link(self, preds: Preds, target: int) -> None:
        for src, label in preds:
            self.nodes[src].succ.append((target, label))

    def _node(self, kind: Literal["stmt", "branch", "join"], line: int, preds: Preds) -> int:
        nid = self._new(kind, line)
        self._link(preds, nid)
        return nid

    def _label(self, name: str, line: int) -> int:
        if name not in self.labels:
            self.labels[name] = self._new("join", line)
        return self.labels[name]

    def _find_labels(self, node: Node, chain: list[int]) -> None:
        for child in node.named_children:
            if child.type == "labeled_statement":
                lab = child.child_by_field_name("label")
                if lab is not None:
                    self.label_scopes[text(lab)] = set(chain)
            if child.type == "function_definition" and macro_head(child) is None:
                continue
            sub = [*chain, child.id] if child.type == "compound_statement" else chain
            self._find_labels(child, sub)

    @staticmethod
    def _children(block: Node) -> list[Node]:
        return [c for c in block.named_children if c.type != "comment"]

    # -- guards -----------------------------------------------------------

    def _release_guards(self, guards: list[GuardOp], preds: Preds) -> Preds:
        for g in reversed(guards):
            if not preds:
                return preds
            nid = self._node("stmt", g.line, preds)
            self.nodes[nid].guard = GuardOp("release", g.gtype, g.args, g.line, g.column)
            preds = [(nid, None)]
        return preds

    def _release_scope(self, scope: _Scope, preds: Preds) -> Preds:
        return self._release_guards(scope.guards, preds)

    def _unwind(self, depth: int, preds: Preds) -> Preds:
        """Release the guards of every scope deeper than `depth`."""
        for scope in reversed(self.scopes[depth:]):
            preds = self._release_scope(scope, preds)
        return preds

    # -- statements -------------------------------------------------------

    def _seq(self, stmts: list[Node], preds: Preds) -> Preds:
        i = 0
        while i < len(stmts):
            stmt = stmts[i]
            nxt = stmts[i + 1] if i + 1 < len(stmts) else None
            tail = _trailing_headless(stmt)
            if (
                tail is not None
                and tail.id not in self.attached
                and nxt is not None
                and _reads_as_body(tail, nxt)
            ):
                self.attached[tail.id] = nxt
                i += 1
            preds = self._stmt(stmt, preds)
            i += 1
        return preds

    def _stmt(self, node: Node, preds: Preds) -> Preds:
        handler = getattr(self, "_visit_" + node.type, None)
        if handler is not None:
            result: Preds = handler(node, preds)
            return result
        if node.type.startswith("preproc_"):
            return preds
        if node.type.endswith("_statement") or node.type.endswith("declaration"):
            # declarations, type definitions, asm: evaluated in order, no flow
            return self._plain(node, preds)
        return self._plain(node, preds)

    def _plain(self, node: Node, preds: Preds) -> Preds:
        nid = self._node("stmt", node.start_point[0] + 1, preds)
        self.nodes[nid].items.append(node)
        return [(nid, None)]

    def _visit_compound_statement(self, node: Node, preds: Preds) -> Preds:
        self.scopes.append(_Scope(node.id))
        out = self._seq(self._children(node), preds)
        return self._release_scope(self.scopes.pop(), out)

    def _visit_expression_statement(self, node: Node, preds: Preds) -> Preds:
        body = self.attached.get(node.id)
        call = _headless_call(node)
        if call is not None and body is not None:
            if call_name(call) in SCOPED_GUARDS:
                return self._scoped_guard(call, body, preds)
            return self._macro_loop(call, body, preds)
        if node.named_child_count == 1:
            guard = self._guard_call(node.named_children[0])
            if guard is not None:
                nid = self._node("stmt", node.start_point[0] + 1, preds)
                self.nodes[nid].guard = guard
                if self.scopes:
                    self.scopes[-1].guards.append(guard)
                return [(nid, None)]
        if node.named_child_count == 0:
            return preds
        arms = _assigned_arms(node.named_children[0])
        if arms is not None:
            return self._assign_arms(*arms, preds)
        out = self._plain(node, preds)
        expr = _strip(node.named_children[0])
        if expr.type == "call_expression" and call_name(expr) in self.noreturn:
            return []  # BUG(), panic(): no way on from here
        return out

    def _visit_declaration(self, node: Node, preds: Preds) -> Preds:
        arms = _assigned_arms(node)
        if arms is not None:
            return self._assign_arms(*arms, preds)
        return self._plain(node, preds)

    def _assign_arms(
        self, var: Node, cond: Node, yes: Node, no: Node, preds: Preds
    ) -> Preds:
        """`x = c ? f(..) : b;` is `if (c) x = f(..); else x = b;`: a lock
        call in one arm (`rv = p ? lock_interruptible(p) : -ENODEV`) is taken
        only on that arm, and `x` then tells which arm ran."""
        t, f = self._cond(cond, preds)
        out: Preds = []
        for arm, ps in ((yes, t), (no, f)):
            if not ps:
                continue
            nid = self._node("stmt", arm.start_point[0] + 1, ps)
            self.nodes[nid].items.append(arm)
            self.nodes[nid].assign = var
            out.append((nid, None))
        return out

    def _guard_call(self, expr: Node) -> GuardOp | None:
        """`guard(type)(args)`: a lock held until the enclosing block ends."""
        if expr.type != "call_expression":
            return None
        inner = expr.child_by_field_name("function")
        if inner is None or call_name(inner) != "guard":
            return None
        gargs = inner.child_by_field_name("arguments")
        args = expr.child_by_field_name("arguments")
        gtype = text(gargs.named_children[0]) if gargs and gargs.named_children else ""
        return GuardOp(
            "acquire",
            gtype,
            tuple(args.named_children) if args is not None else (),
            expr.start_point[0] + 1,
            expr.start_point[1] + 1,
        )

    def _visit_function_definition(self, node: Node, preds: Preds) -> Preds:
        """`for_each_possible_cpu(cpu) { ... }` read as a nested definition."""
        head = macro_head(node)
        body = node.child_by_field_name("body")
        if head is None and is_swallowed_definition(node):
            return []  # the next function, swallowed by error recovery: this one ends
        if head is None or body is None:
            return self._plain(node, preds)
        if head[0] in SCOPED_GUARDS:
            return self._scoped_guard(node, body, preds)
        return self._macro_loop(node, body, preds)

    def _scoped_guard(self, call: Node, body: Node, preds: Preds) -> Preds:
        head = macro_head(call)
        named = list(head[1]) if head is not None else []
        if head is not None and head[0] == "scoped_cond_guard" and len(named) >= 2:
            named = [named[0], *named[2:]]  # drop the failure action
        gtype = text(named[0]) if named else ""
        op = GuardOp(
            "acquire",
            gtype,
            tuple(named[1:]),
            call.start_point[0] + 1,
            call.start_point[1] + 1,
        )
        nid = self._node("stmt", op.line, preds)
        self.nodes[nid].guard = op
        scope = _Scope(None, [op])
        self.scopes.append(scope)
        # break/continue inside scoped_guard leave the guard (it is a for loop)
        jump = _Jump([], [], None, len(self.scopes) - 1)
        self.jumps.append(jump)
        out = self._stmt(body, [(nid, None)])
        self.jumps.pop()
        out = out + jump.brk + (jump.cont or [])
        return self._release_scope(self.scopes.pop(), out)

    def _macro_loop(self, call: Node, body: Node, preds: Preds) -> Preds:
        # the macro's arguments are evaluated once, before the loop (a lock
        # taken there is not taken again each time round)
        pre = self._node("stmt", call.start_point[0] + 1, preds)
        if call.type == "call_expression":  # not a head read as a definition
            self.nodes[pre].items.append(call)
        head = self._node("branch", call.start_point[0] + 1, [(pre, None)])
        self.nodes[head].macro = call
        jump = _Jump([], None, head, len(self.scopes))
        self.jumps.append(jump)
        out = self._stmt(body, [(head, True)])
        self.jumps.pop()
        self._link(out, head)
        return [(head, False), *jump.brk]

    def _visit_if_statement(self, node: Node, preds: Preds) -> Preds:
        cond = node.child_by_field_name("condition")
        cons = node.child_by_field_name("consequence")
        alt = node.child_by_field_name("alternative")
        t, f = self._cond(cond, preds) if cond is not None else (preds, preds)
        out = self._stmt(cons, t) if cons is not None else t
        if alt is not None:
            stmts = self._children(alt) if alt.type == "else_clause" else [alt]
            f = self._seq(stmts, f)
        return out + f

    def _visit_while_statement(self, node: Node, preds: Preds) -> Preds:
        join = self._node("join", node.start_point[0] + 1, preds)
        cond = node.child_by_field_name("condition")
        t, f = self._cond(cond, [(join, None)]) if cond is not None else ([(join, None)], [])
        jump = _Jump([], None, join, len(self.scopes))
        self.jumps.append(jump)
        body = node.child_by_field_name("body")
        out = self._stmt(body, t) if body is not None else t
        self.jumps.pop()
        self._link(out, join)
        return f + jump.brk

    def _visit_for_statement(self, node: Node, preds: Preds) -> Preds:
        init = node.child_by_field_name("initializer")
        if init is not None:
            preds = self._plain(init, preds)
        join = self._node("join", node.start_point[0] + 1, preds)
        cond = node.child_by_field_name("condition")
        if cond is not None:
            t, f = self._cond(cond, [(join, None)])
        else:
            t, f = [(join, None)], []
        update = node.child_by_field_name("update")
        upd = self._new("stmt", node.start_point[0] + 1)
        if update is not None:
            self.nodes[upd].items.append(update)
        self._link([(upd, None)], join)
        jump = _Jump([], None, upd, len(self.scopes))
        self.jumps.append(jump)
        body = node.child_by_field_name("body")
        out = self._stmt(body, t) if body is not None else t
        self.jumps.pop()
        self._link(out, upd)
        return f + jump.brk

    def _visit_do_statement(self, node: Node, preds: Preds) -> Preds:
        head = self._node("join", node.start_point[0] + 1, preds)
        cond = node.child_by_field_name("condition")
        tail = self._new("join", (cond or node).start_point[0] + 1)
        jump = _Jump([], None, tail, len(self.scopes))
        self.jumps.append(jump)
        body = node.child_by_field_name("body")
        start: Preds = [(head, None)]
        out = self._stmt(body, start) if body is not None else start
        self.jumps.pop()
        self._link(out, tail)
        if cond is None:
            return [(tail, None), *jump.brk]
        t, f = self._cond(cond, [(tail, None)])
        self._link(t, head)
        return f + jump.brk

    def _visit_switch_statement(self, node: Node, preds: Preds) -> Preds:
        cond = node.child_by_field_name("condition")
        sw = self._node("branch", node.start_point[0] + 1, preds)
        if cond is not None:
            self.nodes[sw].items.append(cond)
        body = node.child_by_field_name("body")
        jump = _Jump([], None, None, len(self.scopes))
        self.jumps.append(jump)
        self.scopes.append(_Scope(body.id if body is not None else None))
        children = self._children(body) if body is not None else []
        # each `case V:` is a test `E == V` in turn, so that paths learn which
        # case they took; `default:` (or the end) is where every test fails
        tests: dict[int, int] = {}
        miss: Preds = [(sw, None)]
        for child in children:
            value = child.child_by_field_name("value") if child.type == "case_statement" else None
            if value is not None:
                t = self._node("branch", child.start_point[0] + 1, miss)
                self.nodes[t].cond = value
                self.nodes[t].switch = cond
                tests[child.id] = t
                miss = [(t, False)]
        fall: Preds = []
        has_default = False
        for child in children:
            if child.type == "case_statement":
                value = child.child_by_field_name("value")
                has_default = has_default or value is None
                into: Preds = [(tests[child.id], True)] if value is not None else miss
                entry = self._node("join", child.start_point[0] + 1, [*fall, *into])
                stmts = [c for c in self._children(child) if c is not value]
                fall = self._seq(stmts, [(entry, None)])
            else:
                fall = self._stmt(child, fall)
        fall = self._release_scope(self.scopes.pop(), fall)
        self.jumps.pop()
        out = fall + jump.brk
        if not has_default:
            out.extend(miss)
        return out

    def _visit_break_statement(self, node: Node, preds: Preds) -> Preds:
        if self.jumps:
            jump = self.jumps[-1]
            jump.brk.extend(self._unwind(jump.depth, preds))
        return []

    def _visit_continue_statement(self, node: Node, preds: Preds) -> Preds:
        for jump in reversed(self.jumps):
            if jump.cont is not None and jump.cont_target is None:
                jump.cont.extend(self._unwind(jump.depth, preds))  # scoped_guard
                return []
            if jump.cont_target is not None:
                self._link(self._unwind(jump.depth, preds), jump.cont_target)
                return []
        return []

    def _visit_return_statement(self, node: Node, preds: Preds) -> Preds:
        value = node.named_children[0] if node.named_child_count else None
        if value is not None and _strip(value).type == "conditional_expression":
            self._return_arms(_strip(value), preds)
            return []
        if node.named_child_count:
            preds = self._plain(node, preds)
        self._link(self._unwind(0, preds), self.exit)
        return []

    def _return_arms(self, value: Node, preds: Preds) -> None:
        """`return c ? a : b;` is `if (c) return a; return b;`: a helper that
        returns `mutex_lock_interruptible(m) ? -EINTR : 0` holds the lock on
        exactly one of its two returns, which one path through both cannot say."""
        v = _strip(value)
        cond = v.child_by_field_name("condition")
        yes = v.child_by_field_name("consequence")
        no = v.child_by_field_name("alternative")
        if v.type == "conditional_expression" and cond is not None and yes is not None and no:
            t, f = self._cond(cond, preds)
            self._return_arms(yes, t)
            self._return_arms(no, f)
            return
        if not preds:
            return
        nid = self._node("stmt", v.start_point[0] + 1, preds)
        self.nodes[nid].items.append(v)
        self.nodes[nid].ret = v
        self._link(self._unwind(0, [(nid, None)]), self.exit)

    def _visit_goto_statement(self, node: Node, preds: Preds) -> Preds:
        lab = node.child_by_field_name("label")
        name = text(lab) if lab is not None else ""
        keep = self.label_scopes.get(name, set())
        depth = 0
        while depth < len(self.scopes) and self.scopes[depth].compound_id in keep:
            depth += 1
        depth = max(depth, 1)
        self._link(self._unwind(depth, preds), self._label(name, node.start_point[0] + 1))
        return []

    def _visit_labeled_statement(self, node: Node, preds: Preds) -> Preds:
        lab = node.child_by_field_name("label")
        nid = self._label(text(lab) if lab is not None else "", node.start_point[0] + 1)
        self.nodes[nid].line = node.start_point[0] + 1
        self._link(preds, nid)
        rest = [c for c in node.named_children if c is not lab and c.type != "comment"]
        return self._seq(rest, [(nid, None)])

    def _visit_ERROR(self, node: Node, preds: Preds) -> Preds:
        self.errors += 1
        stmts = [c for c in node.named_children if c.type != "comment"]
        if stmts and all(c.type.endswith("statement") or c.type == "declaration" for c in stmts):
            return self._seq(stmts, preds)
        return self._plain(node, preds)

    def _preproc_cond(self, node: Node, preds: Preds) -> Preds:
        """#if/#ifdef in a body: either side may be compiled, so both are paths.

        The same condition is decided once per build: a second `#if` on it
        goes the way the first went (a lock taken under `#if BITS == 32` is
        released under the next `#if BITS == 32`)."""
        br = self._node("branch", node.start_point[0] + 1, preds)
        key, negated = _preproc_key(node)
        self.nodes[br].preproc = key
        into: bool | None = None if key is None else not negated
        past: bool | None = None if key is None else negated
        skip = {"name", "condition", "alternative"}
        stmts = [
            c
            for i, c in enumerate(node.children)
            if c.is_named and c.type != "comment" and node.field_name_for_child(i) not in skip
        ]
        out = self._seq(stmts, [(br, into)])
        alt = node.child_by_field_name("alternative")
        if alt is not None and alt.type == "preproc_else" and key is not None:
            out += self._visit_preproc_else(alt, [(br, past)])  # compiled when the #if is not
        elif alt is not None:
            out += self._preproc_cond(alt, [(br, past)])
        else:
            out.append((br, past))
        return out

    _visit_preproc_if = _preproc_cond
    _visit_preproc_ifdef = _preproc_cond
    _visit_preproc_elif = _preproc_cond
    _visit_preproc_elifdef = _preproc_cond

    def _visit_preproc_else(self, node: Node, preds: Preds) -> Preds:
        return self._seq([c for c in node.named_children if c.type != "comment"], preds)

    # -- conditions -------------------------------------------------------

    def _cond(self, expr: Node, preds: Preds, sign: bool = False) -> tuple[Preds, Preds]:
        """Lower a condition; returns the (true, false) dangling edges.

        `sign`: the atom stands for a `< 0` test (see SynNode.inexact)."""
        expr = _strip(expr)
        if expr.type == "unary_expression":
            bang = expr.child_by_field_name("operator")
            arg = expr.child_by_field_name("argument")
            if bang is not None and text(bang) == "!" and arg is not None:
                t, f = self._cond(arg, preds)
                return f, t
        if expr.type == "update_expression" and not text(expr).startswith(("++", "--")):
            # `if (ptep++)` tests the old value (a pointer stepped on stays
            # non-NULL); the grammar reads `!ptep++` as `(!ptep)++`
            arg = expr.child_by_field_name("argument")
            if arg is not None:
                return self._cond(arg, preds)
        if expr.type == "binary_expression":
            op_node = expr.child_by_field_name("operator")
            op = text(op_node) if op_node is not None else ""
            left = expr.child_by_field_name("left")
            right = expr.child_by_field_name("right")
            if left is not None and right is not None:
                if op == "&&":
                    t1, f1 = self._cond(left, preds)
                    t2, f2 = self._cond(right, t1)
                    return t2, f1 + f2
                if op == "||":
                    t1, f1 = self._cond(left, preds)
                    t2, f2 = self._cond(right, f1)
                    return t1 + t2, f2
                zero_side = text(_strip(right)) in _ZERO or text(_strip(left)) in _ZERO
                other = left if text(_strip(right)) in _ZERO else right
                if zero_side and op in ("==", "!=", "<", ">="):
                    # `x == 0` is exactly "x is zero"; `ret < 0` reads as "failed"
                    # for a lock call's 0/-errno result, but says nothing exact
                    # about the value, so no path fact is learnt from it
                    t, f = self._cond(other, preds, sign=op in ("<", ">="))
                    return (f, t) if op in ("==", ">=") else (t, f)
                if op in ("==", "!="):
                    nid = self._node("branch", expr.start_point[0] + 1, preds)
                    self.nodes[nid].cond = expr
                    self.nodes[nid].items.append(expr)
                    yes: Preds = [(nid, True)]
                    no: Preds = [(nid, False)]
                    return (yes, no) if op == "==" else (no, yes)
        if expr.type == "call_expression":
            name = call_name(expr)
            args = expr.child_by_field_name("arguments")
            if name in _TRANSPARENT_CALLS and args is not None and args.named_children:
                return self._cond(args.named_children[0], preds)
        if expr.type == "number_literal" or text(expr) in ("true", "false"):
            val = text(expr)
            return (preds, []) if val not in _ZERO else ([], preds)
        nid = self._node("branch", expr.start_point[0] + 1, preds)
        self.nodes[nid].cond = expr
        self.nodes[nid].items.append(expr)
        self.nodes[nid].inexact = sign
        return [(nid, True)], [(nid, False)]


def build_cfg(body: Node, max_nodes: int = 20000, noreturn: frozenset[str] = NORETURN) -> SynCfg:
    return CfgBuilder(body, max_nodes, noreturn).result()
