"""What a call does to its caller: lock effects, acts, returned constants."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from lockcheck.analysis.function import FunctionFacts, return_value
from lockcheck.analysis.paths import ZERO_VALUES
from lockcheck.analysis.state import base_inst, base_var, below, mentions
from lockcheck.frontend.macros import IDENT_RE
from lockcheck.model.extract import MEMBER_PATH_RE, canonical, class_of
from lockcheck.model.ir import (
    ERR_CODE,
    KEPT_ON,
    Acquire,
    Act,
    Assign,
    Call,
    Check,
    Claim,
    Declared,
    Event,
    Function,
    LockRef,
    Mode,
    Names,
    Release,
    Site,
    is_constant,
)


def substitute(
    inst: str,
    params: tuple[str, ...],
    args: tuple[str, ...],
    local_names: frozenset[str] = frozenset(),
    addressed: frozenset[str] = frozenset(),
) -> str | None:
    """A callee's lock expression in the caller's terms, or None if it is local.

    Expressions rooted at a parameter are rewritten with the argument;
    those rooted at a name the callee never assigns (a global such as
    `hugetlb_fault_mutex_table[hash]`) are kept as they are. `*ptlp` (a
    lock handed back through an out-parameter) is `ptl` for an argument
    written `&ptl`, `*p` for a pointer `p` passed on. `addressed` names the
    parameters whose argument was written `&x` (see `addressed_params`): by
    position, as one variable may be passed both ways (`cow(eb, &eb)`).
    """
    mapping = dict(zip(params, args, strict=False))
    inst = inst.split("@")[0]
    if inst.startswith("*"):  # a lock handed back through an out-parameter
        param = inst[1:]
        if param not in params or param in local_names:
            return None
        arg = dict(zip(params, args, strict=False)).get(param)
        if arg is None:
            return None
        return arg if param in addressed else "*" + arg
    head = re.match(r"[A-Za-z_]\w*", inst)
    if head is None:
        return None
    name = head.group(0)
    if any(mentions(inst, local) for local in local_names):
        return None  # `table[idx].lock` with the callee's own idx
    rest = _inner_params(inst[head.end() :], mapping)
    if name not in mapping:
        # `AFFS_I(inode)->i_hash_lock`, `table[idx]`: parameters inside the
        # expression are the caller's arguments too
        return name + rest
    arg = mapping[name]
    if (arg.startswith("&") or name in addressed) and rest.startswith("->"):
        return arg.lstrip("&") + "." + rest[2:]
    return arg + rest


_INNER_NAME_RE = re.compile(r"(?<!->)(?<![\w.])([A-Za-z_]\w*)(?!\w)(?!\s*\()")


def addressed_params(params: tuple[str, ...], positions: tuple[int, ...]) -> frozenset[str]:
    """The callee's parameters whose argument the call wrote `&x`."""
    return frozenset(params[i] for i in positions if i < len(params))


def _inner_params(rest: str, mapping: Mapping[str, str]) -> str:
    """Parameters named inside a lock expression (not as fields or callees)."""

    def repl(m: re.Match[str]) -> str:
        arg = mapping.get(m.group(1))
        if arg is None:
            return m.group(0)
        return arg if re.fullmatch(r"[\w.>\-]+", arg) else f"({arg})"

    return _INNER_NAME_RE.sub(repl, rest) if mapping else rest


# a summary's lock that is the call's result (`ptl = __pmd_trans_huge_lock(..)`)
RETURNED = "#ret"


