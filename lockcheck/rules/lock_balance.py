"""Kind `lock-balance`: a lock taken in a function is released on every way out.

What it finds: a lock acquired in the function that is still held on some
path that leaves it (a return, or the end of a loop iteration that goes
round again), while other paths release it.

Why it is a bug: the caller (or the next iteration) does not know the lock
is held: it deadlocks on the next acquisition or runs with the lock held.

It also finds a release on a path where the lock is not held: a double
unlock, or an unlock placed before the lock is taken (a test moved above
its lock). Locks the caller holds are inferred from releases of locks the
function never took, but not when the function takes the same lock while
that supposed caller's lock would still be held: that is inconsistent.

Limits: a function that returns holding a lock on every path is a locking
helper (its summary says so) and is not reported. One that returns holding
it on some paths only is quiet when there is evidence that this is its
contract: a sparse annotation (`__acquires`, `__cond_acquires`), a pack row
for its name, a name that says it locks (`*_lock`, `*trylock*`, `lock_*`),
a name that wraps a locking helper's, an undo partner, a header comment
that says so, or a caller in the file that releases the lock after calling
it; and its return value must not report a failure (NULL, -Exxx) with the
lock held. When the returns do tell the caller (held exactly on the success
returns, released on every failure return), less is needed: a comment
naming the releasing function, a function of the file used with this one
(calling it, called with it, or registered with it by one initializer, as
an ops table's `unprepare` is with its `prepare`) that releases the same
lock (reached from the same parameter, the same file-scope lock, or the
lock of the arguments it passes) without taking it, a caller releasing it
under the name the locals stand for, or a lock taken right beside one with
such evidence. A helper that returns an entry with the lock held and NULL
without it, run by an ops table whose own callback releases a lock of that
name without taking it (a seq_file iterator's stop), is quiet too. So
is a lock handed out where the caller finds it: the lock or its saved
interrupt state stored through an out-parameter, its owner stored through
a parameter by a function of the file, a callback called on the arm of a
test whose other arm releases it, or a caller that hands it on to one that
releases it. Without such evidence the return value does not excuse the path.

Some locks are held across calls by a protocol the code records. A flag
the caller or the next call reads (`*locked`, `*cookie`, a static of the
function, a count in a per-CPU context that a paired handler counts down
beside its unlock) that is the lock's trylock result or is cleared beside
its release, and is set on every way to a return that keeps the lock, says
the lock is held on purpose; a release under that flag, handed back by the
caller, is the continuation's. A function that takes the lock where an
unchanged argument is non-zero and releases the caller's where it is zero
is an open/close pair (a gate), unless a failure return keeps the lock. A
lock the header comment says the caller holds ("Called with vc->lock
held") is held on entry and on return where no way out released it. A
path that keeps the lock without setting the flag, or clears the flag and
keeps the lock, is still reported.
"""

from __future__ import annotations

import re

from lockcheck.analysis.function import FunctionFacts, return_value
from lockcheck.analysis.state import Held, LockState, base_inst, base_var, mode_of_release
from lockcheck.analysis.summaries import (
    addressed_params,
    is_failure_value,
    signals_holding,
    substitute,
)
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, Assign, Call, Claim, Handover, LockRef, Release, is_constant
from lockcheck.order.claims import (
    Comment,
    comments,
    header_comment,
    prose,
    prose_claims,
    sentences,
)
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import caller_visible, stored_for_caller

_WORD_RE = re.compile(r"[a-z]+")
# pack effects of a function that returns holding a lock
_LOCKING_EFFECTS = ("acquire", "try", "returns-lock", "out-lock")


# a function's name word -> the words that name its undo
_UNDO = {
    "get": ("put",),
    "map": ("unmap",),
    "lock": ("unlock",),
    "trylock": ("unlock",),
    "start": ("end", "finish", "stop", "commit"),
    "walk": ("end",),
    "begin": ("end", "commit"),
    "can": ("cancel",),
    "enter": ("exit", "leave"),
    "acquire": ("release",),
    "grab": ("release", "drop"),
    "hold": ("release", "drop"),
    "pin": ("unpin",),
    "block": ("unblock",),
    "reserve": ("commit", "complete", "unreserve", "cancel"),
    "suspend": ("resume",),
}


# the caller's own bookkeeping of what is locked, set by the function:
# `path->locks[level] = BTRFS_WRITE_LOCK;`, `req->locked = true;`
_RECORDED_RE = re.compile(
    r"^\s*(\w+)\s*(?:->|\.)(?:\w+(?:->|\.))*\w*lock\w*\s*(?:\[[^\]]*\])?\s*="
    r"\s*(?:[A-Z][A-Z0-9_]*|true|1)\s*;"
)

# a header comment's sentence that says the function leaves the lock held:
# "On success, returns with exec_update_lock held", "... and locks mutex"
_HOLDS_RE = re.compile(r"\b(?:lock|locks|locked|held|holding|acquires?|takes?|grabs?)\b", re.I)
_NOT_HOLDS_RE = re.compile(
    r"\b(?:unlock\w*|releas\w*|drops?|dropped|dropping|without|must|caller\w*|called|no|not|never)\b",
    re.I,
)
_LOCKED_RE = re.compile(r"\b(?:locked|held)\b", re.I)
_NEGATED_RE = re.compile(r"\b(?:without|no|not|never)\b", re.I)
_FAILURE_RE = re.compile(r"\b(?:fail\w*|errors?|unsuccessful\w*)\b", re.I)
_CALLED_RE = re.compile(r"\b([A-Za-z_]\w*)\(\)")
_RETURNS_RE = re.compile(r"\b(?:returns?|returning|success|succeeds?|exits?)\b", re.I)
# a lock named only by its kind (`mutex`, `c->lock`) is named by many sentences
_KIND_NAMES = frozenset({"lock", "mutex", "sem", "rwsem", "spinlock", "ptl", "rwlock"})

# a local's value as the function writes it: `x = expr;`, `struct t *x = expr;`
# (not `x->f = ...`, `x == y`, `x += 1`)
_DEF_RE = re.compile(
    r"^\s*(?:[A-Za-z_][\w\s]*?[\s*]+)?([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*;\s*$", re.S
)
# a name the expression reads: not a field (`->x`, `.x`)
_USE_RE = re.compile(r"(?<![\w>.])[A-Za-z_]\w*(?!\w)")
_CAST_RE = re.compile(r"^\((?:const)?(?:struct|union)?\w+\*+\)")
_POSTFIX_RE = re.compile(r"^[A-Za-z_]\w*(?:(?:->|\.)\w+|\[[^\[\]]*\]|\([^()]*\))*$")
# an owner stored where others find it: `state->cur = obj;`
_STORE_RE = re.compile(r"^\s*(\w+(?:(?:->|\.)\w+)+)\s*=\s*(\w+)\s*;\s*$")

# a flag written: `*locked = true;`, `state.in_msg = false;`, `*cookie = cookie;`
_FLAG_WRITE_RE = re.compile(
    r"^\s*(\*\s*[A-Za-z_]\w*|[A-Za-z_]\w*(?:\s*(?:->|\.)\s*\w+)*)\s*=(?!=)\s*(.+?)\s*;\s*$", re.S
)

_ZEROS = frozenset({"0", "false", "NULL"})

# a count going up or down: `ctx->active++;`, `--st.users;`
_FLAG_STEP_RE = re.compile(
    r"^\s*(?:(\+\+|--)\s*([A-Za-z_]\w*(?:\s*(?:->|\.)\s*\w+)*)"
    r"|([A-Za-z_]\w*(?:\s*(?:->|\.)\s*\w+)*)\s*(\+\+|--))\s*;\s*$"
)

# a loop macro (`list_for_each_entry(pos, ...)`): it sets its cursor arguments
_LOOP_MACRO_RE = re.compile(r"\b\w*for_each\w*\s*\(")


_RETURN_RE = re.compile(r"^\s*return\b")
# the variable a store's left side starts from: `cip` in `(*cip)->vc[n] = x`
_ROOT_RE = re.compile(r"^[\s(*]*([A-Za-z_]\w*)")
_UNDO_WORDS = frozenset(u for undo in _UNDO.values() for u in undo)


def _undo_sibling(me: str, other: str) -> bool:
    """Is `other` named as the undo of `me`: the same name with its last
    word replaced by an undo (`fifo_chan_lookup` -> `fifo_chan_put`)? Users
    of the pair may live in other files. One shared word (`slot_take`,
    `slot_release`) names a family of operations on an object, not a pair."""
    mine = me.lower().split("_")
    theirs = other.lower().split("_")
    return (
        len(theirs) == len(mine)
        and theirs[:-1] == mine[:-1]
        and len([w for w in mine[:-1] if w]) >= 2
        and theirs[-1] in _UNDO_WORDS
        and mine[-1] not in _UNDO_WORDS
    )


def _changed(text: str, start: int, end: int) -> bool:
    """Is the name at text[start:end] set, changed in place or taken by
    address (`(x = f())`, `x++`, `x += n`, `&x` but not `&x->f`)?"""
    before, after = text[:start].rstrip(), text[end:].lstrip()
    if after.startswith(("->", ".", "[")):
        return False  # `++x->n`, `&x->f`: a member
    if re.match(r"(?:\+\+|--|(?:[-+*/|&^%]|<<|>>)?=(?!=))", after):
        return True
    return before.endswith(("++", "--")) or (before.endswith("&") and not before.endswith("&&"))


