"""claim-mismatch in process: what each kind of contradiction says, and the
releases it points at.

`make mutate` runs these first for lockcheck/rules/claim.py; the annotated
fixture checks reported lines, not the wording, the held locks or the
related places.
"""

from __future__ import annotations

from functools import cache

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"claim-mismatch"}, headers=False))


def findings(code: str) -> dict[str, Finding]:
    engine = _engine()
    found = engine.findings_for(engine.analyse_source("t.c", code.encode()))
    out = {f.function: f for f in found}
    assert len(out) == len(found)
    return out


def lines(code: str, text: str) -> list[int]:
    return [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]


def rel(f: Finding) -> list[tuple[int, int, str]]:
    return [(r.line, r.column, r.message) for r in f.related]


CODE = """
static void after_unlock(spinlock_t *ptl, int c)
{
	spin_lock(ptl);
	if (c) {
		work();
		spin_unlock(ptl);
	} else {
		spin_unlock(ptl);
	}
	lockdep_assert_held(ptl);
}

static void same_node(spinlock_t *ptl)
{
	spin_lock(ptl);
	spin_unlock(ptl), spin_unlock(ptl), lockdep_assert_held(ptl), spin_unlock(ptl);
}

static void one_path(spinlock_t *ptl, int c)
{
	spin_lock(ptl);
	if (c)
		spin_unlock(ptl);
	lockdep_assert_held(ptl);
}

static void read_only(struct mm_struct *mm)
{
	mmap_read_lock(mm);
	mmap_assert_write_locked(mm);
	mmap_read_unlock(mm);
}

static void not_held(struct address_space *mapping)
{
	i_mmap_lock_read(mapping);
	lockdep_assert_not_held(&mapping->i_mmap_rwsem);
	i_mmap_unlock_read(mapping);
}

static void asserts_write(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
}

static void calls_under_read(struct mm_struct *mm)
{
	mmap_read_lock(mm);
	asserts_write(mm);
	mmap_read_unlock(mm);
}

static void calls_under_write(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	asserts_write(mm);
	mmap_write_unlock(mm);
}

static void calls_under_maybe_read(struct mm_struct *mm, int c)
{
	if (c)
		mmap_read_lock(mm);
	asserts_write(mm);
	if (c)
		mmap_read_unlock(mm);
}

static void comment_claim(struct mm_struct *mm)
{
	mmap_read_lock(mm);
	mmap_read_unlock(mm);
	/* the mmap lock must be held here */
	work(mm);
}
"""


def test_each_contradiction_and_what_it_says() -> None:
    got = findings(CODE)
    assert sorted(got) == [
        "after_unlock",
        "calls_under_read",
        "comment_claim",
        "not_held",
        "read_only",
        "same_node",
    ]

    f = got["after_unlock"]
    assert f.line == lines(CODE, "lockdep_assert_held(ptl);")[0]
    assert f.message == (
        "`lockdep_assert_held(ptl)` claims a lock state the code contradicts: "
        "`ptl` was released on every path here"
    )
    assert f.held == () and f.expected == ("ptl held",)
    # every release the paths pass, in order
    assert rel(f) == [(n, 3, "`ptl` released here") for n in lines(CODE, "spin_unlock(ptl);")[:2]]

    f = got["same_node"]
    # in the claim's own statement: the last release before it
    assert rel(f) == [(f.line, 20, "`ptl` released here")]  # the second, not the one after

    f = got["read_only"]
    take = lines(CODE, "mmap_read_lock(mm);")[0]
    assert f.message.endswith("`mm->mmap_lock` is held only for read here")
    assert f.message.startswith("`mmap_assert_write_locked(mm)` claims")
    assert f.held == ("mm->mmap_lock",) and f.expected == ("mm->mmap_lock held",)
    assert rel(f) == [(take, 2, "`mm->mmap_lock` taken for read here")]

    f = got["not_held"]
    assert f.message.endswith("`mapping->i_mmap_rwsem` is held here")
    assert f.held == ("mapping->i_mmap_rwsem",)
    assert f.expected == ("mapping->i_mmap_rwsem not held",)
    take = lines(CODE, "i_mmap_lock_read(mapping);")[0]
    assert rel(f) == [(take, 2, "`mapping->i_mmap_rwsem` taken here")]

    f = got["calls_under_read"]
    assert f.line == lines(CODE, "asserts_write(mm);")[0]
    assert f.message == (
        "`asserts_write()` (it asserts `mmap_assert_write_locked(mm)`) claims a lock state "
        "the code contradicts: `mm->mmap_lock` is held only for read here"
    )
    assert f.held == ("mm->mmap_lock",)
    assert f.expected == ("mm->mmap_lock held for write",)
    take = lines(CODE, "mmap_read_lock(mm);")[1]
    assert rel(f) == [(take, 2, "`mm->mmap_lock` taken for read here")]

    f = got["comment_claim"]
    assert f.message == (
        "the comment `the mmap lock must be held here` claims a lock state the code "
        "contradicts: `mm->mmap_lock` was released on every path here"
    )
    assert f.held == () and f.expected == ("mm->mmap_lock held",)
    assert rel(f) == [
        (lines(CODE, "mmap_read_unlock(mm);")[-1], 2, "`mm->mmap_lock` released here")
    ]


