"""recheck-after-lock and recheck-after-relock in process: what each reports,
where, and with which message, held set and related sites.

`make mutate` runs these first for lockcheck/rules/recheck_after_lock.py and
recheck_after_relock.py; the annotated fixtures check only the lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from tests.helpers import FIXTURES

FOO = FIXTURES / "rules" / "packs" / "foo" / "pack.toml"

PACK = """\
[pack]
name = "bar"
description = "recheck-after-lock without a recheck list, and with a mode"
uses = ["mm"]

[api]
bar_stale = { effect = "check", flag = "bar-stale" }
bar_valid = { effect = "check", flag = "bar-valid" }
bar_drop = { effect = "act", act = "bar-drop", target = 1 }

[[rule]]
id = "bar-recheck"
kind = "recheck-after-lock"
summary = "s"
severity = "warning"
flag = "bar-stale"
acts = ["bar-drop"]
locks = ["bar_lock"]
message = "{flag}: `{expr}` not re-checked after {wanted} is taken"

[rule.doc]
what = "w"
why = "y"
bad = "b"
good = "g"
limits = "l"
references = []
"""


def line(code: str, text: str, nth: int = 0) -> int:
    return [i for i, t in enumerate(code.splitlines(), 1) if text in t][nth]


def run(code: str, rule: str, packs: list[str]) -> list[Finding]:
    engine = Engine(Config(packs=packs, select={rule}, headers=False))
    found = engine.findings_for(engine.analyse_source("t.c", code.encode()))
    return sorted(found, key=Finding.sort_key)


def foo(code: str) -> list[Finding]:
    return run(code, "foo-generation-recheck", ["mm", str(FOO)])


@pytest.fixture
def bar(tmp_path: Path) -> str:
    path = tmp_path / "bar.toml"
    path.write_text(PACK)
    return str(path)


# --- recheck-after-lock

NOT_RECHECKED = """
static void zap(struct foo *foo, struct foo_slot *slot, u64 gen)
{
	mutex_lock(&foo->slots_lock);
	if (foo_slot_generation(slot) != gen)
		goto out;
	spin_lock(&foo->mmu_lock);
	foo_zap_slot(foo, slot);
	spin_unlock(&foo->mmu_lock);
out:
	mutex_unlock(&foo->slots_lock);
}
"""


def test_a_test_before_the_lock_not_repeated_under_it() -> None:
    (f,) = foo(NOT_RECHECKED)
    assert (f.rule, f.line, f.function) == (
        "foo-generation-recheck",
        line(NOT_RECHECKED, "foo_slot_generation"),
        "zap",
    )
    assert f.message == (
        "`foo_slot_generation(slot)` decides the zap but is not re-checked "
        "after `mmu_lock` is taken"
    )
    assert f.held == ("foo->slots_lock",) and f.expected == ("mmu_lock",)
    assert [(r.line, r.message) for r in f.related] == [
        (line(NOT_RECHECKED, "spin_lock(&foo->mmu_lock)"), "`foo->mmu_lock` taken here"),
        (line(NOT_RECHECKED, "foo_zap_slot"), "`foo_zap_slot(foo, slot)` acts here"),
    ]


def test_a_recheck_under_the_lock_by_another_named_test() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n",
        "\tif (foo_slot_same(slot, gen))\n\t\tfoo_zap_slot(foo, slot);\n",
    )
    assert foo(code) == []


def test_a_recheck_under_the_lock_by_the_same_test() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n",
        "\tif (foo_slot_generation(slot) == gen)\n\t\tfoo_zap_slot(foo, slot);\n",
    )
    assert foo(code) == []


def test_a_recheck_that_does_not_dominate_the_act() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n",
        "\tif (gen)\n\t\tfoo_slot_same(slot, gen);\n\tfoo_zap_slot(foo, slot);\n",
    )
    assert [f.line for f in foo(code)] == [line(code, "foo_slot_generation")]


def test_a_recheck_before_the_lock_does_not_count() -> None:
    code = NOT_RECHECKED.replace(
        "\tspin_lock(&foo->mmu_lock);\n",
        "\tif (!foo_slot_same(slot, gen))\n\t\tgoto out;\n\tspin_lock(&foo->mmu_lock);\n",
    )
    assert [f.line for f in foo(code)] == [line(code, "foo_slot_generation")]


def test_a_recheck_left_behind_by_an_unlock_and_relock() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n",
        "\tif (!foo_slot_same(slot, gen))\n\t\tgoto unlock;\n"
        "\tspin_unlock(&foo->mmu_lock);\n\tfoo_flush(foo);\n\tspin_lock(&foo->mmu_lock);\n"
        "\tfoo_zap_slot(foo, slot);\nunlock:\n",
    )
    assert [f.line for f in foo(code)] == [line(code, "foo_slot_generation")]
    # an unlock of another lock in between leaves the recheck standing
    other = code.replace("\tspin_unlock(&foo->mmu_lock);\n\tfoo_flush", "\tfoo_flush", 1)
    other = other.replace("\tspin_lock(&foo->mmu_lock);\n\tfoo_zap", "\tfoo_zap", 1)
    other = other.replace("\tfoo_flush(foo);\n", "\tspin_unlock(&foo->other);\n\tfoo_flush(foo);\n")
    assert foo(other) == []


def test_an_act_without_the_lock_is_not_this_rules() -> None:
    code = NOT_RECHECKED.replace("\tspin_lock(&foo->mmu_lock);\n", "").replace(
        "\tspin_unlock(&foo->mmu_lock);\n", ""
    )
    assert foo(code) == []


def test_a_test_that_does_not_decide_the_act() -> None:
    code = NOT_RECHECKED.replace("\t\tgoto out;\n", "\t\tfoo_flush(foo);\n")
    assert foo(code) == []


def test_one_report_per_test_however_many_acts_it_decides() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n", "\tfoo_zap_slot(foo, slot);\n\tfoo_zap_slot(foo, slot);\n"
    )
    assert [f.line for f in foo(code)] == [line(code, "foo_slot_generation")]


def test_two_tests_deciding_one_act_are_both_reported() -> None:
    code = NOT_RECHECKED.replace(
        "\t\tgoto out;\n", "\t\tgoto out;\n\tif (foo_slot_generation(slot) > gen)\n\t\tgoto out;\n"
    )
    assert [f.line for f in foo(code)] == [
        line(code, "foo_slot_generation", 0),
        line(code, "foo_slot_generation", 1),
    ]


def test_an_act_in_a_callee() -> None:
    code = (
        "static void do_zap(struct foo *foo, struct foo_slot *slot)\n{\n"
        "\tfoo_zap_slot(foo, slot);\n}\n"
    ) + NOT_RECHECKED.replace("\tfoo_zap_slot(foo, slot);\n", "\tdo_zap(foo, slot);\n")
    (f,) = foo(code)
    assert f.function == "zap"
    assert f.related[-1].message == "`do_zap()` acts here"
    assert f.related[-1].line == line(code, "do_zap(foo, slot);")


def test_without_a_recheck_list_only_the_flag_rechecks(bar: str) -> None:
    code = """
