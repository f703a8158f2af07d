"""Value provenance (analysis/values.py): entry reads, the names that carry
them, which acquisition a release undoes, and per-path marks since a lock
was taken."""

from __future__ import annotations

from pathlib import Path

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.values import (
    entry_values,
    marked_since_taken,
    path_hold_sites,
    reaching_holds,
)
from lockcheck.engine import Engine
from lockcheck.model.ir import Act, Call, Read, Release


def facts(tmp_path: Path, source: str, name: str) -> FunctionFacts:
    path = tmp_path / "t.c"
    path.write_text(source)
    analysis = Engine().analyse_source(str(path), path.read_bytes())
    return next(ff for ff in analysis.facts.functions if ff.fn.name == name)


def test_entry_reads_carry_their_lock_class_and_target(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct vm_fault *vmf, pmd_t *pmd, pte_t *src_pte)
{
	pte_t a = ptep_get(vmf->pte);
	pmd_t b = *pmd;
	pte_t c = *src_pte;
	pmd_t d = READ_ONCE(*pmd);
	int e = *count;
}
""",
        "f",
    )
    reads = [ev for evs in ff.events for ev in evs if isinstance(ev, Read)]
    got = {(r.ptr, r.cls, r.into) for r in reads}
    assert ("vmf->pte", "pte_lock", "a") in got
    assert ("pmd", "pmd_lock", "b") in got
    assert ("src_pte", "pte_lock", "c") in got
    assert ("pmd", "pmd_lock", None) in got  # read in place, fed to READ_ONCE()
    assert not any(r.ptr == "count" for r in reads)  # not a page-table pointer
    values = entry_values(ff, {"pmd_lock"})
    assert any("d" in v.names for v in values)  # READ_ONCE()'s result carries the read


def test_names_spread_through_calls_and_copies(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct vm_area_struct *vma, pte_t *pte, unsigned long addr)
{
	pte_t orig = ptep_get_lockless(pte);
	pte_t young = pte_mkyoung(orig);
	struct page *page = vm_normal_page(vma, addr, young);
	struct page *other = alloc_page(GFP_KERNEL);
}
""",
        "f",
    )
    (value,) = entry_values(ff, {"pte_lock"})
    assert {"orig", "young", "page"} <= value.names
    assert "other" not in value.names


def test_snapshot_fields_are_values_from_before(tmp_path: Path) -> None:
    source = """
void f(struct vm_fault *vmf)
{
	if (pte_present(vmf->orig_pte))
		g(vmf);
}
void h(struct vm_fault *vmf)
{
	vmf->orig_pte = ptep_get(vmf->pte);
	if (pte_present(vmf->orig_pte))
		g(vmf);
}
"""
    snapshots = {"orig_pte": "pte_lock"}
    (snap,) = entry_values(facts(tmp_path, source, "f"), {"pte_lock"}, snapshots)
    assert snap.read is None and snap.names == {"vmf->orig_pte"}
    # assigned here from a read: an ordinary value, not the caller's snapshot
    (own,) = entry_values(facts(tmp_path, source, "h"), {"pte_lock"}, snapshots)
    assert own.read is not None and own.read.into == "vmf->orig_pte"


def test_reaching_holds_name_the_acquisition_and_its_flags(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->lock, flags);
	d->n++;
	spin_unlock_irqrestore(&d->lock, flags);
}
""",
        "f",
    )
    holds = reaching_holds(ff)
    ((_, reaching),) = holds.items()
    (hold,) = reaching
    assert hold.primitive == "spin_lock_irqsave"
    assert hold.args == ("d->lock", "flags")


def test_path_hold_sites_keep_correlated_branches_apart(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
int f(struct mm_struct *mm, bool write)
{
	if (write)
		mmap_write_lock(mm);
	else
		mmap_read_lock(mm);
	work(mm);
	if (write)
		mmap_write_unlock(mm);
	else
		mmap_read_unlock(mm);
	return 0;
}
""",
        "f",
    )
    sites = path_hold_sites(ff)
    by_release = {}
    for (nid, i), found in sites.items():
        rel = ff.events[nid][i]
        assert isinstance(rel, Release)
        by_release[rel.primitive] = {s.text.split("(")[0] for s in found}
    # the path-insensitive view would let either acquisition reach either release
    assert by_release == {
        "mmap_write_unlock": {"mmap_write_lock"},
        "mmap_read_unlock": {"mmap_read_lock"},
    }


def test_marks_must_hold_on_every_path_since_the_lock_was_taken(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct mm_struct *mm, pmd_t *pmd, pte_t *pte, pte_t orig, bool again)
{
	spinlock_t *ptl = pte_lockptr(mm, pmd);

	spin_lock(ptl);
	if (!pte_same(ptep_get(pte), orig)) {
		spin_unlock(ptl);
		return;
	}
	if (again) {
		spin_unlock(ptl);
		wait_a_bit();
		spin_lock(ptl);
	}
	set_pte_at(mm, 0, pte, orig);
	spin_unlock(ptl);
}
""",
        "f",
    )

    def is_same(_nid: int, ev: object, _st: object) -> bool:
        return isinstance(ev, Call) and ev.callee == "pte_same"

    marks = marked_since_taken(ff, "ptl", is_same)
    ((nid, i),) = [
        (n, i) for n, evs in enumerate(ff.events) for i, ev in enumerate(evs) if isinstance(ev, Act)
    ]
    assert marks[(nid, i)] is False  # the re-taken path has no pte_same() since
    # before the relock, every path has passed the pte_same() under this hold
    ((unlock_nid, unlock_i),) = [
        (n, i)
        for n, evs in enumerate(ff.events)
        for i, ev in enumerate(evs)
        if isinstance(ev, Call) and ev.callee == "wait_a_bit"
    ]
    assert marks[(unlock_nid, unlock_i)] is False  # released just before: cleared
