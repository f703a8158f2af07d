"""What a call does to its caller: summaries of small C functions, in process.

`make mutate` runs these first for lockcheck/analysis/summaries.py. The
rule fixtures see a summary only through the finding it changes in a
caller; these name the summary's fields and the caller's events directly.
"""

from __future__ import annotations

import pytest

from lockcheck.analysis.summaries import (
    Summary,
    addressed_params,
    is_failure_value,
    signals_holding,
    substitute,
    summarise,
)
from lockcheck.engine import Config, Engine
from lockcheck.model.ir import Acquire, Act, Assign, LockRef, Release, Site


def summaries(code: str) -> dict[str, Summary]:
    engine = Engine(Config(headers=False))
    return engine.analyse_source("t.c", code.encode()).facts.summaries


def events_of(code: str, function: str) -> list[object]:
    engine = Engine(Config(headers=False))
    facts = engine.analyse_source("t.c", code.encode()).facts
    (ff,) = [f for f in facts.functions if f.fn.name == function]
    return [ev for evs in ff.events for ev in evs]


@pytest.mark.parametrize(
    ("inst", "want"),
    [
        ("p->lock", "q->lock"),
        ("p->lock@12", "q->lock"),  # a renamed (older) value is the same expression
        ("m", "&x->m"),
        ("*ptlp", "ptl"),  # handed back through `&ptl`
        ("*pp", "*pp_arg"),  # a pointer passed on
        ("table[idx].lock", "table[(i + 1)].lock"),  # a parameter inside the expression
        ("table[n].lock", "table[n].lock"),  # a global index
        ("glob_lock", "glob_lock"),
        ("AFFS_I(p)->lock", "AFFS_I(q)->lock"),
        ("tab[p->n].lock", "tab[q->n].lock"),
    ],
)
def test_substitute_puts_a_callee_lock_in_the_callers_terms(inst: str, want: str) -> None:
    params = ("p", "m", "ptlp", "pp", "idx")
    args = ("q", "&x->m", "ptl", "pp_arg", "i + 1")
    assert substitute(inst, params, args, addressed=frozenset({"ptlp"})) == want


def test_substitute_of_a_struct_passed_by_address() -> None:
    assert substitute("s->lock", ("s",), ("&obj",)) == "obj.lock"
    assert substitute("s->lock", ("s",), ("obj",), addressed=frozenset({"s"})) == "obj.lock"
    assert substitute("s", ("s",), ("&obj",)) == "&obj"
    assert substitute("s->lock", ("s",), ("obj",)) == "obj->lock"
    # one variable passed both ways (`cow(eb, &eb)`): only the `&eb` parameter is an address
    both = frozenset({"ret"})
    assert substitute("buf->lock", ("buf", "ret"), ("eb", "eb"), addressed=both) == "eb->lock"
    assert substitute("*ret", ("buf", "ret"), ("eb", "eb"), addressed=both) == "eb"
    assert addressed_params(("buf", "ret"), (1, 5)) == both
    # `&x` in a variadic call's extra arguments: no parameter of the callee
    assert addressed_params(("buf", "ret"), (2,)) == frozenset()


def test_substitute_drops_what_the_caller_cannot_name() -> None:
    assert substitute("l->lock", ("p",), ("q",), local_names=frozenset({"l"})) is None
    assert substitute("tab[i].lock", (), (), local_names=frozenset({"i"})) is None
    assert substitute("*ptlp", ("p",), ("q",)) is None  # not a parameter
    assert substitute("*ptlp", ("ptlp",), ("ptl",), local_names=frozenset({"ptlp"})) is None
    assert substitute("*ptlp", ("a", "ptlp"), ("x",)) is None  # called with fewer arguments
    assert substitute("(x)->lock", ("x",), ("y",)) is None


@pytest.mark.parametrize(
    ("value", "failure"),
    [
        ("NULL", True),
        ("false", True),
        ("-EINVAL", True),
        ("ERR_PTR(-ENOMEM)", True),
        ("ERR_CAST(page)", True),
        ("(-EAGAIN)", True),
        ("ret:err", True),
        ("ret:neg", True),
        ("0", False),
        ("1", False),
        ("ptl", False),
        ("ret:nonzero", False),
    ],
)
def test_is_failure_value(value: str, failure: bool) -> None:
    assert is_failure_value(value) is failure


