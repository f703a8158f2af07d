"""lock-balance in process: the evidence that excuses a held lock, and what
each kind of report says.

`make mutate` runs these first for lockcheck/rules/lock_balance.py; the
annotated fixtures check reported lines, not every row of the name tables
nor the wording.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.rules.lock_balance import lock_named
from tests.helpers import run_cli


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-balance"}, headers=False))


def balance(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def line_of(code: str, text: str) -> int:
    (n,) = [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]
    return n


# -- names that say a function locks -----------------------------------------


@pytest.mark.parametrize("word", ["lock", "locks", "trylock", "locked", "relock", "spinlock"])
def test_a_lock_word_first_or_last_says_it_locks(word: str) -> None:
    assert lock_named(f"obj_{word}")
    assert lock_named(f"{word}_obj")
    assert lock_named(f"OBJ_{word.upper()}")  # words are read case-blind
    assert not lock_named(f"obj_{word}x_obj") or word == "trylock"


@pytest.mark.parametrize(
    "mode", ["read", "write", "irq", "irqsave", "bh", "nested", "killable", "interruptible"]
)
def test_a_lock_mode_last_after_a_lock_word_says_it_locks(mode: str) -> None:
    assert lock_named(f"obj_lock_vma_{mode}")
    assert lock_named(f"obj_lock_{mode}")  # the word right before the mode
    assert not lock_named(f"obj_vma_{mode}")  # a mode word alone is not enough
    assert not lock_named(f"obj_lock_{mode}_vma")  # nor a mode that is not last


def test_try_then_lock_as_two_words_says_it_locks() -> None:
    assert lock_named("drv_try_lock_queue")
    assert not lock_named("try_drv_lock_queue")  # `try` must be right before `lock`
    assert not lock_named("drv_lock_try_queue")
    assert lock_named("drv_x_trylock_queue")  # `trylock` anywhere


@pytest.mark.parametrize("name", ["", "__", "_0_1"])
def test_a_name_without_words_does_not_lock(name: str) -> None:
    assert not lock_named(name)


# -- a void helper's undo speaks for it ----------------------------------------

VOID_HELPER = """
struct thing {
	spinlock_t lock;
	int busy;
};

