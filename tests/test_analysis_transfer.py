"""One event or one branch edge applied to a lock state, in process.

`make mutate` runs these first for lockcheck/analysis/transfer.py: the
fixtures reach most of these cases only through whole functions, where a
wrong transfer is often hidden by a later event or join.
"""

from __future__ import annotations

from lockcheck.analysis.state import Held, LockState
from lockcheck.analysis.transfer import Transfer
from lockcheck.model.ir import (
    Acquire,
    Assign,
    Atom,
    Call,
    Claim,
    Downgrade,
    Handover,
    LockRef,
    Release,
    Site,
)

S1, S2 = Site(3, 2, "a"), Site(9, 4, "b")
SPIN = LockRef("p->lock", "spinlock_t")
SEM = LockRef("mm->mmap_lock", "mmap_lock")
VMA = LockRef("vma->vm_lock", "vma_lock")
TR = Transfer({})


def state(held: dict[LockRef, Held], *eqs: tuple[str, str]) -> LockState:
    return LockState(dict(held), dict(held), frozenset(frozenset(e) for e in eqs))


def escaped(st: LockState) -> dict[str, bool]:
    assert set(st.must) == set(st.may)
    return {r.inst: st.may[r].escaped for r in st.may}


def test_an_unknown_callee_given_the_lock_may_release_it() -> None:
    st = state({SPIN: Held("excl", S1), LockRef("q->lock@7", "spinlock_t"): Held("excl", S1)})
    out = TR.event(st, Call("frob", S2, args=("q->lock",), external=True))
    # the version suffix of a renamed lock is not part of the expression passed
    assert escaped(out) == {"p->lock": False, "q->lock@7": True}
    out = TR.event(st, Call("frob", S2, args=("p->lock",), external=False))
    assert escaped(out) == {"p->lock": False, "q->lock@7": False}  # a callee we can see


def test_a_releaser_by_name_given_the_owner_may_release_its_lock() -> None:
    st = state({SPIN: Held("excl", S1)})
    for callee in ("obj_unlock", "obj_release", "obj_put", "obj_drop"):
        out = TR.event(st, Call(callee, S2, args=("p",), external=True))
        assert escaped(out) == {"p->lock": True}, callee
        out = TR.event(st, Call(callee, S2, args=("q",), external=True))
        assert escaped(out) == {"p->lock": False}, callee
    out = TR.event(st, Call("obj_show", S2, args=("p",), external=True))
    assert escaped(out) == {"p->lock": False}  # given the owner, but not a releaser


def test_acquire_records_the_hold_and_a_second_take_replaces_it() -> None:
    h = TR.event(state({}), Acquire(SPIN, "excl", S1, "spin_trylock", cond_var="ok"))
    assert h.must[SPIN] == Held("excl", S1, "ok") and h.may[SPIN] == h.must[SPIN]
    again = TR.event(state({SPIN: Held("excl", S1)}), Acquire(SPIN, "excl", S2, "spin_lock"))
    assert again.must[SPIN].site == S2


def test_acquire_until_keeps_a_lock_already_held() -> None:
    """`vma_start_write()` of a VMA already write-locked changes nothing."""
    take = Acquire(VMA, "write", S2, "vma_start_write", until="mmap_lock")
    held = state({VMA: Held("write", S1, until="mmap_lock")})
    assert TR.event(held, take).must[VMA].site == S1
    fresh = TR.event(state({}), take)
    assert fresh.must[VMA] == Held("write", S2, until="mmap_lock")


def test_release_of_a_lock_ends_the_locks_held_until_it() -> None:
    st = state({SEM: Held("write", S1), VMA: Held("write", S2, until="mmap_lock")})
    out = TR.event(st, Release(SEM, S2, "mmap_write_unlock"))
    assert dict(out.must) == {} and dict(out.may) == {}
    out = TR.event(st, Release(SPIN, S2, "spin_unlock"))
    assert set(out.must) == {SEM, VMA}


