"""Breadth-first search over the interleavings of thread programs.

A state is plain nested tuples (threads, locks, flags, pmds, tables), so it
hashes and compares by value. With the reduction on, a transition is one
visible operation (a lock operation or a shared access) followed by the
local operations after it (branches, and accesses to objects no other thread
touches): only visible operations are interleaving points.
Breadth-first order over threads in a fixed order makes the first violation
found a shortest one, and the same one on every run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lockcheck.sim.program import ENTRY_BITS, FREED, LOCAL_KINDS, Op, Program

# thread: (pc, vma, vars, detached table); pc -1 when returned
Thread = tuple[int, int, tuple[tuple[str, int], ...], int]
LockSt = tuple[int, tuple[int, ...], tuple[int, ...]]  # writer, readers, queued writers
State = tuple[
    tuple[Thread, ...], tuple[LockSt, ...], tuple[bool, ...], tuple[int, ...], tuple[int, ...]
]
FREE_LOCK: LockSt = (-1, (), ())
MAX_LOCAL_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class Step:
    thread: int
    op: Op
    change: str
    violation: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    message: str


@dataclass(slots=True)
class Outcome:
    result: str  # violation | holds | bounded
    states: int
    trace: list[Step] = field(default_factory=list)
    violation: Violation | None = None


@dataclass(slots=True)
class _Work:
    """A mutable copy of one state while a transition runs."""

    threads: list[Thread]
    locks: list[LockSt]
    flags: list[bool]
    pmds: list[int]
    tables: list[int]
    steps: list[Step]
    violation: Violation | None = None

    def copy(self) -> _Work:
        return _Work(
            list(self.threads),
            list(self.locks),
            list(self.flags),
            list(self.pmds),
            list(self.tables),
            list(self.steps),
            self.violation,
        )

    def freeze(self) -> State:
        return (
            tuple(self.threads),
            tuple(self.locks),
            tuple(self.flags),
            tuple(self.pmds),
            tuple(self.tables),
        )


class Explorer:
    def __init__(
        self,
        programs: list[Program],
        lock_names: list[str],
        rw_locks: set[int],
        flag_names: list[str],
        nvmas: int,
        invariants: frozenset[str],
        *,
        reduce: bool = True,
        max_states: int = 200_000,
        max_depth: int = 10_000,
        exhaustive: bool = False,
    ) -> None:
        self.programs = programs
        self.lock_names = lock_names
        self.rw = rw_locks
        self.flag_names = flag_names
        self.nvmas = nvmas
        self.invariants = invariants
        self.reduce = reduce
        self.max_states = max_states
        self.truncated = False  # a step's local code was cut short: not exhaustive
        self.max_depth = max_depth
        self.exhaustive = exhaustive  # keep going after the first violation
        self.local = [self._local_ops(t) for t in range(len(programs))]

    def _local_ops(self, t: int) -> frozenset[int]:
        """Ops of thread `t` that commute with every other thread's ops.

        Branches, and accesses to objects (a lock, a flag, the page tables)
        that no other thread touches: with the reduction on they join the
        step before them instead of being interleaving points.
        """
        if not self.reduce:
            return frozenset()
        others: set[tuple[str, int]] = set()
        for u, prog in enumerate(self.programs):
            if u != t:
                for op in prog.ops:
                    others |= _objects(op)
                # locks its caller holds are released when it returns
                others |= {("lock", i) for per_vma in prog.entry_held for i in per_vma}
        return frozenset(
            pc
            for pc, op in enumerate(self.programs[t].ops)
            if op.kind in LOCAL_KINDS or (_objects(op) and not _objects(op) & others)
        )

    # --- naming, for the steps of a trace
    def lock(self, op: Op, vma: int) -> int:
        return op.locks[max(vma, 0)]

    def lname(self, i: int) -> str:
        return self.lock_names[i]

    def tname(self, t: int) -> str:
        return f"CPU{t}"

    def initial(self) -> State:
        threads: list[Thread] = []
        locks = [FREE_LOCK] * len(self.lock_names)
        for t, prog in enumerate(self.programs):
            vma = -1 if prog.vma_loop else 0
            threads.append((0, vma, (), -1))
            for per_vma in prog.entry_held:
                i = per_vma[0]
                w, readers, q = locks[i]
                if w == -1 and not readers:
                    locks[i] = (t, (), q)
        nflags = len(self.flag_names) * self.nvmas
        return (
            tuple(threads),
            tuple(locks),
            (False,) * nflags,
            tuple(range(self.nvmas)),
            (0,) * self.nvmas,
        )

    # --- the search
    def run(self) -> Outcome:
        init = self.initial()
        parent: dict[State, tuple[State | None, tuple[Step, ...], int]] = {init: (None, (), 0)}
        queue: deque[State] = deque([init])
        bounded = False
        found: Outcome | None = None
        while queue:
            s = queue.popleft()
            depth = parent[s][2]
            if depth >= self.max_depth:
                bounded = True
                continue
            moved = False
            for t in range(len(self.programs)):
                for work in self._transitions(s, t):
                    moved = True
                    if work.violation is not None:
                        if found is None:
                            trace = self._path(parent, s) + work.steps
                            found = Outcome("violation", 0, trace, work.violation)
                        if not self.exhaustive:
                            break
                        continue
                    ns = work.freeze()
                    if ns not in parent:
                        if len(parent) >= self.max_states:
                            bounded = True
                            continue
                        parent[ns] = (s, tuple(work.steps), depth + 1)
                        queue.append(ns)
                if found is not None and not self.exhaustive:
                    found.states = len(parent)
                    return found
            if not moved and "deadlock" in self.invariants and self._live(s) and found is None:
                blocked, violation = self._deadlock(s)
                found = Outcome("violation", 0, self._path(parent, s) + blocked, violation)
                if not self.exhaustive:
                    found.states = len(parent)
                    return found
        if found is not None:
            found.states = len(parent)
            return found
        bounded = bounded or self.truncated
        return Outcome("bounded" if bounded else "holds", len(parent))

    @staticmethod
    def _path(
        parent: dict[State, tuple[State | None, tuple[Step, ...], int]], s: State
    ) -> list[Step]:
        chunks: list[tuple[Step, ...]] = []
        cur: State | None = s
        while cur is not None:
            prev, steps, _ = parent[cur]
            chunks.append(steps)
            cur = prev
        return [step for chunk in reversed(chunks) for step in chunk]

    @staticmethod
    def _live(s: State) -> bool:
        return any(th[0] >= 0 for th in s[0])

    def _deadlock(self, s: State) -> tuple[list[Step], Violation]:
        """Every live thread blocked: one marked step per thread saying on what."""
        parts = []
        steps = []
        for t, (pc, vma, _, _) in enumerate(s[0]):
            if pc < 0:
                continue
            op = self.programs[t].ops[pc]
            i = self.lock(op, vma)
            owners = ", ".join(self.tname(o) for o in self._holders(s[1][i]))
            steps.append(Step(t, op, f"blocks on {self.lname(i)}, held by {owners}", True))
            parts.append(f"{self.tname(t)} waits for {self.lname(i)} held by {owners}")
        return steps, Violation("deadlock", "deadlock: " + "; ".join(parts))

    @staticmethod
    def _holders(lk: LockSt) -> list[int]:
        w, readers, _ = lk
        return [w] if w >= 0 else list(readers)

    # --- transitions
    def _transitions(self, s: State, t: int) -> list[_Work]:
        pc = s[0][t][0]
        if pc < 0:
            return []
        op = self.programs[t].ops[pc]
        work = _Work(list(s[0]), list(s[1]), list(s[2]), list(s[3]), list(s[4]), [])
        if op.kind in LOCAL_KINDS:
            outs = self._local(work, t, op)
        else:
            done = self._visible(work, t, op)
            if done is None:
                return []
            outs = [done]
        if not self.reduce:
            return outs
        result: list[_Work] = []
        for w in outs:
            self._run_locals(w, t, result)
        return result

    def _run_locals(self, work: _Work, t: int, out: list[_Work]) -> None:
        local = self.local[t]
        # a local loop ends the step where it comes round on the same path
        pending: list[tuple[_Work, set[Thread]]] = [(work, set())]
        # branches of local code that meet again (the same state at the same
        # point) are followed once: without this, k unknown conditions in a
        # row made 2^k copies of one step (`--vmas 10` never finished)
        queued: set[State] = {work.freeze()}
        emitted: set[State] = set()
        expansions = 0
        while pending:
            expansions += 1
            if expansions > MAX_LOCAL_STEPS:
                self.truncated = True
                break
            w, seen = pending.pop()
            for _ in range(MAX_LOCAL_STEPS):
                pc = w.threads[t][0]
                if w.violation is not None or pc < 0 or pc not in local:
                    break
                if w.threads[t] in seen:
                    break
                seen.add(w.threads[t])
                op = self.programs[t].ops[pc]
                if op.kind in LOCAL_KINDS:
                    first, *rest = self._local(w, t, op)
                    for r in reversed(rest):
                        key = r.freeze()
                        if key not in queued:
                            queued.add(key)
                            pending.append((r, set(seen)))
                    w = first
                elif self._visible(w, t, op) is None or w.threads[t][0] == pc:
                    break  # blocked (only on itself: nobody else takes this lock)
            key = w.freeze()
            if key not in emitted or w.violation is not None:
                emitted.add(key)
                out.append(w)

    @staticmethod
    def _goto(
        w: _Work,
        t: int,
        pc: int,
        *,
        vma: int | None = None,
        env: tuple[tuple[str, int], ...] | None = None,
        slot: int | None = None,
    ) -> None:
        _, old_vma, old_vars, old_slot = w.threads[t]
        w.threads[t] = (
            pc,
            old_vma if vma is None else vma,
            old_vars if env is None else env,
            old_slot if slot is None else slot,
        )

    def _local(self, w: _Work, t: int, op: Op) -> list[_Work]:
        if op.kind == "assign":
            vars_ = w.threads[t][2]
            if op.how == "const":
                vars_ = self._set_var(vars_, op.var, int(op.value))
            else:
                vars_ = tuple(kv for kv in vars_ if kv[0] != op.var)
            self._goto(w, t, op.nxt, env=vars_)
            return [w]
        return self._branch(w, t, op)

    def _branch(self, w: _Work, t: int, op: Op) -> list[_Work]:
        pc, vma, vars_, _ = w.threads[t]
        if op.how == "vma":
            if vma + 1 < self.nvmas:
                w.steps.append(Step(t, op, f"next VMA: vma{vma + 1}"))
                self._goto(w, t, op.nxt, vma=vma + 1)
            else:
                w.steps.append(Step(t, op, "no more VMAs"))
                self._goto(w, t, op.alt)
            return [w]
        value: bool | None = None
        if op.how == "eq":
            value = op.eq[max(vma, 0)]
        elif op.how == "var":
            known = dict(vars_)
            if op.var in known:
                value = bool(known[op.var])
        kept = tuple(kv for kv in vars_ if not kv[0].startswith("#"))
        if value is not None:
            said = "true" if value else "false"
            if op.how == "eq":
                said = "one lock (split locks off)" if value else "two different locks"
            last = w.steps[-1] if w.steps else None
            if op.var.startswith("#") and last is not None and last.op.line == op.line:
                # the test of a value just read: one step, as the C reads
                w.steps[-1] = Step(t, last.op, f"{last.change} (test {said})")
            else:
                w.steps.append(Step(t, op, said))
            self._goto(w, t, op.nxt if value else op.alt, env=kept)
            return [w]
        other = w.copy()
        w.steps.append(Step(t, op, "assume true"))
        self._goto(w, t, op.nxt, env=kept)
        other.steps.append(Step(t, op, "assume false"))
        self._goto(other, t, op.alt, env=kept)
        return [w, other]

    def _can_get(self, lk: LockSt, t: int, mode: str, queued_ok: bool) -> bool:
        w, readers, q = lk
        if mode == "read":
            return w == -1 and not q
        return w == -1 and not readers and (not q or (queued_ok and q[0] == t))

    @staticmethod
    def _set_var(
        vars_: tuple[tuple[str, int], ...], var: str, v: int
    ) -> tuple[tuple[str, int], ...]:
        if not var:
            return vars_
        return tuple(sorted({**dict(vars_), var: v}.items()))

    def _visible(self, w: _Work, t: int, op: Op) -> _Work | None:
        """Run one visible op; None when it is blocked."""
        pc, vma, vars_, slot = w.threads[t]
        v = max(vma, 0)
        kind = op.kind
        if kind == "start":
            w.steps.append(Step(t, op, f"enters {self.programs[t].name}()"))
            self._goto(w, t, op.nxt)
        elif kind == "acquire":
            i = op.locks[v]
            lk = w.locks[i]
            if op.how == "table" and w.pmds[v] < 0:
                w.steps.append(Step(t, op, "page table gone: NULL, nothing taken"))
                self._goto(w, t, op.nxt, env=self._set_var(vars_, op.var, 0))
                return w
            if op.how == "try":
                ok = self._can_get((lk[0], lk[1], ()), t, op.mode, False)
                if op.mode == "read":
                    ok = ok and not lk[2]
                if not ok:
                    w.steps.append(Step(t, op, f"trylock fails: {self.lname(i)} is busy"))
                    self._goto(w, t, op.nxt, env=self._set_var(vars_, op.var, 0))
                    return w
            elif not self._can_get(lk, t, op.mode, True):
                if op.mode != "read" and i in self.rw and t not in lk[2]:
                    w.locks[i] = (lk[0], lk[1], (*lk[2], t))
                    w.steps.append(Step(t, op, f"waits for {self.lname(i)} (queued writer)"))
                    return w
                return None
            w_, readers, q = w.locks[i]
            if op.mode == "read":
                w.locks[i] = (w_, tuple(sorted((*readers, t))), q)
            else:
                w.locks[i] = (t, readers, tuple(x for x in q if x != t))
            mode = f" ({op.mode})" if op.mode in ("read", "write") else ""
            w.steps.append(Step(t, op, f"takes {self.lname(i)}{mode}"))
            self._goto(w, t, op.nxt, env=self._set_var(vars_, op.var, 1))
        elif kind in ("release", "downgrade"):
            i = op.locks[v]
            wr, readers, q = w.locks[i]
            if wr == t:
                if kind == "release":
                    w.locks[i] = (-1, readers, q)
                else:
                    w.locks[i] = (-1, tuple(sorted((*readers, t))), q)
            elif t in readers and kind == "release":
                rs = list(readers)
                rs.remove(t)
                w.locks[i] = (wr, tuple(rs), q)
            elif "bad-release" in self.invariants:
                msg = f"{self.tname(t)} releases {self.lname(i)}, which it does not hold"
                w.steps.append(Step(t, op, msg, True))
                w.violation = Violation("bad-release", msg)
                return w
            verb = "releases" if kind == "release" else "downgrades"
            w.steps.append(Step(t, op, f"{verb} {self.lname(i)}"))
            self._goto(w, t, op.nxt)
        elif kind == "read":
            value = w.flags[op.flag * self.nvmas + v]
            name = self.flag_names[op.flag]
            w.steps.append(Step(t, op, f"reads {name} of vma{v}: {'set' if value else 'clear'}"))
            self._goto(w, t, op.nxt, env=self._set_var(vars_, op.var, int(value)))
        elif kind == "set":
            w.flags[op.flag * self.nvmas + v] = op.value
            name = self.flag_names[op.flag]
            w.steps.append(Step(t, op, f"{'sets' if op.value else 'clears'} {name} on vma{v}"))
            self._goto(w, t, op.nxt)
        elif kind in ("install", "zap", "detach"):
            self._table_op(w, t, op, v, slot)
        elif kind == "free":
            self._free(w, t, op, slot)
        elif kind == "exit":
            self._exit(w, t, op)
        return w

    def _table_op(self, w: _Work, t: int, op: Op, v: int, slot: int) -> None:
        table = w.pmds[v]
        if table < 0:
            w.steps.append(Step(t, op, f"no page table under vma{v}'s pmd: nothing to do"))
            self._goto(w, t, op.nxt)
            return
        if op.kind == "install":
            w.tables[table] |= ENTRY_BITS[op.var]
            what = "a pte marker" if op.var == "marker" else "a pte"
            w.steps.append(Step(t, op, f"installs {what} in table T{table}"))
        elif op.kind == "zap":
            w.tables[table] &= FREED
            w.steps.append(Step(t, op, f"clears the entries of table T{table}"))
        else:
            w.pmds[v] = -1
            w.steps.append(Step(t, op, f"detaches table T{table} from vma{v}'s pmd"))
            self._goto(w, t, op.nxt, slot=table)
            return
        self._goto(w, t, op.nxt)

    def _free(self, w: _Work, t: int, op: Op, slot: int) -> None:
        if slot < 0:
            w.steps.append(Step(t, op, "no table detached: nothing freed"))
            self._goto(w, t, op.nxt)
            return
        bits = w.tables[slot]
        w.tables[slot] = bits | FREED
        self._goto(w, t, op.nxt, slot=-1)
        held = [n for n, b in (("a pte marker", 2), ("a pte", 1)) if bits & b]
        if held and "table-loss" in self.invariants:
            msg = f"table T{slot} freed while it holds {' and '.join(held)}"
            w.steps.append(
                Step(t, op, f"frees table T{slot}, which holds {' and '.join(held)}", True)
            )
            w.violation = Violation("table-loss", msg)
            return
        w.steps.append(Step(t, op, f"frees table T{slot}"))

    def _exit(self, w: _Work, t: int, op: Op) -> None:
        entry = {per_vma[0] for per_vma in self.programs[t].entry_held}
        leaked = []
        for i, lk in enumerate(w.locks):
            if t in self._holders(lk) or t in lk[2]:
                if i not in entry:
                    leaked.append(i)
                wr, readers, q = lk
                w.locks[i] = (
                    -1 if wr == t else wr,
                    tuple(r for r in readers if r != t),
                    tuple(x for x in q if x != t),
                )
        slot = w.threads[t][3]
        self._goto(w, t, -1)
        if slot >= 0 and w.tables[slot] & ~FREED and "table-loss" in self.invariants:
            msg = f"table T{slot} was detached holding entries and is never freed"
            w.steps.append(Step(t, op, f"returns: {msg}", True))
            w.violation = Violation("table-loss", msg)
            return
        if leaked and "held-at-exit" in self.invariants:
            names = ", ".join(self.lname(i) for i in leaked)
            msg = f"{self.tname(t)} returns from {self.programs[t].name}() holding {names}"
            w.steps.append(Step(t, op, msg, True))
            w.violation = Violation("held-at-exit", msg)
            return
        w.steps.append(Step(t, op, "returns"))


def _objects(op: Op) -> set[tuple[str, int]]:
    """The shared objects an op touches; start and exit count as touching none."""
    if op.kind in ("acquire", "release", "downgrade"):
        locks = {("lock", i) for i in op.locks}
        return locks | {("tables", 0)} if op.how == "table" else locks
    if op.kind in ("read", "set"):
        return {("flag", op.flag)}
    if op.kind in ("install", "zap", "detach", "free"):
        return {("tables", 0)}
    return set()