void NAME(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void UNDO(struct thing *t)
{
	spin_unlock(&t->lock);
}
"""

UNDO_PAIRS = [
    ("get", "put"),
    ("map", "unmap"),
    ("lock", "unlock"),
    ("trylock", "unlock"),
    ("start", "end"),
    ("start", "finish"),
    ("start", "stop"),
    ("start", "commit"),
    ("begin", "end"),
    ("begin", "commit"),
    ("can", "cancel"),
    ("enter", "exit"),
    ("enter", "leave"),
    ("acquire", "release"),
    ("grab", "release"),
    ("grab", "drop"),
    ("hold", "release"),
    ("hold", "drop"),
    ("pin", "unpin"),
    ("block", "unblock"),
    ("reserve", "commit"),
    ("reserve", "complete"),
    ("reserve", "unreserve"),
    ("reserve", "cancel"),
]


def void_helper(name: str, undo: str) -> str:
    return VOID_HELPER.replace("NAME", name).replace("UNDO", undo)


@pytest.mark.parametrize(("word", "undo"), UNDO_PAIRS)
def test_an_undo_sharing_the_first_word_excuses_a_void_helper(word: str, undo: str) -> None:
    # a void function cannot say which paths hold: its name does not count,
    # only an undo that releases a lock
    assert balance(void_helper(f"thing_x_{word}", f"thing_{undo}_y")) == []
    [leak] = balance(void_helper(f"thing_x_{word}", "thing_zap_y"))
    assert leak.function == f"thing_x_{word}"


@pytest.mark.parametrize(("word", "undo"), UNDO_PAIRS)
def test_the_same_name_with_one_word_undone_excuses_a_void_helper(word: str, undo: str) -> None:
    assert balance(void_helper(f"{word}_thing", f"{undo}_thing")) == []
    # two words changed: not the same name undone
    assert len(balance(void_helper(f"{word}_thing", f"{undo}_other"))) == 1
    # one more word: not the same name either
    assert len(balance(void_helper(f"{word}_thing", f"{undo}_thing_now"))) == 1


def test_an_undo_that_releases_nothing_is_no_evidence() -> None:
    code = void_helper("thing_get", "thing_put").replace(
        "void thing_put(struct thing *t)\n{\n\tspin_unlock(&t->lock);",
        "void thing_put(struct thing *t)\n{\n\tt->busy = 0;",
    )
    assert "spin_unlock(&t->lock);\n}\n" not in code.split("thing_put")[1]
    assert len(balance(code)) == 1


def test_a_helper_is_not_its_own_undo() -> None:
    # `thing_get_put` has the first word and the undo word of `thing_get_put`
    code = VOID_HELPER.split("void UNDO")[0].replace("NAME", "thing_get_put")
    assert len(balance(code)) == 1
    # and it does not stop the search for the real undo after it
    code = void_helper("thing_get_put", "thing_put")
    assert balance(code) == []


# -- what the reports say ------------------------------------------------------

LEAK = """
struct thing {
	spinlock_t lock;
	int busy;
};

int thing_work(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		return -EBUSY;
	spin_unlock(&t->lock);
	return 0;
}
"""


def test_a_leak_names_the_lock_the_function_and_the_way_out() -> None:
    [f] = balance(LEAK)
    ret = line_of(LEAK, "return -EBUSY;")
    assert f.rule == "lock-balance" and f.function == "thing_work"
    assert f.line == line_of(LEAK, "spin_lock(&t->lock);")
    assert f.message == (
        f"`t->lock` is still held when `thing_work()` returns at line {ret}, "
        "but released on other paths"
    )
    assert f.held == ("t->lock",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (ret, 1, "returns here with the lock held")
    ]


DOUBLE = """
void twice(spinlock_t *l)
{
	spin_lock(l);
	spin_unlock(l);
	spin_unlock(l);
}
"""


def test_a_double_unlock_points_at_the_first_release() -> None:
    [f] = balance(DOUBLE)
    lines = [i for i, t in enumerate(DOUBLE.splitlines(), 1) if t.strip() == "spin_unlock(l);"]
    assert f.line == lines[1]
    assert f.message == (
        "`l` is released here but not held on any path that reaches this point: "
        f"already released at line {lines[0]}"
    )
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (lines[0], 2, "released here before")
    ]


EARLY = """
void early(spinlock_t *l, int c)
{
	if (c) {
		spin_unlock(l);
		return;
	}
	spin_lock(l);
	spin_unlock(l);
}
"""


def test_an_unlock_before_the_lock_says_where_it_is_taken() -> None:
    [f] = balance(EARLY)
    take = line_of(EARLY, "spin_lock(l);")
    assert f.line == EARLY.splitlines().index("\t\tspin_unlock(l);") + 1
    assert f.message.endswith(f"it is taken only at line {take}")
    assert [(r.line, r.column, r.message) for r in f.related] == [(take, 2, "taken here")]


LOOP = """
struct thing {
	spinlock_t lock;
	struct mutex outer;
	int busy;
};

void each(struct thing *t, int n)
{
	int i;

	mutex_lock(&t->outer);
	for (i = 0; i < n; i++) {
		spin_lock(&t->lock);
		if (t->busy)
			continue;
		spin_unlock(&t->lock);
	}
	mutex_unlock(&t->outer);
}
"""


def test_a_lock_taken_again_round_a_loop_says_where_it_was_taken() -> None:
    found = balance(LOOP)
    take = line_of(LOOP, "spin_lock(&t->lock);")
    [f] = [f for f in found if "may still be held" in f.message]
    assert f.line == take
    assert f.message == (
        f"`t->lock` may still be held here: taken at line {take} "
        "and not released on every path back to this point"
    )
    assert f.held == ("t->outer",)  # what every path back holds
    assert [(r.line, r.column, r.message) for r in f.related] == [(take, 3, "taken here before")]


# -- every kind of evidence, and every excuse of an unheld release ------------
# `/* R */` marks each finding expected on its line (the acquisition of a
# leak or of a lock taken again, the release of an unheld one)


def marked(code: str) -> Counter[int]:
    return Counter(
        {i: t.count("/* R */") for i, t in enumerate(code.splitlines(), 1) if "/* R */" in t}
    )


def reported(code: str) -> Counter[int]:
    return Counter(f.line for f in balance(code))


EVIDENCE = """
struct thing {
	spinlock_t lock;
	spinlock_t other;
	spinlock_t *ptlp;
	struct mutex outer;
	int busy;
	int n;
};

spinlock_t report_lock;

/* evidence: a caller in the file releases the parameter's lock */
int thing_begin_x(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy) {
		spin_unlock(&t->lock);
		return -EBUSY;
	}
	return 0;
}

void bad_call(void)
{
	thing_begin_x();
}

void user_param(struct thing *t)
{
	prepare(t);
	if (thing_begin_x(t))
		return;
	t->busy = 1;
	work();
	spin_unlock(&t->lock);
}

/* evidence: a caller releases the global lock */
int report_begin_x(int v)
{
	spin_lock(&report_lock);
	if (v) {
		spin_unlock(&report_lock);
		return -EINVAL;
	}
	return 0;
}

void user_global(int v)
{
	if (report_begin_x(v))
		return;
	spin_unlock(&report_lock);
}

