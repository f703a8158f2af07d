"""Turn the syntactic CFG into the event model, using the pack vocabulary.

Every call is looked up once in the primitives table; what it does to the
held-lock set becomes an event. Lock expressions are normalised here into
`LockRef`s, with local lock pointers (`ptl = pte_lockptr(...)`,
`spinlock_t *l = &x->lock`) resolved flow-insensitively: kernel code does
not reuse a lock pointer variable for a different lock class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from tree_sitter import Node

from lockcheck.frontend.cfg import BudgetExceeded, SynCfg, build_cfg, call_name
from lockcheck.frontend.parse import (
    ParsedFile,
    count_errors,
    function_params,
    is_macro_head,
    iter_functions,
    text,
)
from lockcheck.model.ir import (
    Acquire,
    Act,
    Assign,
    Atom,
    Call,
    Cfg,
    Check,
    Claim,
    Downgrade,
    Event,
    Function,
    LockRef,
    Mode,
    Release,
    Site,
    Sleep,
    is_constant,
)
from lockcheck.model.ir import (
    Node as IrNode,
)
from lockcheck.packs import ApiEntry, GuardEntry, Vocabulary

_WS_RE = re.compile(r"\s+")
_CAST_RE = re.compile(r"^\((?:const\s+)?(?:struct\s+)?\w+\s*\*?\s*\)")
_LOCK_RETURNING = frozenset({"returns-lock", "lockptr"})
_NO_EVAL = frozenset({"sizeof_expression", "alignof_expression", "string_literal", "comment"})


def out_name(arg: str) -> str:
    """The lock an out-argument receives: `&ptl` fills `ptl`; a pointer
    passed on (`ptlp`, a helper's own out-parameter) fills `*ptlp`."""
    n = norm(arg)
    stripped = _WS_RE.sub("", arg)
    if stripped.startswith("&") or not re.fullmatch(r"[A-Za-z_]\w*", n):
        return n
    return "*" + n


def norm(expr: str) -> str:
    """Canonical spelling of a lock expression: no spaces, no `&`, no outer parens."""
    s = _WS_RE.sub("", expr)
    changed = True
    while changed:
        changed = False
        if s.startswith("&"):
            s, changed = s[1:], True
        m = _CAST_RE.match(s)
        if m and len(s) > m.end():
            s, changed = s[m.end() :], True
        if s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]):
            s, changed = s[1:-1], True
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def class_of(expr: str) -> str:
    """A lock class from its spelling: the last field, or the variable name."""
    s = norm(expr)
    for sep in ("->", "."):
        if sep in s:
            return s.rsplit(sep, 1)[1]
    if "ptl" in s:
        return "pte_lock"
    if "pml" in s:
        return "pmd_lock"
    return s


def _site(node: Node) -> Site:
    return Site(node.start_point[0] + 1, node.start_point[1] + 1, text(node).split("\n")[0])


def _unwrap(node: Node) -> Node:
    while node.type in ("parenthesized_expression", "cast_expression"):
        inner = node.child_by_field_name("value") if node.type == "cast_expression" else None
        if inner is None:
            if node.named_child_count != 1:
                break
            inner = node.named_children[0]
        node = inner
    return node


def _args(call: Node) -> list[Node]:
    args = call.child_by_field_name("arguments")
    return [a for a in args.named_children if a.type != "comment"] if args is not None else []


def _declared_name(decl: Node | None) -> str | None:
    while decl is not None and decl.type != "identifier":
        decl = decl.child_by_field_name("declarator")
    return text(decl) if decl is not None else None