static void drop(struct bar *b)
{
	if (bar_stale(b))
		return;
	spin_lock(&b->bar_lock);
	bar_drop(b);
	spin_unlock(&b->bar_lock);
}
"""
    (f,) = run(code, "bar-recheck", ["mm", bar])
    assert f.message == "bar-stale: `bar_stale(b)` not re-checked after `bar_lock` is taken"
    assert f.held == () and f.expected == ("bar_lock",)
    valid = code.replace("\tbar_drop(b);\n", "\tif (bar_valid(b))\n\t\tbar_drop(b);\n")
    assert [g.line for g in run(valid, "bar-recheck", ["mm", bar])] == [f.line]
    again = code.replace("\tbar_drop(b);\n", "\tif (!bar_stale(b))\n\t\tbar_drop(b);\n")
    assert run(again, "bar-recheck", ["mm", bar]) == []


def test_a_lock_held_in_another_mode(bar: str) -> None:
    code = """
static void drop(struct bar *b)
{
	if (bar_stale(b))
		return;
	read_lock(&b->bar_lock);
	bar_drop(b);
	read_unlock(&b->bar_lock);
}
"""
    moded = bar.replace(".toml", "-w.toml")
    Path(moded).write_text(
        Path(bar).read_text().replace('locks = ["bar_lock"]', 'locks = ["bar_lock:write"]')
    )
    assert run(code, "bar-recheck", ["mm", moded]) == []
    (f,) = run(code, "bar-recheck", ["mm", bar])
    assert [r.message for r in f.related] == ["`b->bar_lock` taken here", "`bar_drop(b)` acts here"]


# --- recheck-after-relock

RELOCK = FIXTURES / "rules" / "recheck-after-relock.c"


def relock(code: str) -> list[Finding]:
    return run(code, "recheck-after-relock", ["mm"])


INSTALL = """
static int install_table(struct mm_struct *mm, pmd_t *pmd)
{
	spinlock_t *ptl = pmd_lock(mm, pmd);
	pgtable_t new;

	if (pmd_none(*pmd)) {
		spin_unlock(ptl);
		new = pte_alloc_one(mm);
		if (!new)
			return -ENOMEM;
		spin_lock(ptl);
		pmd_populate(mm, pmd, new);
	}
	spin_unlock(ptl);
	return 0;
}
"""


def test_relock_report() -> None:
    (f,) = relock(INSTALL)
    test_line = line(INSTALL, "if (pmd_none(*pmd))")
    assert (f.line, f.column, f.function) == (line(INSTALL, "pmd_populate"), 3, "install_table")
    assert f.message == (
        f"`pmd_populate(mm, pmd, new)` is decided by `pmd_none(*pmd)` (line {test_line}), "
        "tested under an earlier hold of `ptl`; the lock was dropped and taken again since, "
        "and the test is not repeated under the new hold"
    )
    assert f.held == ("ptl",) and f.expected == ("`pmd_none(*pmd)`",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (test_line, 1, "`pmd_none(*pmd)` tested under `ptl` here")
    ]


def test_relock_quiet_when_repeated_or_revalidated_or_held() -> None:
    again = INSTALL.replace(
        "\t\tpmd_populate(mm, pmd, new);\n",
        "\t\tif (pmd_none(*pmd))\n\t\t\tpmd_populate(mm, pmd, new);\n",
    )
    assert relock(again) == []
    same = INSTALL.replace(
        "\t\tpmd_populate(mm, pmd, new);\n",
        "\t\tif (pmd_same(*pmd, old))\n\t\t\tpmd_populate(mm, pmd, new);\n",
    )
    assert relock(same) == []
    # a revalidating call made without the lock does not count
    early = INSTALL.replace(
        "\t\tspin_lock(ptl);\n",
        "\t\tif (!pmd_same(*pmd, old))\n\t\t\treturn 0;\n\t\tspin_lock(ptl);\n",
    )
    assert [f.line for f in relock(early)] == [line(early, "pmd_populate")]
    held = INSTALL.replace("\t\tspin_unlock(ptl);\n", "", 1).replace("\t\tspin_lock(ptl);\n", "")
    assert relock(held) == []


def test_relock_the_repeat_must_be_under_the_new_hold() -> None:
    # the same test repeated before the lock is taken again: still stale
    before = INSTALL.replace(
        "\t\tspin_lock(ptl);\n", "\t\tif (!pmd_none(*pmd))\n\t\t\treturn 0;\n\t\tspin_lock(ptl);\n"
    )
    assert [f.line for f in relock(before)] == [line(before, "pmd_populate")]


def test_relock_a_test_not_of_an_entry_or_not_deciding() -> None:
    flag = INSTALL.replace("if (pmd_none(*pmd))", "if (mm->flags)")
    assert relock(flag) == []
    after = INSTALL.replace(
        "\t\tpmd_populate(mm, pmd, new);\n\t}\n", "\t}\n\tpmd_populate(mm, pmd, new);\n"
    )
    assert relock(after) == []


def test_relock_entry_followed_through_a_local() -> None:
    code = RELOCK.read_text()
    found = relock(code)
    lines = {f.line for f in found}
    want = {i + 1 for i, t in enumerate(code.splitlines()) if "ruleid: recheck-after-relock" in t}
    assert {ln - 1 for ln in lines} >= {w for w in want if code.splitlines()[w].strip()}
    age = [f for f in found if f.function == "age_entry"]
    assert len(age) == 1
    assert "`pte_present(entry)`" in age[0].message and "`ptl`" in age[0].message


def test_relock_one_report_per_act_and_the_other_lock_classes() -> None:
    two = INSTALL.replace(
        "\t\tspin_lock(ptl);\n", "\t\tspin_lock(ptl);\n\t\tspin_lock(&mm->page_table_lock);\n"
    ).replace(
        "\t}\n\tspin_unlock(ptl);\n",
        "\t\tspin_unlock(&mm->page_table_lock);\n\t}\n\tspin_unlock(ptl);\n",
    )
    assert [f.line for f in relock(two)] == [line(two, "pmd_populate")]
    other = INSTALL.replace("pmd_populate(mm, pmd, new)", "pmd_clear(pmd)")
    assert [f.line for f in relock(other)] == [line(other, "pmd_clear")]


def test_a_relock_of_a_lock_held_in_a_mode_is_seen(bar: str) -> None:
    moded = bar.replace(".toml", "-w.toml")
    Path(moded).write_text(
        Path(bar).read_text().replace('locks = ["bar_lock"]', 'locks = ["bar_lock:write"]')
    )
    code = """