/* no evidence: the caller releases another lock */
int thing_open_x(struct thing *t)
{
	spin_lock(&t->lock); /* R */
	if (t->busy) {
		spin_unlock(&t->lock);
		return -EBUSY;
	}
	return 0;
}

void user_other(struct thing *t)
{
	if (thing_open_x(t))
		return;
	spin_unlock(&t->other);
}

/* pack rows speak for a void function of their name */
void spin_trylock(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void pmd_lock(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void pte_offset_map_lock(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void mutex_lock(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void no_row_x(struct thing *t)
{
	spin_lock(&t->lock); /* R */
	if (t->busy)
		spin_unlock(&t->lock);
}

/* sparse: leaves with it on purpose (the marker's argument is a token, as
   in the kernel: an address passed to a call would let it escape) */
void marked_x(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy) {
		__acquire(thing_lock);
		return;
	}
	spin_unlock(&t->lock);
}

/* handed back where the lock is not held: no evidence */
struct thing *pick_x(struct thing *t, struct thing *other)
{
	spin_lock(&t->lock); /* R */
	if (t->busy)
		return other;
	spin_unlock(&t->lock);
	return t;
}

/* the caller's objects: through a pointer to a pointer, or an array slot */
int slot_x(struct thing **tp)
{
	spin_lock(&tp[0]->lock);
	if (tp[0]->busy) {
		spin_unlock(&tp[0]->lock);
		return -EBUSY;
	}
	return 0;
}

int pointed_x(struct thing *w)
{
	spin_lock(*w->ptlp);
	if (w->busy) {
		spin_unlock(*w->ptlp);
		return -EBUSY;
	}
	return 0;
}

/* every path that took it returns holding it; the early return never took it */
int retake_x(struct thing *t, int c)
{
	if (c)
		return -EINVAL;
	spin_lock(&t->lock);
	t->n++;
	spin_unlock(&t->lock);
	spin_lock(&t->lock);
	return 0;
}

/* a helper-like lock first, then a leak */
int two_locks_x(struct thing *t, int c)
{
	spin_lock(&t->other);
	spin_unlock(&t->other);
	spin_lock(&t->other);
	spin_lock(&t->lock); /* R */
	if (c)
		return 1;
	spin_unlock(&t->lock);
	return 0;
}

/* a lock never released here first, then a leak */
int never_then_leak_x(struct thing *t, int c)
{
	spin_lock(&t->other);
	spin_lock(&t->lock); /* R */
	if (c)
		return 1;
	spin_unlock(&t->lock);
	return 0;
}

/* two locks leak at the same return */
int both_x(struct thing *t, int c)
{
	spin_lock(&t->lock); /* R */
	spin_lock(&t->other); /* R */
	if (c)
		return 1;
	spin_unlock(&t->other);
	spin_unlock(&t->lock);
	return 0;
}
"""


def test_what_counts_as_evidence_that_a_helper_returns_holding() -> None:
    """Callers releasing the parameter's or a global lock after the call; the
    pack rows of a void function's name (acquire, try, returns-lock,
    out-lock); `__acquire()`; the object holding the lock handed back on
    the holding path, through `tp[0]` or `*w->ptlp`. Not: a caller
    releasing another lock, an object handed back only where the lock is
    not held. Each lock of a function is judged: one never released, or
    held on every way that took it, does not hide a leak of another."""
    assert reported(EVIDENCE) == marked(EVIDENCE)


UNHELD = """
struct thing {
	spinlock_t lock;
	spinlock_t other;
	struct mutex outer;
	struct rw_semaphore sem;
	struct folio *folio;
	int busy;
};

void my_unlock(spinlock_t *l)
{
	spin_unlock(l);
}

/* a double unlock with the outer lock held */
void held_double(struct thing *t)
{
	mutex_lock(&t->outer);
	spin_lock(&t->lock);
	spin_unlock(&t->lock);
	spin_unlock(&t->lock); /* R */
	mutex_unlock(&t->outer);
}

/* a double unlock on one way: the lock was surely released there */
void dbl_plain(spinlock_t *l, int c)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	spin_unlock(l); /* R */
}

/* a call between may have taken it again */
void dbl_call(spinlock_t *l, int c)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	work();
	spin_unlock(l);
}

/* a call on one way only: the other is a plain double unlock */
void dbl_call_one_way(spinlock_t *l, int c, int d)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	if (d)
		work();
	spin_unlock(l); /* R */
}

/* releases through a helper: its summary cannot count nesting */
void dbl_helper(spinlock_t *l, int c)
{
	spin_lock(l);
	if (c)
		my_unlock(l);
	my_unlock(l);
}

/* the first double is excused, the second is not */
void excused_then_double(spinlock_t *l, spinlock_t *m, int c)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	work();
	spin_unlock(l);
	spin_lock(m);
	if (c)
		spin_unlock(m);
	spin_unlock(m); /* R */
}