@dataclass(slots=True)
class _FnContext:
    vocab: Vocabulary
    lockvars: dict[str, LockRef] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # var -> lock expression
    origins: dict[str, str] = field(default_factory=dict)  # call text -> lock var

    def resolve(self, expr: str, cls: str | None = None) -> LockRef:
        s = norm(expr)
        if s in self.lockvars:
            ref = self.lockvars[s]
            return LockRef(ref.inst, cls=cls or ref.cls)
        if s in self.aliases:
            target = self.aliases[s]
            return LockRef(target, cls=cls or class_of(target))
        if s in self.origins:
            return self.lockvars[self.origins[s]]
        return LockRef(s, cls=cls or class_of(s))

    def template(self, entry: ApiEntry | GuardEntry, args: list[Node]) -> LockRef:
        tpl = entry.lock
        texts = [text(a) for a in args]
        for i, t in enumerate(texts):
            key = f"{{{i}}}"
            if key in tpl:
                n = norm(t)
                if t.strip().startswith("&") and tpl.startswith(key + "->"):
                    tpl = tpl.replace(key + "->", n + ".")
                tpl = tpl.replace(key, n)
        if "{" in tpl:  # the call has fewer arguments than the row expects
            tpl = re.sub(r"\{\d+\}", "?", tpl)
        return self.resolve(tpl, entry.cls)


def _prepass(body: Node, ctx: _FnContext) -> None:
    """Find local lock pointers: results of lock-returning calls and `&lock` aliases."""
    stack = [body]
    while stack:
        node = stack.pop()
        stack.extend(node.named_children)
        var: str | None = None
        value: Node | None = None
        if node.type == "assignment_expression":
            left = node.child_by_field_name("left")
            op = node.child_by_field_name("operator")
            if left is not None and left.type == "identifier" and (op is None or text(op) == "="):
                var, value = text(left), node.child_by_field_name("right")
        elif node.type == "init_declarator":
            var = _declared_name(node.child_by_field_name("declarator"))
            value = node.child_by_field_name("value")
        elif node.type == "call_expression":
            name = call_name(node)
            entry = ctx.vocab.api.get(name or "")
            if entry is not None and entry.effect in ("out-lock", "out-lockptr"):
                args = _args(node)
                if entry.out_arg < len(args):
                    out = out_name(text(args[entry.out_arg]))
                    ctx.lockvars[out] = LockRef(out, cls=entry.cls or class_of(out))
            continue
        if var is None or value is None:
            continue
        value = _unwrap(value)
        if value.type == "call_expression":
            entry = ctx.vocab.api.get(call_name(value) or "")
            if entry is not None and entry.effect in _LOCK_RETURNING:
                ctx.lockvars[var] = LockRef(var, cls=entry.cls or class_of(var))
                ctx.origins.setdefault(norm(text(value)), var)
        elif value.type == "pointer_expression" and text(value).lstrip().startswith("&"):
            arg = value.child_by_field_name("argument")
            if arg is not None and arg.type in ("field_expression", "identifier"):
                ctx.aliases.setdefault(var, norm(text(arg)))