static void drop(struct bar *b)
{
	if (bar_stale(b))
		return;
	write_lock(&b->bar_lock);
	if (bar_stale(b))
		goto out;
	write_unlock(&b->bar_lock);
	bar_wait(b);
	write_lock(&b->bar_lock);
	bar_drop(b);
out:
	write_unlock(&b->bar_lock);
}
"""
    found = run(code, "bar-recheck", ["mm", moded])
    assert [f.line for f in found] == [line(code, "bar_stale", 0), line(code, "bar_stale", 1)]


def test_a_branch_on_another_call_is_no_check(bar: str) -> None:
    code = """
static void drop(struct bar *b)
{
	if (bar_stale(b))
		return;
	spin_lock(&b->bar_lock);
	if (bar_busy(b))
		bar_wait(b);
	bar_drop(b);
	spin_unlock(&b->bar_lock);
}
"""
    assert [f.line for f in run(code, "bar-recheck", ["mm", bar])] == [line(code, "bar_stale")]


def test_a_fresh_act_does_not_hide_a_stale_one_after_it() -> None:
    code = NOT_RECHECKED.replace(
        "\tfoo_zap_slot(foo, slot);\n",
        "\tif (foo_slot_same(slot, gen))\n\t\tfoo_zap_slot(foo, slot);\n"
        "\tspin_unlock(&foo->mmu_lock);\n\tspin_lock(&foo->mmu_lock);\n"
        "\tfoo_zap_slot(foo, slot);\n",
    )
    assert [f.line for f in foo(code)] == [line(code, "foo_slot_generation")]


def test_two_wanted_locks_in_the_message(bar: str) -> None:
    two = bar.replace(".toml", "-2.toml")
    Path(two).write_text(
        Path(bar)
        .read_text()
        .replace('locks = ["bar_lock"]', 'locks = ["bar_lock", "mmap_lock:write"]')
    )
    code = """
