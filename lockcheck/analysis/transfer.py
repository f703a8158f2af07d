"""What one event or one branch edge does to a lock state."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from lockcheck.analysis.state import (
    RW_CLASS_RE,
    Held,
    LockState,
    base_var,
    below,
    h_assumed,
    mentions,
)
from lockcheck.model.ir import (
    KEPT_ON,
    Acquire,
    Assign,
    Atom,
    Call,
    Claim,
    Downgrade,
    Event,
    Handover,
    LockRef,
    Mode,
    Release,
    is_constant,
)

_ERR_TESTS = ("IS_ERR(", "IS_ERR_OR_NULL(")
_RELEASING_NAME_RE = re.compile(r"unlock|release|put|drop")
# sparse's context markers (`__acquire(x)`, `__release(x)`): they tell the
# checker about a lock, they do nothing to it
_SPARSE_MARKERS = frozenset({"__acquire", "__release"})


_ZERO_CONSTS = frozenset({"0", "0UL", "0L", "0U", "NULL", "false"})
# surely non-zero: a negative (`-EINTR`, `-1`), a non-zero number, `true`
_NONZERO_RE = re.compile(r"^(?:-.+|0*[1-9]\d*[UuLl]*|0x0*[1-9a-fA-F][0-9a-fA-F]*[UuLl]*|true)$")


def _constant_side(atom: Atom) -> tuple[str, str] | None:
    """(variable, constant) of `var == CONST`, either way round."""
    for var, other in ((atom.a, atom.b), (atom.b, atom.a)):
        if is_constant(other) and not is_constant(var) and not other.startswith("ERR_PTR("):
            return var, other
    return None


def _inside(inst: str, obj: str) -> bool:
    """Is lock `inst` a member of object `obj` (`x->lock`, `w->key->sem` in `w->key`)?"""
    if "->" in obj or "." in obj:
        return inst.startswith((obj + "->", obj + "."))
    return base_var(inst) == obj and inst != obj


def _escapes_into(call: Call, ref: LockRef) -> bool:
    """May an unknown callee release this lock? Only if it is given the lock
    itself, or is named like a releaser and given the lock's owner."""
    inst = ref.inst.split("@")[0]
    if inst in call.args:
        return True
    if _RELEASING_NAME_RE.search(call.callee):
        owner = base_var(inst)
        return any(base_var(a) == owner for a in call.args)
    return False


