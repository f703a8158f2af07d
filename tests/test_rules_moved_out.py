"""moved-out-of-lock in process: what reads shared state, how occurrences
pair, and what the report says.

`make mutate` runs these first for lockcheck/rules/moved_out.py; the review
fixtures check reported lines, not the wording or every wrapper.
"""

from __future__ import annotations

from functools import cache

import pytest

from lockcheck.analysis.function import FunctionFacts
from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.rules.moved_out import MovedOutOfLock, _left, _Use, reads_shared

LOCAL = frozenset({"n", "flags"})


@pytest.mark.parametrize(
    "wrapper",
    [
        "likely",
        "unlikely",
        "IS_ENABLED",
        "IS_ERR",
        "IS_ERR_OR_NULL",
        "PTR_ERR",
        "sizeof",
        "ARRAY_SIZE",
        "WARN_ON",
        "WARN_ON_ONCE",
        "WARN",
        "WARN_ONCE",
        "BUG_ON",
        "VM_BUG_ON",
        "VM_WARN_ON",
        "VM_WARN_ON_ONCE",
    ],
)
def test_wrappers_read_only_what_they_are_given(wrapper: str) -> None:
    assert not reads_shared(f"{wrapper}(n > 1)", LOCAL)
    assert reads_shared(f"{wrapper}(count > 1)", LOCAL)


@pytest.mark.parametrize(
    ("text", "shared"),
    [
        ("n > 1", False),
        ("flags & FLAG_X", False),  # upper case: a constant
        ("n == NULL || flags == true || n == false", False),
        ("w->n", True),
        ("*p", True),
        ("*n", True),  # a dereference, even of a local pointer
        ("!*n", True),
        ("!*p", True),
        ("* (p)", True),
        ("n*flags", False),  # a product, not a dereference
        ("a[1] * n", True),  # `a` is not the function's
        ("(n)*flags", False),
        ("flags[1]*n", False),
        ("test_bit(1, &flags)", True),  # a call that is not a wrapper
        ("count", True),  # a global
        ("n + count", True),  # after a local
        ("n.count", False),  # a field of a local struct: a name after `.`
        ("n->count", True),
    ],
)
def test_what_reads_shared_state(text: str, shared: bool) -> None:
    assert reads_shared(text, LOCAL) is shared


def use(line: int, must: set[str], may: set[str] | None = None) -> _Use:
    return _Use(line, 1, frozenset(must), frozenset(must if may is None else may))


def test_as_many_occurrences_pair_in_order() -> None:
    was = [use(1, {"a"}), use(5, {"a", "b"})]
    now = [use(2, {"a"}), use(6, set(), {"b"})]
    assert _left(was, now) == [("a", now[1])]


def test_a_different_count_reports_a_lock_now_held_nowhere_at_the_first() -> None:
    was = [use(1, {"a"}), use(5, {"b"})]
    now = [use(9, {"b"}), use(2, set()), use(4, set())]
    assert _left(was, now) == [("a", now[1])]
    assert _left(was, [use(3, set(), {"a", "b"})]) == []


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"moved-out-of-lock"}, headers=False))


def functions(code: str) -> list[FunctionFacts]:
    return _engine().analyse_source("t.c", code.encode()).facts.functions


def compare(before: str, after: str, changed: set[str]) -> list[Finding]:
    (rule,) = [r for r in _engine().rules if isinstance(r, MovedOutOfLock)]
    return rule.compare("t.c", functions(before), functions(after), changed)


BEFORE = """
void f(struct w *w, struct mm_struct *mm, pte_t *pte)
{
	mutex_lock(&w->outer);
	spin_lock(&w->lock);
	if (w->ready)
		w->n++;
	set_pte_at(mm, 0, pte, __pte(0));
	spin_unlock(&w->lock);
	mutex_unlock(&w->outer);
}
"""

AFTER = """
void f(struct w *w, struct mm_struct *mm, pte_t *pte)
{
	mutex_lock(&w->outer);
	if (w->ready) {
		spin_lock(&w->lock);
		w->n++;
		spin_unlock(&w->lock);
	}
	set_pte_at(mm, 0, pte, __pte(0));
	mutex_unlock(&w->outer);
}
"""


