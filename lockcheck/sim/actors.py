"""Actor models: small, clean C parsed with pycparser, compiled to programs.

An actor is what races with the code under review (a userfaultfd ioctl, a
fault, munmap). It is written as kernel-style C against the same lock
vocabulary as the packs, so a reviewer reads it like kernel code. Each
non-static function in an actor file is one thread. Conditions the compiler
cannot read become non-deterministic choices, as in the code under review.
"""

from __future__ import annotations

import re
from pathlib import Path

from pycparser import c_ast, c_generator, c_parser

from lockcheck.errors import InputError
from lockcheck.inputs.files import read_regular
from lockcheck.model.extract import class_of, norm
from lockcheck.packs import packs_dir
from lockcheck.sim.from_model import ACT_OPS, CompileContext
from lockcheck.sim.program import Asm, Op, OpKind, Program

# Kernel types the actors use, so that pycparser can parse them unpreprocessed.
PRELUDE = "".join(
    f"typedef int {t};\n"
    for t in ("pte_t", "pmd_t", "spinlock_t", "bool", "pgoff_t", "pgtable_t", "vm_fault_t")
)
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_WHERE_RE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::\d+)?: (?P<msg>.*)$", re.S)
_NULLS = frozenset({"NULL", "0", "false"})


def _blank_comments(src: str) -> str:
    """pycparser wants preprocessed C: drop comments, keep the line numbers."""
    return _COMMENT_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), src)


def parse_actor(path: Path) -> c_ast.FileAST:
    try:
        src = read_regular(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"actor model {path}: cannot read: {exc}") from None
    parser = c_parser.CParser()
    text = f'{PRELUDE}#line 1 "{path}"\n{_blank_comments(src)}'
    try:
        return parser.parse(text, str(path))
    except RecursionError:
        raise InputError(f"actor model {path}: nested too deeply to parse") from None
    except c_parser.ParseError as exc:
        msg = str(exc)
        m = _WHERE_RE.match(msg)
        if m is None:  # some pycparser errors name only the file: add the line
            line = _error_line(parser)
            detail = msg.split(": ", 1)[-1]
            raise InputError(f"{path}:{line}: malformed actor model: {detail}") from None
        raise InputError(
            f"{m['file']}:{m['line']}: malformed actor model: {m['msg'].strip()}"
        ) from None


def _error_line(parser: c_parser.CParser) -> str:
    """The line of the token the parser stopped at (pycparser 3 keeps a stream)."""
    stream = getattr(parser, "_tokens", None)
    tok = stream.peek() if stream is not None and hasattr(stream, "peek") else None
    line = getattr(tok, "lineno", None) or getattr(parser.clex, "_lineno", None)
    return str(line) if line else "?"


def _label(path: Path) -> str:
    """Built-in actors are named from the packs' parent, the same on every machine."""
    base = packs_dir().parent
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def compile_actor(path: Path, ctx: CompileContext) -> list[Program]:
    ast = parse_actor(path)
    out: list[Program] = []
    for ext in ast.ext:
        if isinstance(ext, c_ast.FuncDef) and "static" not in (ext.decl.storage or []):
            out.append(_ActorCompiler(path, ctx, _label(path)).function(ext))
    if not out:
        raise InputError(f"{path}:1: actor model defines no (non-static) function")
    return out


def _line(node: c_ast.Node) -> int:
    coord = node.coord
    return int(coord.line) if coord is not None and coord.line else 0


