"""The fixtures' annotations in process: which line each marker aims at (past
comment lines), its kind, rule, text and enclosing function, and one rule's
examples gathered in order.

`make mutate` runs these first for lockcheck/rules/fixtures.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import lockcheck.rules.fixtures as module
from lockcheck.rules.fixtures import ANNOT_RE, Example, examples, fixtures_root, rule_examples

SOURCE = """\
// header
static int first(struct mm_struct *mm)
{
\t/* ruleid: rule-a */
\t/* a comment between
\t * marker and line */
\t// and another
\tmmap_read_lock(mm);
\t/*ok:rule-b*/ /* todoruleid: rule-a */
\tx = 1;
}

unsigned long *second (void)
{
\t/* todook: rule-b */
\treturn 0;
}
/* ok: rule-a */
"""


def test_each_marker_aims_at_the_next_line_that_is_not_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "f.c"
    path.write_bytes(SOURCE.encode() + b's = "caf\xe9";\n')
    assert examples(path) == [
        Example(path, 8, "ruleid", "rule-a", "mmap_read_lock(mm);", "first"),
        Example(path, 10, "ok", "rule-b", "x = 1;", "first"),
        Example(path, 10, "todoruleid", "rule-a", "x = 1;", "first"),
        Example(path, 16, "todook", "rule-b", "return 0;", "second"),
        Example(path, 19, "ok", "rule-a", 's = "caf\ufffd";', "second"),
    ]


def test_a_marker_on_the_last_line_aims_past_the_end(tmp_path: Path) -> None:
    path = tmp_path / "f.c"
    path.write_text("/* ok: r */")
    assert examples(path) == [Example(path, 2, "ok", "r", "", "")]
    assert ANNOT_RE.search("/* nope: r */") is None


def test_a_rules_examples_are_gathered_sorted_from_every_file(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.c").write_text("/* ruleid: r */\nx;\n")
    (tmp_path / "a.c").write_text("/* ok: r */\ny;\n/* ok: s */\nz;\n")
    (tmp_path / "c.h").write_text("/* ok: r */\nw;\n")
    got = rule_examples("r", tmp_path)
    assert [(ex.path.relative_to(tmp_path).as_posix(), ex.line) for ex in got] == [
        ("a.c", 2),
        ("b/z.c", 2),
    ]
    assert rule_examples("none", tmp_path) == []


def test_the_source_trees_fixtures_are_found() -> None:
    root = fixtures_root()
    assert root is not None
    assert (root / "rules" / "lock-order.c").is_file()
    assert any(ex.kind == "ruleid" for ex in rule_examples("lock-order"))


def test_a_marker_above_every_function_has_none(tmp_path: Path) -> None:
    path = tmp_path / "f.c"
    path.write_text("/* ok: r */\nint x;\nint last(void)\n")
    assert [ex.function for ex in examples(path)] == [""]


def _fixtures_root_as_installed(
    tmp_path: Path, beside: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path | None, Path]:
    """fixtures_root() of a copy of the module laid out as the wheel installs it:
    site/lockcheck/rules/fixtures.py with the fixtures in site/lockcheck/_fixtures."""
    site = tmp_path / "site"
    (site / "lockcheck" / "rules").mkdir(parents=True)
    (site / "lockcheck" / "_fixtures" / "rules").mkdir(parents=True)
    if beside:  # a source tree's fixtures/ beside the package too: the wheel's win
        (site / "fixtures").mkdir()
    copy = site / "lockcheck" / "rules" / "fixtures.py"
    copy.write_bytes(Path(module.__file__).read_bytes())
    spec = importlib.util.spec_from_file_location("installed_fixtures", copy)
    assert spec is not None and spec.loader is not None
    installed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "installed_fixtures", installed)  # for its dataclass
    spec.loader.exec_module(installed)
    return installed.fixtures_root(), site


@pytest.mark.parametrize("beside", [False, True])
def test_an_installed_wheels_fixtures_are_found(
    tmp_path: Path, beside: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, site = _fixtures_root_as_installed(tmp_path, beside, monkeypatch)
    assert root == site / "lockcheck" / "_fixtures"