def _inside(text: str, start: int) -> str:
    """The text from `start` up to the parenthesis that closes the one before it."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return text[start:]


def _top_level(expr: str) -> list[str]:
    """`expr` split at the commas outside any brackets."""
    parts: list[str] = []
    depth = 0
    cur = 0
    for i, c in enumerate(expr):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(expr[cur:i])
            cur = i + 1
    parts.append(expr[cur:])
    return parts


_LOCK_WORDS = frozenset({"lock", "locks", "trylock", "locked", "relock", "spinlock"})
_MODE_WORDS = frozenset(
    {"read", "write", "irq", "irqsave", "bh", "nested", "killable", "interruptible"}
)


def _bare_field(cls: str) -> str:
    """The member a lock ends in, without its index (`t->locks[s->i]` -> `locks`)."""
    out: list[str] = []
    depth = 0
    for c in cls:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return _field("".join(out))


def _field(cls: str) -> str:
    """The member a lock class ends in (`jheads[jhead].wbuf.io_mutex` -> `io_mutex`)."""
    return re.split(r"->|\.", cls)[-1]


# unlike tree.py's _LOCKING_NAME_RE: first/last word, `locked` too (`iget_locked` returns it held)
def lock_named(name: str) -> bool:
    """Does a function's name say that it takes a lock? Its first or last
    word is a lock word (`pmd_lock`, `lock_vma_under_rcu`, `mm_take_all_locks`),
    or one is followed by a lock mode at the end (`anon_vma_lock_read`,
    `folio_lock_anon_vma_read`), or it says trylock (`folio_trylock_flag`,
    `mlx5_esw_try_lock`). A lock word elsewhere (`uses_lock_helper`) is not
    enough."""
    words = _WORD_RE.findall(name.lower())
    if not words:
        return False
    pairs = zip(words, words[1:], strict=False)
    if "trylock" in words or any(a == "try" and b == "lock" for a, b in pairs):
        return True
    if words[0] in _LOCK_WORDS or words[-1] in _LOCK_WORDS:
        return True
    return words[-1] in _MODE_WORDS and any(w in _LOCK_WORDS for w in words[:-1])


class LockBalance(Rule):
    kind = "lock-balance"
    optional = {"skip_classes": list}

    def __init__(self, spec):  # type: ignore[no-untyped-def]
        super().__init__(spec)
        self.skip = frozenset(spec.params.get("skip_classes", []))
        self._comments: tuple[bytes, list[Comment]] | None = None
        self._defs: dict[int, tuple[object, dict[str, str | None]]] = {}
        self._calls: tuple[object, dict[str, frozenset[str]]] | None = None
        self._family: tuple[object, list[frozenset[str]]] | None = None
        self._lines: list[str] = []
        self._functions: dict[str, FunctionFacts] = {}

    def run(self, ctx: RuleContext) -> None:
        self._defs = {}
        self._lines = ctx.source.decode("utf-8", "replace").splitlines()
        self._functions = {f.fn.name: f for f in ctx.facts.functions}
        for fn in ctx.facts.functions:
            if fn.budget_exceeded:
                continue
            self._exits(ctx, fn)
            self._reacquire(ctx, fn)
            self._unheld(ctx, fn)

    def _releases(self, fn: FunctionFacts) -> set[str]:
        """Instances (by their base spelling) the function itself releases."""
        return {ev.lock.inst for evs in fn.events for ev in evs if isinstance(ev, Release)}

    # -- function exits ---------------------------------------------------

    def _exits(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        cfg = fn.fn.cfg
        exits = [(n, st) for n, st, _, _ in fn.exits]
        if not exits:
            return
        released = self._releases(fn)
        annotated = set(fn.fn.exit_acquires)
        candidates: dict[LockRef, Held] = {}
        for _nid, st in exits:
            for ref, held in st.may.items():
                if held.assumed or held.escaped or ref in annotated or ref in fn.entry_locks:
                    continue
                if ref.cls in self.skip or base_inst(ref.inst) not in released:
                    continue  # never released here: a lock-taking helper, not a leak
                # ways out of one node come in an order that may follow the
                # hash seed: the report points at the earliest acquisition
                if ref not in candidates or held.site < candidates[ref].site:
                    candidates[ref] = held
        reported: list[tuple[int, str]] = []  # (way out, lock): one report per lock
        for ref, held in sorted(candidates.items(), key=lambda kv: (kv[1].site, kv[0].inst)):
            holding = [
                (n, ret) for n, st, _, ret in fn.exits if ref in st.may and not st.may[ref].escaped
            ]
            base = base_inst(ref.inst)
            # ways out without the lock that one of its releases leads to (paths
            # with equal lock states are merged, so "surely released" is lost
            # where an error path that never took it joins the success path)
            after_release = self._reached_by_release(fn, base)
            releasing = [
                (n, ret)
                for n, st, rel, ret in fn.exits
                if ref not in st.may
                and (base in rel or n in after_release)
                and not self._renamed_held(st, ref, held)
            ]
            if not releasing:
                # returns holding it wherever it took it (a locking helper), or
                # the paths that do not hold it never took it
                continue
            if self._recorded(fn, ref):
                continue  # held in the caller's own bookkeeping: it releases by that
            if self._held_on_entry(ctx, fn, ref) and not any(
                base in rel for _n, st, rel, _ in fn.exits if ref not in st.may
            ):
                # documented as the caller's: held on entry and on return, and
                # no way out released it (the others never took it again)
                continue
            if self._flag_records(ctx, fn, ref, {n for n, _ in holding}):
                continue  # a flag the caller or the next call reads says it is held
            if self._keyed(fn, base) is not None and not any(
                is_failure_value(ret) for _, ret in holding
            ):
                continue  # opened by one value of an argument, closed by the other
            held_vals = {ret for _, ret in holding}
            free_vals = {ret for _, ret in releasing}
            void = held_vals | free_vals == {""}
            signals = signals_holding(held_vals, free_vals) or self._one_of(
                fn, ref, candidates, holding, releasing
            )
            if self._helper_evidence(ctx, fn, ref, void) and (
                signals or not any(is_failure_value(v) for v in held_vals)
            ):
                # a lock-returning helper that does not return a failure
                # (NULL, -Exxx, false) with the lock held
                continue
            if signals and (
                self._success_evidence(ctx, fn, ref)
                or self._companion(ctx, fn, ref, candidates, holding)
            ):
                # held exactly when the returns say success, and something
                # beyond the returns says that is the contract
                continue
            leak = min(holding, key=lambda h: cfg.nodes[h[0]].line)[0]
            if any(
                n == leak and st.same_lock(prev, ref.inst)
                for n, prev in reported
                for m, st in exits
                if m == leak and ref in st.may
            ):
                continue  # the same lock under another name (`ptl == pml`), already reported
            reported.append((leak, ref.inst))
            line = cfg.nodes[leak].line
            name = base_inst(ref.inst)
            ctx.report(
                fn,
                held.site,
                f"`{name}` is still held when `{fn.fn.name}()` returns at line {line}, "
                f"but released on other paths",
                held=(name,),
                related=(Related(line, 1, "returns here with the lock held"),),
            )

    @staticmethod
    def _one_of(
        fn: FunctionFacts,
        ref: LockRef,
        candidates: dict[LockRef, Held],
        holding: list[tuple[int, str]],
        releasing: list[tuple[int, str]],
    ) -> bool:
        """Do the returns tell the caller that it holds one of two locks? An
        iterator's first step returns an entry of the RCU list under
        `rcu_read_lock()` or one of the locked list under its spinlock, and
        NULL with neither: a way out that released this lock but holds the
        other one is a success too."""
        others = [r for r in candidates if r != ref]
        if not others:
            return False
        ways = {(n, ret) for n, ret in releasing}
        also: set[str] = set()
        free: set[str] = set()
        for n, st, _, ret in fn.exits:
            if (n, ret) not in ways or ref in st.may:
                continue
            if any(r in st.may and not st.may[r].escaped for r in others):
                also.add(ret)
            else:
                free.add(ret)
        return bool(also) and signals_holding({ret for _, ret in holding} | also, free)

    @staticmethod
    def _renamed_held(st: LockState, ref: LockRef, held: Held) -> bool:
        """Is the lock this acquisition took still held here, under the name
        its pointer had before a reassignment (`parent = NULL;` after
        locking `parent->d_lock` returns with it held as `parent->d_lock@N`)?"""
        base = base_inst(ref.inst)
        return any(
            r != ref and base_inst(r.inst) == base and h.site == held.site and not h.escaped
            for r, h in st.may.items()
        )

    @staticmethod
    def _reached_by_release(fn: FunctionFacts, base: str) -> set[int]:
        out: set[int] = set()
        for nid, evs in enumerate(fn.events):
            if nid not in out and any(
                isinstance(ev, Release) and base_inst(ev.lock.inst) == base for ev in evs
            ):
                out |= fn.reachable_from(nid)
        return out

    def _helper_evidence(
        self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef, void: bool = False
    ) -> bool:
        """Is returning with `ref` held on some paths this function's contract?

        Only what the kernel says counts: the pack lists it as taking a
        lock, it hands the lock back, its name says so, its undo releases a
        lock, or a caller here releases the lock after it. A void function
        cannot tell its caller which paths hold it: only the pack, or the
        lock handed back where the caller looks, or its undo speak for it.
        """
        name = fn.fn.name
        entry = ctx.vocab.api.get(name)
        if entry is not None and entry.effect in _LOCKING_EFFECTS:
            return True
        if self._handed_back(fn, ref) or self._sparse_marked(fn, ref):
            return True
        if self._recorded_by_callee(ctx, fn, ref):
            return True
        if self._counterpart_releases(ctx, fn, ref) or self._documented(ctx, fn, ref):
            return True
        if self._wraps_locker(ctx, fn, ref) or self._left_to_callback(fn, ref):
            return True
        if void:
            return False
        if self._flags_handed_out(fn, ref):
            return True
        return lock_named(name) or self._caller_releases(ctx, fn, ref)

    def _recorded_by_callee(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """With the lock held, its owner is given to a function of the file
        that stores it where a parameter of this function leads (`if
        (!can_join(pvc, cip)) unlock(pvc); ...` with `cip->vc[n] = pvc;`
        inside): the caller finds the object there, locked, and releases it,
        as when this function stores it itself."""
        owner = base_var(base_inst(ref.inst))
        if not owner or owner in fn.fn.params:
            return False
        by_name = {f.fn.name: f for f in ctx.facts.functions if not f.budget_exceeded}
        holding = {n for n, st, _, _ in fn.exits if ref in st.may and not st.may[ref].escaped}
        for nid, ev, st in fn.iter_events():
            if not isinstance(ev, Call) or ref not in st.may or ev.callee not in by_name:
                continue
            if not holding & fn.reachable_from(nid) or owner not in ev.args:
                continue
            stored = self._stores_param(by_name, by_name[ev.callee], ev.args.index(owner), 3)
            for j in stored:
                if j < len(ev.args) and base_var(ev.args[j].lstrip("&*")) in fn.fn.params:
                    return True
        return False

    def _stores_param(
        self, by_name: dict[str, FunctionFacts], fn: FunctionFacts, i: int, depth: int
    ) -> set[int]:
        """The places of the parameters through which `fn` stores its
        parameter `i` (`cip->vc[sub] = vc;`), itself or by a callee."""
        params = fn.fn.params
        if i >= len(params) or depth <= 0:
            return set()
        mine = params[i]
        out: set[int] = set()
        for evs in fn.events:
            for ev in evs:
                if isinstance(ev, Handover) and ev.var == mine:
                    m = _ROOT_RE.match(ev.site.text)
                    if m and m.group(1) in params:
                        out.add(params.index(m.group(1)))
                elif isinstance(ev, Call) and ev.callee in by_name and mine in ev.args:
                    callee = by_name[ev.callee]
                    if callee is fn:
                        continue
                    for j in self._stores_param(by_name, callee, ev.args.index(mine), depth - 1):
                        if j < len(ev.args) and ev.args[j] in params:
                            out.add(params.index(ev.args[j]))
        return out

    @staticmethod
    def _left_to_callback(fn: FunctionFacts, ref: LockRef) -> bool:
        """One branch calls through a function pointer with the lock held and
        the other releases it (`if (ops) ret = ops->attach(dev); else
        rcu_read_unlock();`): the callback is to release it, as its
        implementation in another file does."""
        cfg = fn.fn.cfg
        base = base_inst(ref.inst)
        releases = sorted(
            nid
            for nid, evs in enumerate(fn.events)
            if any(isinstance(ev, Release) and base_inst(ev.lock.inst) == base for ev in evs)
        )
        holding = {n for n, st, _, _ in fn.exits if ref in st.may and not st.may[ref].escaped}
        for nid, ev, st in fn.iter_events():
            if not isinstance(ev, Call) or ref not in st.may or "(" in ev.callee:
                continue
            if "->" not in ev.callee and "." not in ev.callee:
                continue  # a function of its own name: its summary speaks for it
            later = fn.reachable_from(nid)
            if not holding & later:
                continue
            for r in releases:
                after = fn.reachable_from(r)
                if r in later or nid in after:
                    continue  # not the two arms of one test
                # the arms join again before the function returns (an early
                # error return that unlocks is no alternative to the call)
                if any(
                    n != cfg.exit and not _RETURN_RE.match(cfg.nodes[n].text)
                    for n in after & later
                ):
                    return True
        return False

    @staticmethod
    def _holding_store(fn: FunctionFacts, ref: LockRef, stores: set[int]) -> bool:
        """Is one of the `stores` made with `ref` held, on the way to a
        return that still holds it?"""
        holding = {n for n, st, _, _ in fn.exits if ref in st.may and not st.may[ref].escaped}
        for nid in sorted(stores):
            st = fn.state_in[nid]
            if st is not None and ref in st.may and holding & fn.reachable_from(nid):
                return True
        return False

    def _flags_handed_out(self, fn: FunctionFacts, ref: LockRef) -> bool:
        """The interrupt state saved when the lock was taken goes to the
        caller with the lock (`*rflags = flags;`, or saved straight into the
        caller's structure, `spin_lock_irqsave(&p->lock, state->flags)`):
        the caller is to restore it, so it is to release the lock."""
        saved: set[str] = set()
        for ev in self._acquisitions(fn, ref):
            if "irqsave" not in ev.primitive or len(ev.args) < 2:
                continue
            flags = ev.args[1]
            if caller_visible(fn, flags):
                return True
            saved.add(flags)
        return bool(saved) and self._holding_store(fn, ref, stored_for_caller(fn, saved))

    @staticmethod
    def _wraps_locker(ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """The lock is taken by a locking helper whose whole name is part of
        this function's (`ovl_lock_rename_workdir()` takes it with
        `lock_rename()`): a wrapper, with the helper's contract."""
        me = f"_{fn.fn.name}_"
        base = base_inst(ref.inst)
        for evs in fn.events:
            for ev in evs:
                if not isinstance(ev, Acquire) or base_inst(ev.lock.inst) != base:
                    continue
                name = ev.primitive
                if name == fn.fn.name or "_" not in name or f"_{name}_" not in me:
                    continue
                entry = ctx.vocab.api.get(name)
                if lock_named(name) or (entry is not None and entry.effect in _LOCKING_EFFECTS):
                    return True
        return False

    def _documented(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """The comment right above the definition says the function leaves
        the lock held, naming it ("On success, this function returns with
        exec_update_lock held for writing", "returns element and locks
        mutex"), or naming its owner as locked on return ("return true and
        have that dentry's inode and parent both locked"). A sentence about
        what the caller must hold, about dropping the lock, or a negated one
        does not count; a lock named only by its kind (`mutex`) needs the
        sentence to speak of the return as well."""
        parts = re.split(r"->|\.", base_inst(ref.inst))
        last = parts[-1].strip("()*& ")
        head = self._header_comment(ctx, fn) if len(last) > 1 else None
        if head is None:
            return False
        if self._documented_undo(ctx, fn, ref, head):
            return True
        spelt = re.escape(last)
        if ref.cls == "rcu":  # "with rcu_read_lock() held", "in an RCU read-side section"
            spelt = r"rcu(?:_read_lock)?"
        named = re.compile(rf"\b{spelt}\b", re.I if ref.cls == "rcu" else 0)
        # the object that holds the lock, said to be locked on return ("return
        # true and have that dentry's inode and parent both locked")
        owner = parts[-2].strip("()*& ") if len(parts) > 1 else ""
        whose = re.compile(rf"\b{re.escape(owner)}\b") if len(owner) > 1 else None
        return any(
            _HOLDS_RE.search(s)
            and not _NOT_HOLDS_RE.search(s)
            and (
                (named.search(s) and (last not in _KIND_NAMES or _RETURNS_RE.search(s)))
                or (
                    whose is not None
                    and whose.search(s) is not None
                    and _LOCKED_RE.search(s) is not None
                    and _RETURNS_RE.search(s) is not None
                )
            )
            for s in sentences(prose(head.text))
        )

    @staticmethod
    def _documented_undo(
        ctx: RuleContext, fn: FunctionFacts, ref: LockRef, head: Comment, named: bool = False
    ) -> bool:
        """The comment says something stays locked and names the function
        that unlocks it ("the journal head stays locked and later has to be
        unlocked using 'release_head()'"), and that function releases a lock
        of the same class: the pair is the contract, as with a named undo.

        `named`: the returns already tell success (held) from failure (not
        held), so naming the partner is enough ("stays that way until
        end_claim() is called", "Use with end_claim()"), unless the comment
        says it is not left locked other than on failure."""
        said = list(sentences(prose(head.text)))
        if named and any(
            _HOLDS_RE.search(s) and _NEGATED_RE.search(s) and not _FAILURE_RE.search(s)
            for s in said
        ):
            return False
        for s in said:
            if (not named and not _HOLDS_RE.search(s)) or _NEGATED_RE.search(s):
                continue
            for name in _CALLED_RE.findall(s):
                summ = ctx.facts.summaries.get(name) if name != fn.fn.name else None
                # its lock is spelt from its own parameters (`c->jheads[h].wbuf.io_mutex`
                # for `wbuf->io_mutex`): the field names the class
                if summ is not None and any(
                    _field(r.cls) == _field(ref.cls) for r in (*summ.releases, *summ.may_release)
                ):
                    return True
        return False

    def _header_comment(self, ctx: RuleContext, fn: FunctionFacts) -> Comment | None:
        if self._comments is None or self._comments[0] is not ctx.source:
            self._comments = (ctx.source, comments(ctx.source))
        return header_comment(fn, self._comments[1])

    @staticmethod
    def _sparse_marked(fn: FunctionFacts, ref: LockRef) -> bool:
        """`__release(x)` (or `__acquire(x)`) where the lock is held: the
        author tells sparse the function leaves with it on purpose."""
        return any(
            isinstance(ev, Call) and ev.callee in ("__release", "__acquire") and ref in st.may
            for _nid, ev, st in fn.iter_events()
        )

    def _handed_back(self, fn: FunctionFacts, ref: LockRef) -> bool:
        """The lock is handed to the caller: returned (`return ptl;`, or the
        object that holds it), or stored where the caller finds it
        (`fw->ptl = ptl;` with `fw` a parameter)."""
        inst = base_inst(ref.inst)
        for n, st, _, ret in fn.exits:
            if ref not in st.may:
                continue
            # as described on the path (`vma:nonzero`) and as written: an
            # address the path knows (`new_base = &cpu_base->clock_base[i]`)
            # replaces the name in the description
            for value in (ret.rsplit(":", 1)[0], return_value(fn.fn.cfg.nodes[n].text)):
                if value and (inst == value or inst.startswith((value + "->", value + "."))):
                    return True  # `return ptl;`, `return si;` holding `si->lock`
        for param in fn.fn.params:
            if inst.startswith((f"(*{param})", f"*{param}->", f"{param}[0]")):
                return True  # `(*keyp)->sem`: the object the caller's variable holds
        if LockBalance._inside_returned(fn, ref):
            return True
        name = re.escape(inst)
        store = re.compile(rf"^\s*(\w+)\s*(?:->|\.)[\w.>\[\]-]*\s*=\s*{name}\s*;")
        for node in fn.fn.cfg.nodes:
            m = store.match(node.text)
            if m and m.group(1) in fn.fn.params:
                return True
        # `*ptlp = ptl;`, `*lockp = &obj->lock;`: through an out-parameter,
        # made while holding it on the way to a return that holds it
        spelt = {inst, "&" + inst, f"&({inst})"}
        spelt |= {name for name, value in self._definitions(fn).items() if value in spelt}
        return self._holding_store(fn, ref, stored_for_caller(fn, spelt))

    @staticmethod
    def _inside_returned(fn: FunctionFacts, ref: LockRef) -> bool:
        """The lock lives in the private part of the object returned
        (`f = JFFS2_INODE_INFO(inode); mutex_lock(&f->sem); ... return
        inode;`, or through `container_of(obj, ...)`): the caller gets it
        with the object."""
        owner = base_var(base_inst(ref.inst))
        if not re.fullmatch(r"[A-Za-z_]\w*", owner or ""):
            return False
        for _n, st, _, ret in fn.exits:
            value = ret.rsplit(":", 1)[0]
            if ref not in st.may or not re.fullmatch(r"[A-Za-z_]\w*", value):
                continue
            derived = re.compile(
                rf"^\s*{re.escape(owner)}\s*=\s*\w+\(\s*{re.escape(value)}\s*[,)]"
            )
            if any(derived.match(node.text) for node in fn.fn.cfg.nodes):
                return True
        return False

    @staticmethod
    def _recorded(fn: FunctionFacts, ref: LockRef) -> bool:
        """Right after taking the lock, the function marks it held in its
        caller's structure (`btrfs_tree_lock(eb); path->locks[level] =
        BTRFS_WRITE_LOCK;`): the caller releases what the record says,
        whatever this function returns."""
        for nid, ev, _st in fn.iter_events():
            if not isinstance(ev, Acquire) or base_inst(ev.lock.inst) != base_inst(ref.inst):
                continue
            for succ, _ in fn.fn.cfg.nodes[nid].succ:
                m = _RECORDED_RE.match(fn.fn.cfg.nodes[succ].text)
                if m and m.group(1) in fn.fn.params:
                    return True
        return False

    @staticmethod
    def _counterpart_releases(ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """The undo of this function (`page_ext_get` -> `page_ext_put`,
        `__pte_offset_map` -> `pte_unmap`, `folio_walk_start` -> `folio_walk_end`)
        releases a lock: the pair is the contract, the caller calls both."""
        words = _WORD_RE.findall(fn.fn.name.lower())
        if not words:
            return False
        undo = {u for w in words for u in _UNDO.get(w, ())}
        if not undo:
            return False
        for name, summ in ctx.facts.summaries.items():
            if name == fn.fn.name:
                continue
            other = _WORD_RE.findall(name.lower())
            if not other:
                continue
            # `ocfs2_start_trans` -> `ocfs2_commit_trans`, `start_creating` ->
            # `end_creating`: the same name with one word undone
            swapped = len(other) == len(words) and [
                (a, b) for a, b in zip(words, other, strict=True) if a != b
            ]
            one_word = bool(
                swapped and len(swapped) == 1 and swapped[0][1] in _UNDO.get(swapped[0][0], ())
            )
            if not (one_word or (other[0] == words[0] and undo & set(other))):
                continue
            dropped = (*summ.releases, *summ.may_release)
            # its lock is often reached another way (`args->lock`); a pair found
            # by a shared prefix alone (`ocfs2_reserve_*`, `ocfs2_commit_*`)
            # must at least release a lock of the same class
            if dropped and (one_word or any(r.cls == ref.cls for r in dropped)):
                return True
        return False

    def _caller_releases(
        self,
        ctx: RuleContext,
        fn: FunctionFacts,
        ref: LockRef,
        rooted: bool = False,
        depth: int = 0,
    ) -> bool:
        """A caller in the file releases `ref` (in its own terms) after calling
        `fn`, or hands it back in turn to a caller that does (a cache
        lookup returning the entry its match helper left locked).

        `rooted`: the lock is spelt from what the function's locals were set
        to (`mm->lock` after `mm = current->mm` is `current->mm->lock`)."""
        inst = base_inst(ref.inst)
        if rooted:
            spelt = self._rooted(fn, inst)
            if spelt is None or spelt == inst:
                return False
            inst = spelt
        returned = {ret.rsplit(":", 1)[0] for _, st, _, ret in fn.exits if ref in st.may}
        owner = base_var(inst.lstrip("*"))
        assigned = {ev.var for evs in fn.events for ev in evs if isinstance(ev, Assign)}
        through = LockBalance._through_params(fn, inst)
        for other in ctx.facts.functions:
            if other is fn:
                continue
            for nid, ev, _st in other.iter_events():
                if not isinstance(ev, Call) or ev.callee != fn.fn.name:
                    continue
                want: set[str] = set()
                addressed = addressed_params(fn.fn.params, ev.addressed)
                mine = substitute(inst, fn.fn.params, ev.args, frozenset(), addressed)
                if mine is not None and (rooted or owner in fn.fn.params or owner not in assigned):
                    want.add(mine)  # a parameter's lock, or a global (`report_lock`)
                if through is not None:  # through a local copy of a parameter's member
                    lifted = substitute(through, fn.fn.params, ev.args, frozenset(), addressed)
                    if lifted is not None:
                        want.add(lifted)
                if ev.result and not ev.result.startswith("#") and owner in returned:
                    # `*w->ptlp` returned as `w`: the caller's `*found->ptlp`
                    stars = inst[: len(inst) - len(inst.lstrip("*"))]
                    want.add(stars + ev.result + inst[len(stars) + len(owner) :])
                if not want:
                    continue
                later = other.reachable_from(nid)
                for rnid in later:
                    for rev in other.events[rnid]:
                        if (
                            isinstance(rev, Release)
                            and not rev.maybe
                            and rev.primitive != fn.fn.name  # the call's own summary
                            and base_inst(rev.lock.inst) in want
                        ):
                            return True
                if depth < 2 and self._passed_up(ctx, other, want, depth):
                    return True
        return False

    def _passed_up(
        self, ctx: RuleContext, caller: FunctionFacts, want: set[str], depth: int
    ) -> bool:
        """Does `caller` return the lock (spelt `want` in its terms) to its
        own caller, handing it back, and does one of those release it?"""
        passed = sorted(
            {
                r
                for _n, st, _, _ in caller.exits
                for r, h in st.may.items()
                if base_inst(r.inst) in want and not h.escaped and not h.assumed
            },
            key=lambda r: r.inst,
        )
        return any(
            self._handed_back(caller, r) and self._caller_releases(ctx, caller, r, depth=depth + 1)
            for r in passed
        )

    # -- helpers that return holding a lock on success ----------------------

    def _success_evidence(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """For a function whose returns tell success (lock held) from failure
        (released): is there more than the returns to say this is its
        contract? Its header comment names the function that releases the
        lock; another function of the file releases the same lock reached
        through the same argument without taking it (an iterator's next and
        stop, an unlock helper); or a caller releases it, spelt from what the
        function's locals were set to."""
        head = self._header_comment(ctx, fn)
        if head is not None and self._documented_undo(ctx, fn, ref, head, named=True):
            return True
        return (
            self._released_elsewhere(ctx, fn, ref)
            or self._caller_releases(ctx, fn, ref, rooted=True)
            or self._released_by_member(ctx, fn, ref)
        )

    def _companion(
        self,
        ctx: RuleContext,
        fn: FunctionFacts,
        ref: LockRef,
        candidates: dict[LockRef, Held],
        holding: list[tuple[int, str]],
    ) -> bool:
        """Taken right next to another lock and held on exactly the same ways
        out (`rcu_read_lock(); spin_lock(&obj->lock);`): the two make one
        locked state, and evidence that the function returns the other held
        speaks for both."""
        mine = self._acquired_at(fn, ref)
        ways = set(holding)
        nodes = fn.fn.cfg.nodes
        for other in sorted(candidates, key=lambda r: r.inst):
            if other == ref:
                continue
            theirs = self._acquired_at(fn, other)
            if not any(
                a == b or [s for s, _ in nodes[x].succ] == [y]
                for a in mine
                for b in theirs
                for x, y in ((a, b), (b, a))
            ):
                continue
            if ways != {
                (n, ret)
                for n, st, _, ret in fn.exits
                if other in st.may and not st.may[other].escaped
            }:
                continue
            if self._helper_evidence(ctx, fn, other) or self._success_evidence(ctx, fn, other):
                return True
        return False

    @staticmethod
    def _acquired_at(fn: FunctionFacts, ref: LockRef) -> set[int]:
        base = base_inst(ref.inst)
        return {
            nid
            for nid, evs in enumerate(fn.events)
            for ev in evs
            if isinstance(ev, Acquire) and base_inst(ev.lock.inst) == base
        }

    def _released_elsewhere(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """Another function of the file, used with this one (it calls this
        one, a function calls both, or one initializer registers both, or
        functions that call them: an iterator's next step, an ops table's
        `unprepare`; or its name is this one's with the last word an undo,
        `*_lookup` and `*_put`, called by users in other files), releases
        this lock without taking it (its caller's
        lock), spelt the same from the same parameter at the same place
        (`cur->priv->tbl->b[cur->priv->pos].lock` from `cur`, the first
        parameter of both), from where this function stores the lock's
        owner (`w->cur = obj;` then `w->cur->lock`), as the same global
        lock, or, when it calls this function, as the lock this function
        takes from the arguments it passes (`walk_idx(seq->private)` taking
        `it->lock`, released as `seq->private->lock`)."""
        inst = base_inst(ref.inst)
        names = [inst]
        owner = base_var(inst)
        for node in fn.fn.cfg.nodes:
            m = _STORE_RE.match(node.text)
            if m and m.group(2) == owner and owner:
                names.append(m.group(1) + inst[len(owner) :])
        rooted = {r for n in names if (r := self._rooted(fn, n)) is not None}
        # the weaker links (a file-scope lock, one initializer, the caller's
        # arguments) only for a lock held on returns that read as success:
        # `return false;` with the lock held is a failure that keeps it
        strict = not any(is_failure_value(ret) for _n, st, _, ret in fn.exits if ref in st.may)
        mine = {
            r for r in rooted if self._param_places(fn, r) or (strict and self._global(fn, r))
        }
        if not rooted:
            return False
        calls = self._callees(ctx)
        me = fn.fn.name
        for other in ctx.facts.functions:
            if other is fn or other.budget_exceeded:
                continue
            them = other.fn.name
            caller = me in calls.get(them, ())
            if (
                not caller
                and not any({me, them} <= callees for callees in calls.values())
                and not (strict and self._registered_together(ctx, me, them))
                and not _undo_sibling(me, them)
            ):
                continue  # not used with this function (an unrelated unlock helper)
            released = self._releases(other)
            passed = self._passed(fn, other, rooted) if caller and strict else set()
            for lock in other.entry_locks:
                if lock.inst not in released:
                    continue  # a `__must_hold()` claim: held, not released
                theirs = self._rooted(other, lock.inst)
                if theirs is None:
                    continue
                if theirs in passed:
                    return True
                if theirs in mine and self._param_places(other, theirs) == self._param_places(
                    fn, theirs
                ):
                    return True
        return False

    def _passed(self, fn: FunctionFacts, caller: FunctionFacts, rooted: set[str]) -> set[str]:
        """The locks `rooted` (in `fn`'s terms) as `caller` names them at its
        calls of `fn`, spelt from what its locals were set to."""
        out: set[str] = set()
        for _nid, ev, _st in caller.iter_events():
            if not isinstance(ev, Call) or ev.callee != fn.fn.name:
                continue
            addressed = addressed_params(fn.fn.params, ev.addressed)
            for expr in rooted:
                if not self._param_places(fn, expr):
                    continue  # a global is matched by its name
                lifted = substitute(expr, fn.fn.params, ev.args, frozenset(), addressed)
                if lifted is not None and (there := self._rooted(caller, lifted)) is not None:
                    out.add(there)
        return out

    @staticmethod
    def _global(fn: FunctionFacts, expr: str) -> bool:
        """Does a rooted lock expression name a lock of no parameter or local
        (`dtl_lock`, `cfg.lock`): one lock for every caller?"""
        names = {m.group(0) for m in _USE_RE.finditer(expr)}
        return bool(names) and not names & (set(fn.fn.params) | set(fn.fn.local_names))

    def _families(self, ctx: RuleContext) -> list[frozenset[str]]:
        """For each ops table of the file, its functions and every function
        of the file they call, directly or not: what the object's user runs."""
        if self._family is not None and self._family[0] is ctx.facts:
            return self._family[1]
        calls = self._callees(ctx)
        out: list[frozenset[str]] = []
        for table in ctx.ops:
            seen = set(table.functions())
            stack = sorted(seen)
            while stack:
                for callee in calls.get(stack.pop(), ()):
                    if callee in calls and callee not in seen:
                        seen.add(callee)
                        stack.append(callee)
            out.append(frozenset(seen))
        self._family = (ctx.facts, out)
        return out

    def _registered_together(self, ctx: RuleContext, a: str, b: str) -> bool:
        """Do `a` and `b` belong to one ops table, as members or called by them?"""
        return any(a in fam and b in fam for fam in self._families(ctx))

    def _released_by_member(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """A helper that returns an entry with the lock held and NULL without
        it (a sequence iterator's first-entry helper), run by a function of an
        ops table, while another function that table registers releases a
        lock of the same kind without taking it (the iterator's stop step,
        which finds the lock through the iterator's state or the entry it is
        handed, not through the helper's arguments)."""
        held_vals = {ret for _n, st, _, ret in fn.exits if ref in st.may}
        if not held_vals or any(is_constant(v) or is_failure_value(v) for v in held_vals):
            return False
        base = base_inst(ref.inst)
        after = self._reached_by_release(fn, base)
        free = {
            ret
            for n, st, rel, ret in fn.exits
            if ref not in st.may and (base in rel or n in after)
        }
        if not free or not all(v == "NULL" or v.endswith(":zero") for v in free):
            return False
        field = _bare_field(base)
        modes = {ev.mode for ev in self._acquisitions(fn, ref)}
        me = fn.fn.name
        calls = self._callees(ctx)
        by_name = {f.fn.name: f for f in ctx.facts.functions if not f.budget_exceeded}
        for table, family in zip(ctx.ops, self._families(ctx), strict=True):
            if me not in family:
                continue
            for name in sorted(table.functions()):
                other = by_name.get(name)
                if other is None or other is fn or me in calls.get(name, ()):
                    continue  # the stop step does not run the helper
                released = {
                    ev.lock.inst: ev.primitive
                    for evs in other.events
                    for ev in evs
                    if isinstance(ev, Release)
                }
                for lock in other.entry_locks:
                    prim = released.get(lock.inst)
                    if prim is None or _bare_field(lock.inst) != field:
                        continue
                    if mode_of_release(prim, lock.cls) not in modes:
                        continue  # a read side released, the write side taken
                    return True
        return False

    @staticmethod
    def _acquisitions(fn: FunctionFacts, ref: LockRef) -> list[Acquire]:
        base = base_inst(ref.inst)
        return [
            ev
            for evs in fn.events
            for ev in evs
            if isinstance(ev, Acquire) and base_inst(ev.lock.inst) == base
        ]

    def _callees(self, ctx: RuleContext) -> dict[str, frozenset[str]]:
        """The functions each function of the file calls."""
        if self._calls is None or self._calls[0] is not ctx.facts:
            calls = {
                f.fn.name: frozenset(
                    ev.callee for evs in f.events for ev in evs if isinstance(ev, Call)
                )
                for f in ctx.facts.functions
            }
            self._calls = (ctx.facts, calls)
        return self._calls[1]

    @staticmethod
    def _param_places(fn: FunctionFacts, expr: str) -> dict[str, int]:
        """The parameters an expression reads, with their positions."""
        params = fn.fn.params
        return {
            m.group(0): params.index(m.group(0))
            for m in _USE_RE.finditer(expr)
            if m.group(0) in params
        }

    def _rooted(self, fn: FunctionFacts, inst: str) -> str | None:
        """`inst` with every local replaced by the one value the function
        sets it to (`b->lock`, `b = &t->tbl[w->pos]`, `t = w->t` ->
        `w->t->tbl[w->pos].lock`); None when a local has no single value."""
        defs = self._definitions(fn)
        expr = inst
        for _ in range(12):
            for m in _USE_RE.finditer(expr):
                name = m.group(0)
                after = expr[m.end() :]
                if name not in fn.fn.local_names or name in fn.fn.params or after.startswith("("):
                    continue
                value = defs.get(name)
                if value is None:
                    return None
                if (
                    value.startswith("&")
                    and after.startswith("->")
                    and _POSTFIX_RE.match(value[1:])
                ):
                    expr = expr[: m.start()] + value[1:] + "." + after[2:]
                elif _POSTFIX_RE.match(value):
                    expr = expr[: m.start()] + value + after
                else:
                    expr = f"{expr[: m.start()]}({value}){after}"
                break
            else:
                return expr
        return None

    def _definitions(self, fn: FunctionFacts) -> dict[str, str | None]:
        """Each local's value when the function sets it one way only (its
        initialiser or a single assignment); None when it is set several
        ways, changed in place, taken by address, or a loop macro's cursor."""
        known = self._defs.get(id(fn.fn))
        if known is not None and known[0] is fn.fn:
            return known[1]
        out: dict[str, str | None] = {}
        locals_ = fn.fn.local_names
        for node in fn.fn.cfg.nodes:
            text = node.text
            m = _DEF_RE.match(text)
            if m and m.group(1) in locals_:
                value = _CAST_RE.sub("", re.sub(r"\s+", "", m.group(2)), count=1)
                if len(_top_level(value)) != 1 or re.search(r"(?<![=!<>])=(?!=)", value):
                    value = ""  # `a = 1, b = 2`, `a = b = c`
                prev = out.get(m.group(1), value)
                out[m.group(1)] = value if value and prev == value else None
                text = text[m.start(2) :]
            for use in _USE_RE.finditer(text):
                name = use.group(0)
                if name in locals_ and _changed(text, use.start(), use.end()):
                    out[name] = None
            for call in _LOOP_MACRO_RE.finditer(text):
                for arg in _top_level(_inside(text, call.end())):
                    if arg.strip() in locals_:
                        out[arg.strip()] = None  # the loop's cursor
        self._defs[id(fn.fn)] = (fn.fn, out)
        return out

    @staticmethod
    def _through_params(fn: FunctionFacts, inst: str) -> str | None:
        """`JFS_IP(ipimap)->rdwrlock` spelt `JFS_IP(imap->im_ipimap)->rdwrlock`
        when the local `ipimap` is set once, to a member of the parameter
        `imap` (`ipimap = imap->im_ipimap;`), and the parameter never changes:
        the name a caller releases the lock by."""
        sets: dict[str, list[str | None]] = {}
        for evs in fn.events:
            for ev in evs:
                if isinstance(ev, Assign):
                    sets.setdefault(ev.var, []).append(ev.alias)
        params = fn.fn.params
        copies = {
            var: aliases[0]
            for var, aliases in sets.items()
            if var not in params
            and len(aliases) == 1
            and aliases[0] is not None
            and base_var(aliases[0]) in params
            and base_var(aliases[0]) not in sets
            and aliases[0] != base_var(aliases[0])
        }
        if not copies:
            return None
        out = re.sub(
            r"(?<![\w.>])([A-Za-z_]\w*)\b", lambda m: copies.get(m.group(1), m.group(1)), inst
        )
        return out if out != inst else None

    def _held_on_entry(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> bool:
        """The header comment says the function is called with this very
        lock held, spelt as the function spells it ("Called with vc->lock
        held")."""
        head = self._header_comment(ctx, fn)
        if head is None:
            return False
        base = base_inst(ref.inst)
        return any(
            c.kind == "held" and re.sub(r"\s+", "", c.lock).lstrip("&") == base
            for c in prose_claims(head, header=True)
        )

    # -- a lock whose holding a flag records ---------------------------------

    def _flag_records(
        self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef, holding: set[int]
    ) -> bool:
        """A flag outside the function's own frame (`*locked`, `*cookie`, a
        static `state.in_msg`) says the lock is held: it is cleared right
        beside a release of the lock, or is the lock's trylock result, and
        every way from an acquisition to a return that keeps the lock sets
        it (and no later statement clears it). The caller, or the next call
        of the function, reads the flag and releases the lock. The flag may
        also be a global's member that the function's partner (a handler
        run after this one) counts down right beside releasing the lock it
        did not take."""
        if any(
            self._gates(fn, ref, flag) and self._flag_kept(fn, ref, flag, holding)
            for flag in self._flags(fn, ref)
        ):
            return True
        shared = self._partner_flags(ctx, fn, ref)
        return any(self._flag_kept(fn, ref, flag, holding, shared) for flag in sorted(shared))

    def _gates(self, fn: FunctionFacts, ref: LockRef, flag: str) -> bool:
        """Does the flag decide the lock here: it is the lock's trylock
        result, or the lock is taken only where a test says the flag is
        clear, or released only where one says it is set? (A state field
        set beside the lock and never asked, `dev->busy`, is no record.)"""
        base = base_inst(ref.inst)
        clear = self._reach_avoiding(fn, flag, nonzero=False, stop_writes=False)
        set_ = self._reach_avoiding(fn, flag, nonzero=True, stop_writes=False)
        for nid, evs in enumerate(fn.events):
            for ev in evs:
                if not isinstance(ev, Acquire | Release) or base_inst(ev.lock.inst) != base:
                    continue
                if isinstance(ev, Acquire) and (ev.cond_var == flag or nid not in clear):
                    return True
                if isinstance(ev, Release) and not ev.maybe and nid not in set_:
                    return True
        return False

    def _partner_flags(self, ctx: RuleContext, fn: FunctionFacts, ref: LockRef) -> frozenset[str]:
        """Flags of this function (as it spells them) that another function
        of the file clears or counts down within a few statements of
        releasing this lock, which it does not take (its caller's): both
        reach the flag through the same global (`ctx = this_cpu_ptr(&pcpu_ctx)`
        in each, then `ctx->active`)."""
        base = base_inst(ref.inst)
        theirs: set[str] = set()
        for other in ctx.facts.functions:
            if other is fn or other.budget_exceeded:
                continue
            if not any(base_inst(lock.inst) == base for lock in other.entry_locks):
                continue
            nodes = other.fn.cfg.nodes
            for nid, evs in enumerate(other.events):
                if not any(
                    isinstance(ev, Release) and not ev.maybe and base_inst(ev.lock.inst) == base
                    for ev in evs
                ):
                    continue
                near = self._straight(other, nid, forward=False)
                near += self._straight(other, nid, forward=True)
                for n in near:
                    m = _FLAG_STEP_RE.match(nodes[n].text) or _FLAG_WRITE_RE.match(nodes[n].text)
                    if m is None or (m.re is _FLAG_WRITE_RE and m.group(2).strip() not in _ZEROS):
                        continue
                    if m.re is _FLAG_STEP_RE and (m.group(1) or m.group(4)) != "--":
                        continue
                    flag = re.sub(r"\s+", "", m.group(2) or m.group(3) or "")
                    if nid in self._reach_avoiding(other, flag, nonzero=True, stop_writes=False):
                        continue  # it releases without asking the count
                    rooted = self._rooted(other, flag)
                    if rooted is not None and rooted != flag and self._global(other, rooted):
                        theirs.add(rooted)
        if not theirs:
            return frozenset()
        mine: set[str] = set()
        for node in fn.fn.cfg.nodes:
            m = _FLAG_STEP_RE.match(node.text) or _FLAG_WRITE_RE.match(node.text)
            if m is None:
                continue
            flag = re.sub(r"\s+", "", m.group(2) or m.group(3) or "")
            if m.re is _FLAG_WRITE_RE:
                flag = re.sub(r"\s+", "", m.group(1))
            if self._rooted(fn, flag) in theirs:
                mine.add(flag)
        return frozenset(mine)

    def _released_by_record(self, fn: FunctionFacts, nid: int, ev: Release) -> bool:
        """A release of a lock the function does not hold here, on a branch
        taken only when a flag the caller passes in (`*cookie`) is set, where
        the function's own ways out that keep the lock set that flag: the
        call that returned holding it told the caller so, and this call is
        handed the flag back to finish the work and release it."""
        base = base_inst(ev.lock.inst)
        refs = {
            a.lock
            for evs in fn.events
            for a in evs
            if isinstance(a, Acquire) and base_inst(a.lock.inst) == base
        }
        for ref in sorted(refs, key=lambda r: r.inst):
            holding = {n for n, st, _, _ in fn.exits if ref in st.may and not st.may[ref].escaped}
            if not holding:
                continue
            for flag in self._flags(fn, ref):
                if not flag.startswith("*") and not self._param_rooted(fn, flag):
                    continue  # only what the caller hands in says what it holds
                if nid in self._reach_avoiding(fn, flag, nonzero=True):
                    continue  # reached with the flag clear too
                if self._flag_kept(fn, ref, flag, holding):
                    return True
        return False

    def _flags(self, fn: FunctionFacts, ref: LockRef) -> list[str]:
        """The flags tied to the lock: the caller's or a persistent variable
        that is the lock's trylock result, or is cleared within a few
        statements of one of its releases."""
        base = base_inst(ref.inst)
        out: set[str] = set()
        nodes = fn.fn.cfg.nodes
        for nid, evs in enumerate(fn.events):
            for ev in evs:
                if (
                    isinstance(ev, Acquire)
                    and base_inst(ev.lock.inst) == base
                    and ev.cond_var is not None
                    and self._flag_scope(fn, ev.cond_var)
                ):
                    out.add(ev.cond_var)
                if isinstance(ev, Release) and not ev.maybe and base_inst(ev.lock.inst) == base:
                    near = self._straight(fn, nid, forward=True)
                    for n in (*near, *self._straight(fn, nid, forward=False)):
                        written = self._flag_write(fn, nodes[n].text)
                        if written is not None and written[1] is False:
                            out.add(written[0])
        return sorted(out)

    def _flag_scope(self, fn: FunctionFacts, flag: str) -> bool:
        """Is `flag` read after the call returns: `*p` or `p->f` for a
        parameter `p`, a global, or a member of a static of the function?"""
        if flag.startswith("*"):
            return flag[1:] in fn.fn.params
        root = base_var(flag)
        if not root or root != re.match(r"\w*", flag).group(0):  # type: ignore[union-attr]
            return False
        if root in fn.fn.params:
            return flag != root
        return root not in fn.fn.local_names or self._static_local(fn, root)

    def _static_local(self, fn: FunctionFacts, name: str) -> bool:
        """Is `name` declared `static` inside the function: kept between
        calls? (A statement node holds a declaration's first line only: its
        lines up to the next statement are read from the source.)"""
        decl = re.compile(
            rf"^\s*static\b.*\b{re.escape(name)}\s*(?:\[[^\]]*\])?\s*(?:=[^;]*)?;\s*$", re.S
        )
        nodes = fn.fn.cfg.nodes
        for node in nodes:
            if not re.match(r"\s*static\b", node.text):
                continue
            end = min((nodes[s].line for s, _ in node.succ if nodes[s].line > node.line), default=0)
            text = "\n".join(self._lines[node.line - 1 : end - 1]) if end else node.text
            if decl.match(text):
                return True
        return False

    @staticmethod
    def _param_rooted(fn: FunctionFacts, flag: str) -> bool:
        return base_var(flag) in fn.fn.params

    def _flag_write(
        self, fn: FunctionFacts, text: str, shared: frozenset[str] = frozenset()
    ) -> tuple[str, bool | None] | None:
        """(flag, set) for a statement writing a flag: True for a value
        surely non-zero (`true`, `1`, an address, a parameter the function
        dereferences) or a count of holders going up (`ctx->active++`),
        False for zero or the count going down, None for anything else.
        `shared`: flags another function ties to the lock (see
        `_partner_flags`), kept in a local's pointee."""
        step = _FLAG_STEP_RE.match(text)
        if step is not None:
            flag = re.sub(r"\s+", "", step.group(2) or step.group(3))
            if not (self._flag_scope(fn, flag) or flag in shared):
                return None
            return flag, (step.group(1) or step.group(4)) == "++"
        m = _FLAG_WRITE_RE.match(text)
        if m is None:
            return None
        flag = re.sub(r"\s+", "", m.group(1))
        if not (self._flag_scope(fn, flag) or flag in shared):
            return None
        value = re.sub(r"\s+", "", m.group(2))
        if value in ("0", "false", "NULL"):
            return flag, False
        if value in ("true", "1") or value.startswith("&"):
            return flag, True
        if value in fn.fn.params and any(
            re.search(rf"\*\s*{value}\b|\b{value}\s*->", node.text) for node in fn.fn.cfg.nodes
        ):
            return flag, True  # `*cookie = cookie;`: a pointer the function dereferences
        return flag, None

    @staticmethod
    def _straight(fn: FunctionFacts, nid: int, forward: bool, limit: int = 3) -> list[int]:
        """Up to `limit` statements that run right after (or before) node
        `nid` on every path: no branch or join in between."""
        nodes = fn.fn.cfg.nodes
        preds = fn.fn.cfg.preds()
        out: list[int] = []
        cur = nid
        for _ in range(limit):
            if forward:
                nxt = [s for s, _ in nodes[cur].succ]
                if len(nxt) != 1 or len(preds[nxt[0]]) != 1:
                    break
            else:
                nxt = list(preds[cur])
                if len(nxt) != 1 or len(nodes[nxt[0]].succ) != 1:
                    break
            cur = nxt[0]
            out.append(cur)
        return out

    @staticmethod
    def _tests(flag: str, text: str) -> bool | None:
        """Does a branch test the flag: True for the flag itself, False for
        its negation, None if it tests something else."""
        t = re.sub(r"\s+", "", text)
        if t == flag or t == f"({flag})":
            return True
        if t in (f"!{flag}", f"!({flag})"):
            return False
        return None

    def _flag_kept(
        self,
        fn: FunctionFacts,
        ref: LockRef,
        flag: str,
        holding: set[int],
        shared: frozenset[str] = frozenset(),
    ) -> bool:
        """Does every way from an acquisition of `ref` to a return in
        `holding`, without a release of it between, leave `flag` set?"""
        base = base_inst(ref.inst)
        nodes = fn.fn.cfg.nodes
        starts: list[tuple[int, bool]] = []
        releases: set[int] = set()
        for nid, evs in enumerate(fn.events):
            for ev in evs:
                if isinstance(ev, Release) and not ev.maybe and base_inst(ev.lock.inst) == base:
                    releases.add(nid)
                if isinstance(ev, Acquire) and base_inst(ev.lock.inst) == base:
                    if ev.cond_var == flag:
                        starts.append((nid, True))  # `*locked = mutex_trylock(..)`
                        continue
                    before = False
                    for prev in self._straight(fn, nid, forward=False):
                        written = self._flag_write(fn, nodes[prev].text, shared)
                        if written is not None and written[0] == flag:
                            before = written[1] is True
                            break
                    starts.append((nid, before))
        if not starts or not holding:
            return False
        passed = self._passes_flag(fn, flag, bool(shared))
        seen: set[tuple[int, bool]] = set()
        stack = list(starts)
        while stack:
            nid, on = stack.pop()
            if (nid, on) in seen:
                continue
            seen.add((nid, on))
            if nid in holding and not on:
                return False
            atom = nodes[nid].atom
            test = self._tests(flag, atom.text) if atom is not None else None
            for succ, label in nodes[nid].succ:
                if on and test is not None and label is not None and label != test:
                    continue  # the flag is set: its test cannot say clear
                if succ in releases or succ == fn.fn.cfg.exit:
                    continue
                nxt = on
                written = self._flag_write(fn, nodes[succ].text, shared)
                if written is not None and written[0] == flag:
                    nxt = written[1] is True
                elif succ in passed:
                    nxt = False  # a callee given the flag may clear it
                stack.append((succ, nxt))
        return True

    def _passes_flag(self, fn: FunctionFacts, flag: str, pointee: bool = False) -> set[int]:
        """Nodes whose calls may write the flag: a callee given it, or what
        holds it (`locked`, `&state`); for a global flag (or one in a
        global's member, `pointee`), a function of the file that writes a
        member of its name (a static of the function is out of their
        reach, and so are functions of other files for a file's static)."""
        root = flag[1:] if flag.startswith("*") else base_var(flag)
        shared = pointee or (
            not flag.startswith("*")
            and root not in fn.fn.params
            and not self._static_local(fn, root)
        )
        field = re.escape(_field(flag))
        writes = re.compile(
            rf"\b{field}\s*(?:(?:[-+*/|&^%]|<<|>>)?=(?!=)|\+\+|--)"
            rf"|(?:\+\+|--)\s*[\w.>-]*\b{field}\b"
        )
        out: set[int] = set()
        for nid, evs in enumerate(fn.events):
            for ev in evs:
                if not isinstance(ev, Call):
                    continue
                if any(re.sub(r"\s+", "", a) in (root, flag) for a in ev.args):
                    out.add(nid)
                elif shared and not ev.external:
                    callee = self._functions.get(ev.callee)
                    if callee is None or any(writes.search(n.text) for n in callee.fn.cfg.nodes):
                        out.add(nid)
        return out

    def _reach_avoiding(
        self, fn: FunctionFacts, flag: str, nonzero: bool, stop_writes: bool = True
    ) -> set[int]:
        """Nodes reached from the entry without an edge on which a test says
        the flag is non-zero (`nonzero`) or zero, nor (`stop_writes`) a
        write of it."""
        nodes = fn.fn.cfg.nodes
        seen = {fn.fn.cfg.entry}
        stack = [fn.fn.cfg.entry]
        while stack:
            nid = stack.pop()
            atom = nodes[nid].atom
            test = self._tests(flag, atom.text) if atom is not None else None
            for succ, label in nodes[nid].succ:
                if test is not None and label is not None and (label == test) == nonzero:
                    continue
                if succ in seen:
                    continue
                seen.add(succ)
                written = self._flag_write(fn, nodes[succ].text) if stop_writes else None
                if written is not None and written[0] == flag:
                    continue
                stack.append(succ)
        return seen

    # -- opened and closed by one function, as an argument says ----------------

    def _keyed(self, fn: FunctionFacts, base: str) -> str | None:
        """The parameter that says whether the function opens or closes the
        lock (`gate_ctrl(g, 1)` takes it and returns holding it,
        `gate_ctrl(g, 0)` releases the caller's): every acquisition is
        reached only where a test says it is non-zero, some release only
        where one says it is zero, and the function never changes it."""
        takes = {
            nid
            for nid, evs in enumerate(fn.events)
            for ev in evs
            if isinstance(ev, Acquire) and base_inst(ev.lock.inst) == base
        }
        drops = {
            nid
            for nid, evs in enumerate(fn.events)
            for ev in evs
            if isinstance(ev, Release) and not ev.maybe and base_inst(ev.lock.inst) == base
        }
        if not takes or not drops:
            return None
        tested = {
            atom.text
            for node in fn.fn.cfg.nodes
            if (atom := node.atom) is not None and atom.text in fn.fn.params
        }
        for param in sorted(tested):
            if self._param_changed(fn, param):
                continue
            if takes & self._reach_avoiding(fn, param, nonzero=True):
                continue  # taken where it may be zero
            if drops - self._reach_avoiding(fn, param, nonzero=False):
                return param
        return None

    @staticmethod
    def _param_changed(fn: FunctionFacts, param: str) -> bool:
        if any(isinstance(ev, Assign) and ev.var == param for evs in fn.events for ev in evs):
            return True
        for node in fn.fn.cfg.nodes:
            for m in re.finditer(rf"(?<![\w.>]){re.escape(param)}\b", node.text):
                if _changed(node.text, m.start(), m.end()):
                    return True
        return False

    def _closing(self, ctx: RuleContext, fn: FunctionFacts, nid: int, ev: Release) -> bool:
        """A release of a lock not held here, reached only where the
        function's key argument says close (see `_keyed`), of a lock that
        the open mode returns holding, or released by a callee that asserts
        it is held (`lockdep_assert_held()`): a contract the code states.
        Without either it is an unlock moved above its lock."""
        base = base_inst(ev.lock.inst)
        param = self._keyed(fn, base)
        if param is None or nid in self._reach_avoiding(fn, param, nonzero=False):
            return False
        if any(
            base_inst(r.inst) == base and not h.escaped
            for _n, st, _, _ in fn.exits
            for r, h in st.may.items()
        ):
            return True  # the open mode returns with it
        field = _bare_field(base)
        for callee in ctx.facts.functions:
            if callee.fn.name == ev.primitive and any(
                isinstance(c, Claim) and c.kind == "held" and _bare_field(c.lock.inst) == field
                for evs in callee.events
                for c in evs
            ):
                return True
        return False

    # -- releasing a lock that is not held ------------------------------------

    def _unheld(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        direct = frozenset(ctx.vocab.api)
        for nid, ev, double in fn.unheld_releases:
            if fn.fn.parse_errors and self._flattened(fn, nid, ev):
                continue  # code the grammar could not take apart is one flat node: no order
            if double and not self._back_to_back(fn, nid, ev, direct):
                # a call between the two releases may have taken the lock
                # again where the analysis cannot see it (->page_mkwrite(),
                # a lock handed back through a struct)
                continue
            if ev.lock.cls in self.skip and not double:
                continue  # a page lock handed over by the caller
            if self._unseen_locker(fn, nid):
                continue
            if not double and self._released_by_record(fn, nid, ev):
                continue  # the continuation of a call that returned holding it
            if not double and self._closing(ctx, fn, nid, ev):
                continue  # the close of an open/close pair keyed on an argument
            name = ev.lock.inst
            related: list[Related] = []
            prior = [
                (on, oev)
                for on, evs in enumerate(fn.events)
                for oev in evs
                if isinstance(oev, Release)
                and oev is not ev
                and oev.lock.inst == name
                and on != nid
                and nid in fn.reachable_from(on)
            ]
            takes = [
                oev
                for evs in fn.events
                for oev in evs
                if isinstance(oev, Acquire) and base_inst(oev.lock.inst) == name
            ]
            if prior:
                last = max(prior, key=lambda p: (p[1].site.line <= ev.site.line, p[1].site))[1]
                related.append(Related(last.site.line, last.site.column, "released here before"))
                why = f"already released at line {last.site.line}"
            elif takes:
                first = min(takes, key=lambda a: a.site)
                related.append(Related(first.site.line, first.site.column, "taken here"))
                why = f"it is taken only at line {first.site.line}"
            else:
                why = "no path to it holds the lock"
            ctx.report(
                fn,
                ev.site,
                f"`{name}` is released here but not held on any path that reaches this point: "
                f"{why}",
                held=tuple(st.describe()) if (st := fn.state_at(nid, ev)) is not None else (),
                related=tuple(related),
            )

    @staticmethod
    def _flattened(fn: FunctionFacts, nid: int, ev: Release) -> bool:
        """Does the release share its node with another event on the same lock
        (a statement the grammar could not split, in a function with errors)?"""
        if "{" in fn.fn.cfg.nodes[nid].text:
            return True  # `for_each_online_cpu(cpu) {` taken as one statement
        return any(
            isinstance(o, (Acquire, Release)) and o is not ev and o.lock.inst == ev.lock.inst
            for o in fn.events[nid]
        )

    @staticmethod
    def _back_to_back(fn: FunctionFacts, nid: int, ev: Release, direct: frozenset[str]) -> bool:
        """Is there an earlier release of the same lock from which this one is
        reached without passing a call to a function (a plain double unlock)?
        Both must be the function's own unlocks (`direct`: the pack's
        primitives), not a callee's summary, which cannot count nesting."""
        if ev.primitive not in direct:
            return False
        nodes = fn.fn.cfg.nodes
        for on, evs in enumerate(fn.events):
            if on == nid or not any(
                isinstance(o, Release) and o.lock.inst == ev.lock.inst and o.primitive in direct
                for o in evs
            ):
                continue
            seen = {on}
            stack = [s for s, _ in nodes[on].succ]
            while stack:
                cur = stack.pop()
                if cur == nid:
                    return True
                if cur in seen or any(isinstance(e, Call) for e in fn.events[cur]):
                    continue
                seen.add(cur)
                stack.extend(s for s, _ in nodes[cur].succ)
        return False

    @staticmethod
    def _unseen_locker(fn: FunctionFacts, nid: int) -> bool:
        """A callee we cannot see, named as taking a lock, may have taken it
        on the way (`mem_cgroup_trylock_pages()` whose #ifdef variants differ)."""
        for on, evs in enumerate(fn.events):
            for ev in evs:
                if (
                    isinstance(ev, Call)
                    and ev.external
                    and lock_named(ev.callee)
                    and nid in fn.reachable_from(on)
                ):
                    return True
        return False

    # -- taking a lock that may still be held ------------------------------

    def _reacquire(self, ctx: RuleContext, fn: FunctionFacts) -> None:
        """A blocking acquisition of a lock this function may already hold.

        This is how a lock leaked out of a loop iteration (`continue` past
        the unlock) shows: the next time round takes it again.
        """
        reported: set[tuple[int, int]] = set()
        for _nid, ev, st in fn.iter_events():
            if not isinstance(ev, Acquire) or ev.cond_var is not None or ev.guard:
                continue
            if ev.nested or ev.until is not None:
                # `_nested`: another lock of the class, by declaration; a lock
                # held until an outer one goes (vma_start_write()) may be re-taken
                continue
            if ev.lock.cls in self.skip:
                continue
            prev = st.may.get(ev.lock)
            if prev is None or prev.assumed or prev.escaped or ev.lock in fn.entry_locks:
                continue
            if (
                ev.mode == "read"
                and prev.mode == "read"
                and (prev.site != ev.site or not ctx.vocab.is_atomic(ev.primitive))
            ):
                # recursive read of an rwlock/rwsem/rcu: not this rule's business,
                # unless this very statement took a spinning read side (rcu,
                # read_lock) the last time round: its nesting grows with every
                # iteration, a leak around the loop (a sleeping rwsem may have
                # been dropped by a fault handler we cannot see)
                continue
            key = (ev.site.line, ev.site.column)
            if key in reported:
                continue
            reported.add(key)
            ctx.report(
                fn,
                ev.site,
                f"`{ev.lock.inst}` may still be held here: taken at line {prev.site.line} "
                f"and not released on every path back to this point",
                held=tuple(st.describe()),
                related=(Related(prev.site.line, prev.site.column, "taken here before"),),
            )
