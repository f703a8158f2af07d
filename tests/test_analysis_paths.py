"""Per-path facts and path sets, in process.

`make mutate` runs these first for lockcheck/analysis/paths.py: the
fixtures see path facts only when a whole function's balance depends on
them, so most of what a path learns is invisible there.
"""

from __future__ import annotations

import pytest

from lockcheck.analysis.paths import (
    MAX_PATHS,
    Facts,
    NodePaths,
    _stable_key,
    apply_event,
    merge_paths,
    take_edge,
)
from lockcheck.analysis.state import Held, LockState
from lockcheck.analysis.transfer import Transfer
from lockcheck.model.ir import ERR_CODE, Acquire, Assign, Atom, LockRef, Release, Site

S = Site(4, 2)
TR = Transfer({})
EMPTY = LockState({}, {})


def fact(text: str, truth: bool, *vars: str) -> tuple[str, bool, tuple[str, ...]]:
    return (text, truth, vars or (text,))


def value(var: str, *, factable: bool = True, sign: bool = False) -> Atom:
    return Atom("value", a=var, text=var, vars=(var,), factable=factable, sign=sign)


def eq(a: str, b: str) -> Atom:
    vars = tuple(v for v in (a, b) if not v.isupper() and not v[0].isdigit())
    return Atom("eq", a=a, b=b, text=f"{a}=={b}", vars=vars, factable=True)


def test_meet_keeps_what_both_paths_know_constants_included() -> None:
    zero = Facts(consts=frozenset({("ret", "0")}), released=frozenset({"a", "b"}))
    tested = Facts(atoms=frozenset({fact("ret", False)}), released=frozenset({"b"}))
    m = zero.meet(tested)
    assert m.atoms == {fact("ret", False)} and m.consts == frozenset()
    assert m.released == {"b"}
    assert tested.meet(zero).atoms == {fact("ret", False)}
    one = Facts(consts=frozenset({("ret", "1")}))
    assert one.meet(tested).atoms == frozenset()
    err = Facts(consts=frozenset({("v", "ERR_PTR(-ENOMEM)")}))
    tested_err = Facts(atoms=frozenset({fact("IS_ERR(v)", True, "v")}))
    assert err.meet(tested_err).atoms == {fact("IS_ERR(v)", True, "v")}
    after = Facts(taken_after=frozenset({("x", "y"), ("p", "q")}))
    assert after.meet(Facts(taken_after=frozenset({("x", "y")}))).taken_after == {("x", "y")}


def test_assign_forgets_what_the_old_value_said() -> None:
    f = Facts(
        atoms=frozenset({fact("ret", True), fact("a<b", True, "a", "b")}),
        consts=frozenset({("ret", "1"), ("n", "0")}),
        released=frozenset({"folio->lock", "other"}),
        taken_after=frozenset({("x", "y")}),
    )
    g = f.assign("ret", "0")
    assert g.atoms == {fact("a<b", True, "a", "b")}
    assert g.consts == {("ret", "0"), ("n", "0")} and g.const("ret") == "0"
    assert g.released == f.released and g.taken_after == f.taken_after
    h = f.assign("folio", None)
    assert h.released == {"other"} and h.consts == f.consts and h.atoms == f.atoms
    assert f.assign("n", None).const("n") is None
    assert f.assign("b", None).atoms == {fact("ret", True)}
    assert f.assign("unrelated", None) == f


@pytest.mark.parametrize(
    ("const", "factable", "known"),
    [
        ("0", True, False),
        ("0UL", True, False),
        ("0L", True, False),
        ("0U", True, False),
        ("false", True, False),
        ("NULL", False, False),
        ("1", True, True),
        ("-EINVAL", False, True),  # an error code: non-zero whatever the test
        ("5", False, None),  # a sign test of a positive value decides nothing
        ("5", True, True),
    ],
)
def test_decide_a_tested_variable_from_its_constant(
    const: str, factable: bool, known: bool | None
) -> None:
    f = Facts(consts=frozenset({("ret", const)}))
    assert f.decide(value("ret", factable=factable)) is known
    assert f.decide(value("other", factable=factable)) is None


