"""The locking-law rules on real code: Debian's linux-source-6.1 mm/ (correct, shipped code)."""

from __future__ import annotations

from pathlib import Path

from lockcheck.engine import Config, Engine

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
