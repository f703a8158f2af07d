"""A file's functions analysed callees first, so that callers see their summaries.

In process: `make mutate` runs these first for lockcheck/analysis/file.py.
"""

from __future__ import annotations

from lockcheck.analysis.file import _call_graph_order, analyse_file, library_summaries
from lockcheck.analysis.function import FunctionFacts
from lockcheck.engine import Config, Engine
from lockcheck.model.ir import Acquire, Function, LockRef
from lockcheck.model.lines import relative_repr

CODE = """
struct obj { spinlock_t lock; };

static void top(struct obj *o)
{
	mid(o);
	spin_unlock(&o->lock);
}

static void mid(struct obj *o)
{
	low(o);
}

static void low(struct obj *o)
{
	spin_lock(&o->lock);
}

#ifdef CONFIG_A
static void variant(struct obj *o)
{
	spin_lock(&o->lock);
}
#else
static void variant(struct obj *o)
{
}
#endif

#ifdef CONFIG_B
static void variant2(struct obj *o)
{
}
#else
static void variant2(struct obj *o)
{
	spin_lock(&o->lock);
}
#endif

static void two(struct obj *o)
{
	first(o);
	second(o);
}

static void first(struct obj *o)
{
}

static void second(struct obj *o)
{
	recursive(o);
}

static void recursive(struct obj *o)
{
	recursive(o);
}

static void same(struct obj *o)
{
	spin_lock(&o->lock);
}

static void same(struct obj *o)
{
	spin_lock(&o->lock);
}
"""

HELPER = """
static void helper(struct obj *o)
{
	spin_lock(&o->lock);
}
"""


def functions(code: str) -> list[Function]:
    return Engine(Config(headers=False)).analyse_source("t.c", code.encode()).model.functions


def test_callees_come_before_their_callers() -> None:
    fns = functions(CODE)
    order = [fns[i].name for i in _call_graph_order(fns)]
    assert order.index("low") < order.index("mid") < order.index("top")
    assert order.index("recursive") < order.index("second") < order.index("two")
    assert order.index("first") < order.index("two")
    assert sorted(order) == sorted(f.name for f in fns) and len(order) == len(fns)
    # a cycle is broken in source order: the first function's callee first
    ring = functions("static void a(void)\n{\n\tb();\n}\n\nstatic void b(void)\n{\n\ta();\n}\n")
    assert [ring[i].name for i in _call_graph_order(ring)] == ["b", "a"]


def test_a_caller_sees_a_callee_defined_below_it() -> None:
    facts = analyse_file(functions(CODE))
    (top,) = [ff for ff in facts.functions if ff.fn.name == "top"]
    takes = [ev.lock.inst for evs in top.events for ev in evs if isinstance(ev, Acquire)]
    assert takes == ["o->lock"]  # through mid() and low()
    assert [ff.fn.name for ff in facts.functions] == [f.name for f in functions(CODE)]


def test_variants_that_disagree_have_no_summary() -> None:
    s = analyse_file(functions(CODE)).summaries
    # #ifdef variants: one takes the lock, one does not (in either order)
    assert "variant" not in s and "variant2" not in s
    assert s["same"].acquires == ((LockRef("o->lock"), "excl", None),)
    assert sorted(n for n in s if not s[n].pure) == ["low", "mid", "same"]
    # an empty body changes nothing: a pure function, whose only fact is that
    assert s["first"].pure and s["first"].effect_key()[:4] == ((), (), (), None)


def test_a_local_definition_hides_a_library_summary() -> None:
    library = library_summaries(functions(HELPER))
    assert set(library) == {"helper"}
    mine = functions("static void helper(struct obj *o)\n{\n}\n")
    hidden = analyse_file(mine, library).summaries
    assert set(hidden) == {"helper"} and hidden["helper"].pure
    assert not hidden["helper"].acquires and not hidden["helper"].releases
    other = functions("static void other(struct obj *o)\n{\n\thelper(o);\n}\n")
    s = analyse_file(other, library).summaries
    assert set(s) == {"helper", "other"} and s["other"].acquires == library["helper"].acquires


def test_a_memo_reanalyses_only_what_a_change_reaches() -> None:
    """A dataflow is kept by its function and its effective events: an
    unchanged function is not analysed again, and neither is one whose
    callees' summaries are unchanged; a changed callee's callers are."""
    memo: dict[tuple[str, str], FunctionFacts] = {}
    first = analyse_file(functions(CODE), memo=memo)
    # keyed by lines counted from each function's start: two definitions
    # alike but for their place share an entry
    keys = {
        (relative_repr(ff.fn, ff.fn.start_line), relative_repr(ff.events, ff.fn.start_line))
        for ff in first.functions
    }
    assert len(memo) == len(keys) < len({(repr(ff.fn), repr(ff.events)) for ff in first.functions})
    again = analyse_file(functions(CODE), memo=memo)
    # read back (the second of two definitions alike but for their place: moved)
    assert all(
        a is b or (a == b and a.fn.start_line > min(f.start_line for f in same))
        for a, b in zip(first.functions, again.functions, strict=True)
        for same in [[f.fn for f in first.functions if f.fn.name == a.fn.name]]
    )
    # on the same line, so that no other function moves
    low = "static void low(struct obj *o)\n{\n\tspin_lock(&o->lock);"
    same = CODE.replace(low, low + " o->n = 1;")
    gone = CODE.replace(low, low.replace("spin_lock", "spin_unlock"))
    assert same != CODE and gone != CODE
    for code, want in ((same, ["low"]), (gone, ["low", "mid", "top"])):
        after = analyse_file(functions(code), memo=memo)
        new = sorted(
            b.fn.name for a, b in zip(first.functions, after.functions, strict=True) if a != b
        )
        # the same summary keeps mid() and top(); another one reaches both
        assert new == want
        fresh = analyse_file(functions(code))
        assert [ff.state_in for ff in after.functions] == [ff.state_in for ff in fresh.functions]
