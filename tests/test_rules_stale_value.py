"""stale-value in process: the pack rows, and what each kind of report says.

`make mutate` runs these first for lockcheck/rules/stale_value.py; the
annotated fixtures check reported lines, not the rows' parsing or wording.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.rules.stale_value import StaleValue

PARAMS = {"acts": ["a"], "locks": ["l"], "reads": ["l"], "revalidate": ["same"]}


def spec(**extra: list[str]) -> RuleSpec:
    return RuleSpec(
        "stale",
        "stale-value",
        "error",
        "m",
        "s",
        "p",
        params={**PARAMS, **extra},
        path="p.toml",
        index=4,
    )


def test_snapshot_rows_name_a_field_its_class_and_its_pointer() -> None:
    rule = StaleValue(spec(snapshots=["orig:pte_lock:pte", "old:pmd_lock"]))
    assert rule.snapshots == {"orig": "pte_lock", "old": "pmd_lock"}
    assert rule.carried == {"pte": "orig"}


@pytest.mark.parametrize("row", ["orig", "a:b:c:d", "orig:", ":pte_lock", "a::c", "a:b:"])
def test_a_snapshot_row_of_the_wrong_shape_is_a_pack_error(row: str) -> None:
    with pytest.raises(PackError) as err:
        StaleValue(spec(snapshots=["ok:fine", row]))
    assert str(err.value) == (
        "rule pack p.toml: rule[4] (stale).snapshots[1]: "
        "must read 'field:lock_class[:pointer_field]'"
    )


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"pte-revalidate", "pmd-revalidate"}, headers=False))


def findings(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def line_of(code: str, text: str) -> int:
    (n,) = [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]
    return n


CODE = """
static vm_fault_t by_the_caller(struct vm_fault *vmf, struct vm_area_struct *vma)
{
	pte_t entry;

	vmf->pte = pte_offset_map_lock(vma->vm_mm, vmf->pmd, vmf->address, &vmf->ptl);
	entry = pte_mkyoung(vmf->orig_pte);
	set_pte_at(vma->vm_mm, vmf->address, vmf->pte, entry);
	pte_unmap_unlock(vmf->pte, vmf->ptl);
	return 0;
}

static struct page *without_the_lock(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr)
{
	spinlock_t *ptl;
	struct page *page;
	pte_t *pte;
	pte_t val;

	pte = pte_offset_map(pmd, addr);
	val = ptep_get_lockless(pte);
	if (!pte_present(val))
		return NULL;
	page = vm_normal_page(vma, addr, val);
	ptl = pte_lockptr(vma->vm_mm, pmd);
	spin_lock(ptl);
	get_page(page);
	pte_unmap_unlock(pte, ptl);
	return page;
}

static vm_fault_t under_an_earlier_hold(struct vm_fault *vmf, struct vm_area_struct *vma)
{
	pte_t pte;

	vmf->ptl = pte_lockptr(vma->vm_mm, vmf->pmd);
	spin_lock(vmf->ptl);
	pte = ptep_get(vmf->pte);
	spin_unlock(vmf->ptl);
	if (try_migrate(vma, pte))
		return 0;
	spin_lock(vmf->ptl);
	set_pte_at(vma->vm_mm, vmf->address, vmf->pte, pte_mkyoung(pte));
	spin_unlock(vmf->ptl);
	return 0;
}
"""

CHECKS = "`pte_same()` or `pte_same_as_swp()` or `pte_unmap_same()`"


def test_what_the_reports_say_of_each_kind_of_read() -> None:
    got = {f.function: f for f in findings(CODE)}
    assert sorted(got) == ["by_the_caller", "under_an_earlier_hold", "without_the_lock"]

    caller = got["by_the_caller"]
    assert caller.rule == "pte-revalidate"
    assert caller.line == line_of(CODE, "set_pte_at(vma->vm_mm, vmf->address, vmf->pte, entry);")
    assert caller.message == (
        "`set_pte_at(vma->vm_mm, vmf->address, vmf->pte, entry)` acts on the page table under "
        "`vmf->ptl`, decided by `vmf->orig_pte` (read by the caller); nothing re-validates the "
        f"entry under the lock first ({CHECKS}, or a re-test of the entry)"
    )
    assert caller.held == ("vmf->ptl",)
    assert caller.expected == ("pte_same", "pte_same_as_swp", "pte_unmap_same")
    take = line_of(
        CODE, "vmf->pte = pte_offset_map_lock(vma->vm_mm, vmf->pmd, vmf->address, &vmf->ptl);"
    )
    # a caller's value has no read to point at: only the acquisition
    assert [(r.line, r.message) for r in caller.related] == [(take, "`vmf->ptl` taken here")]

    plain = got["without_the_lock"]
    assert plain.line == line_of(CODE, "get_page(page);")
    read = line_of(CODE, "val = ptep_get_lockless(pte);")
    assert f"decided by `val` (read at line {read} without the lock)" in plain.message
    assert plain.message.startswith("`get_page(page)` acts on the page table under `ptl`")
    assert [(r.line, r.column, r.message) for r in plain.related] == [
        (read, 8, "`val` read here"),
        (line_of(CODE, "spin_lock(ptl);"), 2, "`ptl` taken here"),
    ]

    again = got["under_an_earlier_hold"]
    read = line_of(CODE, "pte = ptep_get(vmf->pte);")
    assert f"(read at line {read}, under an earlier hold of the lock)" in again.message
    takes = [i for i, t in enumerate(CODE.splitlines(), 1) if t.strip() == "spin_lock(vmf->ptl);"]
    assert [r.line for r in again.related] == [read, takes[1]]  # the hold the act relies on


# `/* R */` marks each act a finding is expected at


def marked(code: str) -> Counter[int]:
    return Counter(
        {i: t.count("/* R */") for i, t in enumerate(code.splitlines(), 1) if "/* R */" in t}
    )


def reported(code: str) -> Counter[int]:
    return Counter(f.line for f in findings(code))


DETACHED = """
/* detached: every call of the copier comes after its table left the pmd */
static void copy_detached(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val);
	spin_unlock(ptl);
}

