"""Graph questions rules ask of an analysed function, on hand-built CFGs.

In process and fast: `make mutate` runs these first for
lockcheck/analysis/function.py. The fixtures reach dominators and
reachability only through rule results, where a wrong answer often changes
nothing visible.
"""

from __future__ import annotations

import pytest

from lockcheck.analysis.function import (
    FunctionFacts,
    dominators,
    return_value,
    reverse_postorder,
)
from lockcheck.analysis.state import Held, LockState
from lockcheck.model.ir import Call, Cfg, Event, Function, LockRef, Node, Site


def facts(edges: dict[int, list[int]], n: int, entry: int = 0) -> FunctionFacts:
    """A function of `n` nodes with these successor lists; node n-1 is the exit."""
    nodes = [Node(i, 10 + i, "stmt") for i in range(n)]
    for a, succs in edges.items():
        nodes[a].succ = [(b, None) for b in succs]
    fn = Function("f", "f.c", 10, 10 + n, Cfg(nodes, entry, n - 1))
    rpo = reverse_postorder(fn)
    rpo_index = [-1] * n
    for i, nid in enumerate(rpo):
        rpo_index[nid] = i
    idom = dominators(fn, rpo, fn.cfg.preds())
    return FunctionFacts(
        fn, [[] for _ in range(n)], [[] for _ in range(n)], [None] * n, [None] * n, idom, rpo_index
    )


# 0 -> 1 -> {2, 3} -> 4 -> 5 (exit); 4 -> 1 is a loop back edge; 6 is unreachable
LOOP = {0: [1], 1: [2, 3], 2: [4], 3: [4], 4: [1, 5], 6: [4]}


def test_reverse_postorder_visits_every_reachable_node_after_its_dominator() -> None:
    ff = facts(LOOP, 7)
    order = reverse_postorder(ff.fn)
    assert sorted(order) == [0, 1, 2, 3, 4, 5]
    assert order[0] == 0 and order.index(1) < min(order.index(2), order.index(3))
    assert max(order.index(2), order.index(3)) < order.index(4) < order.index(5)
    # a node reached again through a second edge is listed once
    assert reverse_postorder(facts({0: [1, 1], 1: [2]}, 3).fn) == [0, 1, 2]


def test_dominators_of_a_loop_with_a_diamond() -> None:
    ff = facts(LOOP, 7)
    assert ff.idom == [0, 0, 1, 1, 1, 4, -1]
    # a join of two long branches goes up to the branch, not to one side
    long = facts({0: [1, 2], 1: [3], 3: [5], 2: [4], 4: [5], 5: [6]}, 7)
    assert long.idom[5] == 0 and long.idom[6] == 5 and long.idom[3] == 1


def brute_idom(edges: dict[int, list[int]], n: int) -> list[int]:
    """Immediate dominators by definition: d dominates v when v cannot be
    reached from the entry (0) without d; the immediate one is the closest."""

    def reach(avoid: int) -> set[int]:
        seen, stack = {0}, [0]
        while stack:
            for s in edges.get(stack.pop(), []):
                if s != avoid and s not in seen:
                    seen.add(s)
                    stack.append(s)
        return seen if avoid != 0 else set()

    live = reach(-1)
    doms = {v: {d for d in live if v not in reach(d)} for v in live}
    out = [-1] * n
    out[0] = 0
    for v in live - {0}:
        strict = doms[v] - {v}
        out[v] = next(d for d in strict if all(o in doms[d] for o in strict))
    return out


@pytest.mark.parametrize(
    "edges",
    [
        LOOP,
        # Cooper, Harvey and Kennedy's irreducible example: the first pass
        # leaves some dominators too deep, a second pass corrects them
        {0: [1, 2], 1: [3], 2: [4, 5], 5: [4], 4: [3, 5], 3: [4]},
        {0: [1, 2], 1: [3], 2: [3], 3: [1, 4], 4: [2, 6]},
        {0: [1], 1: [2, 3], 2: [1], 3: [4, 1], 4: [6]},
    ],
    ids=["loop", "irreducible", "two-entries", "nested"],
)
def test_dominators_agree_with_their_definition(edges: dict[int, list[int]]) -> None:
    assert facts(edges, 7).idom == brute_idom(edges, 7)


def test_reverse_postorder_of_a_loop_back_to_the_entry() -> None:
    assert reverse_postorder(facts({0: [1], 1: [0, 2]}, 3).fn) == [0, 1, 2]


def test_dominates() -> None:
    ff = facts(LOOP, 7)
    assert ff.dominates(0, 0) and ff.dominates(0, 1)
    assert ff.dominates(1, 4) and ff.dominates(0, 5) and ff.dominates(4, 4)
    assert not ff.dominates(2, 4) and not ff.dominates(4, 1) and not ff.dominates(5, 4)
    assert not ff.dominates(6, 4) and not ff.dominates(0, 6)  # unreachable either side


def test_reaches_avoiding() -> None:
    ff = facts(LOOP, 7)
    assert ff.reaches_avoiding(2, 3, 5)  # round the loop
    assert not ff.reaches_avoiding(2, 3, 1)
    assert not ff.reaches_avoiding(1, 5, 1)  # starting at the avoided node
    assert ff.reaches_avoiding(5, 5, 1)  # already there
    assert not ff.reaches_avoiding(5, 4, 1)


def test_gates_when_one_outcome_reaches_the_act_and_one_does_not() -> None:
    ff = facts(LOOP, 7)
    assert ff.gates(1, 2) and ff.gates(1, 3)
    assert not ff.gates(4, 2)  # 4 does not dominate 2
    assert not ff.gates(1, 4)  # both sides reach 4
    assert not ff.gates(2, 2)
    # the loop's test: going round does not reach 5 in this iteration
    assert ff.gates(4, 5)
    bail = facts({0: [1], 1: [2, 3], 2: [4], 3: [5]}, 6)
    assert bail.gates(1, 4) and not bail.gates(0, 4)


def test_reachable_from_includes_the_start_and_follows_loops() -> None:
    ff = facts(LOOP, 7)
    assert ff.reachable_from(2) == {1, 2, 3, 4, 5}
    assert ff.reachable_from(5) == {5}
    assert ff.reachable_from(6) == {1, 2, 3, 4, 5, 6}


def test_events_and_their_states() -> None:
    ff = facts({0: [1], 1: [2]}, 3)
    a, b, c = (Call(name, Site(11, 1)) for name in ("a", "b", "c"))
    held = LockState({LockRef("l"): Held("excl", Site(10, 1))}, {})
    empty = LockState({}, {})
    ff.events = [[], [a, b], [c]]
    ff.before = [[], [held, empty], [None]]
    ff.state_in = [None, held, empty]
    assert ff.state_at(1, b) is empty and ff.state_at(1, a) is held
    assert ff.state_at(2, a) is empty  # not an event of that node: the node's state
    got: list[tuple[int, Event, LockState]] = list(ff.iter_events())
    assert got == [(1, a, held), (1, b, empty)]  # unreachable events (None) left out


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("return 0;", "0"),
        ("return  -EAGAIN ;", "-EAGAIN"),
        ("return\n\tfoo(a,\n b);", "foo(a, b)"),
        ("return;", ""),
        ("return PGTABLE_MAX;", "PGTABLE_MAX"),  # only the `;` is stripped
        ("x = 1;", ""),
    ],
)
def test_return_value(text: str, value: str) -> None:
    assert return_value(text) == value