@dataclass(frozen=True, slots=True)
class Summary:
    """What a call to a function does, for its callers in the same file."""

    params: tuple[str, ...] = ()
    acts: tuple[Act, ...] = ()
    # (lock, mode, success): success "nonzero"/"zero" when the lock is held
    # only if the call returns non-zero/zero (trylock-like helpers), else None
    acquires: tuple[tuple[LockRef, Mode, str | None], ...] = ()
    releases: tuple[LockRef, ...] = ()
    returns: str | None = None  # the constant every way out returns, if one
    may_release: tuple[LockRef, ...] = ()  # the caller's locks dropped on some ways out
    locals: frozenset[str] = frozenset()  # names assigned inside: not the caller's
    # acquired locks held until a lock of a class is released (vma_start_write())
    bound: tuple[tuple[LockRef, str], ...] = ()
    # a release callback (`obj = container_of(ref, ...)`): locks of the object
    # around its parameter it releases on some path, as (`->field` suffix, class)
    container_drops: tuple[tuple[str, str], ...] = ()
    # may_release locks the function keeps on every way out when a parameter
    # is zero (`do_vmi_munmap(.., unlock)`): (lock, parameter index)
    kept_unless: tuple[tuple[LockRef, int], ...] = ()
    # may_release locks kept on exactly the ways out that return one constant
    # (`return -EBUSY;` before the unlock, every later way out another value):
    # (lock, that constant); a caller that tests the result knows which
    kept_on: tuple[tuple[LockRef, str], ...] = ()
    # the caller's locks the function asserts held for write (`mmap_assert_write_locked(mm)`):
    # (lock, the assertion as written)
    asserts_write: tuple[tuple[LockRef, str], ...] = ()
    # no side effects, and calls only functions without any: asked twice
    # with the same arguments, it answers the same (analysis/file.py)
    pure: bool = False
    # never returns a positive value (0, -errno, an error code): no lock
    # effect, but a caller testing the result against 0 learns from it
    nonpos: bool = False

    def sign_only(self) -> bool:
        """Known only for the sign of its result: to the lock analysis still
        an unknown function (a lock handed to it may go)."""
        return self.nonpos and not self.has_effects()

    def has_effects(self) -> bool:
        return bool(
            self.pure
            or self.acts
            or self.acquires
            or self.releases
            or self.may_release
            or self.returns is not None
            or self.container_drops
            or self.asserts_write
        )

    def effect_key(self) -> tuple[object, ...]:
        """What a caller sees, without source positions: for comparing variants."""
        return (
            self.acquires,
            self.releases,
            self.may_release,
            self.returns,
            tuple(sorted(a.kind for a in self.acts)),
            self.container_drops,
            self.pure,
        )


def _acquire_outcome(facts: FunctionFacts, ref: LockRef) -> str:
    """How a caller can tell whether `ref` is held after the call.

    "always": on every way out; "nonzero"/"zero": exactly when the return
    value is non-zero/zero (a trylock-like helper); "nonneg": when it is not
    negative; "noerr": when it is no ERR_PTR(); "never": no telling.
    """
    holding = [(st, ret) for _, st, _, ret in facts.exits if ref in st.may]
    free = [ret for _, st, _, ret in facts.exits if ref not in st.may]
    conds = {st.may[ref].cond_var for st, _ in holding}
    if "#ret" in conds:  # ways out without the lock must return the other answer
        return _mixed_outcome(facts, ref)
    if not free and all(ref in st.must for st, _ in holding):
        return "always"
    held_vals = {ret for _, ret in holding}
    free_vals = set(free)
    if signals_holding(held_vals, free_vals):
        if all(_is_err(v) for v in free_vals) and not any(_is_zeroish(v) for v in held_vals):
            return "noerr"  # the object with the lock, an ERR_PTR() without: IS_ERR() tells
        if any(v.endswith(":nonneg") for v in held_vals):
            # an index or a count (0 included) with the lock, -errno without:
            # only the sign tells (`if (id < 0)`), not zero against non-zero
            return "nonneg"
        return "zero" if all(_is_zeroish(v) for v in held_vals) else "nonzero"
    return "never"


def _mixed_outcome(facts: FunctionFacts, ref: LockRef) -> str:
    """Some ways out return a lock call's result, others a constant
    (`return nonblock ? trylock(m) ? 0 : -EAGAIN : mutex_lock_killable(m);`):
    one outcome when every holding way out agrees on it (the call succeeded,
    or a constant that reads the same) and every way out without the lock
    returns the opposite."""
    said: set[str] = set()
    free: list[str] = []
    for _, st, _, ret in facts.exits:
        held = st.may.get(ref)
        if held is None:
            free.append(ret)
        elif held.cond_var == "#ret":
            said.add({"zero": "nonzero", "nonzero": "zero"}.get(held.fail_when or "", "?"))
        elif _is_zeroish(ret):
            said.add("zero")
        elif is_constant(ret) and not is_failure_value(ret):
            said.add("nonzero")
        else:
            said.add("?")
    if said == {"zero"} and not any(_is_zeroish(v) or not v for v in free):
        return "zero"
    if said == {"nonzero"} and all(_is_zeroish(v) for v in free):
        return "nonzero"
    return "never"