static void collapse_one(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
		pte_t *pte, spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	copy_detached(mm, pte, ptl);
}

static void collapse_two(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
		pte_t *pte, spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	copy_detached(mm, pte, ptl);
}

/* one caller does not detach first: reported */
static void copy_half(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val); /* R */
	spin_unlock(ptl);
}

static void detaches(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
		pte_t *pte, spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	copy_half(mm, pte, ptl);
}

static void does_not(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	copy_half(mm, next_pte(pte), ptl);
}

/* no caller in the file: nothing says it is detached */
static void copy_alone(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val); /* R */
	spin_unlock(ptl);
}

/* detached through a caller's caller */
static void copy_deep(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val);
	spin_unlock(ptl);
}

static void middle(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	copy_deep(mm, pte, ptl);
}

static void top(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd, pte_t *pte,
		spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	middle(mm, pte, ptl);
}

/* detached 4 calls up */
static void four_copy(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val);
	spin_unlock(ptl);
}

static void four_c1(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	four_copy(mm, pte, ptl);
}

static void four_c2(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	four_c1(mm, pte, ptl);
}

static void four_c3(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	four_c2(mm, pte, ptl);
}

static void four_c4(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
		pte_t *pte, spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	four_c3(mm, pte, ptl);
}

/* detached 5 calls up */
static void five_copy(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	spin_lock(ptl);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, val); /* R */
	spin_unlock(ptl);
}

static void five_c1(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	five_copy(mm, pte, ptl);
}

static void five_c2(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	five_c1(mm, pte, ptl);
}

static void five_c3(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	five_c2(mm, pte, ptl);
}

static void five_c4(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	five_c3(mm, pte, ptl);
}

static void five_c5(struct mm_struct *mm, struct vm_area_struct *vma, pmd_t *pmd,
		pte_t *pte, spinlock_t *ptl)
{
	pmdp_collapse_flush(vma, 0, pmd);
	five_c4(mm, pte, ptl);
}
"""


def test_a_table_detached_before_every_call_is_out_of_reach() -> None:
    """Every call of the copier comes after `pmdp_collapse_flush()`, in its
    caller or up to three callers above: quiet. One caller that does not
    detach, no caller at all, or a detach four callers above: reported."""
    assert reported(DETACHED) == marked(DETACHED)


SHAPES = """
/* a helper's act: the report names the helper */
static void reuse_entry(struct vm_fault *vmf)
{
	pte_t entry = pte_mkdirty(vmf->orig_pte);

	ptep_set_access_flags(vmf->vma, vmf->address, vmf->pte, entry, 1);
}

static vm_fault_t finish_write(struct vm_fault *vmf)
{
	vmf->pte = pte_offset_map_lock(vmf->vma->vm_mm, vmf->pmd, vmf->address, &vmf->ptl);
	reuse_entry(vmf); /* R */
	pte_unmap_unlock(vmf->pte, vmf->ptl);
	return 0;
}

