"""Bugs made on purpose in real 6.1 mm/ code and reviewed as patches with --tree.

Each patch is built at test time from the kernel tree (nothing of the kernel
is copied here): the issue's concrete misses, a dropped unlock on an error
path, a test moved above the lock that makes it meaningful. The unbroken
tree is the control: the same functions give no finding.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import run_cli

Edit = Callable[[list[str]], list[str]]


def _function_span(lines: list[str], name: str) -> tuple[int, int]:
    """(first, last) line index of the definition of `name` (braces at column 0)."""
    for i, line in enumerate(lines):
        if not line.startswith((" ", "\t", "#", "/", "*")) and f"{name}(" in line:
            if line.rstrip().endswith(";"):
                continue
            j = i
            while j < len(lines) and lines[j].rstrip() != "{":
                j += 1
            k = j
            while k < len(lines) and lines[k].rstrip() != "}":
                k += 1
            return i, k
    raise AssertionError(f"{name} not found")


def _nth(lines: list[str], span: tuple[int, int], text: str, nth: int) -> int:
    hits = [i for i in range(span[0], span[1]) if lines[i].strip() == text]
    assert len(hits) > nth, (text, hits)
    return hits[nth]


def drop_line(function: str, text: str, nth: int = 0) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        i = _nth(lines, _function_span(lines, function), text, nth)
        return lines[:i] + lines[i + 1 :]

    return edit


def insert_after(function: str, anchor: str, new: list[str], nth: int = 0) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        i = _nth(lines, _function_span(lines, function), anchor, nth)
        return lines[: i + 1] + new + lines[i + 1 :]

    return edit


def move_above(function: str, block_start: str, block_len: int, above: str) -> Edit:
    """Move `block_len` lines starting at `block_start` to just above `above`."""

    def edit(lines: list[str]) -> list[str]:
        span = _function_span(lines, function)
        b = _nth(lines, span, block_start, 0)
        a = _nth(lines, span, above, 0)
        assert a < b
        block = lines[b : b + block_len]
        rest = lines[:b] + lines[b + block_len :]
        return rest[:a] + block + rest[a:]

    return edit


def review_edit(tree: Path, tmp_path: Path, rel: str, edit: Edit) -> dict[str, object]:
    old = (tree / rel).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    new = edit(list(old))
    assert new != old
    diff = "".join(difflib.unified_diff(old, new, f"a/{rel}", f"b/{rel}"))
    patch = tmp_path / "bug.patch"
    patch.write_text(diff)
    res = run_cli("review", "--tree", str(tree), "--format", "json", str(patch))
    assert res.returncode in (0, 1), res.stderr[-2000:]
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def _found(doc: dict[str, object]) -> set[tuple[str, str]]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return {(f["rule"], f["function"]) for f in findings}


CASES = {
    # the misses
    "collapse_huge_page: spin_unlock(pmd_ptl) dropped on the isolate error path": (
        "mm/khugepaged.c",
        drop_line("collapse_huge_page", "spin_unlock(pmd_ptl);", 1),
        "collapse_huge_page",
        {"lock-balance"},
    ),
    "do_wp_page: pte_unmap_unlock() dropped before return 0": (
        "mm/memory.c",
        drop_line("do_wp_page", "pte_unmap_unlock(vmf->pte, vmf->ptl);", 1),
        "do_wp_page",
        {"lock-effect-changed"},
    ),
    "khugepaged_add_pte_mapped_thp: new else { return false; } under the lock": (
        "mm/khugepaged.c",
        insert_after(
            "khugepaged_add_pte_mapped_thp",
            "ret = true;",
            ["\t} else {\n", "\t\treturn false;\n"],
        ),
        "khugepaged_add_pte_mapped_thp",
        {"lock-balance"},
    ),
    "do_huge_pmd_wp_page: pmd_same() test moved above spin_lock()": (
        "mm/huge_memory.c",
        move_above(
            "do_huge_pmd_wp_page",
            "if (unlikely(!pmd_same(*vmf->pmd, orig_pmd))) {",
            4,
            "spin_lock(vmf->ptl);",
        ),
        "do_huge_pmd_wp_page",
        {"lock-balance"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_real_function_is_reported(kernel_tree: Path, tmp_path: Path, case: str) -> None:
    rel, edit, function, rules = CASES[case]
    doc = review_edit(kernel_tree, tmp_path, rel, edit)
    found = _found(doc)
    assert {(rule, function) for rule in rules} <= found, found


def test_benign_edit_of_the_same_function_is_quiet(kernel_tree: Path, tmp_path: Path) -> None:
    """A comment added in each function: no finding (the control)."""
    for rel, _edit, function, _rules in CASES.values():
        lines = (kernel_tree / rel).read_text(encoding="utf-8", errors="replace").splitlines()
        first, _ = _function_span(lines, function)
        brace = next(i for i in range(first, len(lines)) if lines[i].rstrip() == "{")
        doc = review_edit(
            kernel_tree,
            tmp_path,
            rel,
            lambda ls, b=brace: ls[: b + 1] + ["\t/* reviewed */\n"] + ls[b + 1 :],
        )
        assert not _found(doc), (function, doc["findings"])
