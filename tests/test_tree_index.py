"""The tree-wide definition index and cross-file summaries (analysis/tree.py)."""

from __future__ import annotations

from pathlib import Path

from lockcheck.analysis.summaries import Summary
from lockcheck.analysis.tree import TreeSummaries, defined_functions
from lockcheck.engine import Engine
from tests.conftest import FIXTURES

C_TEXT = b"""
static int hidden(int a)
{
    return a;
}

static void
hidden_too(void)
{
}

int
visible_below(struct mm_struct *mm,
          unsigned long addr)
{
    return 0;
}

void visible(struct pool *p)
    __releases(&p->lock)
{
    spin_unlock(&p->lock);
}

int prototype_only(int x);
EXPORT_SYMBOL(visible);
#define not_a_function(x) ((x) + 1)
"""


def test_index_lists_non_static_definitions_only() -> None:
    assert defined_functions(C_TEXT) == ["visible_below", "visible"]


def _write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.write_text(text)
    return p


HELPER = """
void finish_it(struct pool *p)
{
    spin_unlock(&p->lock);
}
"""
USER = """
static void user(struct pool *p)
{
    spin_lock(&p->lock);
    if (p->busy) {
        finish_it(p);
        return;
    }
    spin_unlock(&p->lock);
}
"""


def test_a_callee_in_a_sibling_file_is_summarised(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    user = _write(tmp_path, "user.c", USER)
    result = Engine().check_paths([user])
    assert [f.rule for f in result.findings] == []
    # without the sibling the release is unknown and the early return leaks
    (tmp_path / "helper.c").unlink()
    again = Engine().check_paths([user])
    assert [f.rule for f in again.findings] == ["lock-balance"]


def test_names_defined_twice_are_not_used(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    _write(tmp_path, "helper_arch.c", HELPER.replace("spin_unlock", "other_unlock"))
    user = _write(tmp_path, "user.c", USER)
    result = Engine().check_paths([user])
    assert [f.rule for f in result.findings] == ["lock-balance"]


def test_files_are_summarised_once_per_content_and_bounded(tmp_path: Path) -> None:
    calls: list[str] = []

    def summarise(path: Path, data: bytes) -> dict[str, Summary]:
        calls.append(path.name)
        return {}

    for i in range(5):
        _write(tmp_path, f"h{i}.c", HELPER.replace("finish_it", f"finish_{i}"))
    user = "\n".join(f"static void u{i}(struct pool *p) {{ finish_{i}(p); }}" for i in range(5))
    user_path = _write(tmp_path, "user.c", user)
    engine = Engine()
    model = engine.analyse_source(str(user_path), user_path.read_bytes()).model
    tree = TreeSummaries(summarise, max_callee_files=3)
    tree.library_for(user_path, model.functions, {})
    assert calls == ["h0.c", "h1.c", "h2.c"]
    tree.library_for(user_path, model.functions, {})
    assert calls == ["h0.c", "h1.c", "h2.c"]  # cached by content


def test_crossfile_fixture_uses_its_sibling() -> None:
    users = FIXTURES / "kernel612" / "crossfile" / "users.c"
    engine = Engine()
    analysis = engine.analyse_source(str(users), users.read_bytes())
    assert "drop_range" in analysis.facts.summaries
    assert "finish_and_unlock" in analysis.facts.summaries