@dataclass(slots=True)
class Transfer:
    """Applies events and edges; knows the function's local lock pointers."""

    lockvars: Mapping[str, LockRef]

    def _ref_for(self, name: str, like: LockRef) -> LockRef:
        return self.lockvars.get(name, LockRef(name, cls=like.cls))

    def event(self, st: LockState, ev: Event) -> LockState:
        if isinstance(ev, Acquire):
            if ev.until is not None and ev.lock in st.must:
                return st  # vma_start_write() of a VMA already write-locked
            h = Held(ev.mode, ev.site, ev.cond_var, ev.fail_when, until=ev.until)
            return LockState({**st.must, ev.lock: h}, {**st.may, ev.lock: h}, st.eqs)
        if isinstance(ev, Release):
            if ev.maybe and ev.cond_var is not None and ev.released_when.startswith(KEPT_ON):
                return self._release_unless(st, ev)
            if ev.maybe and ev.cond_var is not None:
                return self._release_if(st, ev)
            if ev.maybe:
                if ev.lock.inst == "*":
                    return self._escape(st, lambda ref: ref.cls == ev.lock.cls)
                return self._escape(st, lambda ref: st.same_lock(ref.inst, ev.lock.inst))
            lock = self._reached_as(st, ev.lock) if ev.summarised else ev.lock
            return self._drop(self._end_bound(st, ev.lock.cls), lock)
        if isinstance(ev, Call):
            if ev.external and ev.args and ev.callee not in _SPARSE_MARKERS:
                return self._escape(st, lambda ref: _escapes_into(ev, ref))
            return st
        if isinstance(ev, Downgrade):
            st = self._end_bound(st, ev.lock.cls)
            must = dict(st.must)
            may = dict(st.may)
            for d in (must, may):
                if ev.lock in d:
                    d[ev.lock] = replace(d[ev.lock], mode="read")
            return LockState(must, may, st.eqs)
        if isinstance(ev, Claim):
            if ev.kind == "not_held":
                return self._drop(st, ev.lock)
            cur = st.must.get(ev.lock)
            if cur is not None and (ev.mode is None or cur.mode == ev.mode):
                return st
            mode: Mode = ev.mode or ("read" if RW_CLASS_RE.search(ev.lock.cls) else "excl")
            h = Held(mode, ev.site, assumed=True)
            return LockState({**st.must, ev.lock: h}, {**st.may, ev.lock: h}, st.eqs)
        if isinstance(ev, Handover):
            # the caller can reach the object now: it may release its locks.
            # A lock pointer itself stored there (`wr->ptl = ptl`) is still
            # this function's to balance: lock-balance weighs it as evidence
            # of a lock-returning helper, and a failure return still leaks it
            return self._escape(st, lambda ref: _inside(ref.inst.split("@")[0], ev.var))
        if isinstance(ev, Assign):
            st = self._kill_var(st, ev.var, ev.site.line)
            if ev.alias is not None and ev.alias != ev.var:
                st = LockState(st.must, st.may, st.eqs | {frozenset((ev.var, ev.alias))})
            return st
        return st

    @staticmethod
    def _release_if(st: LockState, ev: Release) -> LockState:
        """Released where `ev.cond_var` is `ev.released_when`: the lock is
        held from here only while the result says otherwise, as after a
        trylock (a `kref_put()` whose release callback unlocks). Where it is
        kept it stays escaped, as for any lock handed to code that may drop
        it: the answer is exact, but a second test of it may not be followed."""

        def hit(ref: LockRef) -> bool:
            return st.same_lock(ref.inst, ev.lock.inst)

        if not any(hit(r) for r in st.may):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                r: (
                    replace(h, cond_var=ev.cond_var, fail_when=ev.released_when, escaped=True)
                    if hit(r)
                    else h
                )
                for r, h in d.items()
            }

        return LockState(fix(st.must), fix(st.may), st.eqs)

    def _release_unless(self, st: LockState, ev: Release) -> LockState:
        """Released unless `ev.cond_var` is the constant `released_when`
        names: held from here while the result may be it. Not escaped: the
        callee returns that constant only on ways out that keep the lock."""
        target = self._reached_as(st, ev.lock) if ev.summarised else ev.lock
        if not any(st.same_lock(r.inst, target.inst) for r in st.may):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                r: (
                    replace(h, cond_var=ev.cond_var, fail_when=ev.released_when)
                    if st.same_lock(r.inst, target.inst)
                    else h
                )
                for r, h in d.items()
            }

        return LockState(fix(st.must), fix(st.may), st.eqs)

    @staticmethod
    def _kept_on(st: LockState, var: str, value: str | None, equal: bool) -> LockState:
        """A test of a result that says whether a callee kept a lock: `value`
        (None: zero) compared with the constant the callee keeps it on."""

        def tests(h: Held) -> bool:
            return (
                h.fail_when.startswith(KEPT_ON)
                and h.cond_var is not None
                and (h.cond_var == var or frozenset((h.cond_var, var)) in st.eqs)
            )

        if not any(tests(h) for h in st.may.values()):
            return st

        def kept(h: Held) -> bool:
            return value is not None and h.fail_when == KEPT_ON + value

        if equal:  # the result is `value`: kept exactly when that is the constant
            st = st.without(lambda _r, h: tests(h) and not kept(h))

            def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
                return {
                    r: (replace(h, cond_var=None) if tests(h) and kept(h) else h)
                    for r, h in d.items()
                }

            return LockState(fix(st.must), fix(st.may), st.eqs)
        return st.without(lambda _r, h: tests(h) and kept(h))

    @staticmethod
    def _escape(st: LockState, hit: Callable[[LockRef], bool]) -> LockState:
        if not any(hit(r) and not h.escaped for r, h in st.may.items()):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {r: (replace(h, escaped=True) if hit(r) else h) for r, h in d.items()}

        return LockState(fix(st.must), fix(st.may), st.eqs)

    @staticmethod
    def _end_bound(st: LockState, cls: str) -> LockState:
        """Locks held `until` a lock of `cls` is released end with it."""
        return st.without(lambda _r, h: h.until == cls)

    @staticmethod
    def _reached_as(st: LockState, lock: LockRef) -> LockRef:
        """The held lock a callee's release names through a member of the
        same name (`bo->bdev->lru_lock` dropped by a helper while the caller
        holds `bdev->lru_lock`: the object's `bdev` is the device the caller
        locked, as the helper releasing it on every way out expects); the
        lock itself when it is held under its own name, or when no one such
        lock is. Within one function both names are the code's own, and a
        store between them says whether they meet (state.same_lock)."""
        inst = lock.inst
        if "->" not in inst or any(st.same_lock(r.inst, inst) for r in st.may):
            return lock
        ends = [
            r
            for r in st.may
            if r.cls == lock.cls
            and "@" not in r.inst
            and "->" in r.inst
            and inst.endswith(("->" + r.inst, "." + r.inst))
        ]
        return ends[0] if len(ends) == 1 else lock

    def _drop(self, st: LockState, lock: LockRef) -> LockState:
        return st.without(lambda ref, _h: st.same_lock(ref.inst, lock.inst))

    @staticmethod
    def _kill_var(st: LockState, var: str, line: int) -> LockState:
        """`var = ...`: facts about the old value die, locks named by it are renamed.

        A lock reached through the old value (`cursor` after `cursor = next`)
        is still held, but is no longer the lock the name `cursor` means: it
        gets a rename suffix, and stays one with the lock reached through
        another name the old value had (`prev->lock` after `prev = cursor`).
        """
        eqs = frozenset(e for e in st.eqs if not any(mentions(x, var) or x == var for x in e))

        def gone(inst: str) -> bool:
            # `req->host = other;` renames `req->host->lock`, not `req->lock`
            return mentions(inst, var) or below(inst.split("@")[0], var)

        # another name of the old value (`parent = eb;` before `eb = next`):
        # the renamed lock stays one with the lock reached through that name
        other = sorted(
            x for e in st.eqs if var in e for x in e if x != var and not mentions(x, var)
        )
        kept: set[frozenset[str]] = set()

        def renamed(ref: LockRef) -> LockRef:
            if not gone(ref.inst):
                return ref
            new = f"{ref.inst.split('@')[0]}@{line}"
            if other and "@" not in ref.inst and below(ref.inst, var):
                kept.add(frozenset((other[0] + ref.inst[len(var) :], new)))
            return LockRef(new, cls=ref.cls)

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                renamed(r): (replace(h, cond_var=None) if h.cond_var == var else h)
                for r, h in d.items()
            }

        touched = any(h.cond_var == var or gone(r.inst) for r, h in st.may.items())
        if eqs == st.eqs and not touched:
            return st
        must, may = fix(st.must), fix(st.may)
        return LockState(must, may, eqs | kept)

    def edge(self, st: LockState, atom: Atom | None, label: bool | None) -> LockState:
        if atom is not None and label is not None:
            if atom.kind == "value" and label and atom.text.startswith(_ERR_TESTS):
                # `if (IS_ERR(mp))` after `mp = lock_mount(..)`: nothing was taken
                st = self._resolve_err(st, atom.text[atom.text.index("(") + 1 : -1])
            if atom.kind == "value":
                if not label and not atom.sign:  # zero: not the constant a lock is kept on
                    st = self._kept_on(st, atom.a, None, True)
                st = self._resolve_cond(st, atom.a, label)
                if atom.sign and label:  # `ret < 0`: a helper's index or -errno failed
                    st = self._resolve_cond(st, atom.a, label, "neg")
                if not label:
                    st = self._confirm_neg(st, atom.a)  # zero or more is not negative
                if not label and not atom.sign:
                    # held unless an ERR_PTR(): such a helper's success is an
                    # object (a NULL with the lock held makes it no such
                    # helper, summaries.py), so a NULL result never held it
                    st = self._resolve_cond(st, atom.a, False, "err")
                if not label and atom.a != "#atom":
                    st = self._drop_null_owner(st, atom.a)
            elif atom.kind == "eq" and (const := _constant_side(atom)) is not None:
                st = self._resolve_const(st, *const, label)
                if const[1] in _ZERO_CONSTS or _NONZERO_RE.match(const[1]):
                    zero = const[1] in _ZERO_CONSTS
                    st = self._kept_on(st, const[0], None if zero else const[1], label)
            if atom.kind == "eq" and label and atom.a != "#atom":
                for var, other in ((atom.a, atom.b), (atom.b, atom.a)):
                    if other.startswith("ERR_PTR("):
                        # `if (key == ERR_PTR(-ENOKEY))`: an error pointer, nothing taken
                        st = self._resolve_err(st, var)
                st = self._add_eq(st, atom.a, atom.b)
        return self._clear_atom(st)

    @staticmethod
    def _resolve_cond(
        st: LockState, var: str, nonzero: bool, failed_when: str | None = None
    ) -> LockState:
        failed_when = failed_when or ("nonzero" if nonzero else "zero")

        def tests(cond_var: str | None) -> bool:
            # `start_pte = pte` after `pte = pte_offset_map_lock(..)`: testing
            # the copy tests the result
            return cond_var is not None and (
                cond_var == var or frozenset((cond_var, var)) in st.eqs
            )

        return st.without(lambda _r, h: tests(h.cond_var) and h.fail_when == failed_when)

    def _resolve_const(self, st: LockState, var: str, const: str, equal: bool) -> LockState:
        """`rc == C` for a try result `rc`: on the equal edge `rc` is C, so a
        non-zero C is a failure of a lock that succeeds at zero
        (`lock_interruptible(m) == -EINTR`: not taken) and zero a failure of
        one that succeeds at non-zero; the unequal edge says only, for a zero
        C, that `rc` is non-zero."""
        zero = const in _ZERO_CONSTS
        if not zero and not _NONZERO_RE.match(const):
            return st  # a named constant (`== OK`) may be zero
        if equal:
            st = self._resolve_cond(st, var, not zero)
            if not zero and const.startswith("-"):
                st = self._resolve_cond(st, var, True, "neg")
            return st
        return self._resolve_cond(st, var, True) if zero else st

    @staticmethod
    def _confirm_neg(st: LockState, var: str) -> LockState:
        """A lock held unless `var` is negative, on an edge where it is not: held."""

        def tests(h: Held) -> bool:
            return (
                h.fail_when == "neg"
                and h.cond_var is not None
                and (h.cond_var == var or frozenset((h.cond_var, var)) in st.eqs)
            )

        if not any(tests(h) for h in st.may.values()):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {r: (replace(h, cond_var=None) if tests(h) else h) for r, h in d.items()}

        return LockState(fix(st.must), fix(st.may), st.eqs)

    @staticmethod
    def _resolve_err(st: LockState, var: str) -> LockState:
        return st.without(
            lambda _r, h: h.fail_when == "err"
            and h.cond_var is not None
            and (h.cond_var == var or frozenset((h.cond_var, var)) in st.eqs)
        )

    @staticmethod
    def _drop_null_owner(st: LockState, var: str) -> LockState:
        """`if (!n)`: no lock inside `*n` can be held on this edge."""

        def inside(ref: LockRef) -> bool:
            inst = ref.inst.split("@")[0]
            return inst.startswith((var + "->", var + ".")) and not h_assumed(st, ref)

        return st.without(lambda ref, _h: inside(ref))

    @staticmethod
    def _clear_atom(st: LockState) -> LockState:
        if not any(h.cond_var == "#atom" for h in st.may.values()):
            return st

        def fix(d: Mapping[LockRef, Held]) -> dict[LockRef, Held]:
            return {
                r: (replace(h, cond_var=None) if h.cond_var == "#atom" else h) for r, h in d.items()
            }

        return LockState(fix(st.must), fix(st.may), st.eqs)

    def _add_eq(self, st: LockState, a: str, b: str) -> LockState:
        if a == b:
            return st
        must = dict(st.must)
        may = dict(st.may)
        for src, dst in ((a, b), (b, a)):
            for ref, h in list(st.must.items()):
                if ref.inst == src:
                    must.setdefault(self._ref_for(dst, ref), h)
            for ref, h in list(st.may.items()):
                if ref.inst == src:
                    may.setdefault(self._ref_for(dst, ref), h)
        return LockState(must, may, st.eqs | {frozenset((a, b))})