MORE = """
static void other_release_first(spinlock_t *ptl, spinlock_t *m)
{
	spin_lock(ptl);
	spin_lock(m);
	spin_unlock(ptl), spin_unlock(m);
	spin_unlock(m), lockdep_assert_held(ptl);
}

static void three_before(spinlock_t *ptl)
{
	spin_lock(ptl);
	spin_unlock(ptl), spin_unlock(ptl), spin_unlock(ptl), lockdep_assert_held(ptl);
}

static void taken_on_one_way(spinlock_t *l, int c)
{
	if (c) {
		spin_lock(l);
		spin_unlock(l);
	}
	lockdep_assert_held(l);
}

static void read_beside_other(struct mm_struct *mm, spinlock_t *x)
{
	mmap_read_lock(mm);
	spin_lock(x);
	mmap_assert_write_locked(mm);
	spin_unlock(x);
	mmap_read_unlock(mm);
}

static void released_beside_other(spinlock_t *ptl, spinlock_t *x)
{
	spin_lock(x);
	spin_lock(ptl);
	spin_unlock(ptl);
	lockdep_assert_held(ptl);
	spin_unlock(x);
}

static void asserts_write(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
}

static void calls_beside_other(struct mm_struct *mm, spinlock_t *x)
{
	mmap_read_lock(mm);
	spin_lock(x);
	asserts_write(mm);
	spin_unlock(x);
	mmap_read_unlock(mm);
}

static void asserts_two(struct mm_struct *mm, struct rw_semaphore *sem)
{
	mmap_assert_write_locked(mm);
	lockdep_assert_held_write(sem);
}

static void calls_two(struct mm_struct *mm, struct rw_semaphore *sem)
{
	mmap_write_lock(mm);
	down_read(sem);
	asserts_two(mm, sem);
	up_read(sem);
	mmap_write_unlock(mm);
}

static void comment_not_held(struct mm_struct *mm)
{
	mmap_read_lock(mm);
	/* the mmap lock must not be held here */
	work(mm);
	mmap_read_unlock(mm);
}
"""


def test_other_locks_beside_the_claimed_one() -> None:
    got = findings(MORE)
    # taken and released on one way only: the other way never took it
    assert sorted(got) == [
        "calls_beside_other",
        "calls_two",
        "comment_not_held",
        "other_release_first",
        "read_beside_other",
        "released_beside_other",
        "three_before",
    ]
    # another lock's release in the claim's statement, or beside the claimed
    # one's, is not the release the claim contradicts
    unlock_both = lines(MORE, "spin_unlock(ptl), spin_unlock(m);")[0]
    assert rel(got["other_release_first"]) == [(unlock_both, 2, "`ptl` released here")]
    # of three releases in the claim's statement, the last
    assert rel(got["three_before"]) == [(got["three_before"].line, 38, "`ptl` released here")]
    # another lock held beside: the claim still judged on its own lock
    assert got["read_beside_other"].held == ("mm->mmap_lock",)
    assert got["released_beside_other"].message.endswith("`ptl` was released on every path here")
    assert got["calls_beside_other"].expected == ("mm->mmap_lock held for write",)
    # the second of a helper's assertions, after one the caller meets
    assert got["calls_two"].message.startswith(
        "`asserts_two()` (it asserts `lockdep_assert_held_write(sem)`)"
    )
    f = got["comment_not_held"]
    assert f.held == ("mm->mmap_lock",) and f.expected == ("mm->mmap_lock not held",)
    assert f.message.endswith("`mm->mmap_lock` is held here")