class _Extractor:
    def __init__(self, ctx: _FnContext) -> None:
        self.ctx = ctx
        self.events: list[Event] = []
        self.atom_call: int | None = None  # id of the call whose result is the atom

    def run(self, node: Node, atom_call: int | None = None) -> list[Event]:
        self.events = []
        self.atom_call = atom_call
        self.ret_call: int | None = None
        self.ret_negated = False
        if node.type == "return_statement" and node.named_children:
            value = _unwrap(node.named_children[0])
            op = value.child_by_field_name("operator") if value.type == "unary_expression" else None
            arg = value.child_by_field_name("argument")
            if op is not None and text(op) == "!" and arg is not None:
                # `return !mmap_read_lock_killable(mm);`
                value, self.ret_negated = _unwrap(arg), True
            self.ret_call = value.id
        self._walk(node, None)
        return self.events

    def _walk(self, node: Node, assign_to: str | None) -> None:
        t = node.type
        if t in _NO_EVAL:
            return
        if t == "call_expression":
            self._call(node, assign_to)
            return
        if t == "assignment_expression":
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            var = text(left) if left is not None and left.type == "identifier" else None
            # `vmf->ptl = pmd_lock(...)`: the lock is named by the field it is stored in
            target = var
            if left is not None and left.type == "field_expression":
                target = norm(text(left))
            op = node.child_by_field_name("operator")
            plain = op is None or text(op) == "="
            if var is not None:
                # the new value is bound before its lock effects are recorded,
                # so `pml = pmd_lock(...)` holds the new `pml`, not a stale one
                const = _const_value(right) if plain else None
                alias = _alias_of(right) if plain and const is None else None
                self.events.append(Assign(var, _site(node), const, alias))
            if right is not None:
                self._walk(
                    right,
                    target if _unwrap(right).type == "call_expression" else None,
                )
            if left is not None:
                if left.type == "field_expression":
                    arg = left.child_by_field_name("argument")
                    if arg is not None:
                        self._walk(arg, None)
                elif left.type != "identifier":
                    self._walk(left, None)
            return
        if t == "init_declarator":
            var = _declared_name(node.child_by_field_name("declarator"))
            init = node.child_by_field_name("value")
            if var is not None:
                const = _const_value(init)
                alias = _alias_of(init) if const is None else None
                self.events.append(Assign(var, _site(node), const, alias))
            if init is not None:
                self._walk(init, var if _unwrap(init).type == "call_expression" else None)
            return
        if t == "update_expression":
            arg = node.child_by_field_name("argument")
            for c in node.named_children:
                self._walk(c, None)
            if arg is not None and arg.type == "identifier":
                self.events.append(Assign(text(arg), _site(node)))
            return
        if t in ("parenthesized_expression", "cast_expression"):
            for c in node.named_children:
                self._walk(c, assign_to)
            return
        for c in node.named_children:
            self._walk(c, None)
        if t == "field_expression":
            fld = node.child_by_field_name("field")
            flag = self.ctx.vocab.fields.get(text(fld)) if fld is not None else None
            if flag is not None:
                self.events.append(Check(flag, norm(text(node)), _site(node)))
        elif t == "identifier":
            flag = self.ctx.vocab.identifiers.get(text(node))
            if flag is not None:
                self.events.append(Check(flag, text(node), _site(node)))

    def _call(self, node: Node, assign_to: str | None) -> None:
        args = _args(node)
        name = call_name(node)
        fn = node.child_by_field_name("function")
        if name is None and fn is not None:
            self._walk(fn, None)
        entry = self.ctx.vocab.api.get(name or "")
        # arguments are evaluated first, except for checks whose argument the
        # check itself is (userfaultfd_wp(vma) is one test, not a field read)
        for a in args:
            self._walk(a, None)
        site = _site(node)
        if entry is None:
            self.events.append(
                Call(
                    name or text(fn) if fn is not None else "?",
                    site,
                    tuple(norm(text(a)) for a in args),
                    result=self._cond_var(node, assign_to),
                    addressed=tuple(
                        i for i, a in enumerate(args) if text(a).lstrip().startswith("&")
                    ),
                )
            )
            return
        self._primitive(entry, node, args, assign_to, site)

    def _cond_var(self, node: Node, assign_to: str | None) -> str | None:
        if assign_to is not None:
            return assign_to
        if self.atom_call == node.id:
            return "#atom"
        if self.ret_call == node.id:
            return "#ret"
        return None

    def _primitive(
        self, e: ApiEntry, node: Node, args: list[Node], assign_to: str | None, site: Site
    ) -> None:
        ctx = self.ctx
        mode: Mode = e.mode  # type: ignore[assignment]
        if e.sleeps:
            self.events.append(Sleep(site, e.name))
        if e.effect == "acquire":
            self.events.append(Acquire(ctx.template(e, args), mode, site, e.name, e.nested))
        elif e.effect == "release":
            self.events.append(Release(ctx.template(e, args), site, e.name))
        elif e.effect == "may-release":
            self.events.append(Release(ctx.template(e, args), site, e.name, maybe=True))
        elif e.effect == "try":
            fail = "zero" if e.success == "nonzero" else "nonzero"
            cv = self._cond_var(node, assign_to)
            if cv == "#ret" and self.ret_negated:
                fail = "nonzero" if fail == "zero" else "zero"
            self.events.append(
                Acquire(ctx.template(e, args), mode, site, e.name, e.nested, cv, fail)  # type: ignore[arg-type]
            )
        elif e.effect == "returns-lock":
            var = assign_to or norm(text(node))
            ref = ctx.lockvars.get(var) or LockRef(var, cls=e.cls or class_of(var))
            cv = self._cond_var(node, assign_to) if e.null_on_fail else None
            self.events.append(Acquire(ref, mode, site, e.name, e.nested, cv, "zero", fresh=True))
        elif e.effect == "out-lock":
            if e.out_arg < len(args):
                out = out_name(text(args[e.out_arg]))
                ref = ctx.lockvars.get(out) or LockRef(out, cls=e.cls or class_of(out))
                cv = self._cond_var(node, assign_to) if e.null_on_fail else None
                self.events.append(
                    Acquire(ref, mode, site, e.name, e.nested, cv, "zero", fresh=True)
                )
        elif e.effect == "downgrade":
            self.events.append(Downgrade(ctx.template(e, args), site, e.name))
        elif e.effect == "claim":
            cmode: Mode | None = mode if e.mode != "excl" else None
            kind = "held" if e.claim == "held" else "not_held"
            self.events.append(
                Claim(kind, ctx.template(e, args), cmode, site, text(node))  # type: ignore[arg-type]
            )
        elif e.effect == "check":
            self.events.append(Check(e.flag, norm(text(node)), site))
        elif e.effect == "act":
            target = norm(text(args[e.target])) if e.target < len(args) else ""
            self.events.append(Act(e.act, target, site))
        # lockptr / out-lockptr / sleeps: nothing more to record