def _is_err(value: str) -> bool:
    v = value.strip("() ")
    return v.startswith(("ERR_PTR", "ERR_CAST")) or v.endswith(":err")


def _annotated_success(facts: FunctionFacts) -> str | None:
    """When `__acquires(x)` holds: a function that returns 0 on some ways out
    and something else on others follows the kernel's 0-is-success rule, and
    its error paths are not promised to hold the lock."""
    values = {ret for _, _, _, ret in facts.exits}
    if "0" in values and "" not in values and len(values) > 1:
        return "zero"
    return None


def _is_zeroish(value: str) -> bool:
    return value in ZERO_VALUES or value.endswith(":zero")


def is_failure_value(value: str) -> bool:
    """A return value that reads as "did not happen": NULL, false, -Exxx, ERR_PTR()."""
    v = value.strip("() ")
    return (
        v in ("NULL", "false")
        or v.startswith(("-", "ERR_PTR", "ERR_CAST"))
        or v.endswith((":err", ":neg"))
    )


def signals_holding(held_vals: set[str], free_vals: set[str]) -> bool:
    """Do the returns tell the caller whether the lock is held?

    `return ptl;` versus `return NULL;`, `return 0;` versus `return -EINTR;`,
    `return 1;` versus `return 0;`, or one variable that is known zero on
    every path without the lock (`return vma;` after `if (!vma) unlock`):
    the holding returns report success and the others failure. A lock still
    held at `return -EINVAL;` is the opposite: a leak on an error path.
    """
    if not held_vals or not free_vals or "" in held_vals or held_vals & free_vals:
        return False
    names = {v.rsplit(":", 1)[0] for v in held_vals | free_vals if not is_constant(v)}
    if len(names) == 1:
        (var,) = names
        # the same variable returned everywhere: zero exactly without the lock
        free_zero = all(_is_zeroish(v) for v in free_vals)
        held_nonzero = all(
            v in (var, f"{var}:nonzero") or (is_constant(v) and not _is_zeroish(v))
            for v in held_vals
        )
        if free_zero and held_nonzero:
            return True
        # 0 with the lock, a known non-zero (error) value without it
        # 0 or a count (`ret >= 0`) with the lock, a negative error without it
        if all(is_failure_value(v) for v in free_vals) and all(
            _is_zeroish(v) or v.endswith(":nonneg") for v in held_vals
        ):
            return True
        # the object with the lock, an ERR_PTR() (tested or assigned) without it
        if all(_is_err(v) for v in free_vals) and not any(
            is_failure_value(v) or _is_zeroish(v) for v in held_vals
        ):
            return True
        held_zero = all(_is_zeroish(v) for v in held_vals)
        free_nonzero = all(
            v == f"{var}:nonzero" or (is_constant(v) and not _is_zeroish(v)) for v in free_vals
        )
        return held_zero and free_nonzero
    bool_like = all(is_constant(v) for v in held_vals | free_vals)
    held_true = all(not _is_zeroish(v) and not is_failure_value(v) for v in held_vals)
    if bool_like and held_true and all(v in ("0", "false", "NULL") for v in free_vals):
        return True  # `return 1;` / `return true;` with the lock, 0 without
    if (
        bool_like
        and all(v in ("0", "false") for v in held_vals)
        and all(v in ("1", "true") for v in free_vals)
    ):
        return True  # `return false;` with the lock, `return true;` ("done") without
    return not any(is_failure_value(v) for v in held_vals) and all(
        is_failure_value(v) for v in free_vals
    )


def _cls(ref: LockRef, inst: str) -> str:
    """A class read off the callee's spelling (`m` for a `struct mutex *m`
    parameter) is read again off the caller's (`SB_JOURNAL(sb)->j_mutex`)."""
    return class_of(inst) if ref.cls == class_of(ref.inst.split("@")[0]) else ref.cls


def _canon(inst: str | None, fn: Function) -> str | None:
    """A callee's lock in the caller's own spelling (`sbi->s_fc_lock`)."""
    return canonical(inst, fn.canon) if inst is not None else None