def test_downgrade_keeps_the_lock_for_read_and_ends_bound_locks() -> None:
    st = state({SEM: Held("write", S1), VMA: Held("write", S2, until="mmap_lock")})
    out = TR.event(st, Downgrade(SEM, S2, "mmap_write_downgrade"))
    assert {r.inst: h.mode for r, h in out.must.items()} == {"mm->mmap_lock": "read"}
    assert out.may[SEM].mode == "read"


def test_a_maybe_release_of_any_lock_of_a_class_escapes_that_class_only() -> None:
    st = state({SPIN: Held("excl", S1), SEM: Held("read", S1)})
    out = TR.event(st, Release(LockRef("*", "spinlock_t"), S2, "cond_resched_lock", maybe=True))
    assert escaped(out) == {"p->lock": True, "mm->mmap_lock": False}
    out = TR.event(st, Release(SEM, S2, "expand_stack", maybe=True))
    assert escaped(out) == {"p->lock": False, "mm->mmap_lock": True}


def test_a_not_held_claim_drops_the_lock() -> None:
    st = state({SPIN: Held("excl", S1), SEM: Held("read", S1)})
    out = TR.event(st, Claim("not_held", SPIN, None, S2, "lockdep_assert_not_held(&p->lock)"))
    assert set(out.must) == {SEM} and set(out.may) == {SEM}


def test_a_held_claim_keeps_a_matching_hold_and_adds_a_missing_one() -> None:
    taken = Held("read", S1)
    st = state({SEM: taken})

    def claim(lock: LockRef, mode: str | None) -> LockState:
        return TR.event(st, Claim("held", lock, mode, S2, "assert"))  # type: ignore[arg-type]

    assert claim(SEM, None).must[SEM] is taken  # any mode: the hold as it is
    assert claim(SEM, "read").must[SEM] is taken
    assert claim(SEM, "write").must[SEM] == Held("write", S2, assumed=True)
    # a lock not held: assumed, in the claim's mode or the class's weakest
    assert claim(LockRef("m->sem", "rwsem"), None).must[LockRef("m->sem")] == Held(
        "read", S2, assumed=True
    )
    assert claim(SPIN, None).may[SPIN] == Held("excl", S2, assumed=True)


def test_handover_escapes_the_locks_inside_the_object_not_its_own_pointer() -> None:
    ptr, old = LockRef("p", "spinlock_t"), LockRef("p@5", "spinlock_t")
    st = state({SPIN: Held("excl", S1), ptr: Held("excl", S1), old: Held("excl", S1)})
    out = TR.event(st, Handover("p", S2))
    assert escaped(out) == {"p->lock": True, "p": False, "p@5": False}


def test_assignment_kills_equalities_and_renames_the_locks_it_names() -> None:
    st = LockState(
        {LockRef("p->lock@3", "spinlock_t"): Held("excl", S1, cond_var="p")},
        {LockRef("p->lock@3", "spinlock_t"): Held("excl", S1, cond_var="p")},
        frozenset({frozenset(("p", "q")), frozenset(("a", "b"))}),
    )
    out = TR.event(st, Assign("p", S2))
    assert out.eqs == frozenset({frozenset(("a", "b"))})
    assert {r.inst: h.cond_var for r, h in out.must.items()} == {"p->lock@9": None}
    assert {r.inst: h.cond_var for r, h in out.may.items()} == {"p->lock@9": None}
    # equalities alone die too, and an unrelated hold keeps its condition
    other = state({SPIN: Held("excl", S1, cond_var="ok")}, ("x", "y"))
    out = TR.event(other, Assign("x", S2))
    assert out.eqs == frozenset() and out.must[SPIN].cond_var == "ok"
    # `ok = spin_trylock(&p->lock); ... ok = 0;`: the hold stays, no longer
    # decided by `ok`, although neither the lock nor an equality names `ok`
    tried = state({SPIN: Held("excl", S1, cond_var="ok")})
    out = TR.event(tried, Assign("ok", S2))
    assert out.must[SPIN].cond_var is None and out.may[SPIN].cond_var is None


