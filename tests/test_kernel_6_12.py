"""Real kernel code: Debian's linux-source-6.12, the current LTS.

The files where the post-6.1 idioms live (pte maps that may fail, per-VMA
locks, double_pt_lock(), do_vmi_munmap(.., unlock) in another file, kref
release callbacks) must come out quiet, as they are right. Only these files
are checked, to keep the suite cheap; docs/triage-mm-6.12.md has the whole
mm/ run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Engine
from lockcheck.model.ir import Act, Release

IDIOM_FILES = (
    "madvise.c",  # pte_offset_map_lock() tested through a copy of its result
    "migrate.c",  # migration_entry_wait_on_locked(entry, ptl): the two-argument form
    "mmap.c",  # vma_start_write(); __vm_munmap() -> do_vmi_munmap() in vma.c
    "mremap.c",  # move_vma(): vma_start_write() twice
    "vma.c",  # vms_gather_munmap_vmas()
    "userfaultfd.c",  # double_pt_lock(); uffd_mfill_lock() returning ERR_PTR()
    "z3fold.c",  # kref_put(.., release_z3fold_page_locked)
    "swapfile.c",  # unlock_cluster_or_swap_info() inside a loop
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("name", IDIOM_FILES)
def test_post_6_1_idioms_are_quiet(kernel_tree_6_12: Path, engine: Engine, name: str) -> None:
    result = engine.check_paths([kernel_tree_6_12 / "mm" / name])
    assert not result.errors
    assert result.stats.functions > 20
    assert result.stats.functions_analysed == result.stats.functions
    reports = [f"{f.rule} {f.function}:{f.line}" for f in result.findings]
    assert reports == []


def test_do_vmi_munmap_is_summarised_from_vma_c(kernel_tree_6_12: Path, engine: Engine) -> None:
    mmap_c = kernel_tree_6_12 / "mm" / "mmap.c"
    analysis = engine.analyse_source(str(mmap_c), mmap_c.read_bytes())
    summ = analysis.facts.summaries["do_vmi_munmap"]
    assert [r.inst for r in summ.may_release] == ["mm->mmap_lock"]
    # kept whenever `unlock` (its sixth parameter) is false
    assert [(r.inst, summ.params[i]) for r, i in summ.kept_unless] == [("mm->mmap_lock", "unlock")]
    vm_munmap = next(f for f in analysis.facts.functions if f.fn.name == "__vm_munmap")
    drops = [
        ev
        for evs in vm_munmap.events
        for ev in evs
        if isinstance(ev, Release) and ev.primitive == "do_vmi_munmap"
    ]
    # called with a variable `unlock`: the lock may be gone afterwards
    assert [(ev.lock.inst, ev.maybe) for ev in drops] == [("mm->mmap_lock", True)]


def test_double_pt_lock_holds_both_table_locks(kernel_tree_6_12: Path, engine: Engine) -> None:
    path = kernel_tree_6_12 / "mm" / "userfaultfd.c"
    analysis = engine.analyse_source(str(path), path.read_bytes())
    fn = next(f for f in analysis.facts.functions if f.fn.name == "move_present_pte")
    held = set()
    for _nid, ev, st in fn.iter_events():
        # the pack makes the clear an act (issue 14), not a plain call
        if isinstance(ev, Act) and ev.site.text.startswith("ptep_clear_flush("):
            held = {ref.inst for ref in st.must}
    assert {"dst_ptl", "src_ptl"} <= held