/* a read in place: the report names it as written */
static vm_fault_t hoisted(struct vm_fault *vmf, struct vm_area_struct *vma, pte_t entry)
{
	if (!pte_none(ptep_get(vmf->pte + 1)))
		return 0;
	spin_lock(vmf->ptl);
	set_pte_at(vma->vm_mm, vmf->address, vmf->pte + 1, entry); /* R */
	spin_unlock(vmf->ptl);
	return 0;
}

/* the caller's value passed as a parameter of the snapshot's name */
static void restore(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t orig_pte)
{
	spin_lock(ptl);
	set_pte_at(mm, 0, pte, pte_mkyoung(orig_pte)); /* R */
	spin_unlock(ptl);
}

/* the snapshot vmf carries with vmf->pte, never read here; another entry is */
static void install(struct vm_fault *vmf, struct vm_area_struct *vma, pte_t *other, pte_t entry)
{
	pte_t seen = ptep_get(other);

	spin_lock(vmf->ptl);
	set_pte_at(vma->vm_mm, vmf->address, vmf->pte, entry); /* R */
	spin_unlock(vmf->ptl);
	g(seen);
}

/* a same-file helper that tests the entry under the lock, through others */
static bool h0(struct vm_fault *vmf)
{
	if (!pte_none(ptep_get(vmf->pte)))
		return false;
	return true;
}

static bool h1(struct vm_fault *vmf)
{
	return h0(vmf);
}

static vm_fault_t fill_checked(struct vm_fault *vmf, struct vm_area_struct *vma, pte_t entry)
{
	if (!pte_none(vmf->orig_pte))
		return 0;
	spin_lock(vmf->ptl);
	if (!h1(vmf)) {
		spin_unlock(vmf->ptl);
		return 0;
	}
	set_pte_at(vma->vm_mm, vmf->address, vmf->pte, entry);
	spin_unlock(vmf->ptl);
	return 0;
}

/* read again under the lock into the same name, or in the act itself */
static void read_again(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	val = ptep_get(pte);
	set_pte_at(mm, 0, pte, pte_mkyoung(val));
	spin_unlock(ptl);
}

static void read_in_act(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	set_pte_at(mm, 0, pte, pte_mkyoung(ptep_get(pte)));
	spin_unlock(ptl);
}

/* an assertion that reads the entry under the lock re-tests it */
static void asserted(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t entry)
{
	pte_t val = ptep_get(pte);

	if (!pte_none(val))
		return;
	spin_lock(ptl);
	VM_BUG_ON(!pte_none(ptep_get(pte)));
	set_pte_at(mm, 0, pte, entry);
	spin_unlock(ptl);
}

/* read under the lock: fresh */
static void fresh(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val;

	spin_lock(ptl);
	val = ptep_get(pte);
	if (pte_present(val))
		set_pte_at(mm, 0, pte, pte_mkyoung(val));
	spin_unlock(ptl);
}

/* read only on a way that returns before the act */
static void other_way(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, int c, pte_t entry)
{
	pte_t val;

	if (c) {
		val = ptep_get(pte);
		g(val);
		return;
	}
	spin_lock(ptl);
	set_pte_at(mm, 0, pte, entry);
	spin_unlock(ptl);
}

/* a test of another entry before acting on this one */
static void other_entry(struct mm_struct *mm, pte_t *pte, pte_t *src, spinlock_t *ptl)
{
	pte_t val = ptep_get(src);

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	pte_clear(mm, 0, pte);
	spin_unlock(ptl);
}

/* a test that does not gate the act */
static void not_gating(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t entry, int *n)
{
	pte_t val = ptep_get(pte);

	if (pte_present(val))
		(*n)++;
	spin_lock(ptl);
	set_pte_at(mm, 0, pte, entry);
	spin_unlock(ptl);
}

/* the callee tests the entry again before its act */
static void set_if_none(struct mm_struct *mm, pte_t *pte, pte_t e)
{
	if (!pte_none(ptep_get(pte)))
		return;
	set_pte_at(mm, 0, pte, e);
}

static void calls_retesting(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t e)
{
	pte_t val = ptep_get(pte);

	if (!pte_none(val))
		return;
	spin_lock(ptl);
	set_if_none(mm, pte, e);
	spin_unlock(ptl);
}

/* ... of another entry: no re-test of this one */
static void set_if_other_none(struct mm_struct *mm, pte_t *pte, pte_t *other, pte_t e)
{
	if (!pte_none(ptep_get(other)))
		return;
	set_pte_at(mm, 0, pte, e);
}

