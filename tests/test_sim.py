"""The simulator as a library: traces that read like the race, and "holds"."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lockcheck.engine import Engine
from lockcheck.errors import InputError, PackError
from lockcheck.sim.actors import compile_actor
from lockcheck.sim.explore import Step
from lockcheck.sim.from_model import CompileContext
from lockcheck.sim.program import LockTable
from lockcheck.sim.render import render_json, render_svg, render_text
from lockcheck.sim.run import Request, SimResult, simulate
from lockcheck.sim.scenarios import load_settings
from tests.helpers import FIXTURES

KH = FIXTURES / "khugepaged"
SIM = FIXTURES / "sim"
FN = "shrink_file_tables"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def run(engine: Engine, scenario: str, code: Path, *fns: str, **kw: object) -> SimResult:
    return simulate(Request(scenario, code, list(fns), **kw), engine)  # type: ignore[arg-type]


def first(trace: list[Step], thread: int, change: str) -> int:
    """Index of the first step of `thread` whose state change contains `change`."""
    for i, s in enumerate(trace):
        if s.thread == thread and change in s.change:
            return i
    raise AssertionError(f"CPU{thread} never did {change!r}")


@pytest.mark.parametrize("split", [True, False])
def test_v1_uffd_wp_check_passes_then_marker_installed_then_table_freed(
    engine: Engine, split: bool
) -> None:
    res = run(engine, "uffd-wp", KH / "v1.c", FN, split_ptl=split)
    assert res.result == "violation"
    assert res.outcome.violation is not None
    assert res.outcome.violation.kind == "table-loss"
    trace = res.trace
    check = first(trace, 0, "reads uffd-wp of vma0: clear")
    register = first(trace, 1, "sets uffd-wp on vma0")
    marker = first(trace, 1, "installs a pte marker in table T0")
    freed = next(i for i, s in enumerate(trace) if s.violation)
    assert trace[check].op.line == 32
    assert check < register < marker < freed
    assert trace[freed].thread == 0 and trace[freed].op.line == 45
    assert freed == len(trace) - 1


@pytest.mark.parametrize("split", [True, False])
def test_v1_anon_fault_sets_anon_vma_and_maps_a_pte_before_the_free(
    engine: Engine, split: bool
) -> None:
    res = run(engine, "anon-fault", KH / "v1.c", FN, split_ptl=split)
    assert res.result == "violation"
    trace = res.trace
    check = first(trace, 0, "reads anon-vma of vma0: clear")
    prepare = first(trace, 1, "sets anon-vma on vma0")
    pte = first(trace, 1, "installs a pte in table T0")
    assert trace[check].op.line == 21
    assert check < prepare < pte < len(trace) - 1
    assert trace[-1].violation and "holds a pte" in trace[-1].change


@pytest.mark.parametrize("name", ["merged_fix.c", "pre_series.c"])
@pytest.mark.parametrize("scenario", ["uffd-wp", "anon-fault"])
@pytest.mark.parametrize("split", [True, False])
def test_fixed_shapes_hold(engine: Engine, name: str, scenario: str, split: bool) -> None:
    res = run(engine, scenario, KH / name, FN, split_ptl=split)
    assert res.result == "holds", [(s.op.line, s.change) for s in res.trace]
    assert res.outcome.states > 20
    assert res.trace == []


def test_pre_series_removal_runs_inside_the_inlined_callee(engine: Engine, tmp_path: Path) -> None:
    # An actor that maps a pte without any lock must break pre_series: so the
    # "holds" above is not because drop_pte_table() never frees anything.
    rogue = tmp_path / "rogue.c"
    rogue.write_text(
        "void rogue(struct mm_struct *mm, pte_t *pte)\n{\n"
        "\tset_pte_at(mm, 0, pte, mk_pte(page, prot));\n}\n"
    )
    res = run(engine, "uffd-wp", KH / "pre_series.c", FN, actors=[rogue])
    assert res.result == "violation"
    last = res.trace[-1]
    assert last.violation and last.op.line == 25  # pte_free() in drop_pte_table()
    assert any(s.op.line == 22 and "detaches table T0" in s.change for s in res.trace)


def test_split_ptl_off_makes_ptl_the_pml(engine: Engine) -> None:
    # the re-check under pml alone is too weak only when ptl is a lock of its own
    code = KH / "recheck_under_pml_only.c"
    fn = "drop_one_table"
    on = run(engine, "uffd-wp", code, fn, split_ptl=True)
    off = run(engine, "uffd-wp", code, fn, split_ptl=False)
    assert on.result == "violation"
    assert off.result == "holds"
    v1_off = run(engine, "uffd-wp", KH / "v1.c", FN, split_ptl=False)
    changes = [s.change for s in v1_off.trace]
    assert "one lock (split locks off)" in changes
    assert not any("ptl[" in c or "pml[" in c for c in changes)


def test_abba_pair_deadlocks_and_the_ordered_pair_does_not(engine: Engine) -> None:
    res = run(engine, "deadlock", SIM / "abba.c", "collapse_one", "unmap_one")
    assert res.result == "violation"
    assert res.outcome.violation is not None
    assert res.outcome.violation.kind == "deadlock"
    blocked = [s for s in res.trace if s.violation]
    assert {s.thread for s in blocked} == {0, 1}
    assert any("i_mmap_rwsem" in s.change for s in blocked)
    assert any("mmap_lock[mm0]" in s.change for s in blocked)
    for fns in (("collapse_ordered", "unmap_one"), ("collapse_trylock", "unmap_one")):
        assert run(engine, "deadlock", SIM / "abba.c", *fns).result == "holds"


def test_lock_held_at_return_is_reported(engine: Engine) -> None:
    res = run(engine, "deadlock", SIM / "abba.c", "leak_rmap_lock")
    assert res.outcome.violation is not None
    assert res.outcome.violation.kind == "held-at-exit"
    assert "i_mmap_rwsem" in res.outcome.violation.message


def test_reduction_explores_fewer_states_with_the_same_answers(engine: Engine) -> None:
    for name, want in (("v1.c", "violation"), ("merged_fix.c", "holds")):
        fast = run(engine, "uffd-wp", KH / name, FN)
        slow = run(engine, "uffd-wp", KH / name, FN, reduce=False)
        assert fast.result == slow.result == want
        if want == "holds":
            assert slow.outcome.states > fast.outcome.states


def test_exhaustive_search_keeps_the_shortest_trace(engine: Engine) -> None:
    short = run(engine, "uffd-wp", KH / "v1.c", FN)
    full = run(engine, "uffd-wp", KH / "v1.c", FN, exhaustive=True)
    assert full.result == "violation"
    assert full.outcome.states > short.outcome.states
    assert [(s.thread, s.op.line, s.change) for s in full.trace] == [
        (s.thread, s.op.line, s.change) for s in short.trace
    ]


def test_two_vmas_and_the_state_bound(engine: Engine) -> None:
    two = run(engine, "uffd-wp", KH / "merged_fix.c", FN, vmas=2)
    one = run(engine, "uffd-wp", KH / "merged_fix.c", FN)
    assert two.result == "holds"
    assert two.outcome.states > one.outcome.states
    tiny = run(engine, "uffd-wp", KH / "merged_fix.c", FN, max_states=10)
    assert tiny.result == "bounded"
    assert tiny.outcome.states == 10
    shallow = run(engine, "uffd-wp", KH / "v1.c", FN, max_depth=3)
    assert shallow.result == "bounded"


def test_traces_and_renderings_are_deterministic(engine: Engine) -> None:
    a = [run(engine, "uffd-wp", KH / "v1.c", FN, split_ptl=s) for s in (True, False)]
    b = [run(engine, "uffd-wp", KH / "v1.c", FN, split_ptl=s) for s in (True, False)]
    assert render_json(a) == render_json(b)
    assert render_text(a) == render_text(b)
    assert render_svg(a) == render_svg(b)
    text = render_text(a)
    assert "CPU0" in text and "CPU1" in text
    assert sum(line.startswith("***") for line in text.splitlines()) == 1


def test_unknown_scenario_and_function_are_input_errors(engine: Engine) -> None:
    with pytest.raises(InputError, match="unknown scenario 'nope'"):
        run(engine, "nope", KH / "v1.c", FN)
    with pytest.raises(InputError, match="no function named 'missing'"):
        run(engine, "uffd-wp", KH / "v1.c", "missing")


def test_malformed_actor_names_file_and_line(engine: Engine, tmp_path: Path) -> None:
    settings = load_settings()
    ctx = CompileContext(settings, engine.vocab, LockTable(settings.lock_templates(True), 1))
    bad = tmp_path / "bad.c"
    bad.write_text("/* a comment\n   over two lines */\nvoid f(void)\n{\n\tx = ;\n}\n")
    with pytest.raises(InputError, match=r"bad\.c:5: malformed actor model"):
        compile_actor(bad, ctx)
    loop = tmp_path / "loop.c"
    loop.write_text("void f(void)\n{\n\twhile (1)\n\t\tcpu_relax();\n}\n")
    with pytest.raises(InputError, match=r"loop\.c:3: actor model: unsupported statement"):
        compile_actor(loop, ctx)


def test_scenarios_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "scenarios.toml"
    bad.write_text('[scenario.x]\nactors = []\ninvariants = ["no-such"]\n')
    with pytest.raises(PackError, match=r"scenario\.x\.invariants: unknown invariant 'no-such'"):
        load_settings(bad)
    shipped = load_settings()
    assert {"uffd-wp", "anon-fault", "deadlock"} <= set(shipped.scenarios)
    for sc in shipped.scenarios.values():
        assert all(a.is_file() for a in sc.actors), sc.id


def test_folio_lock_keeps_faults_out_but_not_markers(engine: Engine) -> None:
    # Hugh's argument in the seed thread: the huge page lock stops new ptes of
    # the page. It does for a fault (fault-fill holds), not for uffd-wp markers.
    settings = load_settings()
    held = simulate(Request("fault-fill", KH / "v1.c", [FN]), engine, settings)
    assert held.result == "holds"
    unheld = replace(settings.scenarios["fault-fill"], caller_holds=())
    settings.scenarios["fault-fill"] = unheld
    res = simulate(Request("fault-fill", KH / "v1.c", [FN]), engine, settings)
    assert res.result == "violation"
    assert "holds a pte" in res.trace[-1].change
    assert run(engine, "uffd-wp", KH / "v1.c", FN).result == "violation"


@pytest.mark.parametrize("name", ["v1.c", "merged_fix.c", "pre_series.c"])
def test_munmap_is_excluded_by_the_rmap_lock(engine: Engine, name: str) -> None:
    res = run(engine, "munmap", KH / name, FN, vmas=2)
    assert res.result == "holds"


def test_a_detached_table_never_freed_is_lost_at_return(engine: Engine, tmp_path: Path) -> None:
    code = tmp_path / "detach_only.c"
    code.write_text(
        "static void detach_only(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmdp)\n"
        "{\n\tspinlock_t *pml;\n\n\tif (userfaultfd_wp(vma))\n\t\treturn;\n"
        "\tpml = pmd_lock(vma->vm_mm, pmdp);\n\tpmdp_collapse_flush(vma, haddr, pmdp);\n"
        "\tspin_unlock(pml);\n}\n"
    )
    res = run(engine, "uffd-wp", code, "detach_only")
    assert res.outcome.violation is not None
    assert res.outcome.violation.kind == "table-loss"
    assert "never freed" in res.outcome.violation.message
    assert res.trace[-1].op.kind == "exit"


@pytest.mark.parametrize("name", ["v1.c", "merged_fix.c", "pre_series.c"])
def test_the_reduction_never_changes_the_answer(engine: Engine, name: str) -> None:
    for scenario in ("uffd-wp", "anon-fault", "fault-fill", "munmap"):
        fast = run(engine, scenario, KH / name, FN, exhaustive=True)
        full = run(engine, scenario, KH / name, FN, exhaustive=True, reduce=False)
        assert fast.result == full.result, scenario
        kinds = (fast.outcome.violation, full.outcome.violation)
        assert kinds[0] == kinds[1], scenario
