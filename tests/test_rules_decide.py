"""The one decision step: selection, inline suppressions and baselines, as tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.model.finding import Finding
from lockcheck.rules.decide import decide, suppressions
from tests.helpers import run_cli


def finding(rule: str = "r", line: int = 10, anchor: str = "x();") -> Finding:
    return Finding(rule, "error", "f.c", line, 1, "fn", "m", anchor=anchor)


SOURCE = {
    8: "/* lockcheck: ignore r reviewed: the caller holds ptl */",
    9: "x(); /* lockcheck: ignore r */",
    10: "x();",
    11: "y(); /* lockcheck:ignore other-rule fine here */",
    12: "y(); // lockcheck: ignore r   trailing reason",
}


def source_lines() -> list[str]:
    return [SOURCE.get(i, "") for i in range(1, 16)]


@pytest.mark.parametrize(
    ("line", "rule", "shown"),
    [
        (9, "r", False),  # the line above (8) has a reason
        (10, "r", True),  # the line above (9) has no reason: it hides nothing
        (12, "r", False),  # a // comment on the line itself, with a reason
        (13, "r", False),  # the line above (12)
        (14, "r", True),  # two lines below a suppression is out of reach
        (12, "other-rule", False),  # line above (11) names it
        (11, "r", True),  # 11 names another rule
    ],
)
def test_inline_suppressions(line: int, rule: str, shown: bool) -> None:
    got = decide([finding(rule, line)], source_lines())
    assert bool(got) is shown


def test_suppressions_parse_rule_and_reason() -> None:
    sup = suppressions(source_lines())
    assert sup[8] == [("r", "reviewed: the caller holds ptl")]
    assert sup[9] == [("r", "")]
    assert sup[11] == [("other-rule", "fine here")]
    assert sup[12] == [("r", "trailing reason")]


@pytest.mark.parametrize(
    ("select", "baseline", "want"),
    [
        (None, None, ["a", "b"]),
        ({"a"}, None, ["a"]),
        (None, {finding("a", 3).fingerprint}, ["b"]),
        ({"b"}, {finding("b", 4).fingerprint}, []),
    ],
)
def test_selection_and_baseline(
    select: set[str] | None, baseline: set[str] | None, want: list[str]
) -> None:
    got = decide([finding("b", 4), finding("a", 3), finding("a", 3)], None, select, baseline)
    assert [f.rule for f in got] == want


def test_fingerprints_survive_line_shifts_but_not_code_changes() -> None:
    assert finding(line=10).fingerprint == finding(line=99).fingerprint
    reindented = finding(anchor="\tif (a  &&\tb)").fingerprint
    assert reindented == finding(anchor="if (a && b)").fingerprint
    assert finding(anchor="x();").fingerprint != finding(anchor="y();").fingerprint


def test_rules_docs_writes_the_pages_and_drops_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "gone-rule.md").write_text("old\n")
    res = run_cli("rules", "docs", str(tmp_path))
    assert res.returncode == 0, res.stderr
    written = sorted(p.name for p in tmp_path.glob("*.md"))
    assert "gone-rule.md" not in written and "README.md" in written
    assert "sleep-in-atomic.md" in written
    page = (tmp_path / "sleep-in-atomic.md").read_text()
    assert page.startswith("# `sleep-in-atomic`\n")
    assert "## Example (bad C)\n\n```c\n" in page
