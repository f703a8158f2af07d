"""stale-value in process: the pack rows, and what each kind of report says.

`make mutate` runs these first for lockcheck/rules/stale_value.py; the
annotated fixtures check reported lines, not the rows' parsing or wording.
"""

from __future__ import annotations

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