def test_decide_from_what_the_path_learnt() -> None:
    f = Facts(atoms=frozenset({fact("locked", True), fact("x", False)}))
    assert f.decide(value("locked")) is True and f.decide(value("x")) is False
    assert f.decide(value("locked", factable=False)) is None  # may give another answer now
    assert Facts(consts=frozenset({("#atom", "0")})).decide(value("#atom")) is None


def test_decide_an_equality() -> None:
    f = Facts(
        consts=frozenset({("mode", "2"), ("p", "NULL")}), atoms=frozenset({fact("ret", False)})
    )
    assert f.decide(eq("mode", "2")) is True
    assert f.decide(eq("mode", "3")) is False
    assert f.decide(eq("2", "mode")) is True
    assert f.decide(eq("p", "0")) is True  # two spellings of zero
    assert f.decide(eq("mode", "0")) is False and f.decide(eq("0", "mode")) is False
    assert f.decide(eq("ret", "-ENOSPC")) is False  # ret is known zero
    assert f.decide(eq("-ENOSPC", "ret")) is False
    assert f.decide(eq("ret", "0")) is None  # zero is what it is: no contradiction to draw
    assert f.decide(eq("q", "-ENOSPC")) is None
    assert f.decide(eq("q", "r")) is None


@pytest.mark.parametrize(
    ("facts", "described"),
    [
        (Facts(consts=frozenset({("vma", "NULL")})), "NULL"),
        (Facts(atoms=frozenset({fact("vma", False)})), "vma:zero"),
        (Facts(atoms=frozenset({fact("vma", True)})), "vma:nonzero"),
        (Facts(atoms=frozenset({fact("vma<0", True, "vma")})), "vma:neg"),
        (Facts(atoms=frozenset({fact("vma<0", False, "vma")})), "vma:nonneg"),
        (Facts(atoms=frozenset({fact("vma<0", False, "vma"), fact("vma", True)})), "vma:nonzero"),
        (Facts(atoms=frozenset({fact("IS_ERR(vma)", True, "vma")})), "vma:err"),
        (Facts(atoms=frozenset({fact("IS_ERR(vma)", False, "vma")})), "vma"),
        (Facts(atoms=frozenset({fact("other", True)})), "vma"),
    ],
)
def test_describe_value(facts: Facts, described: str) -> None:
    assert facts.describe_value("vma") == described


def test_learn_a_sign_test() -> None:
    taken = Facts().learn(Atom("value", a="ret", text="ret", vars=("ret",), sign=True), True)
    assert taken.atoms == {fact("ret<0", True, "ret"), fact("ret", True)}
    fell = Facts().learn(Atom("value", a="ret", text="ret", vars=("ret",), sign=True), False)
    assert fell.atoms == {fact("ret<0", False, "ret")}


def test_learn_only_what_a_retest_would_repeat() -> None:
    f = Facts(consts=frozenset({("a", "1")}), released=frozenset({"l"}))
    assert f.learn(value("x", factable=False), True) is f
    assert f.learn(Atom("value", a="x", factable=True), True) is f  # no text to remember
    g = f.learn(value("x"), False)
    assert g.atoms == {fact("x", False)} and g.consts == f.consts and g.released == f.released


def test_learn_an_equality_with_a_constant_about_the_variable() -> None:
    assert Facts().learn(eq("mode", "0"), True).atoms == {
        fact("mode==0", True, "mode"),
        fact("mode", False),
    }
    assert Facts().learn(eq("0", "mode"), False).atoms == {
        fact("0==mode", False, "mode"),
        fact("mode", True),
    }
    assert Facts().learn(eq("mode", "1"), True).atoms == {
        fact("mode==1", True, "mode"),
        fact("mode", True),
    }
    assert Facts().learn(eq("mode", "1"), False).atoms == {fact("mode==1", False, "mode")}
    assert Facts().learn(eq("a", "b"), True).atoms == {fact("a==b", True, "a", "b")}


