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