/* the last release before, on the same line */
void same_line(spinlock_t *l, int c)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	spin_unlock(l); spin_unlock(l); /* R */ /* R */
}

/* one statement: lock, unlock, unlock */
void one_statement(spinlock_t *l)
{
	spin_lock(l), spin_unlock(l), spin_unlock(l); /* R */
}

/* a page lock handed over by the caller is not judged */
void folio_early(struct folio *folio, int c)
{
	if (c) {
		folio_unlock(folio);
		return;
	}
	folio_lock(folio);
	folio_unlock(folio);
	spin_lock(&folio->mapping->lock);
	spin_unlock(&folio->mapping->lock);
	spin_unlock(&folio->mapping->lock); /* R */
}

/* an unseen callee named as locking may have taken it; a double unlock after */
void unseen_locker(spinlock_t *l, spinlock_t *m, int c)
{
	if (c) {
		mystery_lock(l);
		spin_unlock(l);
		return;
	}
	spin_lock(l);
	spin_unlock(l);
	spin_lock(m);
	spin_unlock(m);
	spin_unlock(m); /* R */
}

/* ... but not one called after the release */
void unseen_after(spinlock_t *l, int c)
{
	if (c) {
		spin_unlock(l); /* R */
		mystery_lock(l);
		return;
	}
	spin_lock(l);
	spin_unlock(l);
}

/* a sleeping read side leaked round a loop: a fault handler may drop it */
void read_loop(struct thing *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		down_read(&t->sem); /* R */
		if (t->busy)
			continue;
		up_read(&t->sem);
	}
}

/* rcu leaked round a loop: its nesting grows each time */
void rcu_loop(struct thing *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		rcu_read_lock(); /* R */ /* R */
		if (t->busy)
			continue;
		rcu_read_unlock();
	}
}

/* skipped classes and nested acquisitions first, then two leaks */
void loop_mix(struct thing *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		folio_lock(t->folio);
		spin_lock_nested(&t->other, 1); /* R */
		spin_lock(&t->lock); /* R */ /* R */
		mutex_lock(&t->outer); /* R */ /* R */
		if (t->busy)
			continue;
		mutex_unlock(&t->outer);
		spin_unlock(&t->lock);
		spin_unlock(&t->other);
		folio_unlock(t->folio);
	}
}

/* code the grammar could not take apart: one flat node, no order in it */
void flattened(spinlock_t *l, int c)
{
	spin_lock(l);
	spin_unlock(l);
	x = 1 + { spin_unlock(l); };
}
"""


def test_which_unheld_releases_and_retakes_are_reported() -> None:
    """A double unlock reached without a call between (on some way), not
    through a helper's summary; an unlock before the lock, unless a page
    lock or after an unseen callee named as locking; in one statement the
    grammar read, but not in code it could not; a rcu read side taken again
    round a loop, not a sleeping one; locks taken again after a skipped
    class and a nested acquisition."""
    assert reported(UNHELD) == marked(UNHELD)
    got = {(f.line, f.column): f for f in balance(UNHELD)}
    held_double = UNHELD.splitlines().index("\tspin_unlock(&t->lock); /* R */") + 1
    assert got[(held_double, 2)].held == ("t->outer",)  # what the release runs under
    same = [
        i for i, t in enumerate(UNHELD.splitlines(), 1) if t.startswith("\tspin_unlock(l); spin")
    ]
    (line,) = same
    # the release just before on its own line, not the one on the line above
    assert got[(line, 18)].message.endswith(f"already released at line {line}")
    assert got[(line, 2)].message.endswith(f"already released at line {line - 1}")


BUDGET = """
int big(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		return -EBUSY;
	t->a = 1;
	t->b = 2;
	t->c = 3;
	t->d = 4;
	t->e = 5;
	t->f = 6;
	spin_unlock(&t->lock);
	return 0;
}

int small(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		return -EBUSY;
	spin_unlock(&t->lock);
	return 0;
}
"""


def test_a_function_over_the_budget_is_skipped_not_the_ones_after() -> None:
    engine = Engine(Config(packs=["mm"], select={"lock-balance"}, headers=False, max_nodes=12))
    analysis = engine.analyse_source("t.c", BUDGET.encode())
    assert [ff.budget_exceeded for ff in analysis.facts.functions] == [True, False]
    assert [f.function for f in engine.findings_for(analysis)] == ["small"]
    assert sorted(f.function for f in balance(BUDGET)) == ["big", "small"]


MORE = """
struct thing {
	spinlock_t lock;
	spinlock_t other;
	spinlock_t *ptlp;
	struct rw_semaphore sem;
	int busy;
	int n;
};