@pytest.mark.parametrize(
    ("held", "free", "signals"),
    [
        ({"ptl"}, {"NULL"}, True),
        ({"0"}, {"-EINTR"}, True),
        ({"1"}, {"0"}, True),
        ({"true"}, {"false"}, True),
        ({"false"}, {"true"}, True),  # "done" without the lock
        ({"vma"}, {"vma:zero"}, True),
        ({"vma:nonzero", "vma"}, {"vma:zero"}, True),
        ({"ret"}, {"ret:neg"}, False),  # ret may be negative with the lock too
        ({"ret:nonneg"}, {"ret:neg"}, True),
        ({"0"}, {"ret:neg"}, True),
        ({"folio"}, {"folio:err"}, True),
        ({"folio"}, {"ERR_PTR(-EAGAIN)"}, True),
        ({"ret:zero"}, {"ret:nonzero"}, True),
        ({"0"}, {"ret"}, False),  # ret unknown
        ({"-EINVAL"}, {"0"}, False),  # a leak on an error path
        ({"ret"}, {"0"}, True),  # the variable, zero on the ways without the lock
        ({"ret"}, {"1"}, False),
        ({"0"}, {"0"}, False),
        ({"0", "1"}, {"1"}, False),
        ({""}, {"NULL"}, False),  # a void return tells nothing
        (set(), {"NULL"}, False),
        ({"ptl"}, set(), False),
        ({"2"}, {"0"}, True),
        ({"1"}, {"2"}, False),
        ({"a"}, {"b"}, False),
        ({"a", "b"}, {"NULL"}, True),
        ({"a", "NULL"}, {"-EINVAL"}, False),
        ({"ret:zero"}, {"ret:nonzero", "1"}, True),
        ({"ret:zero"}, {"ret:nonzero", "0"}, False),
        ({"vma:zero"}, {"vma"}, False),
        ({"1"}, {"ret:zero"}, True),  # a non-zero constant with the lock, ret zero without
        ({"ret:nonneg"}, {"ret:zero"}, False),  # 0 is not negative either
        ({"a", "b"}, {"0"}, False),  # two names: not a boolean
        ({"1"}, {"0", "false"}, True),
        ({"1"}, {"0", "NULL"}, True),
        ({"0"}, {"1"}, True),  # "done" (1) without the lock
    ],
)
def test_signals_holding(held: set[str], free: set[str], signals: bool) -> None:
    assert signals_holding(held, free) is signals


def test_summary_effects_and_key() -> None:
    assert not Summary(params=("a",), locals=frozenset({"x"})).has_effects()
    lock = LockRef("a->l", "spinlock_t")
    for s in (
        Summary(acquires=((lock, "excl", None),)),
        Summary(releases=(lock,)),
        Summary(may_release=(lock,)),
        Summary(returns="0"),
        Summary(container_drops=(("->l", "spinlock_t"),)),
        Summary(asserts_write=((lock, "assert"),)),
    ):
        assert s.has_effects(), s
        assert s.effect_key() != Summary().effect_key() or s.asserts_write
    acts = Summary(acts=(Act("free", "page", Site(1, 1)),))
    assert acts.has_effects() and acts.effect_key()[4] == ("free",)


HELPERS = """
struct obj { spinlock_t lock; struct mutex m; int n; struct kref ref; };

static void take(struct obj *o)
{
	spin_lock(&o->lock);
}

static void drop(struct obj *o)
{
	spin_unlock(&o->lock);
}

static int try_take(struct obj *o)
{
	if (!mutex_trylock(&o->m))
		return 0;
	return 1;
}

static int take_or_fail(struct obj *o)
{
	if (o->n)
		return -EINVAL;
	mutex_lock(&o->m);
	return 0;
}

static struct obj *get_locked(struct obj *o)
{
	if (o->n)
		return ERR_PTR(-EINVAL);
	spin_lock(&o->lock);
	return o;
}

static void maybe_drop(struct obj *o, int unlock)
{
	if (unlock)
		spin_unlock(&o->lock);
}

static void release_cb(struct kref *ref)
{
	struct obj *o = container_of(ref, struct obj, ref);

	spin_unlock(&o->lock);
}

static void put_locked(struct obj *o)
{
	kref_put(&o->ref, release_cb);
}

static void assert_w(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
	mmap_assert_write_locked(mm);
}

static void lock_vma(struct vm_area_struct *vma)
{
	vma_start_write(vma);
}

static int zero(void)
{
	return 0;
}

static int one_or_two(int x)
{
	int r = x;

	if (r)
		return 1;
	return 2;
}
"""


def lock(inst: str, cls: str = "lock") -> LockRef:
    return LockRef(inst, cls)


def test_summaries_of_lock_helpers() -> None:
    s = summaries(HELPERS)
    assert s["take"].acquires == ((lock("o->lock"), "excl", None),) and s["take"].params == ("o",)
    assert s["drop"].releases == (lock("o->lock"),) and not s["drop"].acquires
    assert s["try_take"].acquires == ((lock("o->m", "m"), "excl", "nonzero"),)
    assert s["take_or_fail"].acquires == ((lock("o->m", "m"), "excl", "zero"),)
    assert s["get_locked"].acquires == ((lock("o->lock"), "excl", "noerr"),)
    assert s["zero"].returns == "0" and s["zero"].has_effects()
    # two constants: no effect a caller sees, but asking twice answers the same
    assert s["one_or_two"].pure and s["one_or_two"].effect_key()[:4] == ((), (), (), None)
    assert not s["take"].pure and not s["drop"].pure  # locking is a side effect
    engine = Engine(Config(headers=False))
    facts = engine.analyse_source("t.c", HELPERS.encode()).facts
    (ff,) = [f for f in facts.functions if f.fn.name == "one_or_two"]
    plain = summarise(ff)
    assert plain.returns is None and plain.locals == {"r"} and plain.params == ("x",)


