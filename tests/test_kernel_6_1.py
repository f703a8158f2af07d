"""Real kernel code: Debian's linux-source-6.1, the pre-series khugepaged."""

from __future__ import annotations

import json
from pathlib import Path

from lockcheck.engine import Config, Engine
from tests.helpers import run_cli


def test_khugepaged_6_1_runs_and_retract_page_tables_is_clean(kernel_tree: Path) -> None:
    path = kernel_tree / "mm" / "khugepaged.c"
    res = run_cli("check", "--format", "json", str(path))
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    assert doc["stats"]["functions"] > 50
    flagged = {
        (f["rule"], f["function"])
        for f in doc["findings"]
        if f["rule"] in ("uffd-wp-under-ptl", "anon-vma-under-ptl")
    }
    assert not any(fn == "retract_page_tables" for _, fn in flagged)


def test_explain_retract_page_tables_shows_rechecks_under_mmap_write(kernel_tree: Path) -> None:
    path = kernel_tree / "mm" / "khugepaged.c"
    res = run_cli("explain", str(path), "retract_page_tables")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    trylock = [i for i, line in enumerate(lines) if "mmap_write_trylock" in line]
    assert trylock, res.stdout
    rechecks = [
        lines[i + 1]
        for i, line in enumerate(lines)
        if ("check uffd-wp" in line or "check anon-vma" in line) and i > trylock[0]
    ]
    assert len(rechecks) >= 2
    assert all("mm->mmap_lock:write" in held for held in rechecks)
    acts = [
        lines[i + 1] for i, line in enumerate(lines) if "inside `collapse_and_free_pmd()`" in line
    ]
    assert acts and "mm->mmap_lock:write" in acts[0]


def test_whole_mm_runs_without_crash(kernel_tree: Path) -> None:
    res = run_cli("check", "--format", "json", str(kernel_tree / "mm"))
    assert res.returncode in (0, 1), res.stderr[-2000:]
    stats = json.loads(res.stdout)["stats"]
    assert stats["files"] > 100
    assert stats["functions_analysed"] >= 0.99 * stats["functions"]


def retract_findings(text: str, path: Path, tree: Path) -> dict[str, list[int]]:
    engine = Engine(Config(select={"uffd-wp-under-ptl", "anon-vma-under-ptl"}))
    found = engine.findings_for(engine.analyse_source(str(path), text.encode(), tree))
    out: dict[str, list[int]] = {}
    for f in found:
        if f.function == "retract_page_tables":
            out.setdefault(f.rule, []).append(f.line)
    return out


def test_retract_page_tables_under_a_shared_mmap_lock_fires(kernel_tree: Path) -> None:
    """The quiet test above is not blindness: take the mmap lock for read
    instead of write and both anon_vma tests are reported."""
    path = kernel_tree / "mm" / "khugepaged.c"
    text = path.read_text()
    assert retract_findings(text, path, kernel_tree) == {}
    take, drop = "\t\t    mmap_write_trylock(mm)) {", "unlock_next:\n\t\t\tmmap_write_unlock(mm);"
    assert text.count(take) == 1 and text.count(drop) == 1
    broken = text.replace(take, take.replace("write", "read")).replace(
        drop, drop.replace("write", "read")
    )
    start = text.index("\nstatic int retract_page_tables(")
    body = text[start : text.index("\n}\n", start)]
    first = text[:start].count("\n") + 2
    anon = [
        first + i
        for i, line in enumerate(body.splitlines()[1:])
        if line.strip().startswith("if (") and "vma->anon_vma)" in line
    ]
    assert len(anon) == 2  # the early test and the re-check under the mmap lock
    assert retract_findings(broken, path, kernel_tree) == {"anon-vma-under-ptl": anon}


def test_retract_page_tables_testing_uffd_wp_before_the_lock_fires(kernel_tree: Path) -> None:
    path = kernel_tree / "mm" / "khugepaged.c"
    text = path.read_text()
    early = "\t\tresult = SCAN_PTE_MAPPED_HUGEPAGE;\n"
    late = "\t\t\tif (userfaultfd_wp(vma)) {\n"
    assert text.count(early) == 1 and text.count(late) == 1
    moved = text.replace(late, "\t\t\tif (0) {\n").replace(
        early, "\t\tif (userfaultfd_wp(vma))\n\t\t\tgoto next;\n" + early
    )
    line = text[: text.index(early)].count("\n") + 1
    assert retract_findings(moved, path, kernel_tree) == {"uffd-wp-under-ptl": [line]}