def _reads(node: Node) -> tuple[tuple[str, ...], bool]:
    """Identifiers an expression reads, and whether it is free of side effects."""
    names: set[str] = set()
    pure = True
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.type in ("call_expression", "assignment_expression", "update_expression"):
            pure = False
        if cur.type == "identifier":
            names.add(text(cur))
        elif cur.type == "field_expression":
            arg = cur.child_by_field_name("argument")
            if arg is not None:
                stack.append(arg)
            continue
        stack.extend(cur.named_children)
    return tuple(sorted(names)), pure


def _atom(cond: Node | None, ctx: _FnContext) -> tuple[Atom | None, int | None]:
    """The branch atom, and the id of the call whose result it tests."""
    if cond is None:
        return None, None
    node = _unwrap(cond)
    names, pure = _reads(node)
    txt = norm(text(node))
    if node.type == "binary_expression":
        op = node.child_by_field_name("operator")
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if op is not None and text(op) in ("==", "!=") and left is not None and right is not None:
            a, b = norm(text(left)), norm(text(right))
            # the CFG gives `!=` branches their labels in the `==` sense; the
            # fact text is symmetric so `ptl != pml` and `pml != ptl` agree
            lo, hi = sorted((a, b))
            return Atom("eq", a, b, f"{lo}=={hi}", names, pure), None
    if node.type in ("identifier", "field_expression"):
        return Atom("value", txt, "", txt, names, pure), None
    if node.type == "assignment_expression":
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is not None and left.type == "identifier":
            inner = _unwrap(right) if right is not None else None
            var = text(left)
            return Atom(
                "value", var, "", var, (var,), True
            ), inner.id if inner is not None else None
    if node.type == "call_expression":
        return Atom("value", "#atom", "", txt, names, False), node.id
    return Atom("opaque", "", "", txt, names, pure), None


def _case_atom(switch: Node | None, value: Node) -> Atom:
    """`case V:` of `switch (E)`: the edge into the case knows `E == V`."""
    if switch is None:
        return Atom("opaque")
    expr = _unwrap(switch)
    names, pure = _reads(expr)
    a, b = norm(text(expr)), norm(text(value))
    exact = value.type in ("number_literal", "identifier", "char_literal")
    lo, hi = sorted((a, b))
    return Atom("eq", a, b, f"{lo}=={hi}", names, pure and exact)