def test_a_helper_that_releases_only_when_told() -> None:
    s = summaries(HELPERS)["maybe_drop"]
    assert s.may_release == (lock("o->lock"),) and s.releases == ()
    assert s.kept_unless == ((lock("o->lock"), 1),)  # kept when `unlock` is zero


def test_a_release_callback_and_its_caller() -> None:
    s = summaries(HELPERS)
    assert s["release_cb"].container_drops == (("->lock", "lock"),)
    assert s["release_cb"].locals == {"o"}
    assert s["put_locked"].may_release == (lock("o->lock"),)
    assert s["put_locked"].releases == ()


def test_write_assertions_and_locks_bound_to_another() -> None:
    s = summaries(HELPERS)
    mm = LockRef("mm->mmap_lock", "mmap_lock")
    assert s["assert_w"].asserts_write == ((mm, "mmap_assert_write_locked(mm)"),)  # once
    assert s["assert_w"].releases == () and s["assert_w"].may_release == ()
    vma = LockRef("vma->vm_lock", "vma_lock")
    assert s["lock_vma"].acquires == ((vma, "write", None),)
    assert s["lock_vma"].bound == ((vma, "mmap_lock"),)


CALLER = """
static void caller(struct obj *a, struct obj *b, struct vm_area_struct *v)
{
	struct obj *p;
	int r;

	take(a);
	drop(a);
	if (try_take(b))
		mutex_unlock(&b->m);
	r = take_or_fail(b);
	p = get_locked(a);
	spin_lock(&a->lock);
	maybe_drop(a, 0);
	maybe_drop(a, r);
	kref_put(&b->ref, release_cb);
	r = zero();
	lock_vma(v);
}
"""


def test_a_callers_events_in_its_own_terms() -> None:
    evs = events_of(HELPERS + CALLER, "caller")
    by = {
        (type(ev).__name__, getattr(ev, "primitive", "")): ev
        for ev in evs
        if isinstance(ev, (Acquire, Release))
    }
    take = by[("Acquire", "take")]
    assert isinstance(take, Acquire)
    assert (take.lock, take.mode, take.cond_var, take.nested) == (
        lock("a->lock"),
        "excl",
        None,
        False,
    )
    assert by[("Release", "drop")].lock == lock("a->lock")
    tried = by[("Acquire", "try_take")]
    assert isinstance(tried, Acquire) and tried.lock == lock("b->m", "m")
    assert (tried.cond_var, tried.fail_when) == ("#atom", "zero")
    failing = by[("Acquire", "take_or_fail")]
    assert isinstance(failing, Acquire) and (failing.cond_var, failing.fail_when) == (
        "r",
        "nonzero",
    )
    got = by[("Acquire", "get_locked")]
    assert isinstance(got, Acquire) and (got.cond_var, got.fail_when) == ("p", "err")
    vma = by[("Acquire", "lock_vma")]
    assert isinstance(vma, Acquire) and vma.until == "mmap_lock" and vma.mode == "write"
    maybes = [ev for ev in evs if isinstance(ev, Release) and ev.maybe]
    # `maybe_drop(a, 0)` keeps the lock; `maybe_drop(a, r)` may drop it; the
    # callback of `kref_put()` may drop the lock of the object around `b->ref`
    assert [(ev.lock, ev.primitive) for ev in maybes] == [
        (lock("a->lock"), "maybe_drop"),
        (lock("b->lock"), "release_cb"),
    ]
    consts = [(ev.var, ev.value) for ev in evs if isinstance(ev, Assign) and ev.value]
    assert ("r", "0") in consts


MORE = """
struct obj { spinlock_t lock; spinlock_t other; int n; };

static int try_direct(struct obj *o)
{
	return spin_trylock(&o->lock);
}

static void take_two(struct obj *a, struct obj *b)
{
	spin_lock(&a->lock);
	spin_lock_nested(&b->lock, 1);
}

static int annotated(struct obj *o)
	__acquires(&o->lock)
{
	if (o->n)
		return -EINVAL;
	spin_lock(&o->lock);
	return 0;
}

static void sometimes(struct obj *o)
{
	if (o->n)
		spin_lock(&o->lock);
}

static void drop_local(struct obj *o)
{
	struct obj *p = o->next;

	spin_unlock(&p->lock);
}

static void caller(struct obj *a, struct obj *b)
{
	take_two(a, b);
	drop_local(a);
	if (try_direct(a))
		spin_unlock(&a->lock);
}
"""


def test_how_a_caller_tells_that_a_helper_took_its_lock() -> None:
    s = summaries(MORE)
    assert s["try_direct"].acquires == ((lock("o->lock"), "excl", "nonzero"),)  # `return trylock()`
    assert s["annotated"].acquires == ((lock("o->lock"), "excl", "zero"),)  # __acquires, 0 or -E
    assert "sometimes" not in s  # held on some ways out, and nothing tells which
    assert s["take_two"].acquires == (
        (lock("a->lock"), "excl", None),
        (lock("b->lock"), "excl", None),
    )
    # `p` is a fixed copy of `o->next`: the caller can name the lock through `o`
    assert s["drop_local"].releases == (lock("p->lock"),) and s["drop_local"].locals == {"p"}
    assert s["drop_local"].may_release == (lock("o->next->lock"),)


