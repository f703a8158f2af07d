"""Exact lock states at chosen points: what `explain` shows a reviewer."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Engine
from lockcheck.report.explain import timeline
from tests.helpers import FIXTURES, HELD_MARKED, held_by_line, held_markers


def held_at(path: Path, function: str, needle: str) -> list[list[str]]:
    engine = Engine()
    analysis = engine.analyse_source(str(path), path.read_bytes())
    (ff,) = [f for f in analysis.facts.functions if f.fn.name == function]
    return [held for _line, _col, desc, held in timeline(ff) if needle in desc]


KH = FIXTURES / "khugepaged"


@pytest.mark.parametrize("path", HELD_MARKED, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_held_markers(path: Path) -> None:
    """`/* held: {...} */`: the locks surely held where the next line starts.

    An `ok:` marker only says "no finding", which a lost lock also gives;
    these pin the lock state itself (a helper's `return !trylock()` must
    leave its caller holding the lock).
    """
    analysed = held_by_line(path)
    wrong = {
        line: (want, analysed.get(line, []))
        for line, want in held_markers(path).items()
        if analysed.get(line) != [want]
    }
    assert not wrong, f"line: (marked, analysed): {wrong}"


def test_held_markers_are_read_from_the_fixtures() -> None:
    marks = held_markers(FIXTURES / "locking" / "mm_idioms.c")
    assert ["mm->mmap_lock:read"] in marks.values() and [] in marks.values()


def test_pre_series_rechecks_under_exclusive_mmap_lock() -> None:
    path = KH / "pre_series.c"
    assert held_at(path, "shrink_file_tables", "acquire `mapping->i_mmap_rwsem`") == [[]]
    rechecks = held_at(path, "shrink_file_tables", "check uffd-wp")
    assert rechecks == [["mapping->i_mmap_rwsem:write", "mm->mmap_lock:write"]]
    # the helper's conditional lockdep claims are not the caller's locks
    acts = held_at(path, "shrink_file_tables", "act pt-detach inside `drop_pte_table()`")
    assert acts == [["mapping->i_mmap_rwsem:write", "mm->mmap_lock:write"]]


def test_ptl_held_on_both_sides_of_ptl_ne_pml() -> None:
    assert held_at(KH / "v1.c", "shrink_file_tables", "act pt-detach") == [
        ["mapping->i_mmap_rwsem:read", "pml", "ptl"]
    ]
    # after both unlocks nothing but the rmap lock is left
    assert held_at(KH / "v1.c", "shrink_file_tables", "act pt-free") == [
        ["mapping->i_mmap_rwsem:read"]
    ]


def test_pte_offset_map_lock_null_means_not_held(tmp_path: Path) -> None:
    src = tmp_path / "t.c"
    src.write_text(
        "static int f(struct mm_struct *mm, pmd_t *pmd, unsigned long a)\n"
        "{\n\tspinlock_t *ptl;\n\tpte_t *pte = pte_offset_map_lock(mm, pmd, a, &ptl);\n"
        "\tif (!pte)\n\t\treturn userfaultfd_wp(vma);\n"
        "\tx = userfaultfd_wp(vma);\n\tpte_unmap_unlock(pte, ptl);\n\treturn x;\n}\n"
    )
    assert held_at(src, "f", "check uffd-wp") == [[], ["ptl"]]


@pytest.mark.parametrize(
    ("call", "test", "held_after_success"),
    [
        ("mutex_trylock(&m)", "if (!{call}) return;", ["m"]),
        ("mutex_lock_interruptible(&m)", "if ({call}) return;", ["m"]),
        ("mmap_read_lock_killable(mm)", "if ({call}) return;", ["mm->mmap_lock:read"]),
        ("mmap_write_trylock(mm)", "if (!{call}) return;", ["mm->mmap_lock:write"]),
        ("down_read_trylock(&s->sem)", "if ({call} == 0) return;", ["s->sem:read"]),
    ],
)
def test_trylock_success_values(
    tmp_path: Path, call: str, test: str, held_after_success: list[str]
) -> None:
    src = tmp_path / "t.c"
    body = test.format(call=call)
    src.write_text(f"static void f(void)\n{{\n\t{body}\n\tif (userfaultfd_wp(v)) x();\n}}\n")
    assert held_at(src, "f", "check uffd-wp") == [held_after_success]


def test_downgrade_keeps_the_lock_in_read_mode(tmp_path: Path) -> None:
    src = tmp_path / "t.c"
    src.write_text(
        "static void f(struct mm_struct *mm)\n{\n\tmmap_write_lock(mm);\n"
        "\tmmap_write_downgrade(mm);\n\tif (userfaultfd_wp(v)) x();\n\tmmap_read_unlock(mm);\n}\n"
    )
    assert held_at(src, "f", "check uffd-wp") == [["mm->mmap_lock:read"]]


def test_guard_released_at_scope_end_and_on_return(tmp_path: Path) -> None:
    src = tmp_path / "t.c"
    src.write_text(
        "static void f(struct foo *p, int c)\n{\n\t{\n\t\tguard(spinlock)(&p->lock);\n"
        "\t\tif (c)\n\t\t\treturn;\n\t\tif (userfaultfd_wp(v)) x();\n\t}\n"
        "\tif (userfaultfd_wp(w)) y();\n}\n"
    )
    assert held_at(src, "f", "check uffd-wp") == [["p->lock"], []]


def test_iterator_macro_is_a_loop(tmp_path: Path) -> None:
    """The lock taken at the end of one iteration is seen at the top of the next."""
    src = tmp_path / "t.c"
    src.write_text(
        "static void f(struct list_head *h)\n{\n\tstruct item *it;\n"
        "\tlist_for_each_entry(it, h, node) {\n\t\tif (userfaultfd_wp(v)) x();\n"
        "\t\tspin_lock(&g_lock);\n\t}\n}\n"
    )
    # first iteration: nothing; later ones: g_lock (may, not must) -> must is empty
    engine = Engine()
    analysis = engine.analyse_source(str(src), src.read_bytes())
    (ff,) = analysis.facts.functions
    states = [st for _n, ev, st in ff.iter_events() if type(ev).__name__ == "Check"]
    assert [sorted(r.inst for r in st.may) for st in states] == [["g_lock"]]
    assert [sorted(r.inst for r in st.must) for st in states] == [[]]


def test_file_local_iterator_macros_name_their_cursor() -> None:
    from lockcheck.model.extract import local_iterators

    src = (
        b"#define for_each_buf_cpu(buf, cpu) \\\n\tfor_each_cpu(cpu, buf->mask)\n"
        b"#define for_each_item(pos, head) for (pos = (head)->first; pos; pos = pos->next)\n"
        b"#define for_each_pair(a, b, n) for ((a) = 0, (b) = n; (a) < (b); (a)++)\n"
    )
    assert local_iterators(src, {}) == {
        "for_each_buf_cpu": (1,),
        "for_each_item": (0,),
        "for_each_pair": (0, 1),
    }


def test_container_lock_survives_a_local_iterator(tmp_path: Path) -> None:
    src = tmp_path / "t.c"
    src.write_text(
        "#define for_each_buf_cpu(buf, cpu) for_each_cpu(cpu, buf->mask)\n"
        "static int f(struct buf *buf)\n{\n\tint cpu;\n\n\tmutex_lock(&buf->mutex);\n"
        "\tfor_each_buf_cpu(buf, cpu) {\n\t\tif (busy(cpu))\n\t\t\tgoto out;\n\t}\n"
        "\tmutex_unlock(&buf->mutex);\n\treturn 0;\nout:\n\tmutex_unlock(&buf->mutex);\n"
        "\treturn -EBUSY;\n}\n"
    )
    engine = Engine()
    analysis = engine.analyse_source(str(src), src.read_bytes())
    assert engine.findings_for(analysis) == []
