"""The lock-state lattice on its own: names, modes, joins, entry states.

In-process and fast: `make mutate` runs it for every mutant of
lockcheck/analysis/state.py (the fixture tests see these paths only
through whole functions).
"""

from __future__ import annotations

import pytest

from lockcheck.analysis.state import (
    Held,
    LockState,
    base_var,
    below,
    h_assumed,
    initial_state,
    join,
    mentions,
    mode_of_release,
)
from lockcheck.model.ir import Cfg, Claim, Function, LockRef, Mode, Node, Site

S1, S2 = Site(3, 2, "a"), Site(5, 4, "b")
SEM = LockRef("m->sem", "rwsem")
SPIN = LockRef("p->lock", "spinlock_t")


def state(
    must: dict[LockRef, Held], may: dict[LockRef, Held] | None = None, eqs: tuple[str, ...] = ()
) -> LockState:
    return LockState(must, dict(must) if may is None else may, frozenset({frozenset(eqs)}))


@pytest.mark.parametrize(
    ("inst", "var", "want"),
    [
        ("cpu_rq(t)->__lock", "t", True),
        ("table[hash]", "hash", True),
        ("p->t", "t", False),  # a field, not the variable
        ("s.t", "t", False),
        ("lock@t", "t", False),  # the `@` suffix is a version, not part of the expression
        ("t@4", "t", True),
    ],
)
def test_mentions(inst: str, var: str, want: bool) -> None:
    assert mentions(inst, var) is want


def test_base_var() -> None:
    assert base_var("mm->mmap_lock") == "mm"
    assert base_var("&x->lock") == ""
    assert base_var("") == ""


@pytest.mark.parametrize(
    ("primitive", "cls", "mode"),
    [
        ("mmap_write_unlock", "mmap_lock", "write"),
        ("up_write", "rwsem", "write"),
        ("mmap_read_unlock", "mmap_lock", "read"),
        ("read_unlock", "rwlock_t", "read"),
        ("foo_read_unlock", "foo", "read"),  # the primitive's name says so
        ("up", "foo_sem", "read"),  # an rw class released without saying how
        ("spin_unlock", "spinlock_t", "excl"),
        ("mutex_unlock", "mutex", "excl"),
    ],
)
def test_mode_of_release(primitive: str, cls: str, mode: Mode) -> None:
    assert mode_of_release(primitive, cls) == mode


def test_held_defaults_to_a_plain_lock_taken_here() -> None:
    h = Held("excl", S1)
    assert (h.cond_var, h.fail_when, h.assumed, h.escaped) == (None, "zero", False, False)


def test_h_assumed() -> None:
    st = state({SEM: Held("read", S1, assumed=True), SPIN: Held("excl", S2)})
    assert h_assumed(st, SEM) is True
    assert h_assumed(st, SPIN) is False
    assert h_assumed(st, LockRef("other")) is False


@pytest.mark.parametrize(
    ("a", "b", "met"),
    [("read", "write", "read"), ("write", "excl", "excl"), ("write", "write", "write")],
)
def test_join_meets_modes(a: Mode, b: Mode, met: Mode) -> None:
    j = join(state({SEM: Held(a, S1)}), state({SEM: Held(b, S2)}))
    assert j is not None and j.must[SEM].mode == met


def test_join_keeps_the_earlier_site_and_merges_flags() -> None:
    a = state({SEM: Held("read", S2, cond_var="ok", assumed=True, escaped=False)}, eqs=("x", "y"))
    b = state({SEM: Held("read", S1, cond_var=None, assumed=False, escaped=True)}, eqs=("x", "y"))
    j = join(a, b)
    assert j is not None
    h = j.must[SEM]
    assert (h.site, h.cond_var, h.assumed, h.escaped) == (S1, "ok", False, True)
    assert j.eqs == frozenset({frozenset(("x", "y"))})
    both = join(a, state({SEM: Held("read", S2, assumed=True)}))
    assert both is not None and both.must[SEM].assumed is True
    assert join(a, None) is a and join(None, b) is b and join(None, None) is None