def test_a_caller_sees_nested_takes_and_releases_it_cannot_name() -> None:
    evs = events_of(MORE, "caller")
    takes = [(ev.lock.inst, ev.nested, ev.cond_var) for ev in evs if isinstance(ev, Acquire)]
    assert takes == [("a->lock", False, None), ("b->lock", True, None), ("a->lock", False, "#atom")]
    drops = [(ev.lock, ev.maybe, ev.primitive) for ev in evs if isinstance(ev, Release)]
    assert drops[0] == (lock("*"), True, "drop_local")  # `p` is the helper's own
    assert drops[1] == (lock("a->next->lock"), True, "drop_local")  # and it was `o->next`


ANNOTATED = """
struct obj { spinlock_t lock; int n; };

static int try_inverted(struct obj *o)
{
	return !spin_trylock(&o->lock);
}

static int try_either(struct obj *o, int inv)
{
	if (inv)
		return !spin_trylock(&o->lock);
	return spin_trylock(&o->lock);
}

static int ann_zero(struct obj *o)
	__acquires(&o->lock)
{
	lock_it(o);
	return 0;
}

static int ann_err(struct obj *o)
	__acquires(&o->lock)
{
	if (o->n)
		return -EINVAL;
	lock_it(o);
	return 0;
}

static int ann_void(struct obj *o)
	__acquires(&o->lock)
{
	lock_it(o);
	if (o->n)
		return 0;
}
"""


def test_inverted_trylock_returns_and_lock_annotations() -> None:
    s = summaries(ANNOTATED)
    assert s["try_inverted"].acquires == ((lock("o->lock"), "excl", "zero"),)
    assert "try_either" not in s  # held on zero on one way, non-zero on another: no telling
    # `__acquires()` where the analysis does not see the lock taken: 0-is-success
    # only when the function returns 0 on some ways and something else on others
    assert s["ann_err"].acquires == ((lock("o->lock"), "excl", "zero"),)
    assert s["ann_zero"].acquires == ((lock("o->lock"), "excl", None),)
    assert s["ann_zero"].returns == "0"
    assert s["ann_void"].acquires == ((lock("o->lock"), "excl", None),)


SPELLED = """
struct sb { struct mutex j_mutex; };

static void lk(struct mutex *m)
{
	mutex_lock(m);
}

static void lk_then(struct mutex *m, struct mutex *n)
{
	mutex_lock(m);
	m = n;
}

static void caller(struct sb *sb, struct mutex *x)
{
	lk(&sb->j_mutex);
	lk_then(x, x);
	mutex_unlock(x);
	lk_then(&sb->j_mutex, x);
}
"""


def test_a_class_read_off_the_callees_spelling_is_read_again_off_the_callers() -> None:
    """`struct mutex *m` names no class; the caller's `&sb->j_mutex` does."""
    takes = [
        (ev.lock.inst, ev.lock.cls)
        for ev in events_of(SPELLED, "caller")
        if isinstance(ev, Acquire)
    ]
    # the second helper renames its parameter after taking the lock (`m@11`)
    assert takes == [("sb->j_mutex", "j_mutex"), ("x", "x"), ("sb->j_mutex", "j_mutex")]


KEPT = """
struct obj { spinlock_t lock; spinlock_t other; int n; };
struct sb { struct mutex j_mutex; };

static void maybe_drop(struct obj *o, int unlock)
{
	if (unlock)
		spin_unlock(&o->lock);
}

static void keyed_lock(struct obj *o, int unlock)
{
	if (unlock)
		spin_unlock(&o->lock);
	if (o->n)
		spin_unlock(&o->other);
}

static void keyed_other(struct obj *o, int unlock)
{
	if (unlock)
		spin_unlock(&o->other);
	if (o->n)
		spin_unlock(&o->lock);
}

static void maybe_unlk(struct mutex *m, int n)
{
	if (n)
		mutex_unlock(m);
}

static void caller(struct obj *a, struct obj *b, struct sb *sb, int flag)
{
	keyed_lock(a, 0);
	keyed_other(b, 0);
	maybe_unlk(&sb->j_mutex, flag);
	maybe_drop(a);
}
"""


def test_a_zero_argument_keeps_only_the_locks_it_decides() -> None:
    s = summaries(KEPT)
    assert s["keyed_lock"].kept_unless == ((lock("o->lock"), 1),)
    assert s["keyed_other"].kept_unless == ((lock("o->other", "other"), 1),)
    maybes = [
        (ev.lock.inst, ev.lock.cls, ev.primitive)
        for ev in events_of(KEPT, "caller")
        if isinstance(ev, Release) and ev.maybe
    ]
    assert maybes == [
        ("a->other", "other", "keyed_lock"),  # `a->lock` stays: `unlock` is 0
        ("b->lock", "lock", "keyed_other"),
        ("sb->j_mutex", "j_mutex", "maybe_unlk"),  # the caller's class, not `m`
        ("a->lock", "lock", "maybe_drop"),  # called without the argument: may drop
    ]