def held(*insts: str, cond: str | None = None) -> LockState:
    d = {LockRef(i, "spinlock_t"): Held("excl", S, cond) for i in insts}
    return LockState(d, dict(d))


def test_merge_paths_joins_states_and_meets_facts() -> None:
    assert merge_paths([]) is None
    one = (held("a", "b"), Facts(released=frozenset({"x", "y"})))
    assert merge_paths([one]) == one
    m = merge_paths([one, (held("a"), Facts(released=frozenset({"x"})))])
    assert m is not None
    assert {r.inst for r in m[0].must} == {"a"} and {r.inst for r in m[0].may} == {"a", "b"}
    assert m[1].released == {"x"}


def test_node_paths_keep_lock_states_apart_until_there_are_too_many() -> None:
    np = NodePaths()
    assert np.add((held("a"), Facts())) is True
    assert np.add((held("a"), Facts())) is False  # nothing new
    assert np.add((held("a"), Facts(released=frozenset({"z"})))) is False  # facts only meet
    assert np.add((held("b"), Facts())) is True
    assert [sorted(r.inst for r in st.must) for st, _ in np.ordered()] == [["a"], ["b"]]
    merged = np.merged()
    assert merged is not None and dict(merged.must) == {} and len(merged.may) == 2
    assert NodePaths().merged() is None
    # a path already there that learns less: its facts are weakened, which is news
    weak = NodePaths()
    assert weak.add((held("a"), Facts(released=frozenset({"z"})))) is True
    assert weak.add((held("a"), Facts())) is True
    assert [f.released for _st, f in weak.ordered()] == [frozenset()]
    # the same locks under another condition is another path
    assert np.add((held("a", cond="ok"), Facts())) is True and len(np.ordered()) == 3


def test_node_paths_collapse_past_the_limit() -> None:
    np = NodePaths()
    for i in range(MAX_PATHS):
        assert np.add((held(f"l{i}"), Facts())) is True
    assert len(np.ordered()) == MAX_PATHS and not np.collapsed
    assert np.add((held("last"), Facts())) is True
    assert np.collapsed and len(np.ordered()) == 1
    (st, _facts) = np.ordered()[0]
    assert dict(st.must) == {} and len(st.may) == MAX_PATHS + 1
    assert np.add((held("l0"), Facts())) is False  # nothing new once merged
    assert np.add((held("new"), Facts())) is True
    assert len(np.ordered()) == 1 and len(np.ordered()[0][0].may) == MAX_PATHS + 2


def test_node_paths_with_a_higher_limit_keep_more_apart() -> None:
    """The pairing check's second look keeps more lock states apart."""
    np = NodePaths(limit=MAX_PATHS + 2)
    for i in range(MAX_PATHS + 2):
        assert np.add((held(f"l{i}"), Facts())) is True
    assert not np.collapsed and len(np.ordered()) == MAX_PATHS + 2
    assert np.add((held("last"), Facts())) is True
    assert np.collapsed and len(np.ordered()) == 1


def test_apply_event_tracks_releases_and_retakes() -> None:
    lock, other = LockRef("l", "spinlock_t"), LockRef("m", "spinlock_t")
    path = (held("l", "m"), Facts())
    path = apply_event(TR, path, Release(lock, S, "spin_unlock"))
    assert path[1].released == {"l"} and {r.inst for r in path[0].must} == {"m"}
    path = apply_event(TR, path, Release(other, S, "spin_unlock", maybe=True))
    assert path[1].released == {"l"}
    path = apply_event(TR, path, Release(other, S, "spin_unlock"))
    assert path[1].released == {"l", "m"}
    path = apply_event(TR, path, Acquire(lock, "excl", S, "spin_lock"))
    assert path[1].released == {"m"} and path[1].taken_after == {("l", "m")}
    assert {r.inst for r in path[0].must} == {"l"}
    path = apply_event(TR, path, Assign("ret", S, "0"))
    assert path[1].const("ret") == "0" and path[1].taken_after == {("l", "m")}
    again = apply_event(TR, (held(), Facts()), Acquire(lock, "excl", S, "spin_lock"))
    assert again[1] == Facts()