def _const_value(node: Node | None) -> str | None:
    """The assigned value when it is a literal or an ALL_CAPS constant."""
    if node is None:
        return None
    val = norm(text(_unwrap(node)))
    return val if is_constant(val) else None


def _alias_of(node: Node | None) -> str | None:
    """`p = q` (casts aside): the variable whose object `p` now names."""
    if node is None:
        return None
    inner = _unwrap(node)
    return text(inner) if inner.type == "identifier" else None


def _guard_events(
    ctx: _FnContext, g_op: str, gtype: str, args: tuple[Node, ...], line: int, col: int
) -> list[Event]:
    entry = ctx.vocab.guards.get(gtype)
    if entry is None:
        return []
    site = Site(line, col, f"guard({gtype})")
    ref = ctx.template(entry, list(args))
    if g_op == "acquire":
        out: list[Event] = []
        if entry.sleeps:
            out.append(Sleep(site, f"guard({gtype})"))
        out.append(Acquire(ref, entry.mode, site, f"guard({gtype})", guard=True))  # type: ignore[arg-type]
        return out
    return [Release(ref, site, f"guard({gtype})", guard=True)]


def lower_function(
    name: str, path: str, fn: Node, vocab: Vocabulary, max_nodes: int = 20000
) -> Function:
    body = fn.child_by_field_name("body")
    assert body is not None
    ctx = _FnContext(vocab)
    _prepass(body, ctx)
    params = function_params(fn.child_by_field_name("declarator"))
    start, end = fn.start_point[0] + 1, fn.end_point[0] + 1
    try:
        syn = build_cfg(body, max_nodes)
    except (BudgetExceeded, RecursionError):  # too large, or nested too deep to walk
        empty = Cfg([IrNode(0, start, "entry"), IrNode(1, end, "exit")], 0, 1)
        return Function(
            name,
            path,
            start,
            end,
            empty,
            params,
            budget_exceeded=True,
            parse_errors=count_errors(fn),
        )
    cfg = _lower_cfg(syn, ctx)
    return Function(
        name,
        path,
        start,
        end,
        cfg,
        params,
        lockvars=dict(ctx.lockvars),
        parse_errors=count_errors(fn),
    )


def _lower_cfg(syn: SynCfg, ctx: _FnContext) -> Cfg:
    ex = _Extractor(ctx)
    nodes: list[IrNode] = []
    for sn in syn.nodes:
        atom: Atom | None
        atom_call: int | None
        if sn.switch is not None and sn.cond is not None:
            atom, atom_call = _case_atom(sn.switch, sn.cond), None
        else:
            atom, atom_call = _atom(sn.cond, ctx) if sn.kind == "branch" else (None, None)
        if atom is not None and sn.inexact:
            atom = replace(atom, factable=False)
        events: list[Event] = []
        for item in sn.items:
            events.extend(ex.run(item, atom_call))
            if sn.kind == "branch" and sn.cond is None and is_macro_head(item):
                # `list_for_each_entry(pos, ...)` gives `pos` a new value each
                # time round; the pack names macros whose cursor is elsewhere
                # (`for_each_thread(p, t)`)
                args = _args(item)
                for i in ctx.vocab.iterators.get(call_name(item) or "", (0,)):
                    if i < len(args) and args[i].type == "identifier":
                        events.append(Assign(text(args[i]), _site(args[i])))
        if sn.guard is not None:
            g = sn.guard
            events.extend(_guard_events(ctx, g.op, g.gtype, g.args, g.line, g.column))
        if sn.kind == "branch" and atom is None:
            atom = Atom("opaque")
        node_text = text(sn.items[0]).split("\n")[0] if sn.items else ""
        nodes.append(IrNode(sn.id, sn.line, sn.kind, events, atom, list(sn.succ), node_text))
    _link_check_vars(nodes)
    return Cfg(nodes, syn.entry, syn.exit)