NAMES = """
static void asserts_sem(struct rw_semaphore *s)
{
	lockdep_assert_held_write(s);
}

/* one lock under a second name, by assignment: held for read */
static void claimed_by_alias(struct rw_semaphore *a)
{
	struct rw_semaphore *b;

	down_read(a);
	b = a;
	lockdep_assert_held_write(b);
	up_read(a);
}

static void callee_by_alias(struct rw_semaphore *a)
{
	struct rw_semaphore *b;

	down_read(a);
	b = a;
	asserts_sem(b);
	up_read(a);
}

/* one acquisition under two names after a test of their equality */
static void callee_by_both_names(struct rw_semaphore *a, struct rw_semaphore *b)
{
	down_read(b);
	if (a == b)
		asserts_sem(a);
	up_read(b);
}

/* a helper's assertion the call cannot put in its terms, then one it contradicts */
static void asserts_own_then_mm(struct mm_struct *mm, struct rw_semaphore *s)
{
	int i = pick();

	lockdep_assert_held_write(&s[i]);
	mmap_assert_write_locked(mm);
}

static void calls_own_first(struct mm_struct *mm, struct rw_semaphore *s)
{
	mmap_read_lock(mm);
	asserts_own_then_mm(mm, s);
	mmap_read_unlock(mm);
}

/* ... or one on a lock held on some paths only, then one it contradicts */
static void asserts_sem_then_mm(struct mm_struct *mm, struct rw_semaphore *sem)
{
	lockdep_assert_held_write(sem);
	mmap_assert_write_locked(mm);
}

static void calls_sem_on_one_way(struct mm_struct *mm, struct rw_semaphore *sem, int c)
{
	mmap_read_lock(mm);
	if (c)
		down_read(sem);
	asserts_sem_then_mm(mm, sem);
	if (c)
		up_read(sem);
	mmap_read_unlock(mm);
}
"""


def test_the_claimed_lock_under_a_second_name() -> None:
    got = findings(NAMES)
    assert sorted(got) == [
        "callee_by_alias",
        "callee_by_both_names",
        "calls_own_first",
        "calls_sem_on_one_way",
        "claimed_by_alias",
    ]
    take = lines(NAMES, "down_read(a);")
    assert got["claimed_by_alias"].message.endswith("`b` is held only for read here")
    assert rel(got["claimed_by_alias"]) == [(take[0], 2, "`a` taken for read here")]
    assert rel(got["callee_by_alias"]) == [(take[1], 2, "`a` taken for read here")]
    # both names carry the one acquisition: the related place names the first
    # of them in name order, whichever name the analysis learnt first
    (b_take,) = lines(NAMES, "down_read(b);")
    assert rel(got["callee_by_both_names"]) == [(b_take, 2, "`a` taken for read here")]
    # past an assertion the caller cannot judge, the next one is judged
    for name in ("calls_own_first", "calls_sem_on_one_way"):
        assert got[name].expected == ("mm->mmap_lock held for write",)


ADJACENT = """/* Called with the zone lock held. */
static void first(struct zone *z)
{
	/* the lock is held here */
	z->n++; /* trailing: still held */
}
/* between the two: about nothing */ /* two on one line */
/*
 * Called with the zone lock held.
 */
static void second(struct zone *z)
{
	/* a */ /* b */
	z->n--;
}

// a line comment, then one right above a definition
/* header */ static void third(void) { /* inside */ }
static void fourth(void)
{
}
/* after the last function */
"""


def test_each_function_reads_its_own_comments() -> None:
    # a function's comments are found by bisecting the file's: the same as
    # asking every comment of the file whether it is the function's header or
    # lies in its body, in the same order
    from lockcheck.order.claims import _function_comments, _is_header, comments

    engine = _engine()
    facts = engine.analyse_source("t.c", ADJACENT.encode()).facts
    cs = comments(ADJACENT.encode())
    firsts, lasts = [c.line for c in cs], [c.end_line for c in cs]
    seen: dict[str, list[tuple[str, bool]]] = {}
    for fn in facts.functions:
        start, end = fn.fn.start_line, fn.fn.end_line
        scan = [
            (c.text, True) if _is_header(c, fn) else (c.text, False)
            for c in cs
            if _is_header(c, fn) or start < c.line <= end
        ]
        got = [(c.text, h) for c, h in _function_comments(fn, cs, firsts, lasts)]
        assert got == scan
        seen[fn.fn.name] = got
    assert seen["first"] == [
        ("/* Called with the zone lock held. */", True),
        ("/* the lock is held here */", False),
        ("/* trailing: still held */", False),
    ]
    assert seen["second"][0] == ("/*\n * Called with the zone lock held.\n */", True)
    assert [t for t, _ in seen["second"][1:]] == ["/* a */", "/* b */"]
    assert sorted(seen) == ["first", "fourth", "second", "third"]