PASSED_ON = """
struct obj { spinlock_t lock; int n; struct obj *next; };

static void maybe_drop(struct obj *o, int unlock)
{
	if (unlock)
		spin_unlock(&o->lock);
}

static void outer(struct obj *o, int unlock)
{
	if (unlock)
		o->n = 0;
	maybe_drop(o, unlock);
}

static void must_then(struct obj *o, int must, int unlock)
{
	if (!must)
		BUG();
	if (unlock)
		spin_unlock(&o->lock);
}

static void take_local_then(struct obj *o)
{
	struct obj *p = o->next;

	spin_lock(&p->lock);
	spin_lock(&o->lock);
}

static void caller(struct obj *a)
{
	take_local_then(a);
}
"""


def test_parameters_passed_on_and_functions_that_stop() -> None:
    s = summaries(PASSED_ON)
    # `unlock` goes on to maybe_drop(): zero here is zero there
    assert s["outer"].kept_unless == ((lock("o->lock"), 1),)
    # `must` zero never returns (BUG()); `unlock` zero keeps the lock
    assert s["must_then"].kept_unless == ((lock("o->lock"), 2),)
    # the helper's own lock is not the caller's to hold, even though its local
    # is a fixed copy of `o->next`: acquisitions are not lifted
    takes = [ev.lock.inst for ev in events_of(PASSED_ON, "caller") if isinstance(ev, Acquire)]
    assert takes == ["a->lock"]


ASSERTING = """
struct obj { spinlock_t lock; spinlock_t big; int n; };

static void assert_big_drop_lock(struct obj *o)
{
	lockdep_assert_held(&o->big);
	spin_unlock(&o->lock);
}

static void assert_lock_drop_big(struct obj *o)
{
	lockdep_assert_held(&o->lock);
	spin_unlock(&o->big);
}

static void relock_broken(struct obj *o)
{
	spin_unlock(&o->lock);
	work(o) ];
	spin_lock(&o->lock);
}
"""


def test_only_the_locks_a_function_releases_are_released_for_its_callers() -> None:
    s = summaries(ASSERTING)
    # one lock asserted, the other released: whichever order the set gives
    assert s["assert_big_drop_lock"].releases == (lock("o->lock"),)
    assert s["assert_lock_drop_big"].releases == (lock("o->big", "big"),)
    assert s["assert_big_drop_lock"].may_release == ()
    # dropped and taken again around code the grammar could not read: held at
    # every way out, so nothing for the caller
    assert "relock_broken" not in s


HELD_BEFORE = """
struct obj { spinlock_t lock; spinlock_t big; int n; struct kref ref; };

static void claimed_then_take(struct obj *o)
	__must_hold(&o->big)
{
	spin_lock(&o->lock);
}

static void escaped_then_take(struct obj *o)
{
	spin_lock(&o->lock);
	frob(&o->lock);
	spin_lock(&o->big);
}

static void release_twice_cb(struct kref *ref)
{
	struct obj *o = container_of(ref, struct obj, ref);

	if (o->n)
		spin_unlock(&o->lock);
	else
		spin_unlock(&o->lock);
}
"""


def test_locks_taken_after_assumed_or_escaped_ones_are_still_acquired() -> None:
    s = summaries(HELD_BEFORE)
    assert s["claimed_then_take"].acquires == ((lock("o->lock"), "excl", None),)
    # `o->lock` was handed to an unknown callee: not promised to the caller
    assert s["escaped_then_take"].acquires == ((lock("o->big", "big"), "excl", None),)
    assert s["release_twice_cb"].container_drops == (("->lock", "lock"),)  # once


def test_substitute_an_argument_taken_by_address_starting_with_x() -> None:
    assert substitute("s->lock", ("s",), ("&Xdev",)) == "Xdev.lock"


def test_a_release_through_a_fixed_member_copy_is_also_a_maybe_release_of_the_member() -> None:
    got = summaries(
        """
void finish(struct req *r)
{
    struct host *h = r->host;
    spin_unlock(&h->lock);
}

void take(struct req *r, struct host *other)
{
    struct host *h = r->host;
    struct host *o = other;
    spin_lock(&h->lock);
    spin_lock(&o->lock);
}

void moved(struct req *r)
{
    struct host *h = r->host;
    h = r->peer;
    spin_unlock(&h->lock);
}
"""
    )
    assert [r.inst for r in got["finish"].may_release] == ["r->host->lock"]
    assert [r.inst for r in got["finish"].releases] == ["h->lock"]
    # acquisitions keep the local's spelling
    assert sorted(r.inst for r, _m, _s in got["take"].acquires) == ["h->lock", "o->lock"]
    # assigned twice: not a fixed copy, nothing the caller can name
    assert [r.inst for r in got["moved"].releases] == ["h->lock"]