class _ActorCompiler:
    def __init__(self, path: Path, ctx: CompileContext, label: str) -> None:
        self.path = path
        self.label = label
        self.ctx = ctx
        self.asm = Asm()
        self.gen = c_generator.CGenerator()
        self.labels: dict[str, int] = {}
        self.exit = self.asm.label()

    def c(self, node: c_ast.Node) -> str:
        return " ".join(self.gen.visit(node).split())

    def fail(self, node: c_ast.Node, what: str) -> InputError:
        return InputError(f"{self.path}:{_line(node)}: actor model: {what}")

    def function(self, fd: c_ast.FuncDef) -> Program:
        name = fd.decl.name
        body = self.asm.label()
        self.asm.emit(Op("start", _line(fd), f"{name}()"), body)
        end = self.stmt(fd.body, body)
        self.asm.same(end, self.exit)
        last = max((_line(n) for n in _walk(fd.body)), default=_line(fd))
        return Program(name, self.label, self.asm.finish(name, self.label, last + 1))

    def emit(self, cur: int, op: Op) -> int:
        nxt = self.asm.label()
        self.asm.place(cur)
        self.asm.emit(op, nxt)
        return nxt

    def goto_label(self, name: str) -> int:
        return self.labels.setdefault(name, self.asm.label())

    # statements: each takes the label to start at and returns the label after
    def stmt(self, node: c_ast.Node | None, cur: int) -> int:
        if node is None or isinstance(node, c_ast.EmptyStatement):
            return cur
        if isinstance(node, c_ast.Compound):
            for item in node.block_items or []:
                cur = self.stmt(item, cur)
            return cur
        if isinstance(node, c_ast.Decl):
            if isinstance(node.init, c_ast.Node):
                return self.expr(node.init, cur, node.name)
            return cur
        if isinstance(node, c_ast.Assignment | c_ast.FuncCall):
            return self.expr(node, cur, None)
        if isinstance(node, c_ast.If):
            yes, no, after = self.asm.label(), self.asm.label(), self.asm.label()
            self.cond(node.cond, cur, yes, no)
            self.asm.same(self.stmt(node.iftrue, yes), after)
            self.asm.same(self.stmt(node.iffalse, no), after)
            return after
        if isinstance(node, c_ast.Return):
            if node.expr is not None:
                cur = self.expr(node.expr, cur, None)
            self.asm.same(cur, self.exit)
            return self.asm.label()  # unreachable
        if isinstance(node, c_ast.Goto):
            self.asm.same(cur, self.goto_label(node.name))
            return self.asm.label()
        if isinstance(node, c_ast.Label):
            here = self.goto_label(node.name)
            self.asm.same(cur, here)
            return self.stmt(node.stmt, here)
        raise self.fail(node, f"unsupported statement `{type(node).__name__}`")

    def expr(self, node: c_ast.Node, cur: int, assign_to: str | None) -> int:
        ctx = self.ctx
        if isinstance(node, c_ast.Assignment):
            lv, rv = node.lvalue, node.rvalue
            if isinstance(lv, c_ast.StructRef) and node.op == "=":
                flag = ctx.vocab.fields.get(lv.field.name)
                if flag is not None:
                    value = self.c(rv) not in _NULLS
                    op = Op("set", _line(node), self.c(node), flag=ctx.flag(flag), value=value)
                    return self.emit(cur, op)
            if node.op in ("|=", "&="):
                for ident in _walk(rv):
                    if isinstance(ident, c_ast.ID) and ident.name in ctx.vocab.identifiers:
                        flag_i = ctx.flag(ctx.vocab.identifiers[ident.name])
                        op = Op(
                            "set", _line(node), self.c(node), flag=flag_i, value=node.op == "|="
                        )
                        return self.emit(cur, op)
            target = lv.name if isinstance(lv, c_ast.ID) else None
            return self.expr(rv, cur, target)
        if isinstance(node, c_ast.FuncCall):
            return self.call(node, cur, assign_to)
        if isinstance(node, c_ast.Cast):
            return self.expr(node.expr, cur, assign_to)
        return cur  # constants, reads of locals: nothing shared happens

    def call(self, node: c_ast.FuncCall, cur: int, var: str | None) -> int:
        ctx = self.ctx
        name = node.name.name if isinstance(node.name, c_ast.ID) else ""
        args = list(node.args.exprs) if node.args is not None else []
        line, text = _line(node), self.c(node)
        entry = ctx.vocab.api.get(name)
        # pack acts the simulator has no operation for (a pte written, a page
        # referenced) and entry reads fall through to the scenario's own tables
        if entry is not None and (
            entry.effect == "read" or entry.effect == "act" and entry.act not in ACT_OPS
        ):
            entry = None
        if entry is not None:
            if entry.effect in ("acquire", "release", "downgrade", "try"):
                inst = entry.lock
                for i, a in enumerate(args):
                    inst = inst.replace(f"{{{i}}}", norm(self.c(a)))
                inst = norm(inst)
                cls = entry.cls or class_of(inst)
                kind: OpKind = "acquire"
                if entry.effect == "release":
                    kind = "release"
                elif entry.effect == "downgrade":
                    kind = "downgrade"
                locks = ctx.locks.resolve(cls, inst, entry.mode)
                if locks is None:
                    return cur
                how = "try" if entry.effect == "try" else "block"
                return self.emit(
                    cur,
                    Op(
                        kind,
                        line,
                        text,
                        locks=locks,
                        mode=entry.mode,
                        how=how,
                        var=var or "",
                    ),
                )
            if entry.effect in ("out-lock", "returns-lock"):
                if entry.effect == "out-lock":
                    if entry.out_arg >= len(args):
                        raise self.fail(node, f"`{name}` needs {entry.out_arg + 1} arguments")
                    inst = norm(self.c(args[entry.out_arg]))
                else:
                    inst = var or name
                cls = entry.cls or class_of(inst)
                locks = ctx.locks.resolve(cls, inst, entry.mode)
                if locks is None:
                    return cur
                how = "table" if entry.null_on_fail and cls == "pte_lock" else "block"
                return self.emit(
                    cur,
                    Op("acquire", line, text, locks=locks, mode=entry.mode, how=how, var=var or ""),
                )
            if entry.effect == "check":
                op = Op("read", line, text, var=var or "#c", flag=ctx.flag(entry.flag))
                return self.emit(cur, op)
            if entry.effect == "act" and entry.act in ACT_OPS:
                return self.emit(cur, Op(ACT_OPS[entry.act], line, text))
            return cur
        act = ctx.settings.acts.get(name)
        if act in ACT_OPS:
            return self.emit(cur, Op(ACT_OPS[act], line, text))
        if name in ctx.settings.entries:
            marker = any(
                isinstance(n, c_ast.FuncCall)
                and isinstance(n.name, c_ast.ID)
                and n.name.name in ctx.settings.marker_values
                for a in args
                for n in _walk(a)
            )
            return self.emit(cur, Op("install", line, text, var="marker" if marker else "pte"))
        return cur

    def cond(self, node: c_ast.Node, cur: int, yes: int, no: int) -> None:
        """Branch to `yes` or `no`, with short-circuit evaluation."""
        ctx = self.ctx
        asm = self.asm
        line, text = _line(node), self.c(node)
        if isinstance(node, c_ast.UnaryOp) and node.op == "!":
            self.cond(node.expr, cur, no, yes)
            return
        if isinstance(node, c_ast.BinaryOp) and node.op in ("&&", "||"):
            mid = asm.label()
            if node.op == "&&":
                self.cond(node.left, cur, mid, no)
            else:
                self.cond(node.left, cur, yes, mid)
            self.cond(node.right, mid, yes, no)
            return
        if isinstance(node, c_ast.BinaryOp) and node.op in ("==", "!="):
            for a, b in ((node.left, node.right), (node.right, node.left)):
                if self.c(b) in _NULLS:
                    if node.op == "==":
                        self.cond(a, cur, no, yes)
                    else:
                        self.cond(a, cur, yes, no)
                    return
        var = ""
        if isinstance(node, c_ast.ID):
            var = node.name
        elif isinstance(node, c_ast.FuncCall):
            before = len(asm.ops)
            cur = self.call(node, cur, "#atom")
            if len(asm.ops) > before and asm.ops[-1].var in ("#atom", "#c"):
                var = asm.ops[-1].var
        elif isinstance(node, c_ast.StructRef) and node.field.name in ctx.vocab.fields:
            flag = ctx.flag(ctx.vocab.fields[node.field.name])
            cur = self.emit(cur, Op("read", line, text, var="#c", flag=flag))
            var = "#c"
        elif isinstance(node, c_ast.BinaryOp) and node.op == "&":
            for ident in _walk(node):
                if isinstance(ident, c_ast.ID) and ident.name in ctx.vocab.identifiers:
                    flag = ctx.flag(ctx.vocab.identifiers[ident.name])
                    cur = self.emit(cur, Op("read", line, text, var="#c", flag=flag))
                    var = "#c"
                    break
        how = "var" if var else "nondet"
        asm.place(cur)
        asm.emit(Op("branch", line, text, how=how, var=var), yes, no)


def _walk(node: c_ast.Node) -> list[c_ast.Node]:
    out = [node]
    for _, child in node.children():
        out.extend(_walk(child))
    return out