def effective_events(
    fn: Function,
    summaries: Mapping[str, Summary],
    defined: frozenset[str] = frozenset(),
    consts: Mapping[str, str] | None = None,
) -> list[list[Event]]:
    """The events of `fn` with each call's summary applied after it.

    `consts`: parameters pinned to a value (see param_keyed)."""
    consts = consts or {}
    out: list[list[Event]] = []
    for node in fn.cfg.nodes:
        evs: list[Event] = []
        for ev in node.events:
            # `kref_put(.., release)` with `release` in view: known, not a guess
            if (
                isinstance(ev, Call)
                and ev.callee not in defined
                and not (ev.callback and ev.callback in defined)
            ):
                ev = replace(ev, external=True)
            evs.append(ev)
            if not isinstance(ev, Call):
                continue
            summ = summaries.get(ev.callee)
            if summ is not None and summ.nonpos and ev.result and not ev.result.startswith("#"):
                ev = evs[-1] = replace(ev, nonpos=True)
            cb = summaries.get(ev.callback) if ev.callback else None
            if cb is not None and ev.callback_obj:
                # released exactly on the outcome that says the callback ran
                # (`if (!kref_put(..))` unlocks on the other); unknown when
                # the answer is not tested here
                tested = ev.result not in (None, RETURNED) and ev.callback_ran is not None
                for suffix, cls in cb.container_drops:
                    obj_lock = ev.callback_obj + suffix
                    evs.append(
                        Release(
                            LockRef(_canon(obj_lock, fn) or obj_lock, cls=cls),
                            ev.site,
                            ev.callback or "",
                            maybe=True,
                            cond_var=ev.result if tested else None,
                            released_when=ev.callback_ran or "nonzero",
                        )
                    )
            if summ is None or summ.sign_only():
                continue
            callee_params = summ.params
            addressed = addressed_params(callee_params, ev.addressed)
            for ref in summ.releases:
                inst = _canon(
                    substitute(ref.inst, callee_params, ev.args, summ.locals, addressed), fn
                )
                if inst is not None:
                    evs.append(
                        Release(
                            LockRef(inst, cls=_cls(ref, inst)), ev.site, ev.callee, summarised=True
                        )
                    )
                else:  # a lock we cannot name here: any lock of its class may be gone
                    evs.append(Release(LockRef("*", cls=ref.cls), ev.site, ev.callee, maybe=True))
            kept = dict(summ.kept_unless)
            kept_on = dict(summ.kept_on)
            for ref in summ.may_release:
                k = kept.get(ref)
                arg = ev.args[k] if k is not None and k < len(ev.args) else None
                if arg is not None and consts.get(arg, arg) in ZERO_VALUES:
                    continue  # `do_vmi_munmap(.., false)`: the lock stays held
                inst = _canon(
                    substitute(ref.inst, callee_params, ev.args, summ.locals, addressed), fn
                )
                cls = _cls(ref, inst) if inst is not None else ref.cls
                value = kept_on.get(ref)
                tested = ev.result is not None and not ev.result.startswith("#")
                evs.append(
                    Release(
                        LockRef(inst or "*", cls=cls),
                        ev.site,
                        ev.callee,
                        maybe=True,
                        # gone unless the result is that value: the caller's tests tell
                        cond_var=ev.result if value is not None and inst and tested else None,
                        released_when=KEPT_ON + (value or ""),
                        summarised=True,
                    )
                )
            until = dict(summ.bound)
            taken = 0
            for ref, mode, success in summ.acquires:
                if ref.inst == RETURNED or below(ref.inst, RETURNED):
                    # the result, or a lock inside it (`eb = lock_root(..)` holding `eb->lock`)
                    result = ev.result
                    returned = result is not None and not result.startswith("#")
                    inst = result + ref.inst[len(RETURNED) :] if result and returned else None
                else:
                    inst = _canon(
                        substitute(ref.inst, callee_params, ev.args, summ.locals, addressed), fn
                    )
                if inst is None:
                    continue
                cond = ev.result if success is not None else None
                fail = {"nonzero": "zero", "noerr": "err", "nonneg": "neg"}.get(
                    success or "", "nonzero"
                )
                evs.append(
                    Acquire(
                        LockRef(inst, cls=_cls(ref, inst)),
                        mode,
                        ev.site,
                        ev.callee,
                        # a helper taking two locks (double_pt_lock()) orders and
                        # annotates them itself, where it is checked
                        taken > 0,
                        cond,
                        fail,  # type: ignore[arg-type]
                        until=until.get(ref),
                    )
                )
                taken += 1
            for act in summ.acts:
                rereads = _lift_rereads(act.rereads, callee_params, ev.args, summ.locals)
                evs.append(Act(act.kind, act.target, ev.site, ev.callee, act.inner_checks, rereads))
            if summ.returns is not None and ev.result and not ev.result.startswith("#"):
                evs.append(Assign(ev.result, ev.site, summ.returns))
        out.append(evs)
    return out