MAYBE_LOCAL = """
struct obj { spinlock_t lock; int n; struct obj *next; };

static void maybe_drop_local(struct obj *o)
{
	struct obj *p = first_of(o);

	spin_unlock(&p->lock);
	if (o->n)
		spin_lock(&p->lock);
}

static void caller(struct obj *a)
{
	maybe_drop_local(a);
}
"""


def test_a_lock_a_helper_may_drop_and_the_caller_cannot_name_is_any_of_its_class() -> None:
    s = summaries(MAYBE_LOCAL)["maybe_drop_local"]
    assert s.may_release == (lock("p->lock"),) and s.locals == {"p"} and s.releases == ()
    (drop,) = [ev for ev in events_of(MAYBE_LOCAL, "caller") if isinstance(ev, Release)]
    assert (drop.lock.inst, drop.lock.cls, drop.maybe) == ("*", "lock", True)
    assert drop.primitive == "maybe_drop_local"


def test_a_lock_dropped_through_a_copy_of_a_member_is_named_through_the_parameter() -> None:
    # `p` is a fixed copy of `o->next`: the caller can name the lock as `a->next->lock`
    # (a maybe), and keeps the any-of-its-class release of the local's own spelling
    src = MAYBE_LOCAL.replace("struct obj *p = first_of(o);", "struct obj *p = o->next;")
    s = summaries(src)["maybe_drop_local"]
    assert s.may_release == (lock("p->lock"), lock("o->next->lock")) and s.releases == ()
    drops = [ev for ev in events_of(src, "caller") if isinstance(ev, Release)]
    assert [(d.lock.inst, d.lock.cls, d.maybe) for d in drops] == [
        ("*", "lock", True),
        ("a->next->lock", "lock", True),
    ]


MIXED = """
struct obj { struct mutex m; spinlock_t lock; int dead; int busy; };

static int lock_unless_dead(struct obj *o)
{
	if (o->dead)
		return 0;
	return mutex_lock_interruptible(&o->m);
}

static int try_unless_busy(struct obj *o)
{
	if (o->busy)
		return -EBUSY;
	return spin_trylock(&o->lock);
}

static int try_or_wait(struct obj *o, int wait)
{
	if (o->dead)
		return 0;
	if (wait) {
		spin_lock(&o->lock);
		return 1;
	}
	return spin_trylock(&o->lock);
}

static int lock_or_try(struct obj *o, int nb)
{
	if (!nb)
		return mutex_lock_killable(&o->m);
	if (!mutex_trylock(&o->m))
		return -EAGAIN;
	return 0;
}

static int count_or_try(struct obj *o, int wait)
{
	if (wait) {
		spin_lock(&o->lock);
		return o->dead;
	}
	if (o->busy)
		return 0;
	return spin_trylock(&o->lock);
}

static int count_or_busy(struct obj *o, int wait)
{
	if (wait) {
		spin_lock(&o->lock);
		return o->dead;
	}
	if (o->busy)
		return -EBUSY;
	return spin_trylock(&o->lock);
}

static struct obj *get_locked_cast(struct obj *o, struct thing *t)
{
	if (o->busy)
		return ERR_CAST(t);
	spin_lock(&o->lock);
	return o;
}
"""


def test_a_lock_calls_result_returned_beside_constants() -> None:
    """Some ways out return a lock call's result: the caller can tell only
    when every way out with the lock agrees on the answer (the call's
    success, or a constant that reads the same) and every way out without
    it returns the other one."""
    s = summaries(MIXED)
    assert s["try_or_wait"].acquires == ((lock("o->lock"), "excl", "nonzero"),)
    assert s["lock_or_try"].acquires == ((lock("o->m", "m"), "excl", "zero"),)
    # 0 also without the lock; a non-zero -EBUSY also without it; a count
    # with it, which may be 0: no telling
    for helper in ("lock_unless_dead", "try_unless_busy", "count_or_try", "count_or_busy"):
        assert helper not in s, helper
    # the object with the lock, an ERR_CAST() without: IS_ERR() tells
    assert s["get_locked_cast"].acquires == ((lock("o->lock"), "excl", "noerr"),)


RETURNS_LOCK = """
struct obj { spinlock_t lock; int n; };

static spinlock_t *lock_of(struct obj *o)
{
	spinlock_t *ptl = pick_lock(o);

	if (!o->n)
		return NULL;
	spin_lock(ptl);
	return ptl;
}

static void caller(struct obj *o)
{
	spinlock_t *ptl = lock_of(o);

	if (ptl)
		spin_unlock(ptl);
	if (lock_of(o))
		o->n = 0;
	lock_of(o);
}

static spinlock_t *lock_if_any(struct obj *o)
{
	spinlock_t *ptl = pick_lock(o);

	if (!ptl)
		return NULL;
	spin_lock(ptl);
	return ptl;
}

static spinlock_t *lock_then_other(struct obj *o)
{
	spinlock_t *ptl = pick_lock(o);

	if (!o->n)
		return NULL;
	spin_lock(ptl);
	ptl = pick_lock(o->next);
	return ptl;
}

static void caller_of_other(struct obj *o)
{
	spinlock_t *ptl = lock_then_other(o);

	if (ptl)
		spin_unlock(ptl);
}
"""


