"""order-reversed in process: which nestings a function has, which reversals
a patch makes, and what the report says.

`make mutate` runs these first for lockcheck/rules/order_reversed.py; the
review fixture (fixtures/effects/order_reversed.c) checks only the lines.
"""

from __future__ import annotations

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.review import review_versions
from lockcheck.rules.order_reversed import Nesting, OrderReversed, nestings

ENGINE = Engine(Config(select={"order-reversed"}, headers=False))

AB = """
static void move(struct pair *p)
{
	spin_lock(&p->a);
	spin_lock(&p->b);
	p->x = p->y;
	spin_unlock(&p->b);
	spin_unlock(&p->a);
}
"""
BA = AB.replace("lock(&p->a);\n\tspin_lock(&p->b)", "lock(&p->b);\n\tspin_lock(&p->a)").replace(
    "unlock(&p->b);\n\tspin_unlock(&p->a)", "unlock(&p->a);\n\tspin_unlock(&p->b)"
)


def line(code: str, text: str, nth: int = 0) -> int:
    return [i for i, t in enumerate(code.splitlines(), 1) if text in t][nth]


def reversed_(before: str, after: str) -> list[Finding]:
    result = review_versions(ENGINE, "mm/p.c", before, after)
    return [rf.finding for rf in result.findings if rf.finding.rule == "order-reversed"]


def facts(code: str) -> list:  # type: ignore[type-arg]
    return list(ENGINE.analyse_source("p.c", code.encode()).facts.functions)


def test_nestings_of_one_function() -> None:
    (ff,) = facts(AB)
    assert nestings(ff) == [
        Nesting("p->a", "p->b", line(AB, "spin_lock(&p->b)"), 2, line(AB, "spin_lock(&p->a)"))
    ]
    code = """
static void f(struct pair *p, struct mutex *m)
{
	mutex_lock(m);
	rcu_read_lock();
	spin_lock(&p->a);
	if (spin_trylock(&p->b))
		spin_unlock(&p->b);
	spin_lock(&p->a);
	spin_unlock(&p->a);
	rcu_read_unlock();
	mutex_unlock(m);
}
"""
    (ff,) = facts(code)
    got = {(n.outer, n.inner, n.line) for n in nestings(ff)}
    # not the trylock, not rcu either side, not the lock inside itself
    assert got == {
        ("m", "p->a", line(code, "spin_lock(&p->a)", 0)),
        ("m", "p->a", line(code, "spin_lock(&p->a)", 1)),
    }


def test_a_claimed_lock_is_no_outer() -> None:
    code = """
static void f(struct pair *p)
{
	lockdep_assert_held(&p->a);
	spin_lock(&p->b);
	spin_unlock(&p->b);
}
"""
    (ff,) = facts(code)
    assert nestings(ff) == []


def test_a_reversal_is_reported_with_both_orders() -> None:
    (f,) = reversed_(AB, BA)
    assert (f.line, f.column, f.function) == (line(BA, "spin_lock(&p->a)"), 2, "move")
    assert f.severity == "warning"
    assert f.message == (
        "`move()` now takes `p->a` while holding `p->b`; before this patch it took "
        "`p->b` while holding `p->a`: any path that still nests them the old way can "
        "deadlock with this one (ABBA)"
    )
    assert f.held == ("p->b",) and f.expected == ("p->a",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (line(BA, "spin_lock(&p->b)"), 1, "`p->b` taken here")
    ]
    assert f.anchor == "p->b -> p->a"


def test_reported_once_per_pair_and_only_for_a_new_order() -> None:
    twice = BA.replace(
        "\tp->x = p->y;\n", "\tp->x = p->y;\n\tspin_unlock(&p->a);\n\tspin_lock(&p->a);\n"
    )
    assert [f.line for f in reversed_(AB, twice)] == [line(twice, "spin_lock(&p->a)")]
    # both orders before: nothing is reversed
    both = AB.replace(
        "\tspin_unlock(&p->a);\n}",
        "\tspin_unlock(&p->a);\n\tspin_lock(&p->b);\n\tspin_lock(&p->a);\n"
        "\tspin_unlock(&p->a);\n\tspin_unlock(&p->b);\n}",
    )
    assert reversed_(both, BA) == []
    # the same order after, with the code changed
    assert reversed_(AB, AB.replace("p->x = p->y", "p->x = 1")) == []
    # nested both ways after: the new one is still a reversal
    assert len(reversed_(AB, both.replace("p->x = p->y", "p->x = 2"))) == 1


