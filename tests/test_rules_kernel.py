"""The locking-law rules on real code: Debian's linux-source-6.1 mm/ (correct, shipped code)."""

from __future__ import annotations

from pathlib import Path

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding

RULES = {"sleep-in-atomic", "lock-order", "nested-same-class", "claim-mismatch"}


def test_locking_law_rules_are_quiet_on_released_mm(kernel_tree: Path) -> None:
    """Every report here would need triage as a kernel bug: keep false alarms out."""
    engine = Engine(Config(select=RULES))
    result = engine.check_paths([kernel_tree / "mm"])
    assert result.stats.files > 100 and not result.errors
    shown = [
        f"{f.rule} {Path(f.path).name}:{f.line} {f.function}: {f.message}" for f in result.findings
    ]
    assert shown == [], "\n".join(shown)


def test_removing_the_kernels_nesting_annotations_is_seen(kernel_tree: Path) -> None:
    """Quiet on the real code is not blindness: drop `_nested` and each site is reported."""
    engine = Engine(Config(select={"nested-same-class"}))
    path = kernel_tree / "mm" / "huge_memory.c"
    text = path.read_text()
    nested = "spin_lock_nested(src_ptl, SINGLE_DEPTH_NESTING)"
    lines = {i for i, line in enumerate(text.splitlines(), start=1) if nested in line}
    assert lines, "the corpus changed"
    broken = text.replace(nested, "spin_lock(src_ptl)")
    found = engine.findings_for(engine.analyse_source(str(path), broken.encode()))
    assert {f.line for f in found} == lines
    assert all("`dst_ptl`" in f.message for f in found), [f.message for f in found]


# Each rule quiet above is shown to fire on the same tree: a broken variant of a
# real file, built here from the tree's own text.


def findings(rule: str, path: Path, text: str, tree: Path) -> list[Finding]:
    engine = Engine(Config(select={rule}))
    return engine.findings_for(engine.analyse_source(str(path), text.encode(), tree))


def test_sleep_in_atomic_fires_on_a_sleep_under_a_real_pte_lock(kernel_tree: Path) -> None:
    path = kernel_tree / "mm" / "memory.c"
    text = path.read_text()
    lock = "\tspin_lock(ptl);\n"
    assert findings("sleep-in-atomic", path, text, kernel_tree) == []
    line = text[: text.index(lock)].count("\n") + 2  # the line after the first such lock
    broken = text.replace(lock, lock + "\tmight_sleep();\n", 1)
    [f] = findings("sleep-in-atomic", path, broken, kernel_tree)
    assert f.line == line and "`ptl` is held" in f.message


def test_claim_mismatch_fires_when_an_asserted_lock_is_dropped_first(kernel_tree: Path) -> None:
    path = kernel_tree / "mm" / "backing-dev.c"
    text = path.read_text()
    claim = "\tlockdep_assert_held(&cgwb_lock);\n"
    assert text.count(claim) == 1
    assert findings("claim-mismatch", path, text, kernel_tree) == []
    line = text[: text.index(claim)].count("\n") + 2
    broken = text.replace(claim, "\tspin_unlock_irq(&cgwb_lock);\n" + claim)
    [f] = findings("claim-mismatch", path, broken, kernel_tree)
    assert f.line == line and "`cgwb_lock` was released on every path" in f.message


def test_lock_order_fires_against_the_files_own_ordering_comment(kernel_tree: Path) -> None:
    """rmap.c documents i_mmap_rwsem outside anon_vma->rwsem; a function of the
    file that nests them the other way round is reported."""
    path = kernel_tree / "mm" / "rmap.c"
    text = path.read_text()
    assert findings("lock-order", path, text, kernel_tree) == []
    inverted = (
        "\nstatic void inverted(struct anon_vma *anon_vma, struct address_space *mapping)\n"
        "{\n\tanon_vma_lock_write(anon_vma);\n\ti_mmap_lock_write(mapping);\n"
        "\ti_mmap_unlock_write(mapping);\n\tanon_vma_unlock_write(anon_vma);\n}\n"
    )
    [f] = findings("lock-order", path, text + inverted, kernel_tree)
    assert f.function == "inverted" and f.line == text.count("\n") + 5
    assert "lock ordering comment" in f.message