def _link_check_vars(nodes: list[IrNode]) -> None:
    """`bool wp = userfaultfd_wp(vma); ... if (wp)`: the branch tests that check."""
    held: dict[str, list[tuple[Check, int]]] = {}
    for n in nodes:
        checks = [e for e in n.events if isinstance(e, Check)]
        assigns = [e for e in n.events if isinstance(e, Assign)]
        if checks and len(assigns) == 1 and n.kind == "stmt":
            held.setdefault(assigns[0].var, []).extend((c, n.id) for c in checks)
    if not held:
        return
    for n in nodes:
        if n.kind == "branch" and n.atom is not None and n.atom.kind == "value":
            for check, origin in held.get(n.atom.a, []):
                n.events.append(Check(check.flag, check.expr, check.site, origin))


@dataclass(slots=True)
class FileModel:
    path: str
    functions: list[Function]
    parse_errors: int  # ERROR/MISSING nodes in the whole file


_ITER_DEFINE_RE = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+(\w*(?:for_each|foreach)\w*)\(([^)]*)\)((?:[^\n]*\\\n)*[^\n]*)",
    re.M | re.I,
)
_INNER_ITER_RE = re.compile(r"(\w*(?:for_each|foreach)\w*)\s*\(([^()]*)\)", re.I)


def local_iterators(source: bytes, known: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Cursor arguments of the loop macros a file defines itself.

    A parameter is a cursor when the macro's body assigns it (`pos = ...`,
    `cpu++`) or hands it to another loop macro as that macro's cursor
    (`#define for_each_buffer_cpu(buffer, cpu) for_each_cpu(cpu, ...)`).
    """
    out: dict[str, tuple[int, ...]] = {}
    for m in _ITER_DEFINE_RE.finditer(source):
        name = m.group(1).decode("ascii", "replace")
        params = [p.strip() for p in m.group(2).decode("ascii", "replace").split(",")]
        body = m.group(3).decode("utf-8", "replace").replace("\\\n", " ")
        cursors: list[int] = []
        for i, param in enumerate(params):
            if not re.fullmatch(r"\w+", param):
                continue
            p = re.escape(param)
            if re.search(rf"\(?\b{p}\b\)?\s*=(?!=)", body) or re.search(
                rf"\b{p}\b\)?\s*(?:\+\+|--)", body
            ):
                cursors.append(i)
                continue
            for inner in _INNER_ITER_RE.finditer(body):
                args = [a.strip().strip("()").strip() for a in inner.group(2).split(",")]
                positions = {**known, **out}.get(inner.group(1), (0,))
                if any(j < len(args) and args[j] == param for j in positions):
                    cursors.append(i)
                    break
        if cursors:
            out[name] = tuple(cursors)
    return out


def build_file_model(pf: ParsedFile, vocab: Vocabulary, max_nodes: int = 20000) -> FileModel:
    local = local_iterators(pf.source, vocab.iterators)
    if local:
        vocab = replace(vocab, iterators={**vocab.iterators, **local})
    functions = [
        lower_function(name, pf.path, node, vocab, max_nodes) for name, node in iter_functions(pf)
    ]
    _attach_annotations(pf, functions, vocab)
    return FileModel(pf.path, functions, count_errors(pf.root))


def _attach_annotations(pf: ParsedFile, functions: list[Function], vocab: Vocabulary) -> None:
    """Sparse `__must_hold/__releases/__acquires` on a definition become facts."""
    if not pf.annotations:
        return
    by_line = {f.start_line: f for f in functions}
    for note in pf.annotations:
        fn = None
        for line in range(note.line, note.line - 4, -1):
            fn = by_line.get(line)
            if fn is not None:
                break
        if fn is None:
            continue
        ctx = _FnContext(vocab, dict(fn.lockvars))
        ref = ctx.resolve(note.arg)
        site = Site(note.line, 1, f"{note.kind}({note.arg})")
        if note.kind in ("__must_hold", "__releases"):
            fn.entry_claims = (*fn.entry_claims, Claim("held", ref, None, site, site.text))
        if note.kind == "__releases":
            fn.exit_releases = (*fn.exit_releases, ref)
        if note.kind == "__acquires":
            fn.exit_acquires = (*fn.exit_acquires, ref)