def test_take_edge_skips_edges_the_path_rules_out() -> None:
    f = Facts(atoms=frozenset({fact("locked", True)}))
    assert take_edge(TR, (EMPTY, f), value("locked"), False) is None
    kept = take_edge(TR, (EMPTY, f), value("locked"), True)
    assert kept is not None and kept[1] == f
    learnt = take_edge(TR, (EMPTY, Facts()), value("x"), False)
    assert learnt is not None and learnt[1].atoms == {fact("x", False)}
    assert take_edge(TR, (EMPTY, Facts()), value("x"), None) == (EMPTY, Facts())


def test_a_held_lock_pointer_is_not_null() -> None:
    """`if (!pml)` while pml is held: the false edge is not this path."""
    assert take_edge(TR, (held("pml"), Facts()), value("pml"), False) is None
    assert take_edge(TR, (held("pml"), Facts()), value("pml"), True) is not None
    maybe = take_edge(TR, (held("pml", cond="pml"), Facts()), value("pml"), False)
    assert maybe is not None and dict(maybe[0].must) == {}  # a trylock-style result: not taken
    st = held("pml")
    gone = LockState({r: Held("excl", S, escaped=True) for r in st.must}, st.may)
    assert take_edge(TR, (gone, Facts()), value("pml"), False) is not None
    assert take_edge(TR, (held("pml"), Facts()), eq("pml", "0"), False) is not None


def test_an_equality_with_a_released_lock_releases_both_names() -> None:
    gone = Facts(released=frozenset({"ptl"}))
    out = take_edge(TR, (held("pml"), gone), eq("ptl", "pml"), True)
    assert out is not None and dict(out[0].must) == {} and dict(out[0].may) == {}
    out = take_edge(TR, (held("pml"), gone), eq("pml", "ptl"), True)
    assert out is not None and dict(out[0].must) == {}
    out = take_edge(TR, (held("pml"), gone), eq("ptl", "pml"), False)
    assert out is not None and {r.inst for r in out[0].must} == {"pml"}
    # pml taken after ptl's release: both name the lock held now
    later = Facts(released=frozenset({"ptl"}), taken_after=frozenset({("pml", "ptl")}))
    for a, b in (("ptl", "pml"), ("pml", "ptl")):
        out = take_edge(TR, (held("pml"), later), eq(a, b), True)
        assert out is not None and "pml" in {r.inst for r in out[0].must}
    out = take_edge(TR, (held("pml"), Facts()), eq("ptl", "pml"), True)
    assert out is not None and {r.inst for r in out[0].must} == {"pml", "ptl"}


def test_an_error_code_out_of_an_error_pointer_is_negative_but_no_constant() -> None:
    f = Facts(consts=frozenset({("err", "0")})).assign("err", ERR_CODE)
    assert f.consts == frozenset()
    assert f.decide(value("err")) is True
    assert f.decide(value("err", sign=True)) is True
    assert f.describe_value("err") == "err:neg"
    assert f.decide(eq("err", "-ENOSPC")) is None  # it may be any error
    # assigned again, it is forgotten
    assert f.assign("err", None) == Facts()


