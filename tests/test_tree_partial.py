"""Cross-file summaries computed while a header is still being summarised.

A header's inlines may wrap functions of the `.c` files beside it; summarising
those files then reads the header as empty (it is in progress). Such a
summary is incomplete and must not be kept for later callers: a file that
calls the same function afterwards must see its real effects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Engine, real_path

HEADER = """\
struct box {
\tspinlock_t lock;
\tint n;
};

void box_lock_slow(struct box *b);
void a_helper(struct box *b);

static inline void box_lock(struct box *b)
{
\tbox_lock_slow(b);
}

static inline void box_unlock(struct box *b)
{
\tspin_unlock(&b->lock);
}

static inline void box_reset(struct box *b)
{
\ta_helper(b);
}
"""

SLOW = """\
#include "lk.h"

void box_lock_slow(struct box *b)
{
\tspin_lock(&b->lock);
}
"""

# a_count() releases the lock through the header's box_unlock()
HELPERS = """\
#include "lk.h"

void a_helper(struct box *b)
{
\tb->n = 0;
}

void a_count(struct box *b)
{
\tb->n++;
\tbox_unlock(b);
}
"""

CALLER = """\
#include "lk.h"

void b_work(struct box *b, int x)
{
\tbox_lock(b);
\tif (x) {
\t\ta_count(b);
\t\treturn;
\t}
\tb->n--;
\tbox_unlock(b);
}
"""


def _tree(tmp_path: Path) -> Path:
    for name, text in (("lk.h", HEADER), ("slow.c", SLOW), ("a.c", HELPERS), ("b.c", CALLER)):
        (tmp_path / name).write_text(text)
    return tmp_path / "b.c"


def test_callee_summary_is_not_the_one_computed_while_its_header_was_in_progress(
    tmp_path: Path,
) -> None:
    caller = _tree(tmp_path)
    engine = Engine()
    analysis = engine.analyse_source(str(caller), caller.read_bytes())
    summ = analysis.facts.summaries.get("a_count")
    assert summ is not None, "a_count() releases the lock: it must have a summary"
    assert [r.inst for r in summ.releases] == ["b->lock"]
    assert engine.findings_for(analysis) == []


def test_a_leak_through_the_same_files_is_still_found(tmp_path: Path) -> None:
    caller = _tree(tmp_path)
    caller.write_text(CALLER.replace("\t\ta_count(b);\n", "\t\tb->n++;\n"))
    engine = Engine()
    analysis = engine.analyse_source(str(caller), caller.read_bytes())
    found = [(f.rule, f.line) for f in engine.findings_for(analysis)]
    assert found == [("lock-balance", 5)]


def test_a_header_named_two_ways_is_summarised_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a checked file names its headers as the command line did (relative);
    # a callee file found through the definition index names them by
    # absolute path: one summary serves both
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    engine = Engine()
    relative = engine.header_summaries(Path("lk.h"))
    absolute = engine.header_summaries(tmp_path / "lk.h")
    assert absolute is relative
    # complete, though slow.c (summarised meanwhile) reads lk.h as in progress
    assert [r.inst for r, _mode, _s in relative["box_lock"].acquires] == ["b->lock"]


def test_while_a_header_is_in_progress_only_the_names_it_needs_are_summarised(
    tmp_path: Path,
) -> None:
    _tree(tmp_path)
    engine = Engine()
    helpers = tmp_path / "a.c"
    data = helpers.read_bytes()
    assert sorted(engine._summarise_elsewhere(helpers, data)) == ["a_count"]
    # a_helper has no lock effect, and a_count is not asked for
    assert engine._summarise_elsewhere(helpers, data, frozenset({"a_helper"})) == {}
    assert sorted(engine._summarise_elsewhere(helpers, data, frozenset({"a_count"}))) == [
        "a_count"
    ]


def test_a_relative_header_path_is_resolved_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "lk.h").write_text(HEADER)
    monkeypatch.chdir(tmp_path / "one")
    assert real_path(Path("lk.h")) == (tmp_path / "one" / "lk.h").resolve()
    monkeypatch.chdir(tmp_path / "two")
    assert real_path(Path("lk.h")) == (tmp_path / "two" / "lk.h").resolve()
