"""Per-rule C fixtures annotated in place, semgrep style.

`/* ruleid: RULE */` before a line: RULE must be reported on it.
`/* ok: RULE */` before a line: RULE must not be reported on it.
`todoruleid` / `todook` mark known misses and known false alarms.
The reported set for each annotated rule must equal the annotations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.review import review_versions
from tests.helpers import ANNOTATED, FIXTURES, annotations


def reviewed_lines(engine: Engine, path: Path) -> dict[str, set[int]]:
    """Lines review-only rules report when `path` replaces its `.orig.c` sibling."""
    before = path.with_name(path.name[: -len(".c")] + ".orig.c")
    if not any(getattr(r, "review_only", False) for r in engine.rules) or not before.is_file():
        return {}
    result = review_versions(engine, path.name, before.read_text(), path.read_text())
    out: dict[str, set[int]] = {}
    for rf in result.findings:
        out.setdefault(rf.finding.rule, set()).add(rf.finding.line)
    return out


@pytest.mark.parametrize("path", ANNOTATED, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_annotations(path: Path) -> None:
    want = annotations(path)
    # a fixture directory with its own pack.toml is run with that pack too
    pack = path.parent / "pack.toml"
    packs = ["mm", str(pack)] if pack.is_file() else ["mm"]
    engine = Engine(Config(packs=packs, select=set(want)))
    result = engine.check_paths([path])
    assert not result.errors
    # rules that compare two versions (review only) read `NAME.orig.c` as the before
    reviewed = reviewed_lines(engine, path)
    for rule, kinds in want.items():
        got = {f.line for f in result.findings if f.rule == rule} | reviewed.get(rule, set())
        expected = kinds.get("ruleid", set()) | kinds.get("todook", set())
        assert got == expected, f"{rule}: reported {sorted(got)}, annotated {sorted(expected)}"
        assert not got & kinds.get("ok", set())


def test_every_fixture_rule_has_both_polarities() -> None:
    """Each rule with fixtures has at least one firing and one quiet example."""
    seen: dict[str, set[str]] = {}
    for path in ANNOTATED:
        for rule, kinds in annotations(path).items():
            seen.setdefault(rule, set()).update(kinds)
    for rule, kinds in seen.items():
        assert "ruleid" in kinds and "ok" in kinds, rule


def test_lock_balance_names_the_first_leaking_return() -> None:
    """The finding points at the first way out that keeps the lock, in its
    message and as its related location (`/* leak */` marks every such way)."""
    path = FIXTURES / "locking" / "first_leak.c"
    leaks = [i for i, line in enumerate(path.read_text().splitlines(), 1) if "/* leak */" in line]
    assert len(leaks) == 2
    result = Engine(Config(select={"lock-balance"})).check_paths([path])
    [finding] = result.findings
    assert f"returns at line {leaks[0]}," in finding.message
    assert [r.line for r in finding.related] == [leaks[0]]


def test_a_leak_of_one_lock_under_two_names_is_reported_once() -> None:
    """`ptl == pml` on the leaking path: one lock, so one lock-balance report."""
    path = FIXTURES / "khugepaged" / "mapped_thp_mmap_read.c"
    engine = Engine(Config(packs=["mm"], select={"lock-balance"}))
    found = [f for f in engine.check_paths([path]).findings if f.rule == "lock-balance"]
    assert len(found) == 1, [f.message for f in found]
    assert "`pml`" in found[0].message
