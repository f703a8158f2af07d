"""Real kernel code: Debian's linux-source-6.1, the pre-series khugepaged."""

from __future__ import annotations

import json
from pathlib import Path

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
