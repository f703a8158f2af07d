"""Paths kept apart by the outcomes of conditions a function tests twice.

Up to the per-node bound they stay apart even with equal lock states; past
it they fall back to being kept apart by lock state alone (never worse than
without the split), and only past that are they merged into one.
"""

from __future__ import annotations

from lockcheck.analysis.paths import MAX_PATHS, Facts, NodePaths
from lockcheck.analysis.state import Held, LockState
from lockcheck.model.ir import LockRef, Site

SITE = Site(1, 1, "spin_lock(l)")
LOCK = LockRef("l", cls="l")


def _state(held: bool) -> LockState:
    if not held:
        return LockState({}, {})
    h = Held("excl", SITE)
    return LockState({LOCK: h}, {LOCK: h})


def _facts(i: int, names: list[str]) -> Facts:
    atoms = frozenset((n, bool(i >> k & 1), (n,)) for k, n in enumerate(names))
    return Facts(atoms)


def test_outcomes_of_retested_conditions_keep_paths_apart() -> None:
    node = NodePaths(frozenset({"a"}))
    node.add((_state(False), _facts(0, ["a"])))
    node.add((_state(False), _facts(1, ["a"])))
    assert len(node.ordered()) == 2
    assert {p[1].atoms for p in node.ordered()} == {_facts(0, ["a"]).atoms, _facts(1, ["a"]).atoms}


def test_other_conditions_do_not_split_paths() -> None:
    node = NodePaths(frozenset({"a"}))
    node.add((_state(False), _facts(0, ["b"])))
    node.add((_state(False), _facts(1, ["b"])))
    assert len(node.ordered()) == 1


def test_past_the_bound_paths_stay_apart_by_lock_state() -> None:
    names = ["a", "b", "c", "d"]
    node = NodePaths(frozenset(names))
    for i in range(2 ** len(names)):  # 16 outcomes, two lock states
        node.add((_state(bool(i & 1)), _facts(i, names)))
    paths = node.ordered()
    assert 2 ** len(names) > MAX_PATHS
    assert not node.collapsed
    assert len(paths) == 2
    assert sorted(bool(p[0].must) for p in paths) == [False, True]