def lines(code: str, text: str) -> list[int]:
    return [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]


def test_a_test_and_an_act_moved_out_and_what_they_say() -> None:
    found = compare(BEFORE, AFTER, {"f"})
    test, act = sorted(found, key=lambda f: f.line)
    take = lines(AFTER, "spin_lock(&w->lock);")[0]
    assert (test.line, test.column, test.function) == (lines(AFTER, "if (w->ready) {")[0], 1, "f")
    assert test.message == (
        "`w->ready` was tested under `w->lock` before this patch and is now tested without it, "
        f"while `f()` still takes `w->lock` (line {take}): its answer can be out of date by "
        "the time the lock is held"
    )
    # the outer lock is still held: what a reader sees held there
    assert test.held == ("w->outer",) and test.expected == ("w->lock",)
    assert [(r.line, r.column, r.message) for r in test.related] == [
        (take, 1, "`w->lock` taken here")
    ]
    assert test.anchor == "w->ready" and test.rule == "moved-out-of-lock"
    assert act.line == lines(AFTER, "set_pte_at(mm, 0, pte, __pte(0));")[0]
    assert act.message == (
        "`set_pte_at(mm, 0, pte, __pte(0))` was done under `w->lock` before this patch and "
        f"is now done without it, while `f()` still takes `w->lock` (line {take}): another "
        "holder of the lock can change the entry at the same time"
    )


def test_only_changed_functions_that_still_take_the_lock() -> None:
    assert compare(BEFORE, AFTER, {"g"}) == []
    # no longer taking the lock at all: a different change, not a move
    gone = AFTER.replace("\t\tspin_lock(&w->lock);\n", "").replace(
        "\t\tspin_unlock(&w->lock);\n", ""
    )
    assert compare(BEFORE, gone, {"f"}) == []
    renamed = BEFORE.replace("void f(", "void g(")
    assert compare(renamed, AFTER, {"f"}) == []
    # an unchanged function before it in name order does not end the search
    other = "void a(int x)\n{\n\tx++;\n}\n"
    assert len(compare(other + BEFORE, other + AFTER, {"f"})) == 2


HELD_BEFORE = """
void f(struct w *w, spinlock_t *a, spinlock_t *b, int c)
{
	if (c)
		return;
	if (c)
		g(w);
	spin_lock(a);
	spin_lock(b);
	spin_lock(&w->lock);
	if (w->ready)
		w->n++;
	spin_unlock(&w->lock);
	spin_unlock(b);
	spin_unlock(a);
}
"""


def test_locks_held_on_one_way_asserted_or_no_longer_taken() -> None:
    # the test moved above all three locks; `a` is no longer taken at all,
    # and a branch the dataflow never reaches comes first
    after = """
void f(struct w *w, spinlock_t *a, spinlock_t *b, int c)
{
	if (c)
		return;
	if (c)
		g(w);
	if (w->ready)
		w->n++;
	spin_lock(b);
	spin_lock(&w->lock);
	spin_unlock(&w->lock);
	spin_unlock(b);
}
"""
    found = compare(HELD_BEFORE, after, {"f"})
    assert sorted((f.line, f.expected) for f in found) == [
        (lines(after, "if (w->ready)")[0], ("b",)),
        (lines(after, "if (w->ready)")[0], ("w->lock",)),
    ]
    # held on one way only: possibly held, not moved out
    one_way = after.replace(
        "\tif (w->ready)\n", "\tif (w->n)\n\t\tspin_lock(b);\n\tif (w->ready)\n"
    ).replace(
        "\t\tw->n++;\n\tspin_lock(b);\n",
        "\t\tw->n++;\n\tif (w->n)\n\t\tspin_unlock(b);\n\tspin_lock(b);\n",
    )
    assert [f.expected for f in compare(HELD_BEFORE, one_way, {"f"})] == [("w->lock",)]
    # only asserted held here (the caller's hold), taken later: not this
    # function's own hold, so still moved out of it
    asserted = after.replace(
        "\tif (w->ready)\n", "\tlockdep_assert_held(&w->lock);\n\tif (w->ready)\n"
    )
    assert [f.expected for f in compare(HELD_BEFORE, asserted, {"f"})] == [("b",), ("w->lock",)]