def test_assignment_of_an_alias_records_one_equality() -> None:
    st = state({})
    assert TR.event(st, Assign("x", S2, alias="y")).eqs == frozenset({frozenset(("x", "y"))})
    assert TR.event(st, Assign("x", S2, alias="x")).eqs == frozenset()
    assert TR.event(st, Assign("x", S2)).eqs == frozenset()


def test_a_tested_result_resolves_on_its_failing_edge_only() -> None:
    st = state({SPIN: Held("excl", S1, cond_var="ok")})
    ok = Atom("value", a="ok")
    assert SPIN not in TR.edge(st, ok, False).may  # `if (!spin_trylock())`: not taken
    assert TR.edge(st, ok, True).must[SPIN].cond_var == "ok"
    # an unlabelled edge (a fall-through) decides nothing
    assert TR.edge(st, ok, None).must[SPIN].cond_var == "ok"
    assert TR.edge(st, None, True).must[SPIN].cond_var == "ok"


def test_an_err_test_resolves_the_hold_its_variable_or_an_equal_one_decides() -> None:
    st = state({SPIN: Held("excl", S1, cond_var="mp", fail_when="err")}, ("mp", "m2"))
    for text in ("IS_ERR(mp)", "IS_ERR_OR_NULL(mp)", "IS_ERR(m2)"):
        assert SPIN not in TR.edge(st, Atom("value", a="#atom", text=text), True).may, text
        assert TR.edge(st, Atom("value", a="#atom", text=text), False).must[SPIN], text
    kept = TR.edge(st, Atom("value", a="#atom", text="IS_ERR(other)"), True)
    assert kept.must[SPIN].cond_var == "mp"
    plain = state({SPIN: Held("excl", S1, cond_var="mp")})
    assert TR.edge(plain, Atom("value", a="#atom", text="IS_ERR(mp)"), True).must[SPIN]


def test_equal_to_an_error_pointer_resolves_like_an_err_test() -> None:
    st = state({SPIN: Held("excl", S1, cond_var="key", fail_when="err")})
    for a, b in (("key", "ERR_PTR(-ENOKEY)"), ("ERR_PTR(-ENOKEY)", "key")):
        eq = Atom("eq", a=a, b=b, text=f"{a}=={b}")
        assert SPIN not in TR.edge(st, eq, True).may
        assert TR.edge(st, eq, False).must[SPIN]
    other = Atom("eq", a="key", b="NULL", text="key==NULL")
    assert TR.edge(st, other, True).must[SPIN]


def test_a_null_owner_holds_none_of_its_locks() -> None:
    inner = {
        LockRef("n->lock", "spinlock_t"): Held("excl", S1),
        LockRef("n.lock", "spinlock_t"): Held("excl", S1),
        LockRef("nn->lock", "spinlock_t"): Held("excl", S1),
        LockRef("m->lock", "spinlock_t"): Held("excl", S1, assumed=True),
    }
    out = TR.edge(state(inner), Atom("value", a="n"), False)
    assert sorted(r.inst for r in out.may) == ["m->lock", "nn->lock"]
    # a lock the function was called with is not dropped by a test
    out = TR.edge(state(inner), Atom("value", a="m"), False)
    assert "m->lock" in {r.inst for r in out.must}


def test_an_edge_forgets_the_anonymous_condition() -> None:
    st = state({SPIN: Held("excl", S1, cond_var="#atom")})
    assert TR.edge(st, None, None).must[SPIN].cond_var is None
    assert TR.edge(st, None, None).may[SPIN].cond_var is None


