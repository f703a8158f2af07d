"""A function a patch only moves is found again in a review's stores and
moved there (model/lines.py): its lowering and dataflow at the new lines are
exactly what analysing it at those lines gives, lines and `name@LINE` names
included, and the next review of a file does not analyse it again.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import lockcheck.analysis.file as file_module
import lockcheck.model.extract as extract
from lockcheck.analysis.file import FlowMemo, analyse_file
from lockcheck.engine import Config, Engine
from lockcheck.frontend.parse import parse_source
from lockcheck.inputs.apply import DirTree
from lockcheck.model.ir import Function, Site
from lockcheck.model.lines import movable, named_lines, relative_repr, shifted
from lockcheck.review import review
from tests.test_review_fast import ENGINE as REVIEW_ENGINE
from tests.test_review_fast import REAL_FILES, Counting, _diff, both, canon

ENGINE = Engine(Config(headers=False))

CODE = """struct node { spinlock_t lock; struct node *next; };

static void low(struct node *n)
{
	spin_lock(&n->lock);
}

static void top(struct node *n)
{
	low(n);
	spin_unlock(&n->lock);
}

static void walk(struct node *n)
{
	spin_lock(&n->lock);
	n = n->next;
	spin_unlock(&n->lock);
}

static void shadow(struct node *o)
{
	spinlock_t *l = &o->lock;
	spin_lock(l);
	{
		spinlock_t *l = &o->next->lock;
		spin_lock(l);
		spin_unlock(l);
	}
	spin_unlock(l);
}
"""


def _moved(code: str, lines: int) -> str:
    """`code` with `lines` blank lines before it: every function moves."""
    return "\n" * lines + code


def _model(code: str) -> list[Function]:
    return extract.build_file_model(parse_source("t.c", code.encode()), ENGINE.vocab).functions


def _facts(code: str, memo: FlowMemo | None = None) -> list[str]:
    out = analyse_file(_model(code), memo=memo)
    return [repr(ff) for ff in out.functions] + [repr(sorted(out.summaries.items()))]


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    calls: list[str] = []
    real = getattr(module, name)

    def counting(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(first if isinstance(first, str) else first.name)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_a_moved_function_is_lowered_once_unless_a_name_spells_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _counting(monkeypatch, extract, "lower_function")
    memo: extract.LowerMemo = {}
    for code in (CODE, _moved(CODE, 3)):
        extract.build_file_model(parse_source("t.c", code.encode()), ENGINE.vocab, memo=memo)
    # the inner `l` is `l__LINE`: shadow() lowered at its new lines is another function
    assert calls == ["low", "top", "walk", "shadow", "shadow"]
    moved = extract.build_file_model(
        parse_source("t.c", _moved(CODE, 3).encode()), ENGINE.vocab, memo=memo
    )
    fresh = extract.build_file_model(parse_source("t.c", _moved(CODE, 3).encode()), ENGINE.vocab)
    assert repr(moved.functions) == repr(fresh.functions)
    starts = {f.name: f.start_line for f in moved.functions}
    assert starts == {"low": 6, "top": 11, "walk": 17, "shadow": 24}
    assert [n.line for n in moved.functions[0].cfg.nodes] == [
        n.line + 3 for n in _model(CODE)[0].cfg.nodes
    ]


def test_a_moved_dataflow_is_the_dataflow_at_the_new_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo: FlowMemo = {}
    first = _facts(CODE, memo)
    assert "n->lock@17" in first[2]  # walk(): the lock of the old `n`, renamed where `n` changed
    calls = _counting(monkeypatch, file_module, "analyse")
    analysed: list[str] = []
    for lines in (1, 4, 2):
        got = _facts(_moved(CODE, lines), memo)
        analysed += calls
        assert got == _facts(_moved(CODE, lines))
        calls.clear()
        assert f"n->lock@{17 + lines}" in got[2] and "n->lock@17" not in got[2]
    # only shadow(), whose inner `l` is named by its line, is analysed again
    assert analysed and set(analysed) == {"shadow"}


def test_names_that_spell_lines_never_move_across_a_power_of_ten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`n->lock@98` and `n->lock@102` sort the other way round from 98 and
    102: walk() is analysed again there, low() and top() still move."""
    memo: FlowMemo = {}
    early = _moved(CODE, 80)
    _facts(early, memo)
    calls = _counting(monkeypatch, file_module, "analyse")
    later = _moved(CODE, 85)
    got = _facts(later, memo)
    assert "walk" in calls and "low" not in calls and "top" not in calls
    assert got == _facts(later)


def test_relative_keys() -> None:
    fns, moved = _model(CODE), _model(_moved(CODE, 7))
    for a, b in zip(fns, moved, strict=True):
        ra, rb = relative_repr(a, a.start_line), relative_repr(b, b.start_line)
        assert ra is not None and rb is not None
        assert (ra == rb) == (not a.line_names)
        assert repr(a) != repr(b) and repr(a) == repr(_model(CODE)[fns.index(a)])
        if not a.line_names:
            assert repr(shifted(a, 7)) == repr(b)
    assert relative_repr(["n->lock@17"], 1) is None
    # a repr counts from line 0 again afterwards, and spells every field
    site = Site(12, 3, "x")
    assert relative_repr(site, 10) == "Site(line=2, column=3, text='x')"
    assert repr(site) == "Site(line=12, column=3, text='x')"
    for obj in (site, fns[0], fns[0].cfg.nodes[1]):
        text = repr(obj)
        assert text.startswith(f"{type(obj).__name__}(")
        for f in fields(obj):
            assert f"{f.name}={getattr(obj, f.name)!r}" in text, f.name
    assert named_lines([[]]) is None
    assert movable(10, 20, 5) and movable(990, 999, 0) and movable(101, 120, -1)
    assert not movable(95, 98, 3) and not movable(100, 120, -1) and not movable(3, 9, -3)
    assert not movable(119, 1200, 2)  # `p@119` < `p@1200`, `p@121` > `p@1202`


def test_the_next_review_of_a_real_file_reads_moved_functions_back(
    kernel_tree: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bench's case: a line added at a quarter of khugepaged.c reviewed,
    then one at the middle, both with the stores on disk: the second
    review's findings, lines, lock context and counts are the full
    analysis's, and it analyses little besides the changed function (the
    functions between the two changes moved back by one line)."""
    count = Counting(monkeypatch)
    tree = DirTree(kernel_tree)
    path = REAL_FILES[0]
    old = (kernel_tree / path).read_text()
    lines = old.splitlines(keepends=True)
    patches, changed = [], []
    for start in (len(lines) // 4, len(lines) // 2):
        at = next(
            i
            for i in range(start, len(lines))
            if lines[i].startswith("\t") and lines[i].rstrip().endswith(";")
        )
        new = [*lines[: at + 1], "\t/* reviewed */\n", *lines[at + 1 :]]
        patches.append(_diff(path, old, "".join(new)))
        changed += [f.name for f in _model(old) if f.start_line <= at + 1 <= f.end_line]
    cache = tmp_path / "cache"
    both(count, patches[0], tree, cache)
    full = canon(review(REVIEW_ENGINE, patches[1], tree, keep_going=True, fast=False))
    calls = _counting(monkeypatch, file_module, "analyse")
    engine = Engine()
    engine.use_cache(cache)
    assert canon(review(engine, patches[1], tree, keep_going=True)) == full
    # of the file's functions, only the one the patch changes is analysed
    # (the header macros written out as functions are not kept)
    defined = {f.name for f in _model(old)}
    assert {name for name in calls if name in defined} == {changed[1]}
