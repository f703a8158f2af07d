"""A callee file summarised for callers elsewhere lowers only what they can reach.

The summaries of the functions another file can call must be those of the
whole file's analysis; the static callbacks nothing names are left out.
"""

from __future__ import annotations

from pathlib import Path

from lockcheck.analysis.file import analyse_file
from lockcheck.engine import Config, Engine
from lockcheck.frontend.parse import parse_source
from lockcheck.model.extract import FileModel, build_file_model

ENGINE = Engine(Config(packs=["mm"], headers=False))

CODE = """
struct box { spinlock_t lock; int n; };

static void box_take(struct box *b)
{
	spin_lock(&b->lock);
}

static void box_drop(struct box *b) { spin_unlock(&b->lock); }
static int box_cb(struct box *b)
	__acquires(&b->lock)
{
	spin_lock(&b->lock);
	return 0;
}

static void box_fill(struct box *b, void (*fn)(struct box *))
{
	fn(b);
}

void box_grab(struct box *b)
{
	box_take(b);
	b->n++;
}

void box_leave(struct box *b)
{
	box_fill(b, box_drop);
}

static void box_put(struct box *b)
{
	spin_unlock(&b->lock);
}

void box_done(struct box *b)
{
	box_put(b);
}

static const struct box_ops ops = { .cb = box_cb };
"""


def _model(roots: frozenset[str] | None) -> FileModel:
    return build_file_model(parse_source("t.c", CODE.encode()), ENGINE.vocab, roots=roots)


def test_only_callable_functions_and_what_they_name_are_lowered() -> None:
    full = _model(None)
    part = _model(frozenset())
    assert [f.name for f in full.functions] == [
        "box_take",
        "box_drop",
        "box_cb",
        "box_fill",
        "box_grab",
        "box_leave",
        "box_put",
        "box_done",
    ]
    # box_drop is reached as a callback argument, box_cb only through the table
    assert [f.name for f in part.functions] == [
        "box_take",
        "box_drop",
        "box_fill",
        "box_grab",
        "box_leave",
        "box_put",
        "box_done",
    ]
    assert part.left_out == frozenset({"box_cb"})
    assert full.left_out == frozenset()
    # a root names a static definition too (one a file's macro calls)
    named = _model(frozenset({"box_cb"}))
    assert "box_cb" in {f.name for f in named.functions}


def test_callable_summaries_match_the_whole_files() -> None:
    full = analyse_file(_model(None).functions).summaries
    part = analyse_file(_model(frozenset()).functions).summaries
    for name in ("box_grab", "box_done"):
        assert name in full
        assert part[name] == full[name]


def test_an_annotation_of_a_left_out_function_stays_its_own() -> None:
    # box_cb's `__acquires` is within four lines of the one-line box_drop:
    # it must not be read as box_drop's when box_cb is not lowered
    full = {f.name: f for f in _model(None).functions}
    part = {f.name: f for f in _model(frozenset()).functions}
    assert full["box_cb"].exit_acquires
    assert not full["box_drop"].exit_acquires
    assert not part["box_drop"].exit_acquires


def test_a_callee_file_gives_the_same_summaries_as_a_full_analysis(tmp_path: Path) -> None:
    path = tmp_path / "box.c"
    path.write_text(CODE)
    engine = Engine(Config(packs=["mm"]))
    got = engine._summarise_elsewhere(path, CODE.encode())
    whole = analyse_file(_model(None).functions).summaries
    assert got
    for name, summ in got.items():
        assert whole[name] == summ