static void drop(struct bar *b)
{
	if (bar_stale(b))
		return;
	spin_lock(&b->bar_lock);
	bar_drop(b);
	spin_unlock(&b->bar_lock);
}
"""
    (f,) = run(code, "bar-recheck", ["mm", two])
    assert f.message == (
        "bar-stale: `bar_stale(b)` not re-checked after `bar_lock` or the mmap lock for write "
        "is taken"
    )


def test_relock_a_test_made_before_the_lock_was_ever_taken() -> None:
    code = (
        INSTALL.replace("\tspinlock_t *ptl = pmd_lock(mm, pmd);\n", "\tspinlock_t *ptl;\n")
        .replace("\t\tspin_unlock(ptl);\n\t\tnew", "\t\tnew")
        .replace("\t}\n\tspin_unlock(ptl);\n", "\t\tspin_unlock(ptl);\n\t}\n")
    )
    assert "spin_lock(ptl);\n\t\tpmd_populate" in code
    assert relock(code) == []


def test_relock_acts_of_other_kinds_are_skipped_not_stopped_at() -> None:
    code = INSTALL.replace(
        "\t\tpmd_populate(mm, pmd, new);\n",
        "\t\tfoo_zap_slot(foo, slot);\n\t\tpmd_populate(mm, pmd, new);\n",
    )
    found = run(code, "recheck-after-relock", ["mm", str(FOO)])
    assert [f.line for f in found] == [line(code, "pmd_populate")]


def test_relock_another_lock_dropped_meanwhile_is_not_this_rules() -> None:
    """ptl held throughout, a mutex dropped and taken again: nothing stale."""
    code = INSTALL.replace("\t\tspin_unlock(ptl);\n", "\t\tmutex_unlock(&mm->lock);\n", 1).replace(
        "\t\tspin_lock(ptl);\n", "\t\tmutex_lock(&mm->lock);\n"
    )
    code = code.replace("\tspinlock_t *ptl = pmd_lock(mm, pmd);\n", "\tspinlock_t *ptl;\n")
    code = code.replace("\tpgtable_t new;\n", "\tpgtable_t new;\n\n\tmutex_lock(&mm->lock);\n")
    code = code.replace(
        "\tpgtable_t new;\n\n", "\tpgtable_t new;\n\n\tptl = pmd_lock(mm, pmd);\n", 1
    )
    code = code.replace("\treturn 0;\n}", "\tmutex_unlock(&mm->lock);\n\treturn 0;\n}")
    assert relock(code) == []


def test_relock_other_locks_held_at_the_act_do_not_stop_the_search() -> None:
    # the mmap lock (not a page-table lock) taken first, held throughout
    first = INSTALL.replace(
        "\tspinlock_t *ptl = pmd_lock(mm, pmd);\n",
        "\tspinlock_t *ptl;\n\n\tmmap_read_lock(mm);\n\tptl = pmd_lock(mm, pmd);\n",
    ).replace("\treturn 0;\n}", "\tmmap_read_unlock(mm);\n\treturn 0;\n}")
    assert [f.line for f in relock(first)] == [line(first, "pmd_populate")]
    # a page-table lock held throughout, taken first, then the relocked one
    both = INSTALL.replace(
        "\tspinlock_t *ptl = pmd_lock(mm, pmd);\n",
        "\tspinlock_t *ptl;\n\n\tspin_lock(&mm->page_table_lock);\n\tptl = pmd_lock(mm, pmd);\n",
    ).replace("\treturn 0;\n}", "\tspin_unlock(&mm->page_table_lock);\n\treturn 0;\n}")
    assert [f.line for f in relock(both)] == [line(both, "pmd_populate")]


def test_relock_each_act_is_reported() -> None:
    code = INSTALL.replace(
        "\t\tpmd_populate(mm, pmd, new);\n",
        "\t\tpmd_populate(mm, pmd, new);\n\t\tpmd_populate(mm, pmd + 1, new);\n",
    )
    assert [f.line for f in relock(code)] == [
        line(code, "pmd_populate", 0),
        line(code, "pmd_populate", 1),
    ]


def test_relock_a_pmd_or_pud_entry_read_into_a_local() -> None:
    pmd = INSTALL.replace("\tpgtable_t new;\n", "\tpgtable_t new;\n\tpmd_t val = pmdp_get(pmd);\n")
    pmd = pmd.replace("if (pmd_none(*pmd))", "if (pmd_none(val))")
    assert [f.line for f in relock(pmd)] == [line(pmd, "pmd_populate")]
    pud = pmd.replace("pmd_t val = pmdp_get(pmd)", "pud_t val = pudp_get(pud)")
    pud = pud.replace("pmd_none(val)", "pud_none(val)").replace(
        "pmd_populate(mm, pmd, new)", "pud_populate(mm, pud, new)"
    )
    assert [f.line for f in relock(pud)] == [line(pud, "pud_populate")]
    # a test of something else, beside an entry read into a local: not stale
    other = pmd.replace("if (pmd_none(val))", "if (mm->flags)")
    assert relock(other) == []


def test_relock_names_the_tested_atom_and_a_callee_act() -> None:
    neg = INSTALL.replace("if (pmd_none(*pmd))", "if (!pmd_present(*pmd))")
    (f,) = relock(neg)
    assert "is decided by `pmd_present(*pmd)` (line" in f.message
    assert f.related[0].message == "`pmd_present(*pmd)` tested under `ptl` here"
    both = INSTALL.replace("if (pmd_none(*pmd))", "if (pmd_none(*pmd) && mm)")
    assert "is decided by `pmd_none(*pmd)` (line" in relock(both)[0].message
    helper = "static void install(struct mm_struct *mm, pmd_t *pmd, pgtable_t new)\n{\n"
    helper += "\tpmd_populate(mm, pmd, new);\n}\n"
    code = helper + INSTALL.replace("\t\tpmd_populate(mm, pmd, new);", "\t\tinstall(mm, pmd, new);")
    (f,) = relock(code)
    assert f.message.startswith("`install()` is decided by `pmd_none(*pmd)`")


def test_relock_earlier_branches_that_are_not_the_test_are_passed_over() -> None:
    code = INSTALL.replace(
        "\tpgtable_t new;\n",
        "\tpgtable_t new;\n\n\tif (mm->flags)\n\t\tg();\n\tif (pmd_trans_huge(*pmd))\n\t\tg();\n",
    )
    assert [f.line for f in relock(code)] == [line(code, "pmd_populate")]


GOTO_BACK = """
static int install_later(struct mm_struct *mm, pmd_t *pmd, pgtable_t new)
{
	spinlock_t *ptl = pmd_lock(mm, pmd);

	goto first;
relocked:
	if (pmd_present(*pmd))
		goto out;
	pmd_populate(mm, pmd, new);
	goto out;
first:
	if (!pmd_none(*pmd))
		goto out;
	spin_unlock(ptl);
	cond_resched();
	spin_lock(ptl);
	goto relocked;
out:
	spin_unlock(ptl);
	return 0;
}
"""


def test_relock_a_fresh_test_written_above_the_stale_one() -> None:
    """The test under the new hold comes first in the source (a backward
    goto): it does not hide the stale one below it, which it does not repeat."""
    (f,) = relock(GOTO_BACK)
    assert f.line == line(GOTO_BACK, "pmd_populate(mm, pmd, new);")
    assert f.expected == ("`pmd_none(*pmd)`",)
