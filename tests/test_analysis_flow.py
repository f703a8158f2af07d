"""One function's dataflow: caller locks, unheld releases, exits, the budget.

In process: `make mutate` runs these first for lockcheck/analysis/flow.py.
The fixtures see the second round (locks the caller holds) and the
unheld-release list only through lock-balance findings; these pin them.
"""

from __future__ import annotations

from lockcheck.analysis.flow import analyse
from lockcheck.analysis.function import FunctionFacts
from lockcheck.engine import Config, Engine

CODE = """
struct obj { spinlock_t lock; spinlock_t big; int n; };

static void take(struct obj *o)
{
	spin_lock(&o->lock);
}

static void callers(struct obj *o)
{
	work(o);
	spin_unlock(&o->lock);
}

static void twice(struct obj *o)
{
	spin_lock(&o->lock);
	work(o);
	spin_unlock(&o->lock);
	spin_unlock(&o->lock);
}

static void twice_via(struct obj *o)
{
	take(o);
	work(o);
	spin_unlock(&o->lock);
	spin_unlock(&o->lock);
}

static void claimed_twice(struct obj *o)
	__must_hold(&o->big)
{
	spin_lock(&o->lock);
	work(o);
	spin_unlock(&o->lock);
	spin_unlock(&o->lock);
}

static void mixed(struct obj *o)
{
	spin_lock(&o->lock);
	spin_unlock(&o->lock);
	spin_unlock(&o->lock);
	spin_unlock(&o->big);
}

static void sometimes_twice(struct obj *o, int n)
{
	spin_lock(&o->big);
	spin_lock(&o->lock);
	if (n)
		spin_unlock(&o->lock);
	spin_unlock(&o->lock);
	spin_unlock(&o->big);
}

static void retake(struct obj *o, int n)
{
	if (n)
		goto take;
	spin_unlock(&o->lock);
	work(o);
take:
	spin_lock(&o->lock);
	spin_unlock(&o->lock);
}

static void claimed(struct obj *o)
	__must_hold(&o->big)
{
	work(o);
}

static void asserts(struct obj *o)
{
	work(o);
	lockdep_assert_held(&o->lock);
	lockdep_assert_not_held(&o->big);
}

static int dead(struct obj *o)
{
	spin_lock(&o->lock);
	spin_unlock(&o->lock);
	return 0;
	work(o);
}

static int plain(int x)
{
	if (x)
		return 1;
	return 2;
}
"""


def _facts() -> dict[str, FunctionFacts]:
    facts = Engine(Config(headers=False)).analyse_source("t.c", CODE.encode()).facts
    return {ff.fn.name: ff for ff in facts.functions}


FACTS = _facts()


def line_of(text: str, function: str) -> int:
    """The line of the last `text` inside `function` in CODE (1-based)."""
    lines = CODE.splitlines()
    start = next(i for i, t in enumerate(lines) if f" {function}(" in t and t.startswith("static"))
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return max(i for i in range(start, end) if text in lines[i]) + 1


def entry(name: str) -> list[str]:
    return sorted(r.inst for r in FACTS[name].entry_locks)


def unheld(name: str) -> list[tuple[int, bool]]:
    return [(ev.site.line, double) for _nid, ev, double in FACTS[name].unheld_releases]


def held_at(name: str, text: str) -> list[str] | None:
    """The surely-held locks before the statement containing `text`."""
    ff = FACTS[name]
    line = line_of(text, name)
    (node,) = [n for n in ff.fn.cfg.nodes if n.line == line and n.kind != "join"]
    st = ff.state_in[node.id]
    return None if st is None else st.describe()


def test_a_lock_released_without_being_taken_is_the_callers() -> None:
    assert entry("callers") == ["o->lock"]
    assert held_at("callers", "work(o)") == ["o->lock"]
    assert unheld("callers") == []


def test_a_second_unlock_does_not_make_the_lock_the_callers() -> None:
    """Taking a lock the caller would hold deadlocks: the extra unlock is the bug."""
    for name in ("twice", "twice_via"):
        assert entry(name) == [], name
        assert held_at(name, "work(o)") == ["o->lock"], name
        assert unheld(name) == [(line_of("spin_unlock(&o->lock)", name), False)], name
    assert entry("claimed_twice") == ["o->big"]
    assert held_at("claimed_twice", "spin_lock") == ["o->big"]
    assert unheld("claimed_twice") == [(line_of("spin_unlock(&o->lock)", "claimed_twice"), False)]


def test_only_the_inconsistent_lock_loses_its_caller() -> None:
    assert entry("mixed") == ["o->big"]
    assert held_at("mixed", "spin_lock") == ["o->big"]
    assert unheld("mixed") == [(line_of("spin_unlock(&o->lock)", "mixed"), False)]


def test_a_release_reaching_the_retake_keeps_the_lock_the_callers() -> None:
    assert entry("retake") == ["o->lock"]
    assert held_at("retake", "if (n)") == ["o->lock"]
    assert unheld("retake") == []


def test_an_unlock_after_an_unlock_on_one_path_is_a_double_unlock() -> None:
    assert entry("sometimes_twice") == []
    assert unheld("sometimes_twice") == [
        (line_of("spin_unlock(&o->lock)", "sometimes_twice"), True)
    ]


def test_claims_are_the_callers_locks() -> None:
    # a function whose only lock fact is its annotation still holds it
    assert held_at("claimed", "work(o)") == ["o->big"]
    assert entry("claimed") == ["o->big"]
    assert entry("asserts") == ["o->lock"]  # asserted held, not asserted free


def test_exits_carry_the_state_and_the_returned_value() -> None:
    ((_nid, st, released, value),) = FACTS["dead"].exits
    assert st.describe() == [] and released == {"o->lock"} and value == "0"
    plain = FACTS["plain"]
    assert sorted(v for *_, v in plain.exits) == ["1", "2"]
    assert all(st.describe() == [] and not rel for _n, st, rel, _v in plain.exits)


def test_unreachable_code_has_no_state_and_dominates_nothing() -> None:
    ff = FACTS["dead"]
    (node,) = [n for n in ff.fn.cfg.nodes if n.line == line_of("work(o)", "dead")]
    assert ff.state_in[node.id] is None and ff.before[node.id] == [None]
    assert not ff.dominates(node.id, node.id)
    assert not ff.dominates(ff.fn.cfg.entry, node.id)
    assert all(nid != node.id for nid, _ev, _st in ff.iter_events())


def test_the_visit_budget() -> None:
    """Without loops each reachable node is visited once: that many visits
    fit the budget, one fewer does not (and then no unheld release is claimed)."""
    fn = FACTS["sometimes_twice"].fn
    reachable = sum(1 for i in FACTS["sometimes_twice"].rpo_index if i >= 0)
    within = analyse(fn, max_visits=reachable)
    assert not within.budget_exceeded and within.unheld_releases
    over = analyse(fn, max_visits=reachable - 1)
    assert over.budget_exceeded and over.unheld_releases == ()
    assert analyse(fn).budget_exceeded is False