static void calls_other_retest(struct mm_struct *mm, pte_t *pte, pte_t *o, spinlock_t *ptl, pte_t e)
{
	pte_t val = ptep_get(pte);

	if (!pte_none(val))
		return;
	spin_lock(ptl);
	set_if_other_none(mm, pte, o, e); /* R */
	spin_unlock(ptl);
}
"""


def test_what_decides_an_act_and_what_re_validates_it() -> None:
    """Reported: a helper's act on the caller's snapshot, an in-place read,
    a snapshot passed as a parameter, the snapshot a structure carries with
    the entry pointer, a callee re-testing another entry. Quiet: a same-file
    helper (through another) re-testing the entry, a read again into the
    same name or in the act itself, an assertion reading the entry, a read
    under the lock, a read on a way that never reaches the act, a test of
    another entry, a test that gates nothing, a callee re-testing this
    entry under the caller's hold."""
    assert reported(SHAPES) == marked(SHAPES)
    got = {f.function: f for f in findings(SHAPES)}
    assert got["finish_write"].message.startswith("`reuse_entry()` acts on the page table")
    assert "decided by `ptep_get(vmf->pte + 1)` (read at line" in got["hoisted"].message
    assert "decided by `orig_pte` (read by the caller)" in got["restore"].message
    assert "decided by `vmf->orig_pte` (read by the caller)" in got["install"].message
    assert [r.message for r in got["restore"].related] == ["`ptl` taken here"]


MARKS = """
/* read in place under the lock into the value the act uses: fresh */
static void fresh_in_place(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t e;

	spin_lock(ptl);
	e = pte_mkyoung(ptep_get(pte));
	set_pte_at(mm, 0, pte, e);
	spin_unlock(ptl);
}

/* reads of another entry under the lock re-test nothing */
static void stale_other_read(struct mm_struct *mm, pte_t *pte, pte_t *other, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);
	pte_t seen;

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	seen = ptep_get(other);
	g(ptep_get(other), seen);
	set_pte_at(mm, 0, pte, pte_mkyoung(val)); /* R */
	spin_unlock(ptl);
}

/* a callee re-testing another entry, then this one */
static void set_if_both_none(struct mm_struct *mm, pte_t *pte, pte_t *other, pte_t e)
{
	if (!pte_none(ptep_get(other)))
		return;
	if (!pte_none(ptep_get(pte)))
		return;
	set_pte_at(mm, 0, pte, e);
}

static void calls_both(struct mm_struct *mm, pte_t *pte, pte_t *o, spinlock_t *ptl, pte_t e)
{
	pte_t val = ptep_get(pte);

	if (!pte_none(val))
		return;
	spin_lock(ptl);
	set_if_both_none(mm, pte, o, e);
	spin_unlock(ptl);
}

/* a same-file helper that tests no entry is no re-test */
static void note(struct mm_struct *mm)
{
	printk("%p", mm);
}

/* an act under no lock first, then two stale ones */
static void three_acts(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	pte_clear(mm, 0, pte + 8);
	if (!pte_present(val))
		return;
	spin_lock(ptl);
	note(mm);
	set_pte_at(mm, 0, pte, pte_mkyoung(val)); /* R */
	set_pte_at(mm, 0, pte, pte_mkold(val)); /* R */
	spin_unlock(ptl);
}
"""


def test_what_counts_as_a_re_test_under_the_lock() -> None:
    """A read in place under the lock into the act's value is fresh; reads
    of another entry, and a same-file helper that reads none, re-test
    nothing; a callee testing another entry, then this one, re-tests it.
    An act under no lock does not end the search; two stale acts are two
    reports."""
    assert reported(MARKS) == marked(MARKS)


