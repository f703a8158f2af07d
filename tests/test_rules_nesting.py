"""nested-same-class in process: which acquisitions count as a second lock of
a held lockdep class, and what a report says.

`make mutate` runs these first for lockcheck/rules/nesting.py; the annotated
fixtures check reported lines only.
"""

from __future__ import annotations

from functools import cache

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"nested-same-class"}, headers=False))


def nested(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def _fn(params: str, *body: str) -> str:
    return f"void f({params})\n{{\n" + "".join(f"\t{line}\n" for line in body) + "}\n"


PTL = "struct mm_struct *mm, pmd_t *pmd, spinlock_t *ptl"


def test_a_pte_lock_under_the_pmd_lock_names_both_the_class_and_the_nested_primitive() -> None:
    (f,) = nested(
        _fn(
            PTL,
            "spinlock_t *pml = pmd_lock(mm, pmd);",
            "spin_lock(ptl);",
            "spin_unlock(ptl);",
            "spin_unlock(pml);",
        )
    )
    assert (f.line, f.column) == (4, 2)
    assert f.message == (
        "`ptl` is taken with `spin_lock()` while `pml` of the same lockdep class"
        " (pud_lock/pmd_lock/pte_lock/page_table_lock) is held; lockdep reports recursive"
        " locking unless it is taken with a `_nested()` primitive"
    )
    assert f.held == ("pml",)
    assert f.expected == ("spin_lock_nested()",)
    assert [(r.line, r.message) for r in f.related] == [(3, "`pml` taken here")]


def test_a_class_of_one_name_is_watched_too() -> None:
    (f,) = nested(
        _fn(
            "struct mm_struct *a, struct mm_struct *b",
            "mmap_read_lock(a);",
            "mmap_read_lock(b);",
            "mmap_read_unlock(b);",
            "mmap_read_unlock(a);",
        )
    )
    assert "`b->mmap_lock` is taken with `mmap_read_lock()` while `a->mmap_lock`" in f.message
    assert "(mmap_lock)" in f.message
    assert f.expected == ("mmap_read_lock_nested()",)


def test_every_held_lock_of_the_class_is_listed_and_the_first_named() -> None:
    (f,) = nested(
        _fn(
            "struct mm_struct *a, struct mm_struct *b, struct mm_struct *c",
            "mmap_write_lock(a);",
            "mmap_write_lock_nested(b, 1);",
            "mmap_write_lock(c);",
            "mmap_write_unlock(c);",
            "mmap_write_unlock(b);",
            "mmap_write_unlock(a);",
        )
    )
    assert f.line == 5
    assert set(f.held) == {"a->mmap_lock", "b->mmap_lock"}
    assert f"while `{f.held[0]}` of" in f.message
    assert len(f.related) == 2
    assert {r.line for r in f.related} == {3, 4}


def test_nested_trylock_guarded_unwatched_and_same_lock_acquisitions_are_quiet() -> None:
    two = "struct mm_struct *a, struct mm_struct *b"
    assert nested(_fn(two, "mmap_write_lock(a);", "mmap_write_lock_nested(b, 1);")) == []
    assert (
        nested(
            _fn(two, "mmap_read_lock(a);", "if (mmap_read_trylock(b))", "\tmmap_read_unlock(b);")
        )
        == []
    )
    assert nested(_fn("struct folio *a, struct folio *b", "folio_lock(a);", "folio_lock(b);")) == []
    # another class held: not this one
    assert (
        nested(
            _fn(
                "struct mm_struct *a, struct address_space *m",
                "mmap_read_lock(a);",
                "i_mmap_lock_read(m);",
            )
        )
        == []
    )
    # the same lock again is lock-balance's business, not a second lock
    assert nested(_fn("struct mm_struct *a", "mmap_read_lock(a);", "mmap_read_lock(a);")) == []


def test_a_second_name_for_the_held_lock_is_not_a_second_lock() -> None:
    code = _fn(
        PTL, "spinlock_t *pml = pmd_lock(mm, pmd);", "if (ptl == pml) {", "\tspin_lock(ptl);", "}"
    )
    assert nested(code) == []


def test_a_scoped_guard_is_not_judged() -> None:
    code = _fn(
        "struct mm_struct *a, struct mm_struct *b",
        "spin_lock(&a->page_table_lock);",
        "guard(spinlock)(&b->page_table_lock);",
    )
    assert nested(code) == []
    assert len(nested(code.replace("guard(spinlock)(", "spin_lock("))) == 1


def test_an_unwatched_or_trylock_acquisition_does_not_end_the_function() -> None:
    two = "struct mm_struct *a, struct mm_struct *b, struct folio *x, struct mm_struct *c"
    found = nested(
        _fn(
            two,
            "mmap_write_lock(a);",
            "folio_lock(x);",
            "if (mmap_write_trylock(c))",
            "\tmmap_write_unlock(c);",
            "mmap_write_lock(b);",
        )
    )
    assert [f.line for f in found] == [7]
