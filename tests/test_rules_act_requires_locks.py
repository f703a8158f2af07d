"""act-requires-locks in process: the pack rows, where a finding lands (the
act, or the call that leads to it) and what it says.

`make mutate` runs these first for lockcheck/rules/act_requires_locks.py;
the annotated fixture checks reported lines, not the wording.
"""

from __future__ import annotations

from functools import cache

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.rules.act_requires_locks import ActRequiresLocks


def spec(requires: list[str]) -> RuleSpec:
    params = {"acts": ["pte-set"], "requires": requires}
    return RuleSpec(
        "acts", "act-requires-locks", "error", "m", "s", "p", params, path="p.toml", index=2
    )


def test_rows_are_alternatives_of_lock_sets() -> None:
    rule = ActRequiresLocks(spec([" a:write + b ", "c"]))
    assert rule.alternatives == [["a:write", "b"], ["c"]]
    assert rule.classes == frozenset({"a", "b", "c"})
    assert rule.acts == frozenset({"pte-set"})


@pytest.mark.parametrize("row", ["a +", "+ b", "a + + b", " "])
def test_a_row_with_an_empty_lock_is_a_pack_error(row: str) -> None:
    with pytest.raises(PackError) as err:
        ActRequiresLocks(spec(["ok", row]))
    assert (
        str(err.value)
        == "rule pack p.toml: rule[2] (acts).requires[1]: must read 'LOCK + LOCK ...'"
    )


@cache
def _engine() -> Engine:
    return Engine(
        Config(packs=["mm"], select={"pt-act-unlocked", "pt-detach-locks"}, headers=False)
    )


def findings(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def lines(code: str, text: str) -> list[int]:
    return [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]


NEEDS = "the pte lock or `ptl` or the pmd lock or `pud_lock` or `page_table_lock`"
EXPECTED = ("pte_lock", "ptl", "pmd_lock", "pud_lock", "page_table_lock")

CODE = """
static void set_after_unlock(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	spin_lock(ptl);
	work();
	spin_unlock(ptl);
	set_pte_at(mm, 0, pte, __pte(0));
}

static void helper_sets(struct mm_struct *mm, pte_t *pte)
{
	set_pte_at(mm, 0, pte, __pte(0));
}

static void calls_after_unlock(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	spin_lock(ptl);
	work();
	spin_unlock(ptl);
	helper_sets(mm, pte);
}

static void calls_under_lock(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	spin_lock(ptl);
	helper_sets(mm, pte);
	spin_unlock(ptl);
}

static void held_other(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	mmap_read_lock(mm);
	spin_lock(ptl);
	spin_unlock(ptl);
	set_pte_at(mm, 0, pte, __pte(0));
	mmap_read_unlock(mm);
}

static void local_table(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pmd_t __pmd;
	spin_lock(ptl);
	spin_unlock(ptl);
	pmd_populate_kernel(&init_mm, &__pmd, pgtable);
	pte = pte_offset_kernel(&__pmd, 0);
	set_pte_at(mm, 0, pte, __pte(0));
}
"""


def test_where_each_finding_lands_and_what_it_says() -> None:
    got = {f.function: f for f in findings(CODE)}
    # under the lock in the caller, the helper's act is fine; a table of
    # the function's own (a local entry it filled) needs no lock
    assert sorted(got) == ["calls_after_unlock", "held_other", "set_after_unlock"]
    act = "`set_pte_at(mm, 0, pte, __pte(0))`"
    tail = "although the function manages that lock"

    f = got["set_after_unlock"]
    assert (f.line, f.column) == (lines(CODE, "set_pte_at(mm, 0, pte, __pte(0));")[0], 2)
    assert f.message == f"{act} changes a page-table entry without {NEEDS} (held: no lock), {tail}"
    assert f.held == () and f.expected == EXPECTED and f.related == ()

    f = got["held_other"]
    assert f.message == (
        f"{act} changes a page-table entry without {NEEDS} (held: `mmap_lock:read`), {tail}"
    )
    assert f.held == ("mmap_lock:read",)

    f = got["calls_after_unlock"]
    (helper_act,) = [n for n in lines(CODE, "set_pte_at(mm, 0, pte, __pte(0));") if n < f.line][1:]
    assert f.line == lines(CODE, "helper_sets(mm, pte);")[0]
    assert f.message == (
        f"{act} (in `helper_sets()`, called here) changes a page-table entry without {NEEDS} "
        f"(held: no lock), {tail}"
    )
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (helper_act, 2, f"{act} in `helper_sets()`")
    ]