/* the released path joins one that never took it: the join forgets the release */
int merged_x(struct thing *t, int c)
{
	if (c)
		goto out;
	spin_lock(&t->lock); /* R */
	if (t->busy) {
		spin_unlock(&t->lock);
		goto out;
	}
	if (t->n) {
		spin_unlock(&t->lock);
		spin_lock(&t->lock);
		return 3;
	}
	return 1;
out:
	return 0;
}

/* the object whose lock pointer is held comes back to a caller that releases it */
struct thing *find_ptl_x(struct table *tb)
{
	struct thing *w = tb->first;

	spin_lock(*w->ptlp);
	if (w->busy) {
		spin_unlock(*w->ptlp);
		return NULL;
	}
	return w;
}

void use_ptl(struct table *tb)
{
	struct thing *found = find_ptl_x(tb);

	if (!found)
		return;
	spin_unlock(*found->ptlp);
}

/* the same without a caller */
struct thing *find_ptl_y(struct table *tb)
{
	struct thing *w = tb->first;

	spin_lock(*w->ptlp); /* R */
	if (w->busy) {
		spin_unlock(*w->ptlp);
		return NULL;
	}
	return w;
}

/* a call on the other way only: a plain double unlock on this one */
void dbl_call_else(spinlock_t *l, int c, int d)
{
	spin_lock(l);
	if (c)
		spin_unlock(l);
	if (d)
		d = 2;
	else
		work();
	spin_unlock(l); /* R */
}

/* a recursive read first, then a lock taken again */
void read_then_leak(struct thing *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		down_read(&t->sem); /* R */
		spin_lock(&t->lock); /* R */ /* R */
		if (t->busy)
			continue;
		spin_unlock(&t->lock);
		up_read(&t->sem);
	}
}
"""


def test_joins_returned_objects_and_the_ways_round_a_call() -> None:
    """A release whose way out was merged with one that never took the lock
    still counts; a caller releasing `*found->ptlp` after getting `found`
    back speaks for a helper holding `*w->ptlp` when it returns `w`; a call
    on one way between two unlocks does not excuse the other way; a
    recursive read taken again does not stop the search for a lock that is."""
    assert reported(MORE) == marked(MORE)


FLAT = """
/* code the grammar could not read: its releases in one flat node have no order */
void flat(spinlock_t *l, spinlock_t *m, int c)
{
	spin_lock(l);
	spin_unlock(l);
	x = 1 + { spin_unlock(l); };
}

/* ... but separate statements still do */
void not_flat(spinlock_t *l, spinlock_t *m)
{
	spin_lock(l);
	spin_unlock(l);
	spin_unlock(m), spin_unlock(l); /* R */
	int x = ;
}
"""


def test_statements_the_grammar_could_not_split() -> None:
    got = balance(FLAT)
    assert reported(FLAT) == marked(FLAT)
    assert [(f.function, f.column) for f in got] == [("not_flat", 18)]


CALLERS = """
struct thing {
	spinlock_t lock;
	spinlock_t *ptlp;
	int busy;
};

struct table {
	struct thing *first;
};

struct guard {
	spinlock_t *lock;
};

/* a parameter reassigned before its lock is still the caller's argument */
int thing_begin_y(struct thing *t)
{
	if (!t)
		t = default_thing;
	spin_lock(&t->lock);
	if (t->busy) {
		spin_unlock(&t->lock);
		return -EBUSY;
	}
	return 0;
}

void user_y(struct thing *t)
{
	if (thing_begin_y(t))
		return;
	spin_unlock(&t->lock);
}

/* the returned object, known non-NULL on the holding path (`w:nonzero`),
   is released by the caller under the name it gives the result; a call
   whose lock the caller cannot name (the result unused) does not stop the
   search for one that can */
struct thing *find_ptl_z(struct table *tb)
{
	struct thing *w = tb->first;

	if (!w)
		return NULL;
	spin_lock(*w->ptlp);
	if (w->busy) {
		spin_unlock(*w->ptlp);
		return NULL;
	}
	return w;
}

void use_ptl_z(struct table *tb)
{
	struct thing *found;

	find_ptl_z(tb);
	found = find_ptl_z(tb);
	if (!found)
		return;
	spin_unlock(*found->ptlp);
}

/* a guard returned by value hands back the lock in its member */
struct guard guard_take_x(spinlock_t *l, int busy)
{
	struct guard g = { .lock = l };

	spin_lock(g.lock);
	if (busy) {
		spin_unlock(g.lock);
		return no_guard;
	}
	return g;
}

/* the same guard returned where the lock is not held */
struct guard guard_take_y(spinlock_t *l, int busy)
{
	struct guard g = { .lock = l };

	spin_lock(g.lock); /* R */
	if (busy) {
		spin_unlock(g.lock);
		return g;
	}
	return no_guard;
}