def test_a_returned_lock_is_the_callers_only_where_it_keeps_the_result() -> None:
    """The lock a helper returns is, for its caller, the variable given the
    result; a call tested directly or whose result is dropped gives no name."""
    assert summaries(RETURNS_LOCK)["lock_of"].acquires == (
        (lock("#ret", "pte_lock"), "excl", "nonzero"),
    )
    # returned after a test: `ptl:nonzero`, the same variable
    assert summaries(RETURNS_LOCK)["lock_if_any"].acquires == (
        (lock("#ret", "pte_lock"), "excl", "nonzero"),
    )
    takes = [ev for ev in events_of(RETURNS_LOCK, "caller") if isinstance(ev, Acquire)]
    assert [(ev.lock.inst, ev.site.text, ev.cond_var) for ev in takes] == [
        ("ptl", "lock_of(o)", "ptl")
    ]
    assert (
        takes[0].site.line == RETURNS_LOCK.splitlines().index("\tspinlock_t *ptl = lock_of(o);") + 1
    )


def test_a_local_given_another_value_after_its_lock_is_not_the_returned_lock() -> None:
    (taken,) = summaries(RETURNS_LOCK)["lock_then_other"].acquires
    assert taken[0].inst.startswith("ptl@")  # the old value, the function's own
    assert not [ev for ev in events_of(RETURNS_LOCK, "caller_of_other") if isinstance(ev, Acquire)]


def test_a_lock_inside_the_returned_object_is_the_callers_result_lock_once() -> None:
    got = summaries(
        """
struct base { spinlock_t lock; };
struct timer { struct base *base; };
struct q { spinlock_t *lock_ptr; };

struct base *lock_base(struct timer *t)
    __acquires(t->base->lock)
{
    struct base *b = t->base;
    spin_lock(&b->lock);
    return b;
}

struct base *lock_base_plain(struct timer *t)
{
    struct base *b = pick(t);
    spin_lock(&b->lock);
    return b;
}

struct base *lock_and_note(struct q *q, struct timer *t)
{
    struct base *b = pick(t);
    q->lock_ptr = &b->lock;
    spin_lock(&b->lock);
    return b;
}
"""
    )
    # the annotation names the same lock as the body: one acquisition
    assert [r.inst for r, _m, _s in got["lock_base"].acquires] == ["#ret->lock"]
    assert [r.inst for r, _m, _s in got["lock_base_plain"].acquires] == ["#ret->lock"]
    # its address kept in the caller's structure: the caller may release it
    # under that name, so it is not handed back as the result's
    assert [r.inst for r, _m, _s in got["lock_and_note"].acquires] == ["b->lock"]
    caller = events_of(
        """
struct base { spinlock_t lock; };
struct timer { struct base *base; };

static struct base *lock_base_plain(struct timer *t)
{
    struct base *b = pick(t);
    spin_lock(&b->lock);
    return b;
}

static void user(struct timer *t)
{
    struct base *got;
    got = lock_base_plain(t);
    spin_unlock(&got->lock);
}
""",
        "user",
    )
    assert [ev.lock.inst for ev in caller if isinstance(ev, Acquire)] == ["got->lock"]


def test_an_annotation_naming_the_returned_local_is_handed_back_like_the_body() -> None:
    # two #ifdef variants of one helper: one keeps a reference (an unseen
    # call takes the local, so the body's hold escapes), one does not; both
    # say __acquires(&wb->list_lock) of the local they return
    got = summaries(
        """
struct wb { spinlock_t list_lock; };

struct wb *lock_list_ref(struct inode *inode)
    __releases(&inode->i_lock)
    __acquires(&wb->list_lock)
{
    struct wb *wb = inode_to_wb(inode);

    wb_get(wb);
    spin_unlock(&inode->i_lock);
    spin_lock(&wb->list_lock);
    wb_put(wb);
    return wb;
}

struct wb *lock_list_plain(struct inode *inode)
    __releases(&inode->i_lock)
    __acquires(&wb->list_lock)
{
    struct wb *wb = inode_to_wb(inode);

    spin_unlock(&inode->i_lock);
    spin_lock(&wb->list_lock);
    return wb;
}
"""
    )
    for name in ("lock_list_ref", "lock_list_plain"):
        assert [r.inst for r, _m, _s in got[name].acquires] == ["#ret->list_lock"], name


BY_VALUE = """
struct obj { spinlock_t lock; struct obj *next; int n; };
struct ref { struct obj *obj; int flags; };
struct holder { struct ref ref; struct obj *next; };
extern struct obj *the_obj;

static struct ref grab_ref(struct holder *h)
{
	struct ref r = pick_ref(h);

	spin_lock(&r.obj->lock);
	return r;
}

static struct ref grab_ref_annotated(struct holder *h)
	__acquires(h->ref.obj->lock)
{
	struct ref r = pick_ref(h);

	spin_lock(&r.obj->lock);
	return r;
}

static struct obj *lock_then_next(struct holder *h)
{
	struct obj *p = pick(h);

	spin_lock(&p->lock);
	p = p->next;
	return p;
}

static void user(struct holder *h)
{
	struct ref got = grab_ref(h);

	spin_unlock(&got.obj->lock);
}
"""