def _lift_rereads(
    rereads: tuple[tuple[str, str, frozenset[str]], ...],
    params: tuple[str, ...],
    args: tuple[str, ...],
    local_names: frozenset[str],
) -> tuple[tuple[str, str, frozenset[str]], ...]:
    """A callee's entry re-tests in the caller's terms; a callee-local entry is dropped."""
    out = []
    for cls, ptr, keys in rereads:
        inst = substitute(ptr, params, args, local_names)
        if inst is not None:
            out.append((cls, inst, keys))
    return tuple(out)


def param_keyed(
    facts: FunctionFacts,
    summ: Summary,
    events_with: Callable[[Mapping[str, str]], list[list[Event]]],
    analyse: Callable[[Function, list[list[Event]]], FunctionFacts] | None = None,
) -> Summary:
    """Which locks the function may drop only when a parameter is non-zero.

    The function is analysed again with each parameter zero from the start:
    a may-released lock still surely held at every way out is kept whenever
    the caller passes 0/false/NULL there. `analyse`: the dataflow to run
    (a review's remembers those of an unchanged function, analysis/file.py).
    """
    if not summ.may_release or not summ.params:
        return summ
    if analyse is None:
        from lockcheck.analysis.flow import analyse as flow  # the dataflow, run again

        analyse = flow

    fn = facts.fn
    # only a parameter a branch tests can decide whether the lock goes
    tested = {
        n.atom.a
        for n in fn.cfg.nodes
        if n.atom is not None and n.atom.kind == "value" and n.atom.factable
    }
    if not tested & set(summ.params):
        return summ
    kept: list[tuple[LockRef, int]] = []
    entry = fn.cfg.entry
    site = fn.cfg.nodes[entry].events[0].site if fn.cfg.nodes[entry].events else None
    for i, param in enumerate(summ.params):
        if param not in tested:
            continue
        pinned = events_with({param: "0"})
        pinned[entry] = [
            Assign(param, site or _entry_site(fn), "0"),
            *pinned[entry],
        ]
        again = analyse(fn, pinned)
        if not again.exits:
            continue
        for ref in summ.may_release:
            reached = any(
                st is not None and isinstance(ev, Release) and ev.lock == ref
                for evs, sts in zip(again.events, again.before, strict=True)
                for ev, st in zip(evs, sts, strict=True)
            )
            if not reached:
                kept.append((ref, i))
    return replace(summ, kept_unless=tuple(kept)) if kept else summ


def _returned(facts: FunctionFacts, ref: LockRef, local: frozenset[str]) -> LockRef:
    """A lock held in a local the function returns (`return ptl;` with `ptl`
    locked, NULL without), or inside the object it returns (`return eb;`
    with `eb->lock` held), is, for the caller, the lock its result points to
    (or holds): without this the caller's `spin_unlock(ptl)` releases a lock
    it never took. A renamed one (`ptl@N`: the local was given another value
    after the lock) is not what the function returns."""
    inst = ref.inst
    var = base_var(inst)
    rest = inst[len(var) :]
    if "@" in inst or var not in local or (rest and not rest.startswith(("->", "."))):
        return ref
    if rest:
        # its address stored elsewhere (`q->lock_ptr = &hb->lock;`): the
        # caller may release it under that name, which summaries do not carry
        stored = re.compile(rf"=\s*&\s*\(?\s*{re.escape(inst)}\b")
        if any(stored.search(node.text) for node in facts.fn.cfg.nodes):
            return ref
    rets = {ret.rsplit(":", 1)[0] for _, st, _, ret in facts.exits if ref in st.may}
    return LockRef(RETURNED + rest, cls=ref.cls) if rets == {var} else ref


def _member_copies(fn: Function) -> dict[str, str]:
    """Locals that are a fixed copy of a parameter's member (`inode` set once
    to `dentry->d_inode`): local -> that member path."""
    return {
        var: expr
        for expr, var in fn.canon.items()
        if MEMBER_PATH_RE.fullmatch(expr) and base_var(expr) in fn.params
    }