"""


def test_callers_and_returned_objects_that_take_the_lock_over() -> None:
    """A caller releasing the parameter's lock speaks for a helper even when
    the helper reassigns the parameter first; a caller releasing
    `*found->ptlp` after `found = find_ptl_z()` speaks for the helper
    returning `w` (the path knows it as `w:nonzero`), after a call of it
    whose result is unused; a struct returned by value hands back the lock
    its member points to, but not where the lock is not held."""
    assert reported(CALLERS) == marked(CALLERS)


NO_PATH = """
/* one lock under two names: released twice */
void twice_named(spinlock_t *ptl, spinlock_t *pml)
{
	if (ptl == pml) {
		spin_unlock(pml);
		spin_unlock(ptl);
	}
}

/* released before either of its two acquisitions */
void early_twice(spinlock_t *l, int c)
{
	if (c) {
		spin_unlock(l);
		return;
	}
	spin_lock(l);
	spin_unlock(l);
	spin_lock(l);
	spin_unlock(l);
}

/* a release the grammar flattened, then a plain double unlock */
void flat_first(spinlock_t *l, spinlock_t *m)
{
	spin_lock(l);
	spin_unlock(l), spin_unlock(l);
	spin_lock(m);
	spin_unlock(m);
	spin_unlock(m);
	int x = ;
}
"""


def test_unheld_release_reasons() -> None:
    """A release of a lock known under another name that was just released
    has no earlier release of its own name nor an acquisition: no path
    holds it. One before two acquisitions names the first. A release in a
    flattened statement is skipped, not the double unlock after it."""
    got = {f.function: f for f in balance(NO_PATH)}
    assert sorted(got) == ["early_twice", "flat_first", "twice_named"]
    named = got["twice_named"]
    assert named.line == line_of(NO_PATH, "spin_unlock(ptl);")
    assert named.message == (
        "`ptl` is released here but not held on any path that reaches this point: "
        "no path to it holds the lock"
    )
    assert named.related == ()
    early = got["early_twice"]
    takes = [i for i, t in enumerate(NO_PATH.splitlines(), 1) if t == "\tspin_lock(l);"]
    assert len(takes) == 3 and early.message.endswith(f"it is taken only at line {takes[0]}")
    unlocks = [i for i, t in enumerate(NO_PATH.splitlines(), 1) if t == "\tspin_unlock(m);"]
    assert got["flat_first"].line == unlocks[1]


TWO_NAMES = """
struct thing {
	spinlock_t lock;
	int busy;
};

