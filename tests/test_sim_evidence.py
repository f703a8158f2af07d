"""The simulator's evidence confirms only traces whose locks it resolved."""

from __future__ import annotations

from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.sim.evidence import attach_evidence, unresolved_in_trace
from lockcheck.sim.run import Request, simulate
from tests.conftest import FIXTURES

UNRESOLVED = FIXTURES / "sim" / "unresolved_lock.c"
V1 = FIXTURES / "khugepaged" / "v1.c"


def _evidence(engine: Engine, path: Path, rule: str) -> str | None:
    result = engine.check_paths([path])
    findings = attach_evidence([f for f in result.findings if f.rule == rule], engine)
    assert findings, f"{path.name}: no {rule} finding"
    return findings[0].evidence


def test_an_unresolved_lock_is_named_instead_of_confirmed() -> None:
    engine = Engine()
    evidence = _evidence(engine, UNRESOLVED, "uffd-wp-under-ptl")
    assert evidence is not None
    assert not evidence.startswith("confirmed")
    assert evidence.startswith("not confirmed: the simulator could not resolve `guard` (line 16)")


def test_the_raw_trace_races_through_the_unresolved_lock() -> None:
    # without the check, the same run would have been "confirmed": the
    # violation is real for the simulator, only the lock is unknown to it
    engine = Engine()
    res = simulate(Request("uffd-wp", UNRESOLVED, ["drop_under_table_guard"], True), engine)
    assert res.result == "violation"
    assert unresolved_in_trace(res) == ["`guard` (line 16)"]
    assert all(
        i not in res.unresolved
        for t in res.threads[res.reviewed :]
        for op in t.ops
        for i in op.locks
    )


def test_resolved_locks_still_confirm() -> None:
    engine = Engine()
    evidence = _evidence(engine, V1, "uffd-wp-under-ptl")
    assert evidence is not None and evidence.startswith("confirmed: trace of ")
    res = simulate(Request("uffd-wp", V1, ["shrink_file_tables"], True), engine)
    assert res.result == "violation"
    assert unresolved_in_trace(res) == []
