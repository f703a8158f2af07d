"""Which functions never return a positive value (a sign-only summary), and
what a caller learns from one: `x = f(); if (x < 0) ..;` leaves `x` zero."""

from __future__ import annotations

from lockcheck.analysis.file import analyse_file
from lockcheck.analysis.summaries import Summary
from lockcheck.engine import Config, Engine
from lockcheck.model.ir import Call

CODE = """
struct thing { int gone; int busy; };

static int reserve(struct thing *t)
{
	int err;

	err = -ENOENT;
	if (t->gone)
		goto out;
	err = charge(t);
	if (err < 0)
		goto out;
	return 0;
out:
	return err;
}

static int reserve_unchecked(struct thing *t)
{
	int err = -ENOENT;

	if (t->gone)
		goto out;
	err = charge(t);
out:
	return err;
}

static int may_say_one(struct thing *t)
{
	if (t->busy)
		return 1;
	return -EBUSY;
}

static int passes_on(struct thing *t)
{
	if (t->busy)
		return -EAGAIN;
	return reserve(t);
}

static int passes_on_loose(struct thing *t)
{
	return may_say_one(t);
}

static int from_pointer(struct thing *t)
{
	void *p = lookup(t);

	if (IS_ERR(p))
		return PTR_ERR(p);
	return 0;
}

static int picks(struct thing *t)
{
	void *p = lookup(t);

	return PTR_ERR(p) == -EAGAIN ? 1 : PTR_ERR(p);
}

static int gives_param(int n)
{
	return n;
}

static void nothing(struct thing *t)
{
	t->busy = 0;
}
"""


def _summaries() -> dict[str, bool]:
    facts = Engine(Config(headers=False)).analyse_source("t.c", CODE.encode()).facts
    names = [f.fn.name for f in facts.functions]
    return {n: bool((s := facts.summaries.get(n)) is not None and s.nonpos) for n in names}


def test_guarded_and_constant_returns_are_never_positive() -> None:
    got = _summaries()
    assert got["reserve"] is True
    assert got["passes_on"] is True
    assert got["from_pointer"] is True


def test_a_possible_positive_value_is_not() -> None:
    got = _summaries()
    assert got["reserve_unchecked"] is False  # charge()'s result returned untested
    assert got["may_say_one"] is False
    assert got["passes_on_loose"] is False
    assert got["gives_param"] is False
    assert got["picks"] is False  # a choice between two calls, not one call
    assert got["nothing"] is False


def test_a_sign_only_summary_keeps_the_callee_unknown() -> None:
    """Known from another file only for its sign, a callee handed a lock is
    still an unknown call (it may drop the lock); its result is marked."""
    code = """
int user(spinlock_t *l)
{
	int ret;

	spin_lock(l);
	ret = reserve_elsewhere(l);
	if (ret < 0)
		return ret;
	spin_unlock(l);
	return 0;
}
"""
    functions = Engine(Config(headers=False)).analyse_source("u.c", code.encode()).model.functions
    for library, external in (({"reserve_elsewhere": Summary(nonpos=True)}, True), ({}, True)):
        facts = analyse_file(functions, library)
        calls = [
            ev
            for evs in facts.functions[0].events
            for ev in evs
            if isinstance(ev, Call) and ev.callee == "reserve_elsewhere"
        ]
        assert len(calls) == 1
        assert calls[0].external is external
        assert calls[0].nonpos is bool(library)
    assert Summary(nonpos=True).sign_only()
    assert not Summary(nonpos=True, pure=True).sign_only()