def chain(levels: int) -> str:
    """`top()` releases its lock, then calls down `levels` helpers to the act."""
    out = [
        "static void h0(struct mm_struct *mm, pte_t *pte)\n"
        "{\n\tset_pte_at(mm, 0, pte, __pte(0));\n}\n"
    ]
    for i in range(1, levels):
        out.append(
            f"static void h{i}(struct mm_struct *mm, pte_t *pte)\n{{\n\th{i - 1}(mm, pte);\n}}\n"
        )
    out.append(
        "static void top(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)\n{\n"
        f"\tspin_lock(ptl);\n\tspin_unlock(ptl);\n\th{levels - 1}(mm, pte);\n}}\n"
    )
    return "\n".join(out)


def test_callers_are_followed_three_calls_up() -> None:
    [f] = findings(chain(3))
    assert f.function == "top" and "(in `h0()`, called here)" in f.message
    assert findings(chain(4)) == []


DETACH = """
static void collapse(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd)
{
	mmap_write_lock(mm);
	pmdp_collapse_flush(vma, 0, pmd);
	mmap_write_unlock(mm);
}
"""


def test_a_set_of_locks_is_named_as_one_alternative() -> None:
    [f] = findings(DETACH)
    assert f.rule == "pt-detach-locks"
    assert "without the mmap lock for write and " in f.message
    assert f.message.endswith("(held: `mmap_lock:write`)")
    assert "mmap_lock:write + i_mmap_rwsem:write" in f.expected


MORE = """
static void helper_sets(struct mm_struct *mm, pte_t *pte)
{
	set_pte_at(mm, 0, pte, __pte(0));
}

static void via_then_direct(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	spin_lock(ptl);
	spin_unlock(ptl);
	helper_sets(mm, pte);
	set_pte_at(mm, 0, pte, __pte(1));
}

static void collapse_part(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd)
{
	mmap_write_lock(mm);
	pmdp_collapse_flush(vma, 0, pmd);
	mmap_write_unlock(mm);
}

static void caller_part(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd)
{
	collapse_part(mm, vma, pmd);
}

static void two_held(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, struct mutex *a)
{
	mutex_lock(a);
	mmap_read_lock(mm);
	spin_lock(ptl);
	spin_unlock(ptl);
	set_pte_at(mm, 0, pte, __pte(0));
	mmap_read_unlock(mm);
	mutex_unlock(a);
}

static void local_spaced(struct mm_struct *mm, spinlock_t *ptl)
{
	pmd_t __pmd;

	spin_lock(ptl);
	spin_unlock(ptl);
	pmd_populate_kernel(&init_mm, & __pmd, pgtable);
}
"""


def test_a_helper_act_before_a_direct_one_partial_sets_and_spaced_locals() -> None:
    got = [(f.rule, f.function, f.line) for f in findings(MORE)]
    assert got == [
        # the helper's act, judged at the call, does not end the search
        ("pt-act-unlocked", "via_then_direct", lines(MORE, "helper_sets(mm, pte);")[0]),
        ("pt-act-unlocked", "via_then_direct", lines(MORE, "set_pte_at(mm, 0, pte, __pte(1));")[0]),
        # part of a set held: the callers are relied on for the rest
        ("pt-detach-locks", "caller_part", lines(MORE, "collapse_part(mm, vma, pmd);")[0]),
        ("pt-act-unlocked", "two_held", lines(MORE, "set_pte_at(mm, 0, pte, __pte(0));")[1]),
    ]
    # a local entry written `& __pmd` is still the function's own
    two = [f for f in findings(MORE) if f.function == "two_held"][0]
    assert "(held: `a:excl`, `mmap_lock:read`)" in two.message


RECURSIVE = """
static void walk(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, int n)
{
	set_pte_at(mm, 0, pte, __pte(0));
	if (n) {
		spin_lock(ptl);
		g(pte);
		spin_unlock(ptl);
		walk(mm, pte + 1, ptl, n - 1);
	}
}

static void top(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	spin_lock(ptl);
	walk(mm, pte, ptl, 4);
	spin_unlock(ptl);
}
"""


def test_a_function_calling_itself_without_the_lock_is_one_of_its_callers() -> None:
    """top() holds the lock for walk()'s act, but walk() calls itself after
    dropping the lock it manages: the recursive call runs the act unlocked."""
    [f] = findings(RECURSIVE)
    assert (f.function, f.line) == ("walk", lines(RECURSIVE, "walk(mm, pte + 1, ptl, n - 1);")[0])
    assert f.anchor == "walk(mm, pte + 1, ptl, n - 1)"
    # the recursive call under the lock: quiet
    held = RECURSIVE.replace(
        "\t\tspin_unlock(ptl);\n\t\twalk(mm, pte + 1, ptl, n - 1);\n",
        "\t\twalk(mm, pte + 1, ptl, n - 1);\n\t\tspin_unlock(ptl);\n",
    )
    assert held != RECURSIVE and findings(held) == []
