"""Per-rule C fixtures annotated in place, semgrep style.

`/* ruleid: RULE */` before a line: RULE must be reported on it.
`/* ok: RULE */` before a line: RULE must not be reported on it.
`todoruleid` / `todook` mark known misses and known false alarms.
The reported set for each annotated rule must equal the annotations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.review import review_versions
from tests.conftest import FIXTURES

ANNOT_RE = re.compile(r"/\*\s*(ruleid|ok|todoruleid|todook):\s*([\w-]+)\s*\*/")


def annotations(path: Path) -> dict[str, dict[str, set[int]]]:
    """rule -> kind -> set of target lines (the next line that is not a comment)."""
    lines = path.read_text().splitlines()
    out: dict[str, dict[str, set[int]]] = {}
    for i, line in enumerate(lines):
        for m in ANNOT_RE.finditer(line):
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(("/*", "*", "//")):
                j += 1
            out.setdefault(m.group(2), {}).setdefault(m.group(1), set()).add(j + 1)
    return out


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


ANNOTATED = sorted(p for p in FIXTURES.rglob("*.c") if ANNOT_RE.search(p.read_text()))


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