def test_a_lock_inside_a_struct_returned_by_value_is_the_callers_result_lock() -> None:
    # `struct fd`-like results: the lock behind the returned struct's pointer
    s = summaries(BY_VALUE)
    assert [r.inst for r, _m, _s in s["grab_ref"].acquires] == ["#ret.obj->lock"]
    # the annotation names the same lock: one acquisition, not two
    assert [r.inst for r, _m, _s in s["grab_ref_annotated"].acquires] == ["#ret.obj->lock"]
    takes = [ev.lock.inst for ev in events_of(BY_VALUE, "user") if isinstance(ev, Acquire)]
    assert takes == ["got.obj->lock"]


def test_a_member_lock_of_a_local_given_another_value_is_not_handed_back() -> None:
    # `p->lock` was taken on the old `p`: the returned `p` is another object
    (taken,) = summaries(BY_VALUE)["lock_then_next"].acquires
    assert taken[0].inst.startswith("p->lock@") and taken[0].cls == "lock"


COPIES = """
struct obj { spinlock_t lock; struct obj *next; int n; };
struct ref { struct obj *obj; int flags; };
struct holder { struct ref ref; };
extern struct obj *the_obj;

static void drop_through_copy(struct holder *h)
{
	struct ref r = h->ref;

	spin_unlock(&r.obj->lock);
}

static void drop_both(struct obj *o)
{
	struct obj *p = o->next;

	spin_unlock(&o->lock);
	if (o->n)
		spin_unlock(&p->lock);
}

static void drop_global_copy(struct obj *o)
{
	struct obj *p = the_obj->next;

	if (o->n)
		spin_unlock(&p->lock);
}

static void caller(struct holder *h)
{
	drop_through_copy(h);
}
"""


def test_only_a_lock_spelt_through_a_copy_of_a_parameters_member_is_lifted() -> None:
    s = summaries(COPIES)
    # through a struct copy (`r = h->ref`, `r.obj->lock`): the member's pointer is shared
    assert s["drop_through_copy"].releases == (lock("r.obj->lock"),)
    assert s["drop_through_copy"].may_release == (lock("h->ref.obj->lock"),)
    drops = [ev for ev in events_of(COPIES, "caller") if isinstance(ev, Release)]
    assert ("h->ref.obj->lock", True) in [(d.lock.inst, d.maybe) for d in drops]
    # the parameter's own lock is named already: not lifted, not a maybe as well
    # (entry locks come from a set; the summary lists them sorted, whatever the hash seed)
    assert s["drop_both"].releases == (lock("o->lock"), lock("p->lock"))
    assert s["drop_both"].may_release == (lock("o->next->lock"),)
    # a copy of a global's member is not a parameter's: left to its local spelling
    assert s["drop_global_copy"].releases == (lock("p->lock"),)
    assert s["drop_global_copy"].may_release == ()


def test_an_index_with_the_lock_and_an_error_without_is_a_signed_outcome() -> None:
    code = """
int slot_add(struct tab *t)
{
    int idx;

    spin_lock(&t->lock);
    idx = pick_index(t);
    if (idx < 0) {
        spin_unlock(&t->lock);
        return idx;
    }
    return idx;
}

int slot_use(struct tab *t)
{
    int id = slot_add(t);

    if (id < 0)
        return id;
    spin_unlock(&t->lock);
    return 0;
}
"""
    (acq,) = summaries(code)["slot_add"].acquires
    assert acq[2] == "nonneg"  # 0 is a valid index: only the sign tells
    (ev,) = [e for e in events_of(code, "slot_use") if isinstance(e, Acquire)]
    assert (ev.cond_var, ev.fail_when) == ("id", "neg")


def test_an_annotated_prototype_tells_callers_what_the_call_does() -> None:
    # the body is in another file: the declaration's annotations are the
    # summary when they name the pack's global lock (`RCU` is `rcu`); an
    # object's lock in a prototype is left to the body, wherever it is
    code = """
struct box { spinlock_t lock; };

int box_grab(struct box *b) __acquires(&b->lock);
int walk_begin(struct box *b) __acquires(RCU);
void walk_end(struct box *b) __releases(RCU);

static inline void walk_begin_quiet(struct box *x)
{
    (void)walk_begin(x);
}

static void reader(struct box *b)
{
    walk_begin_quiet(b);
    walk_end(b);
    (void)box_grab(b);
}
"""
    got = summaries(code)
    assert got["walk_begin_quiet"].acquires == ((LockRef("rcu", cls="rcu"), "excl", None),)
    assert got["walk_end"].releases == (LockRef("rcu", cls="rcu"),)
    assert "box_grab" not in got
    caller = events_of(code, "reader")
    assert [ev.lock.inst for ev in caller if isinstance(ev, Acquire)] == ["rcu"]
    assert [ev.lock.inst for ev in caller if isinstance(ev, Release)] == ["rcu"]