def test_a_trylock_or_rcu_in_the_reversed_order_is_quiet() -> None:
    tried = BA.replace("\tspin_lock(&p->a);\n", "\tif (!spin_trylock(&p->a))\n\t\treturn;\n", 1)
    assert reversed_(AB, tried) == []


def test_new_unchanged_and_duplicate_functions_are_not_compared() -> None:
    other = "\nstatic void other(struct pair *p)\n{\n\tp->x = 0;\n}\n"
    # `move` gains a new sibling; `move` itself is not changed
    assert reversed_(BA, BA + other) == []
    # a new function with the reversed order has no "before"
    renamed = BA.replace("move(", "move2(")
    assert reversed_(AB, AB + renamed) == []
    # two definitions of one name (#ifdef variants) are not compared
    assert reversed_(AB + AB.replace("spin_lock(&p->b)", "spin_lock(&p->b) "), BA + BA) == []


def test_reversed_back_to_the_order_the_rest_of_the_file_keeps() -> None:
    keeper = "\nstatic void keep(struct pair *p)\n{\n\tspin_lock(&p->b);\n\tspin_lock(&p->a);\n"
    keeper += "\tspin_unlock(&p->a);\n\tspin_unlock(&p->b);\n}\n"
    # `keep` nests b then a, as `move` now does: a fix of `move`
    assert reversed_(AB + keeper, BA + keeper) == []
    # a file that nests it both ways elsewhere: still a reversal
    both = keeper + keeper.replace("keep(", "keep2(").replace("&p->b", "&p->X").replace(
        "&p->a", "&p->b"
    ).replace("&p->X", "&p->a")
    assert len(reversed_(AB + both, BA + both)) == 1


def test_budget_exceeded_functions_are_not_compared() -> None:
    rule = next(r for r in ENGINE.rules if isinstance(r, OrderReversed))
    (pre,) = facts(AB)
    (post,) = facts(BA)
    assert len(rule.compare("p.c", [pre], [post], {"move"})) == 1
    assert rule.compare("p.c", [pre], [post], set()) == []
    from dataclasses import replace

    over = replace(post, budget_exceeded=True)
    assert rule.compare("p.c", [pre], [over], {"move"}) == []
    assert rule.compare("p.c", [replace(pre, budget_exceeded=True)], [post], {"move"}) == []
    assert OrderReversed.symmetric is True


def test_a_held_lock_that_is_no_outer_does_not_hide_the_next_one() -> None:
    code = """
static void f(struct pair *p, struct mutex *m)
{
	rcu_read_lock();
	mutex_lock(m);
	spin_lock(&p->a);
	spin_unlock(&p->a);
	mutex_unlock(m);
	rcu_read_unlock();
}
"""
    (ff,) = facts(code)
    assert [(n.outer, n.inner) for n in nestings(ff)] == [("m", "p->a")]
    same = code.replace("\tspin_lock(&p->a);\n", "\tmutex_lock(m);\n\tspin_lock(&p->a);\n", 1)
    (ff,) = facts(same)
    assert ("m", "p->a") in {(n.outer, n.inner) for n in nestings(ff)}


def test_a_fixed_pair_does_not_hide_a_reversed_one_after_it() -> None:
    keeper = "\nstatic void keep(struct pair *p)\n{\n\tspin_lock(&p->b);\n\tspin_lock(&p->a);\n"
    keeper += "\tspin_unlock(&p->a);\n\tspin_unlock(&p->b);\n}\n"
    before = AB.replace(
        "\tspin_unlock(&p->a);\n}",
        "\tspin_unlock(&p->a);\n\tspin_lock(&p->c);\n\tspin_lock(&p->d);\n"
        "\tspin_unlock(&p->d);\n\tspin_unlock(&p->c);\n}",
    )
    after = BA.replace(
        "\tspin_unlock(&p->b);\n}",
        "\tspin_unlock(&p->b);\n\tspin_lock(&p->d);\n\tspin_lock(&p->c);\n"
        "\tspin_unlock(&p->c);\n\tspin_unlock(&p->d);\n}",
    )
    # b -> a is fixed (as keep() nests them); d -> c is new
    found = reversed_(before + keeper, after + keeper)
    assert [f.anchor for f in found] == ["p->d -> p->c"]
