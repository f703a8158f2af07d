"""sleep-in-atomic in process: which held locks count as spinning, and what a
report says (its call, its locks in order, where each was taken).

`make mutate` runs these first for lockcheck/rules/sleep_in_atomic.py; the
annotated fixtures check reported lines only.
"""

from __future__ import annotations

from functools import cache

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"sleep-in-atomic"}, headers=False))


def sleeps(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def test_a_sleep_under_a_spinlock_names_the_call_the_lock_and_where_it_was_taken() -> None:
    (f,) = sleeps(
        "void f(struct mm_struct *mm)\n"
        "{\n"
        "\tspin_lock(&mm->page_table_lock);\n"
        "\tmsleep(1);\n"
        "\tspin_unlock(&mm->page_table_lock);\n"
        "}\n"
    )
    assert (f.line, f.column, f.function) == (4, 2, "f")
    assert (
        f.message == "`msleep()` may sleep, but `mm->page_table_lock` is held here: atomic context"
    )
    assert f.held == ("mm->page_table_lock",)
    assert f.expected == ("no spinning lock held",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (3, 2, "`mm->page_table_lock` taken here")
    ]


def test_the_rcu_read_side_is_named_by_its_call() -> None:
    (f,) = sleeps(
        "void f(void)\n{\n\trcu_read_lock();\n\tmight_sleep();\n\trcu_read_unlock();\n}\n"
    )
    assert (
        f.message == "`might_sleep()` may sleep, but `rcu_read_lock()` is held here: atomic context"
    )
    assert f.held == ("rcu",)


def test_two_spinning_locks_are_named_sorted_with_both_places() -> None:
    (f,) = sleeps(
        "void f(struct mm_struct *mm, struct address_space *m)\n"
        "{\n"
        "\tspin_lock(&mm->page_table_lock);\n"
        "\tspin_lock(&m->private_lock);\n"
        "\tcond_resched();\n"
        "\tspin_unlock(&m->private_lock);\n"
        "\tspin_unlock(&mm->page_table_lock);\n"
        "}\n"
    )
    assert f.held == ("m->private_lock", "mm->page_table_lock")
    assert "`m->private_lock`, `mm->page_table_lock` is held" in f.message
    assert [(r.line, r.message) for r in f.related] == [
        (3, "`mm->page_table_lock` taken here"),
        (4, "`m->private_lock` taken here"),
    ]


def test_a_sleeping_lock_held_alone_is_not_atomic_but_beside_a_spinlock_it_is_not_named() -> None:
    quiet = sleeps(
        "void f(struct mutex *m)\n{\n\tmutex_lock(m);\n\tmsleep(1);\n\tmutex_unlock(m);\n}\n"
    )
    assert quiet == []
    (f,) = sleeps(
        "void f(struct mutex *m, struct mm_struct *mm)\n"
        "{\n"
        "\tmutex_lock(m);\n"
        "\tspin_lock(&mm->page_table_lock);\n"
        "\tmsleep(1);\n"
        "\tspin_unlock(&mm->page_table_lock);\n"
        "\tmutex_unlock(m);\n"
        "}\n"
    )
    assert f.held == ("mm->page_table_lock",)
    assert len(f.related) == 1


def test_a_lock_the_function_did_not_take_is_not_assumed_atomic() -> None:
    code = (
        "void f(struct mm_struct *mm)\n"
        "{\n"
        "\tlockdep_assert_held(&mm->page_table_lock);\n"
        "\tmsleep(1);\n"
        "}\n"
    )
    assert sleeps(code) == []


def test_each_sleep_after_the_first_is_reported_too() -> None:
    found = sleeps(
        "void f(struct mm_struct *mm)\n"
        "{\n"
        "\tspin_lock(&mm->page_table_lock);\n"
        "\tmsleep(1);\n"
        "\tcond_resched();\n"
        "\tspin_unlock(&mm->page_table_lock);\n"
        "\tmsleep(2);\n"
        "}\n"
    )
    assert [(f.line, f.anchor) for f in found] == [(4, "msleep(1)"), (5, "cond_resched()")]