def test_an_equality_edge_names_the_lock_both_ways() -> None:
    tr = Transfer({"pml": LockRef("pml", "spinlock_t")})
    st = state({LockRef("ptl", "spinlock_t"): Held("excl", S1)})
    out = tr.edge(st, Atom("eq", a="ptl", b="pml"), True)
    assert {r.inst for r in out.must} == {"ptl", "pml"} and out.eqs == {frozenset(("ptl", "pml"))}
    assert TR.edge(st, Atom("eq", a="ptl", b="pml"), False).eqs == frozenset()


def test_a_field_store_renames_the_locks_below_it_and_kills_equalities_on_it() -> None:
    host = LockRef("req->host->lock", "mutex")
    own = LockRef("req->lock", "mutex")
    st = state({host: Held("excl", S1), own: Held("excl", S1)}, ("req->host", "h"), ("a", "b"))
    out = TR.event(st, Assign("req->host", S2, alias="other"))
    # the old host's lock is still held, but `req->host` no longer names it;
    # `h` still does
    assert sorted(r.inst for r in out.may) == ["req->host->lock@9", "req->lock"]
    assert out.eqs == frozenset(
        {
            frozenset(("a", "b")),
            frozenset(("req->host", "other")),
            frozenset(("h->lock", "req->host->lock@9")),
        }
    )
    assert out.same_lock("h->lock", "req->host->lock@9")
    # replacing the structure's pointer kills what was said about its fields
    again = TR.event(out, Assign("req", S2))
    assert again.eqs == frozenset({frozenset(("a", "b"))})
    # a field with a longer name is not below a shorter one
    longer = state({LockRef("req->hostess->lock", "mutex"): Held("excl", S1)})
    assert [r.inst for r in TR.event(longer, Assign("req->host", S2)).may] == ["req->hostess->lock"]


def test_an_assignment_keeps_a_lock_one_with_another_name_of_the_old_value() -> None:
    eb = LockRef("eb->lock", "lock")
    # `parent = eb; ... eb = next;`: `parent->lock` is the renamed lock
    st = state({eb: Held("excl", S1)}, ("eb", "parent"))
    out = TR.event(st, Assign("eb", S2))
    assert [r.inst for r in out.may] == ["eb->lock@9"]
    assert out.eqs == frozenset({frozenset(("parent->lock", "eb->lock@9"))})
    released = TR.event(out, Release(LockRef("parent->lock", "lock"), S2, "spin_unlock"))
    assert dict(released.may) == {}
    # a lock of an older value, or an equality about the old value itself
    # (`x = eb->next`), gives no other name
    old = state({LockRef("eb->lock@3", "lock"): Held("excl", S1)}, ("eb", "parent"))
    assert TR.event(old, Assign("eb", S2)).eqs == frozenset()
    derived = state({eb: Held("excl", S1)}, ("eb", "eb->next"))
    assert TR.event(derived, Assign("eb", S2)).eqs == frozenset()
    # a member reached with `.` stays one with the other name as with `->`:
    # one lock before the assignment, one lock after it
    dot = state({LockRef("eb.lock", "lock"): Held("excl", S1)}, ("eb", "parent"))
    assert dot.same_lock("parent.lock", "eb.lock")
    out = TR.event(dot, Assign("eb", S2))
    assert out.eqs == frozenset({frozenset(("parent.lock", "eb.lock@9"))})
    assert out.same_lock("parent.lock", "eb.lock@9")


def test_a_sign_test_fails_a_signed_hold_and_confirms_it_otherwise() -> None:
    # `id = add(..)` holding the lock for any id >= 0 (0 included), none below
    st = state({SPIN: Held("excl", S1, cond_var="id", fail_when="neg")})
    neg = Atom("value", a="id", text="id", sign=True)  # `if (id < 0)`
    assert SPIN not in TR.edge(st, neg, True).may
    kept = TR.edge(st, neg, False)
    assert kept.must[SPIN].cond_var is None  # 0 or more: held, whatever the value
    assert TR.edge(st, Atom("value", a="id", text="id"), False).must[SPIN].cond_var is None
    # `if (id)` taken: maybe a positive id, maybe an error; nothing decided
    assert TR.edge(st, Atom("value", a="id", text="id"), True).must[SPIN].cond_var == "id"