def _lifted(ref: LockRef, lift: Mapping[str, str]) -> LockRef:
    """A lock spelt through such a copy (`inode->i_lock`), spelt through the
    parameter instead (`dentry->d_inode->i_lock`), which a caller can name.
    Only releases are lifted: an acquisition the caller would then hold
    needs more certainty than a copy made at the top of the function."""
    if "@" in ref.inst:
        return ref
    var = base_var(ref.inst)
    expr = lift.get(var)
    if expr is None or not below(ref.inst, var):
        return ref
    return LockRef(expr + ref.inst[len(var) :], cls=ref.cls)


def _entry_site(fn: Function) -> Site:
    return Site(fn.start_line, 1, "(entry)")


def _owns_one(ref: LockRef, insts: list[str]) -> bool:
    """Is one of the lock expressions `insts` a member of `ref` (`w->mtx` of `w`)?"""
    return any(below(i.split("@")[0], ref.inst) for i in insts)


def declared_summaries(declared: Iterable[Declared]) -> dict[str, Summary]:
    """What annotated prototypes promise their callers when no body is in
    view (a header's inline wrapping a function of some other file)."""
    return {
        d.name: Summary(
            d.params,
            acquires=tuple((ref, "excl", None) for ref in d.acquires),
            releases=d.releases,
        )
        for d in declared
    }


