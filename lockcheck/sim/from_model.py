"""Compile the model of a function under review into a thread program.

The CFG's events become ops: lock operations, flag tests (a branch that
tests a flag reads it from the shared state), page-table acts. Branches the
model cannot decide are non-deterministic choices; `ptl != pml` is decided
by the scenario's lock table; the loop over VMAs visits each VMA once.
Same-file callees are inlined (not recursively), so an act inside a helper
such as `drop_pte_table()` happens at its real place between its locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lockcheck.model.ir import Acquire, Act, Assign, Call, Check, Downgrade, Function, Node, Release
from lockcheck.packs import Vocabulary
from lockcheck.sim.program import Asm, LockTable, Op, OpKind, Program
from lockcheck.sim.scenarios import SimSettings

MAX_INLINE_DEPTH = 4
TRUE_VALUES = frozenset({"true", "1"})
FALSE_VALUES = frozenset({"false", "0", "NULL"})
ACT_OPS: dict[str, OpKind] = {"pt-detach": "detach", "pt-free": "free", "pt-zap": "zap"}


@dataclass(slots=True)
class CompileContext:
    """What every compiler shares within one exploration: locks and flags."""

    settings: SimSettings
    vocab: Vocabulary
    locks: LockTable
    flags: list[str] = field(default_factory=list)
    # locks of the code under review whose class the scenario does not know
    # (each became a lock of its own, named by its spelling): index -> what
    unresolved: dict[int, str] = field(default_factory=dict)

    def flag(self, name: str) -> int:
        if name not in self.flags:
            self.flags.append(name)
        return self.flags.index(name)


def compile_function(
    fn: Function, file_functions: dict[str, Function], ctx: CompileContext, holds: tuple[str, ...]
) -> Program:
    """`holds`: lock classes the caller holds around the call (released after)."""
    asm = Asm()
    body = asm.label()
    asm.emit(Op("start", fn.start_line, f"{fn.name}()"), body)
    loops = _Emitter(asm, ctx, file_functions).function(fn, body, asm.label(), (fn.name,))
    ops = asm.finish(fn.name, fn.path, fn.end_line)
    held: list[tuple[int, ...]] = []
    for cls in holds:
        ref = ctx.locks.resolve(cls, cls, "excl")
        if ref is not None:
            held.append(ref)
    for claim in fn.entry_claims:
        ref = ctx.locks.resolve(claim.lock.cls, claim.lock.inst, claim.mode or "excl")
        if ref is not None:
            held.append(ref)
    return Program(fn.name, fn.path, ops, tuple(held), loops)


class _Emitter:
    def __init__(self, asm: Asm, ctx: CompileContext, others: dict[str, Function]) -> None:
        self.asm = asm
        self.ctx = ctx
        self.others = others
        self.tested: dict[int, frozenset[str]] = {}  # per function: variables branches test

    def function(self, fn: Function, entry: int, exit_: int, stack: tuple[str, ...]) -> bool:
        """Emit `fn` between two labels; True if it walks the VMAs."""
        asm = self.asm
        nodes = fn.cfg.nodes
        lab = {n.id: asm.label() for n in nodes}
        asm.same(entry, lab[fn.cfg.entry])
        loops = False
        for node in nodes:
            if node.id == fn.cfg.exit:
                asm.same(lab[node.id], exit_)
                continue
            cur = lab[node.id]
            cur = self._events(fn, node, cur, stack)
            loops |= self._terminal(fn, node, cur, lab, exit_)
        return loops

    def _events(self, fn: Function, node: Node, cur: int, stack: tuple[str, ...]) -> int:
        asm = self.asm
        assigns = [e.var for e in node.events if isinstance(e, Assign)]
        for ev in node.events:
            op = self._op(fn, node, ev, assigns)
            if op is not None:
                nxt = asm.label()
                asm.place(cur)
                asm.emit(op, nxt)
                cur = nxt
            elif isinstance(ev, Call) and self._inlinable(ev.callee, stack, node):
                ret = asm.label()
                self.function(self.others[ev.callee], cur, ret, (*stack, ev.callee))
                cur = ret
        return cur

    def _inlinable(self, callee: str, stack: tuple[str, ...], node: Node) -> bool:
        if callee not in self.others or callee in stack or len(stack) >= MAX_INLINE_DEPTH:
            return False
        return not self._iterator(node)

    def _iterator(self, node: Node) -> bool:
        its = self.ctx.settings.vma_iterators
        return node.kind == "branch" and any(
            isinstance(e, Call) and e.callee in its for e in node.events
        )

    def _tested(self, fn: Function) -> frozenset[str]:
        key = id(fn)
        if key not in self.tested:
            self.tested[key] = frozenset(
                n.atom.a
                for n in fn.cfg.nodes
                if n.atom is not None and n.atom.kind == "value" and not n.atom.a.startswith("#")
            )
        return self.tested[key]

    def _assign(self, fn: Function, node: Node, ev: Assign) -> Op | None:
        """`done = true;` for a variable a branch tests later; others are dropped."""
        if ev.var not in self._tested(fn):
            return None
        value = getattr(ev, "value", None)  # a constant, when the model records it
        if value in TRUE_VALUES or value in FALSE_VALUES:
            return Op(
                "assign",
                ev.site.line,
                ev.site.text.strip(),
                var=ev.var,
                how="const",
                value=value in TRUE_VALUES,
            )
        sets_it = any(
            (isinstance(e, Acquire) and e.cond_var == ev.var) or isinstance(e, Check)
            for e in node.events
        )
        if sets_it:
            return None
        return Op("assign", ev.site.line, ev.site.text.strip(), var=ev.var, how="clear")

    def _op(self, fn: Function, node: Node, ev: object, assigns: list[str]) -> Op | None:
        ctx = self.ctx
        if isinstance(ev, Assign):
            return self._assign(fn, node, ev)
        if isinstance(ev, Acquire):
            locks = ctx.locks.resolve(ev.lock.cls, ev.lock.inst, ev.mode)
            if locks is None:
                return None
            if ev.lock.cls not in ctx.locks.templates:
                what = f"`{ev.lock.inst.split('@')[0]}` (line {ev.site.line})"
                for index in locks:
                    ctx.unresolved.setdefault(index, what)
            entry = ctx.vocab.api.get(ev.primitive)
            how = "block"
            if ev.cond_var is not None and entry is not None:
                if entry.effect == "try":
                    how = "try"
                elif entry.null_on_fail and ev.lock.cls == "pte_lock":
                    how = "table"
            text = ev.site.text.strip()
            return Op(
                "acquire",
                ev.site.line,
                text,
                locks=locks,
                mode=ev.mode,
                how=how,
                var=ev.cond_var or "",
            )
        if isinstance(ev, Release | Downgrade):
            locks = ctx.locks.resolve(ev.lock.cls, ev.lock.inst, "excl")
            if locks is None:
                return None
            kind: OpKind = "release" if isinstance(ev, Release) else "downgrade"
            return Op(kind, ev.site.line, ev.site.text.strip(), locks=locks)
        if isinstance(ev, Check) and node.kind == "stmt" and len(assigns) == 1:
            return Op("read", ev.site.line, ev.expr, var=assigns[0], flag=ctx.flag(ev.flag))
        if isinstance(ev, Act) and ev.kind in ACT_OPS:
            return Op(ACT_OPS[ev.kind], ev.site.line, ev.site.text.strip())
        return None

    def _terminal(
        self, fn: Function, node: Node, cur: int, lab: dict[int, int], exit_: int
    ) -> bool:
        asm = self.asm
        succ = node.succ
        if not succ:
            asm.same(cur, exit_)
            return False
        if node.kind != "branch" or len(succ) == 1:
            if len(succ) == 1:
                asm.same(cur, lab[succ[0][0]])
                return False
            self._fan_out(node, cur, [lab[s] for s, _ in succ])
            return False
        t = next((s for s, e in succ if e is True), None)
        f = next((s for s, e in succ if e is False), None)
        if t is None or f is None or len(succ) != 2:
            self._fan_out(node, cur, [lab[s] for s, _ in succ])
            return False
        text = node.text.strip()
        if self._iterator(node):
            asm.place(cur)
            asm.emit(Op("branch", node.line, text, how="vma"), lab[t], lab[f])
            return True
        flags = [e for e in node.events if isinstance(e, Check) and e.origin_node is None]
        if flags:
            nxt = asm.label()
            asm.place(cur)
            chk = flags[0]
            asm.emit(
                Op("read", chk.site.line, chk.expr, var="#c", flag=self.ctx.flag(chk.flag)), nxt
            )
            cur = nxt
        asm.place(cur)
        asm.emit(self._branch(fn, node, text, bool(flags)), lab[t], lab[f])
        return False

    def _branch(self, fn: Function, node: Node, text: str, flag: bool) -> Op:
        atom = node.atom
        if flag:
            return Op("branch", node.line, text, how="var", var="#c")
        if atom is not None and atom.kind == "value":
            return Op("branch", node.line, text, how="var", var=atom.a)
        if atom is not None and atom.kind == "eq":
            a, b = fn.lockvars.get(atom.a), fn.lockvars.get(atom.b)
            if a is not None and b is not None:
                la = self.ctx.locks.resolve(a.cls, a.inst, "excl")
                lb = self.ctx.locks.resolve(b.cls, b.inst, "excl")
                if la is not None and lb is not None:
                    eq = tuple(x == y for x, y in zip(la, lb, strict=True))
                    return Op("branch", node.line, text, how="eq", eq=eq)
        return Op("branch", node.line, text, how="nondet")

    def _fan_out(self, node: Node, cur: int, targets: list[int]) -> None:
        """A multi-way branch (switch) as a chain of non-deterministic choices."""
        asm = self.asm
        for target in targets[:-1]:
            nxt = asm.label()
            asm.place(cur)
            asm.emit(Op("branch", node.line, node.text.strip(), how="nondet"), target, nxt)
            cur = nxt
        asm.same(cur, targets[-1])