def test_a_failed_sign_test_drops_a_hold_that_needed_zero() -> None:
    # held exactly when it is zero (`mutex_lock_interruptible()`): `< 0` failed
    st = state({SPIN: Held("excl", S1, cond_var="ret", fail_when="nonzero")})
    sign = Atom("value", a="ret", text="ret", sign=True)
    assert SPIN not in TR.edge(st, sign, True).may
    assert TR.edge(st, sign, False).may[SPIN].cond_var == "ret"


def test_a_try_result_equal_to_a_constant_decides_the_lock() -> None:
    # taken unless `rc` is non-zero (an interruptible lock: 0 or -EINTR)
    st = state({SPIN: Held("excl", S1, "rc", "nonzero")})

    def edge(const: str, label: bool) -> set[str]:
        atom = Atom("eq", "rc", const, f"rc=={const}", ("rc",), True)
        return {r.inst for r in TR.edge(st, atom, label).may}

    assert edge("-EINTR", True) == set()  # equal to an error: not taken
    assert edge("-EINTR", False) == {"p->lock"}  # another value: may be 0
    assert edge("0", True) == {"p->lock"}
    assert edge("0", False) == set()  # non-zero: not taken
    # a named constant may be zero: nothing learnt either way
    assert edge("STATUS_OK", True) == {"p->lock"}
    # the call's own result compared in the condition (`f(m) == -EINTR`)
    held = state({SPIN: Held("excl", S1, "#atom", "nonzero")})
    atom = Atom("eq", "#atom", "-EINTR", "-EINTR==f(m)", (), False)
    assert TR.edge(held, atom, True).may == {}


LRU = LockRef("bdev->lru_lock", "lru_lock")


def test_a_callees_release_through_a_member_drops_the_one_lock_it_ends_in() -> None:
    st = state({LRU: Held("excl", S1)})
    named = LockRef("bo->bdev->lru_lock", "lru_lock")
    gone = TR.event(st, Release(named, S2, "helper", summarised=True))
    assert not gone.may
    # the function's own unlock under another name is not guessed at
    assert LRU in TR.event(st, Release(named, S2, "spin_unlock")).may
    # two held locks it could end in: neither is picked
    two = state({LRU: Held("excl", S1), LockRef("x->bdev->lru_lock", "lru_lock"): Held("excl", S1)})
    assert (
        len(
            TR.event(
                two, Release(LockRef("y->x->bdev->lru_lock", "lru_lock"), S2, "h", summarised=True)
            ).may
        )
        == 2
    )


def test_a_lock_kept_only_on_one_result_follows_the_tests_of_that_result() -> None:
    st = state({LRU: Held("excl", S1)})
    ev = Release(
        LockRef("bo->bdev->lru_lock", "lru_lock"),
        S2,
        "helper",
        maybe=True,
        cond_var="ret",
        released_when="unless:-EBUSY",
        summarised=True,
    )
    after = TR.event(st, ev)
    assert after.may[LRU].cond_var == "ret" and not after.may[LRU].escaped
    zero = Atom("value", "ret", text="ret", vars=("ret",), factable=True)
    assert not TR.edge(after, zero, False).may  # `!ret`: not -EBUSY, released
    busy = Atom("eq", "ret", "-EBUSY", text="ret == -EBUSY", vars=("ret",), factable=True)
    kept = TR.edge(after, busy, True)
    assert kept.must[LRU].cond_var is None  # -EBUSY: surely still held
    assert not TR.edge(after, busy, False).may  # anything else: released
    other = Atom("eq", "ret", "-ENOSPC", text="ret == -ENOSPC", vars=("ret",), factable=True)
    assert not TR.edge(after, other, True).may