def test_node_paths_keep_the_lock_deciding_conditions_apart_longest() -> None:
    noise = [f"f{i}" for i in range(4)]
    np = NodePaths(frozenset({"a", *noise}), frozenset({"a", "x"}))
    assert np.gating == frozenset({"a"})  # only retested conditions count
    for bits in range(16):
        for a in (True, False):
            known = {fact(v, bool(bits >> i & 1)) for i, v in enumerate(noise)} | {fact("a", a)}
            np.add((held("l"), Facts(atoms=frozenset(known))))
    # too many combinations: only `a` keeps them apart now, both outcomes kept
    assert np.retested == frozenset({"a"}) and not np.collapsed
    got = sorted(v for _, f in np.ordered() for t, v, _ in f.atoms if t == "a")
    assert got == [False, True] and len(np.ordered()) == 2
    # without a deciding condition the same paths join into one by lock state
    plain = NodePaths(frozenset({"a", *noise}))
    for bits in range(16):
        for a in (True, False):
            known = {fact(v, bool(bits >> i & 1)) for i, v in enumerate(noise)} | {fact("a", a)}
            plain.add((held("l"), Facts(atoms=frozenset(known))))
    assert plain.retested == frozenset() and len(plain.ordered()) == 1
    assert not any(t == "a" for _, f in plain.ordered() for t, _v, _ in f.atoms)


def test_node_paths_keep_retested_conditions_apart_up_to_the_limit() -> None:
    conds = [f"c{i}" for i in range(MAX_PATHS)]
    np = NodePaths(frozenset(conds), frozenset({"g"}))
    for n, c in enumerate(conds, 1):
        assert np.add((held("l"), Facts(atoms=frozenset({fact(c, True)})))) is True
        # not one path fewer, until the limit is passed
        assert len(np.ordered()) == n and np.retested == frozenset(conds)
    assert not np.collapsed


def test_node_paths_join_the_paths_a_rekeying_makes_agree() -> None:
    noise = [f"f{i}" for i in range(MAX_PATHS + 1)]
    np = NodePaths(frozenset({"a", *noise}), frozenset({"a"}))
    for i, f in enumerate(noise):
        np.add((held("l"), Facts(atoms=frozenset({fact("a", i % 2 == 0), fact(f, True)}))))
    # the last path passes the limit: the paths agreeing on `a` are joined,
    # each keeping only what all of them knew
    assert np.retested == frozenset({"a"})
    got = [sorted((t, v) for t, v, _ in f.atoms) for _, f in np.ordered()]
    assert sorted(got) == [[("a", False)], [("a", True)]]


def test_a_path_key_is_spelled_with_sorted_set_members() -> None:
    key = ((frozenset({("b", "excl", None), ("a", "read", "ok")}), frozenset()), (("a", True),))
    spelled = "(({('a', 'read', 'ok'), ('b', 'excl', None)}, {}), (('a', True)))"
    assert _stable_key(key) == spelled


def test_node_paths_are_ordered_the_same_whatever_the_hash_seed() -> None:
    import subprocess
    import sys

    code = (
        "from lockcheck.analysis.paths import NodePaths, Facts\n"
        "from lockcheck.analysis.state import Held, LockState\n"
        "from lockcheck.model.ir import LockRef, Site\n"
        "np = NodePaths()\n"
        "for names in (['b', 'a'], ['c'], ['a', 'd', 'e'], ['e', 'b']):\n"
        "    h = {LockRef(n, 'spinlock_t'): Held('excl', Site(1, 1, n)) for n in names}\n"
        "    np.add((LockState(h, dict(h)), Facts()))\n"
        "print([sorted(r.inst for r in st.must) for st, _ in np.ordered()])\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "4", "17")
    }
    assert len(outs) == 1, outs


@pytest.mark.parametrize(
    ("text", "value", "want"),
    [
        ("seq&1", "0", False),  # the first, lockless pass of a read-or-lock retry
        ("seq&1", "1", True),  # the retry under the lock
        ("1&seq", "3", True),
        ("seq&0x4", "0x5UL", True),
        ("seq&2", "NULL", False),
        ("seq&1", "-EAGAIN", None),  # not a number this test can read
        ("seq&mask", "1", None),  # the mask is not a number
        ("seq&1&2", "1", None),
    ],
)
def test_a_bit_test_of_a_known_number_is_decided(text: str, value: str, want: bool | None) -> None:
    facts = Facts().assign("seq", value)
    assert facts.decide(Atom("opaque", "", "", text, ("seq",), True)) is want
    assert Facts().decide(Atom("opaque", "", "", text, ("seq",), True)) is None
