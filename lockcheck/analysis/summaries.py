"""What a call does to its caller: lock effects, acts, returned constants."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from lockcheck.analysis.function import FunctionFacts, return_value
from lockcheck.analysis.paths import ZERO_VALUES
from lockcheck.analysis.state import mentions
from lockcheck.model.ir import (
    Acquire,
    Act,
    Assign,
    Call,
    Check,
    Event,
    Function,
    LockRef,
    Mode,
    Release,
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
    written `&ptl` (one of `addressed`), `*p` for a pointer `p` passed on.
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
        return arg if arg in addressed else "*" + arg
    head = re.match(r"[A-Za-z_]\w*", inst)
    if head is None:
        return None
    name = head.group(0)
    if any(mentions(inst, local) for local in local_names):
        return None  # `table[idx].lock` with the callee's own idx
    if name not in mapping:
        return inst
    arg = mapping[name]
    rest = inst[head.end() :]
    if (arg.startswith("&") or arg in addressed) and rest.startswith("->"):
        return arg.lstrip("&") + "." + rest[2:]
    return arg + rest


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

    def has_effects(self) -> bool:
        return bool(
            self.acts
            or self.acquires
            or self.releases
            or self.may_release
            or self.returns is not None
        )

    def effect_key(self) -> tuple[object, ...]:
        """What a caller sees, without source positions: for comparing variants."""
        return (
            self.acquires,
            self.releases,
            self.may_release,
            self.returns,
            tuple(sorted(a.kind for a in self.acts)),
        )


def _acquire_outcome(facts: FunctionFacts, ref: LockRef) -> str:
    """How a caller can tell whether `ref` is held after the call.

    "always": on every way out; "nonzero"/"zero": exactly when the return
    value is non-zero/zero (a trylock-like helper); "never": no telling.
    """
    holding = [(st, ret) for _, st, _, ret in facts.exits if ref in st.may]
    free = [ret for _, st, _, ret in facts.exits if ref not in st.may]
    conds = {st.may[ref].cond_var for st, _ in holding}
    if conds == {"#ret"}:
        fails = {st.may[ref].fail_when for st, _ in holding}
        return "nonzero" if fails == {"zero"} else "zero" if fails == {"nonzero"} else "never"
    if not free and all(ref in st.must for st, _ in holding):
        return "always"
    held_vals = {ret for _, ret in holding}
    free_vals = set(free)
    if signals_holding(held_vals, free_vals):
        return "zero" if all(_is_zeroish(v) for v in held_vals) else "nonzero"
    return "never"


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
    return v in ("NULL", "false") or v.startswith(("-", "ERR_PTR"))


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


def effective_events(
    fn: Function, summaries: Mapping[str, Summary], defined: frozenset[str] = frozenset()
) -> list[list[Event]]:
    out: list[list[Event]] = []
    for node in fn.cfg.nodes:
        evs: list[Event] = []
        for ev in node.events:
            if isinstance(ev, Call) and ev.callee not in defined:
                ev = replace(ev, external=True)
            evs.append(ev)
            if not isinstance(ev, Call):
                continue
            summ = summaries.get(ev.callee)
            if summ is None:
                continue
            callee_params = summ.params
            addressed = frozenset(ev.args[i] for i in ev.addressed if i < len(ev.args))
            for ref in summ.releases:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals, addressed)
                if inst is not None:
                    evs.append(Release(LockRef(inst, cls=ref.cls), ev.site, ev.callee))
                else:  # a lock we cannot name here: any lock of its class may be gone
                    evs.append(Release(LockRef("*", cls=ref.cls), ev.site, ev.callee, maybe=True))
            for ref in summ.may_release:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals, addressed)
                evs.append(
                    Release(LockRef(inst or "*", cls=ref.cls), ev.site, ev.callee, maybe=True)
                )
            for ref, mode, success in summ.acquires:
                inst = substitute(ref.inst, callee_params, ev.args, summ.locals, addressed)
                if inst is None:
                    continue
                cond = ev.result if success is not None else None
                fail = "zero" if success == "nonzero" else "nonzero"
                evs.append(
                    Acquire(LockRef(inst, cls=ref.cls), mode, ev.site, ev.callee, False, cond, fail)  # type: ignore[arg-type]
                )
            for act in summ.acts:
                evs.append(Act(act.kind, act.target, ev.site, ev.callee, act.inner_checks))
            if summ.returns is not None and ev.result and not ev.result.startswith("#"):
                evs.append(Assign(ev.result, ev.site, summ.returns))
        out.append(evs)
    return out


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
    acts: list[Act] = []
    for nid, act in own:
        inner = list(act.inner_checks)
        for cnid, chk, cst in deciding:
            if facts.dominates(cnid, nid):
                inner.append((chk.flag, cst.held_keys()))
        acts.append(Act(act.kind, act.target, act.site, act.via, tuple(inner)))
    acquires: list[tuple[LockRef, Mode, str | None]] = []
    releases: list[LockRef] = list(fn.exit_releases)
    may_release: list[LockRef] = []
    exit_st = facts.state_in[fn.cfg.exit]
    if exit_st is not None:
        # only what the function itself releases: a lock it merely asserts
        # (lockdep_assert_held() on one branch) is not dropped by calling it
        released_here = {
            ev.lock for evs in facts.events for ev in evs if isinstance(ev, Release)
        }
        for ref in facts.entry_locks:
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
    for ref in fn.exit_acquires:
        if all(r != ref for r, _, _ in acquires):
            acquires.append((ref, "excl", _annotated_success(facts)))
    values = {return_value(fn.cfg.nodes[n].text) for n, _, _, _ in facts.exits}
    returns = next(iter(values)) if len(values) == 1 else None
    if returns is not None and not is_constant(returns):
        returns = None
    assigned = frozenset(
        ev.var for evs in facts.events for ev in evs if isinstance(ev, Assign)
    ) - frozenset(fn.params)
    return Summary(
        fn.params,
        tuple(acts),
        tuple(acquires),
        tuple(releases),
        returns,
        tuple(may_release),
        assigned,
    )