def summarise(facts: FunctionFacts) -> Summary:
    fn = facts.fn
    own = [(nid, ev) for nid, ev, _ in facts.iter_events() if isinstance(ev, Act)]
    # checks that decide some act of this function, with the locks held there
    deciding = [
        (nid, ev, st)
        for nid, ev, st in facts.iter_events()
        if isinstance(ev, Check)
        and fn.cfg.nodes[nid].kind == "branch"
        and any(facts.gates(nid, an) for an, _ in own)
    ]
    from lockcheck.analysis.values import act_rereads  # provenance, which needs substitute()

    rereads = act_rereads(facts) if own else {}
    acts: list[Act] = []
    for nid, act in own:
        inner = list(act.inner_checks)
        for cnid, chk, cst in deciding:
            if facts.dominates(cnid, nid):
                inner.append((chk.flag, Names(cst.held_keys())))
        again = rereads.get((nid, act), ())
        acts.append(Act(act.kind, act.target, act.site, act.via, tuple(inner), again))
    acquires: list[tuple[LockRef, Mode, str | None]] = []
    # `__acquires(obj)` on a body that locks `obj->mtx` names the lock by its
    # owner: the body's lock is the one meant, in the acquiring wrapper and in
    # the releasing one alike, so that the pair cancels in callers
    body = [ev for evs in facts.events for ev in evs]
    taken = [ev.lock.inst for ev in body if isinstance(ev, Acquire)]
    dropped = [ev.lock.inst for ev in body if isinstance(ev, Release) and not ev.maybe]
    # `__releases(L) __acquires(L)`: called with L, returns with it: net
    # nothing for a caller, unless the body is seen to drop and retake L
    # itself (a relock the caller must know of); an annotation naming a lock
    # the body never drops must not hand the caller a lock it did not hold
    seen = {base_inst(i) for i in dropped}
    unseen = {r for r in fn.exit_releases if r in fn.exit_acquires and r.inst not in seen}
    releases: list[LockRef] = [
        r for r in fn.exit_releases if not _owns_one(r, dropped) and r not in unseen
    ]
    may_release: list[LockRef] = []
    bound: list[tuple[LockRef, str]] = []
    exit_st = facts.state_in[fn.cfg.exit]
    if exit_st is not None:
        # only what the function itself releases: a lock it merely asserts
        # (lockdep_assert_held() on one branch) is not dropped by calling it
        released_here = {ev.lock for evs in facts.events for ev in evs if isinstance(ev, Release)}
        for ref in sorted(facts.entry_locks, key=lambda r: (r.inst, r.cls)):
            if ref not in released_here:
                continue
            if ref not in exit_st.may and ref not in releases and not fn.parse_errors:
                releases.append(ref)
            elif ref not in exit_st.may and fn.parse_errors:
                # code the grammar could not take apart is one flat node: its
                # order of acquisitions and releases is not known
                may_release.append(ref)
            elif ref not in exit_st.must or exit_st.may[ref].escaped:
                may_release.append(ref)
        for ref, held in exit_st.may.items():
            if held.assumed or ref in facts.entry_locks:
                continue
            if held.escaped:
                # handed to a callee that may release it (unlock_cluster_or_
                # swap_info() on one arm): the caller is not promised it
                continue
            success = _acquire_outcome(facts, ref)
            if success != "never":
                acquires.append((ref, held.mode, None if success == "always" else success))
                if held.until is not None:
                    bound.append((ref, held.until))
    # locks of the caller's objects handed to code that may release them
    # (a `kref_put()` whose release callback unlocks): the caller may lose them
    for evs in facts.events:
        for ev in evs:
            if (
                isinstance(ev, Release)
                and ev.maybe
                and ev.lock.inst != "*"
                and base_var(ev.lock.inst) in fn.params
                and ev.lock not in releases
                and ev.lock not in may_release
            ):
                may_release.append(ev.lock)
    asserts: list[tuple[LockRef, str]] = []
    for evs in facts.events:
        for ev in evs:
            if (
                isinstance(ev, Claim)
                and ev.kind == "held"
                and ev.mode == "write"
                and ev.lock in facts.entry_locks
                and base_var(ev.lock.inst) in fn.params
                and all(r != ev.lock for r, _ in asserts)
            ):
                asserts.append((ev.lock, ev.source))
    drops: list[tuple[str, str]] = []
    for evs in facts.events:
        for ev in evs:
            if not isinstance(ev, Release):
                continue
            var = base_var(ev.lock.inst)
            suffix = ev.lock.inst.split("@")[0][len(var) :]
            # `owner->lock` with `owner = obj->owner` set once: `->owner->lock` of obj
            owner, member = fn.container_members.get(var, (var, ""))
            if var not in fn.containers and owner in fn.containers and suffix:
                var, suffix = owner, member + suffix
            if var in fn.containers and suffix and (suffix, ev.lock.cls) not in drops:
                drops.append((suffix, ev.lock.cls))
    values = {return_value(fn.cfg.nodes[n].text) for n, _, _, _ in facts.exits}
    returns = next(iter(values)) if len(values) == 1 else None
    if returns is not None and not is_constant(returns):
        returns = None
    assigned = frozenset(
        ev.var for evs in facts.events for ev in evs if isinstance(ev, Assign)
    ) - frozenset(fn.params)
    for ref in fn.exit_acquires:
        if ref in unseen or _owns_one(ref, taken):
            continue
        if all(r != ref for r, _, _ in acquires):
            acquires.append((ref, "excl", _annotated_success(facts)))
    # an annotation may name the local the function returns
    # (`__acquires(&wb->list_lock)` ... `return wb;`): handed back like the body's
    handed: list[tuple[LockRef, Mode, str | None]] = []
    for ref, m, s in acquires:
        got = _returned(facts, ref, assigned)
        if all(r != got for r, _, _ in handed):
            handed.append((got, m, s))
    # a lock the body hands back inside its result (`return base;` holding
    # `base->lock`) is the lock `__acquires(timer->base->lock)` names: once
    inside = {r.cls for r, _, _ in handed if below(r.inst, RETURNED)}
    annotated = set(fn.exit_acquires)
    acquires = [
        (r, m, s)
        for r, m, s in handed
        if not (r in annotated and r.cls in inside)
    ]
    kept_on = tuple(
        (ref, value)
        for ref in may_release
        if (value := _kept_on_value(facts, ref)) is not None
    )
    lift = _member_copies(fn)
    if lift:
        # a lock the callers could not name, named through the parameter: a
        # release the callers now see, but as a maybe (an inferred caller
        # lock, or a local that is not always that member, stays harmless)
        # (the local's own spelling stays too: for the direct caller it is
        # still any lock of its class that may be gone)
        named = [_lifted(ref, lift) for ref in (*releases, *may_release)]
        may_release += [ref for ref in named if ref not in may_release and ref not in releases]
    return Summary(
        fn.params,
        tuple(acts),
        tuple(acquires),
        tuple(releases),
        returns,
        tuple(may_release),
        assigned,
        tuple(bound),
        tuple(drops),
        kept_on=kept_on,
        asserts_write=tuple(asserts),
    )


def _kept_on_value(facts: FunctionFacts, ref: LockRef) -> str | None:
    """The constant every way out still holding a caller's lock returns
    (`return -EBUSY;`), when no way out that dropped it returns that
    constant: the result then tells the caller whether the lock is gone.
    Ways out returning a variable count as dropping: a caller learns the
    lock is held only from that constant, and only where it may be."""
    holding = [ret for _, st, _, ret in facts.exits if ref in st.may]
    free = [ret for _, st, _, ret in facts.exits if ref not in st.may]
    if not holding or not free or len(set(holding)) != 1:
        return None
    if any(ref not in st.must for _, st, _, _ in facts.exits if ref in st.may):
        return None
    (value,) = set(holding)
    if not is_constant(value) or _is_zeroish(value) or value in free:
        return None
    return value