EXCUSES = """
/* a helper's act on its own parameter: in the caller's terms it acts on
   vmf->pte, so on the snapshot vmf carries */
static void put_entry(struct mm_struct *mm, pte_t *ptep, pte_t e)
{
	set_pte_at(mm, 0, ptep, e);
}

static void helper_on_carried(struct vm_fault *vmf, struct mm_struct *mm, pte_t entry)
{
	spin_lock(vmf->ptl);
	put_entry(mm, vmf->pte, entry); /* R */
	spin_unlock(vmf->ptl);
}

/* an act of a kind this rule does not watch (a pmd's), under its lock */
static void other_kind(struct mm_struct *mm, pte_t *pte, pmd_t *pmd, spinlock_t *ptl)
{
	pte_t val = ptep_get(pte);

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	set_pmd_at(mm, 0, pmd, pte_pmd(val));
	spin_unlock(ptl);
}

/* the value the act uses is read again into its name; the one its test
   read is not: still stale */
static void two_values(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl)
{
	pte_t old = ptep_get(pte);
	pte_t val = ptep_get(pte);

	if (!pte_present(old))
		return;
	spin_lock(ptl);
	val = ptep_get(pte);
	set_pte_at(mm, 0, pte, pte_mkyoung(val)); /* R */
	spin_unlock(ptl);
}

/* the name read on a way that returns is set again before the act */
static void read_then_reset(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, int c, pte_t e)
{
	pte_t val;

	if (c) {
		val = ptep_get(pte);
		g(val);
		return;
	}
	val = e;
	spin_lock(ptl);
	set_pte_at(mm, 0, pte, val);
	spin_unlock(ptl);
}

/* the caller's snapshot of another entry decides nothing here */
static void other_snapshot(struct vm_fault *vmf, struct mm_struct *mm, pte_t *other, pte_t e)
{
	spin_lock(vmf->ptl);
	set_pte_at(mm, 0, other, e);
	spin_unlock(vmf->ptl);
	g(vmf->orig_pte);
}

/* a callee that drops the lock, takes it again and re-tests the entry */
static void relock_and_set(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t e)
{
	spin_unlock(ptl);
	cond_resched();
	spin_lock(ptl);
	if (!pte_none(ptep_get(pte)))
		return;
	set_pte_at(mm, 0, pte, e);
}

static void calls_relocking(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t e)
{
	pte_t val = ptep_get(pte);

	if (!pte_none(val))
		return;
	spin_lock(ptl);
	relock_and_set(mm, pte, ptl, e);
	spin_unlock(ptl);
}
"""


def test_helpers_snapshots_and_names_that_excuse_or_not() -> None:
    """Reported: a helper's act on its parameter, which in the caller's
    terms is the entry whose snapshot vmf carries; a value read again into
    its name beside one that is not. Quiet: an act of a kind the rule does not watch; a name
    read only on a way that returns; a snapshot of another entry; a callee
    re-testing the entry after taking the lock again itself."""
    assert reported(EXCUSES) == marked(EXCUSES)
    got = {f.function: f for f in findings(EXCUSES)}
    assert "decided by `vmf->orig_pte` (read by the caller)" in got["helper_on_carried"].message
    assert "decided by `old` (read at line" in got["two_values"].message


HELD_LAST = """
static void takes_another(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, struct foo *f)
{
	pte_t val = ptep_get(pte);

	if (!pte_present(val))
		return;
	spin_lock(ptl);
	spin_lock(&f->lock);
	set_pte_at(mm, 0, pte, pte_mkyoung(val));
	spin_unlock(&f->lock);
	spin_unlock(ptl);
}
"""


def test_the_lock_named_is_the_rules_own_not_one_taken_after_it() -> None:
    (f,) = findings(HELD_LAST)
    assert f.held == ("ptl",)
    assert "under `ptl`" in f.message


CHAIN = """
/* re-testing helpers defined callers first: one round per link */
static bool t5(struct vm_fault *vmf);
static bool t4(struct vm_fault *vmf);
static bool t3(struct vm_fault *vmf);
static bool t2(struct vm_fault *vmf);
static bool t1(struct vm_fault *vmf);

static bool t5(struct vm_fault *vmf)
{
	return t4(vmf);
}

static bool t4(struct vm_fault *vmf)
{
	return t3(vmf);
}

static bool t3(struct vm_fault *vmf)
{
	return t2(vmf);
}

static bool t2(struct vm_fault *vmf)
{
	return t1(vmf);
}

static bool t1(struct vm_fault *vmf)
{
	if (!pte_none(ptep_get(vmf->pte)))
		return false;
	return true;
}

static void fill_deep(struct vm_fault *vmf, struct mm_struct *mm, pte_t entry)
{
	if (!pte_none(vmf->orig_pte))
		return;
	spin_lock(vmf->ptl);
	if (!t5(vmf)) {
		spin_unlock(vmf->ptl);
		return;
	}
	set_pte_at(mm, 0, vmf->pte, entry);
	spin_unlock(vmf->ptl);
}
"""


def test_a_re_testing_helper_is_found_through_a_chain_in_any_order() -> None:
    """Five helpers down, defined callers first (each round of the search
    finds one more link): the entry is re-tested, quiet."""
    assert reported(CHAIN) == Counter()
    assert findings(CHAIN.replace("if (!t5(vmf)) {", "if (!g(vmf)) {"))  # not quiet by itself