def test_join_must_is_the_intersection_and_may_the_union() -> None:
    a = state({SEM: Held("read", S1)})
    b = state({SPIN: Held("excl", S2)})
    j = join(a, b)
    assert j is not None
    assert dict(j.must) == {} and set(j.may) == {SEM, SPIN}
    assert j.describe() == [] and j.held_keys() == frozenset()


def test_join_of_may_marks_a_lock_escaped_on_either_side() -> None:
    free = Held("excl", S1)
    gone = Held("excl", S1, escaped=True)
    for a, b in ((free, gone), (gone, free)):
        j = join(state({}, {SPIN: a}), state({}, {SPIN: b}))
        assert j is not None and j.may[SPIN].escaped is True
    j = join(state({}, {SPIN: free}), state({}, {SPIN: free}))
    assert j is not None and j.may[SPIN].escaped is False


def test_describe_and_keys() -> None:
    st = state({SEM: Held("write", S1), SPIN: Held("excl", S2)})
    assert st.describe() == ["m->sem:write", "p->lock"]
    assert st.held_keys() == frozenset({"rwsem:write", "spinlock_t:excl"})


def test_same_lock_through_equalities_and_renamed_bases() -> None:
    st = state({}, eqs=("ptl", "pml"))
    assert st.same_lock("ptl", "pml") and st.same_lock("pml", "ptl") and st.same_lock("a", "a")
    assert not st.same_lock("ptl", "other")
    cur = state({}, eqs=("cur", "op"))
    assert cur.same_lock("cur->lock", "op->lock")
    assert not cur.same_lock("cur->lock", "op->other")
    assert not cur.same_lock("cur->lock", "cur->lock2")


def function(*claims: Claim) -> Function:
    cfg = Cfg([Node(0, 7, "entry"), Node(1, 9, "exit")], 0, 1)
    return Function("f", "f.c", 7, 9, cfg, entry_claims=claims)


def test_initial_state_from_claims_and_inferred_caller_locks() -> None:
    claims = (
        Claim("held", SEM, None, S1, "__must_hold(&m->sem)"),
        Claim("held", SPIN, None, S1, "lockdep_assert_held(&p->lock)"),
        Claim("held", LockRef("mm->mmap_lock", "mmap_lock"), "write", S2, "assert"),
    )
    inferred: dict[LockRef, Mode] = {SPIN: "read", LockRef("q->lock", "spinlock_t"): "excl"}
    st = initial_state(function(*claims), inferred)
    assert {ref.inst: h.mode for ref, h in st.must.items()} == {
        "m->sem": "read",
        "p->lock": "excl",  # the claim wins over the inference
        "mm->mmap_lock": "write",
        "q->lock": "excl",
    }
    assert all(h.assumed for h in st.must.values()) and dict(st.may) == dict(st.must)
    assert st.must[SEM].site == S1
    assert st.must[LockRef("q->lock")].site == Site(7, 1, "(held by the caller)")
    assert initial_state(function()).must == {}


def test_same_lock_through_a_stored_field() -> None:
    st = state({}, eqs=("dio->inode", "inode"))
    assert st.same_lock("dio->inode->i_rwsem", "inode->i_rwsem")
    assert st.same_lock("inode->i_rwsem", "dio->inode->i_rwsem")
    assert st.same_lock("dio->inode.i_rwsem", "inode.i_rwsem")
    assert not st.same_lock("dio->inode->i_rwsem", "inode->i_lock")
    assert not st.same_lock("dio->inodes->i_rwsem", "inode->i_rwsem")
    assert not st.same_lock("dio->inode", "inode->i_rwsem")
    assert not state({}).same_lock("dio->inode->i_rwsem", "inode->i_rwsem")
    assert below("a->b->c", "a->b") and below("a->b.c", "a->b")
    assert not below("a->bc", "a->b") and not below("a->b", "a->b")