int two_names(struct thing *t, spinlock_t *ptl, spinlock_t *pml, int d)
{
	if (d)
		spin_lock(ptl);
	else
		spin_lock(pml);
	spin_lock(&t->lock);
	if (ptl == pml)
		return 1;
	spin_unlock(&t->lock);
	if (d)
		spin_unlock(ptl);
	else
		spin_unlock(pml);
	return 0;
}
"""


def test_one_lock_under_two_names_is_one_report_and_another_lock_still_counts() -> None:
    """`ptl == pml` where both leak at one return: one report for the pair,
    and the other lock leaking at the same return is reported after it."""
    ret = line_of(TWO_NAMES, "return 1;")
    got = sorted((f.line, f.message) for f in balance(TWO_NAMES))
    assert got == [
        (
            line_of(TWO_NAMES, "spin_lock(ptl);"),
            f"`pml` is still held when `two_names()` returns at line {ret}, "
            "but released on other paths",
        ),
        (
            line_of(TWO_NAMES, "spin_lock(&t->lock);"),
            f"`t->lock` is still held when `two_names()` returns at line {ret}, "
            "but released on other paths",
        ),
    ]


def test_the_pair_is_reported_at_one_acquisition_whatever_the_hash_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two ways out at `return 1;` come in an order that follows the
    hash seed (seeds 0 and 4 differ); the report names the earliest
    acquisition of the pair either way."""
    src = tmp_path / "two_names.c"
    src.write_text(TWO_NAMES)
    runs = []
    for seed in ("0", "4"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        res = run_cli("check", str(src), "--select", "lock-balance", "--no-cache", "-q")
        assert res.returncode == 1, res.stderr
        runs.append(res.stdout)
    assert runs[0] == runs[1]
    assert f"two_names.c:{line_of(TWO_NAMES, 'spin_lock(ptl);')}:3: warning: `pml`" in runs[0]


DOCUMENTED = """
struct thing {
	spinlock_t KIND;
	int busy;
};

/*
 * SENTENCE
 */
int thing_walk(struct thing *t)
{
	spin_lock(&t->KIND);
	if (t->busy) {
		spin_unlock(&t->KIND);
		return -EBUSY;
	}
	return 0;
}
"""

KIND_NAMES = ["lock", "mutex", "sem", "rwsem", "spinlock", "ptl", "rwlock"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_lock_named_by_its_kind_is_documented_only_by_a_sentence_about_the_return(
    kind: str,
) -> None:
    """`t->mutex` is named by many sentences: one that takes it says nothing
    of the contract unless it speaks of the return too. A member named
    otherwise (`t->walk_mutex`) needs no such word."""
    code = DOCUMENTED.replace("KIND", kind)
    assert balance(code.replace("SENTENCE", f"On success, returns with the {kind} held.")) == []
    [f] = balance(code.replace("SENTENCE", f"Takes the {kind} for the walk."))
    assert f.function == "thing_walk"
    code = DOCUMENTED.replace("KIND", f"walk_{kind}")
    assert balance(code.replace("SENTENCE", f"Takes walk_{kind} for the walk.")) == []


RECORDED = """
struct block {
	struct rw_semaphore lock;
};

struct walk_path {
	struct block *nodes[8];
	int locks[8];
};

int walk_two(struct walk_path *path, int level, struct thing *t)
{
	struct block *b = path->nodes[level];
	int ret;

	down_write(&b->lock);
	path->locks[level] = WRITE_LOCKED;
	spin_lock(&t->lock); /* R */
	ret = block_lookup(b);
	if (ret < 0) {
		spin_unlock(&t->lock);
		up_write(&b->lock);
		path->locks[level] = 0;
		return ret;
	}
	return 0;
}
"""


def test_a_lock_recorded_in_the_callers_path_does_not_hide_another_leak() -> None:
    assert reported(RECORDED) == marked(RECORDED)


NAMED_IN_COMMENTS = """
struct fs_inode_info {
	struct mutex sem;
	int flags;
};

struct thing {
	spinlock_t lk;
	int busy;
};

/* the object holding the lock is returned only where it was released */
struct inode *fs_swap_x(struct inode *dir, struct inode *inode)
{
	struct fs_inode_info *f;

	f = FS_INODE_INFO(inode);
	mutex_lock(&f->sem); /* R */
	if (fs_busy(f)) {
		mutex_unlock(&f->sem);
		return inode;
	}
	return dir;
}

/*
 * Finds the entry for @key. On success, returns with the RCU read lock held.
 */
struct entry *entry_find_x(struct table *t, unsigned long key)
{
	struct entry *e;

	rcu_read_lock();
	e = table_lookup(t, key);
	if (!e)
		rcu_read_unlock();
	return e;
}

/*
 * On success, returns with lk held.
 */
int two_letters_x(struct thing *t)
{
	spin_lock(&t->lk);
	if (t->busy) {
		spin_unlock(&t->lk);
		return -EBUSY;
	}
	return 0;
}

/*
 * On success, returns with l held.
 */
int one_letter_x(spinlock_t *l, int busy)
{
	spin_lock(l); /* R */
	if (busy) {
		spin_unlock(l);
		return -EBUSY;
	}
	return 0;
}
"""


def test_objects_returned_without_the_lock_and_names_in_header_comments() -> None:
    """The object a lock lives in, returned only on the way that released it,
    hands nothing back; the RCU read side is named in any case; a two-letter
    lock name is looked up in the comment, a one-letter one (`l`, a word in
    too many sentences) is not."""
    assert reported(NAMED_IN_COMMENTS) == marked(NAMED_IN_COMMENTS)


EQUAL_ELSEWHERE = """
int pair_x(spinlock_t *a, spinlock_t *b, int c)
{
	spin_lock(a); /* R */
	spin_lock(b); /* R */
	if (c)
		return 1;
	if (a == b)
		return 2;
	spin_unlock(b);
	spin_unlock(a);
	return 0;
}
"""


def test_locks_equal_only_on_another_way_out_are_two_leaks() -> None:
    """`a == b` is known at `return 2;`, not at `return 1;` where both leak
    first: two locks there, two reports."""
    assert reported(EQUAL_ELSEWHERE) == marked(EQUAL_ELSEWHERE)


SUCCESS_FIRST = """
struct fs_inode_info {
	struct mutex sem;
	int flags;
};

struct inode *fs_new_y(struct inode *dir)
{
	struct inode *inode;
	struct fs_inode_info *f;

	inode = new_inode(dir->i_sb);
	f = FS_INODE_INFO(inode);
	mutex_lock(&f->sem);
	if (!fs_alloc_ino(dir, inode))
		return inode;
	mutex_unlock(&f->sem);
	iput(inode);
	return ERR_PTR(-ENOSPC);
}
"""


def test_an_error_return_listed_first_does_not_stop_the_search_for_the_object() -> None:
    """The error return (no lock, not a name) comes first among the ways out;
    the success return after it hands the object with its private lock back."""
    assert balance(SUCCESS_FIRST) == []


LOCAL_OWNER = """
struct thing {
	spinlock_t lock;
	int busy;
};

struct table {
	struct thing *first;
	struct thing *last;
};

int first_busy_x(struct table *tb)
{
	struct thing *w = tb->first;

	spin_lock(&w->lock); /* R */
	if (w->busy) {
		spin_unlock(&w->lock);
		return -EBUSY;
	}
	return 0;
}

void user_last(struct table *tb)
{
	struct thing *w = tb->last;

	if (first_busy_x(tb))
		return;
	spin_unlock(&w->lock);
}
"""


def test_a_caller_releasing_its_own_variable_of_the_same_name_is_no_evidence() -> None:
    """The helper's `w` is a local it assigns: the caller's `w->lock` is
    another object's lock, whatever the spelling."""
    assert reported(LOCAL_OWNER) == marked(LOCAL_OWNER)


WRAPPERS = """
struct obj {
	struct mutex m;
	struct mutex extra;
	struct rw_semaphore rw;
	int dead;
};

void lock_pair(struct obj *a, struct obj *b)
{
	mutex_lock(&a->m);
	mutex_lock_nested(&b->m, 1);
}

void grab_pair(struct obj *a, struct obj *b)
{
	mutex_lock(&a->m);
	mutex_lock_nested(&b->m, 1);
}

void unlock_pair(struct obj *a, struct obj *b)
{
	mutex_unlock(&b->m);
	mutex_unlock(&a->m);
}

static void lock(struct obj *o)
{
	mutex_lock(&o->m);
}

int dev_lock_pair_extra(struct obj *a, struct obj *b)
{
	lock_pair(a, b);
	mutex_lock(&a->extra); /* R */
	if (a->dead) {
		mutex_unlock(&a->extra);
		unlock_pair(a, b);
		return -EIO;
	}
	unlock_pair(a, b);
	return 0;
}

int dev_lock_pair_again(struct obj *a, struct obj *b)
{
	mutex_lock(&a->m);
	mutex_unlock(&a->m);
	lock_pair(a, b);
	if (a->dead) {
		unlock_pair(a, b);
		return -EIO;
	}
	return 0;
}

int sb_down_write_checked(struct obj *o)
{
	down_write(&o->rw);
	if (o->dead) {
		up_write(&o->rw);
		return -EROFS;
	}
	return 0;
}

int dev_grab_pair_checked(struct obj *a, struct obj *b)
{
	grab_pair(a, b); /* R */ /* R */
	if (a->dead) {
		unlock_pair(a, b);
		return -EIO;
	}
	return 0;
}

int dev_lock_checked(struct obj *o)
{
	lock(o); /* R */
	if (o->dead) {
		mutex_unlock(&o->m);
		return -EIO;
	}
	return 0;
}
"""


def test_a_wrapper_is_named_after_the_locking_helper_that_takes_its_lock() -> None:
    """Excused: a wrapper of a helper named as locking (also after another
    acquisition of the same lock) or of a pack row that locks (`down_write`,
    not named so). Not: a lock taken by another primitive beside a wrapped
    helper, a helper neither named nor packed as locking, a one-word
    helper (`lock()`, whose word is in many names)."""
    assert reported(WRAPPERS) == marked(WRAPPERS)


OWNERS = """
struct node { spinlock_t n_lock; int busy; };
struct slot { struct mutex io_mutex; int used; };
struct ring { struct slot slots[4]; int ro; };

/*
 * Returns 0 with a reference held on the node.
 */
static int node_get(struct node *a)
{
	spin_lock(&a->n_lock); /* R */
	if (a->busy) {
		spin_unlock(&a->n_lock);
		return -EBUSY;
	}
	return 0;
}

/*
 * Return 0 and have eb locked, or -EAGAIN if it is busy.
 */
static int eb_claim(struct node *eb)
{
	spin_lock(&eb->n_lock);
	if (eb->busy) {
		spin_unlock(&eb->n_lock);
		return -EAGAIN;
	}
	return 0;
}

static void slot_release(struct ring *r, int n)
{
	mutex_unlock(&r->slots[n].io_mutex);
}

/*
 * slot_put - put data in slot @n.
 *
 * The slot is not left locked for slot_release() on failure.
 */
static int slot_put(struct ring *r, int n, int len)
{
	struct slot *s = &r->slots[n];

	mutex_lock(&s->io_mutex); /* R */
	if (r->ro) {
		mutex_unlock(&s->io_mutex);
		return -EROFS;
	}
	s->used += len;
	return 0;
}
"""


def test_owners_said_locked_on_return_and_a_negated_undo_in_header_comments() -> None:
    """A two-letter owner said locked on return (`eb`) is evidence; a
    one-letter one (`a`) is not looked up, as it is also the article; a
    sentence that names the undo but says the lock is not left held is no
    evidence."""
    assert reported(OWNERS) == marked(OWNERS)