_NEG_CONST_RE = re.compile(r"-\s*(?:E[A-Z0-9_]+|\d+[UuLl]*)")
_CALL_RE = re.compile(r"([A-Za-z_]\w*)\s*\(.*\)", re.S)


def _called(value: str) -> str | None:
    """The function `value` is a whole call of (`f(a, g(b))`), else None:
    not `f(a) ? 1 : g(b)`."""
    m = _CALL_RE.fullmatch(value)
    if m is None:
        return None
    depth = 0
    for i in range(value.index("("), len(value)):
        depth += {"(": 1, ")": -1}.get(value[i], 0)
        if depth == 0:
            return m.group(1) if i == len(value) - 1 else None
    return None


def _nonpos_const(value: str) -> bool:
    """0, a negated errno or number, or an error code (`PTR_ERR(p)`)."""
    v = value.strip()
    while v.startswith("(") and v.endswith(")"):
        v = v[1:-1].strip()
    if _called(v) == "PTR_ERR":
        return True  # returned as is: the error code, as model/extract.py reads it
    return v in ZERO_VALUES or v == ERR_CODE or bool(_NEG_CONST_RE.fullmatch(v))


def never_positive(
    fn: Function, events: list[list[Event]], summaries: Mapping[str, Summary]
) -> bool:
    """Does every `return` give 0, a negative constant, an error code, the
    result of a function that never returns a positive value, or a local
    that holds one of those there?

    Syntactic and linear in the function: a local assigned anything else
    (`ret = reserve(..)`) must be tested `ret < 0` (or found zero) on every
    way from that assignment to a `return ret`; the caller can then tell
    `x = f(); if (x < 0) ..; if (!x) ..` covers every outcome of `f`."""
    nodes = fn.cfg.nodes
    rets: dict[int, str] = {}
    for node in nodes:
        if any(succ == fn.cfg.exit for succ, _ in node.succ) and node.kind != "entry":
            rets[node.id] = return_value(node.text)
    if not rets or any(not v for v in rets.values()):
        return False  # a void function, or a way out that returns nothing
    checked: set[str] = set()
    for value in rets.values():
        if _nonpos_const(value):
            continue
        name = _called(value)
        if name is not None:
            summ = summaries.get(name)
            if name != fn.name and summ is not None and summ.nonpos:
                continue
            return False
        if not IDENT_RE.fullmatch(value) or value not in fn.local_names:
            return False
        if value not in checked:
            if not _local_nonpos(fn, events, value, rets):
                return False
            checked.add(value)
    return True


def _local_nonpos(
    fn: Function, events: list[list[Event]], var: str, rets: Mapping[int, str]
) -> bool:
    """Every assignment to `var` gives a value <= 0, or is followed by a
    test that finds it negative or zero before any `return var`."""
    nodes = fn.cfg.nodes
    assigns: set[int] = set()
    starts: list[int] = []
    for nid, evs in enumerate(events):
        for i, ev in enumerate(evs):
            if not isinstance(ev, Assign) or ev.var != var:
                continue
            assigns.add(nid)
            if ev.value is not None and _nonpos_const(ev.value):
                continue
            nxt = evs[i + 1] if i + 1 < len(evs) else None
            if isinstance(nxt, Call) and nxt.result == var and nxt.nonpos:
                continue
            if ev.alias is not None or ev.bits is not None:
                return False  # a copy of another name, or a mask
            starts.append(nid)
    seen: set[int] = set()
    todo = list(starts)
    while todo:
        nid = todo.pop()
        if nid in seen:
            continue
        seen.add(nid)
        node = nodes[nid]
        if rets.get(nid) == var:
            return False
        atom = node.atom
        for succ, label in node.succ:
            if succ in assigns and succ != nid:
                continue  # a new value, judged on its own
            # `var < 0` true, or `!var` / `var == 0` true: not positive from here
            if (
                atom is not None
                and atom.kind == "value"
                and atom.a == var
                and label is not None
                and atom.sign == label
            ):
                continue
            todo.append(succ)
    return True
