"""Evidence on findings: run the scenario a rule names against the function.

Runs after the rules, on their findings only: a finding of a rule with a
`scenario` gets "confirmed: trace of K steps" (and the trace) when the
simulator breaks the scenario's own invariants with that function, with
split pte locks on or off, and "not reproduced: N states explored" when it
cannot. A trace that takes a lock the simulator could not resolve to the
scenario's lock classes confirms nothing: the evidence names that lock.
One simulation per (file, function, scenario), however many findings
share it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.errors import LockcheckError
from lockcheck.model.finding import Finding
from lockcheck.model.ir import Function
from lockcheck.sim.render import step_dict
from lockcheck.sim.run import Request, SimResult, load_functions, simulate
from lockcheck.sim.scenarios import SimSettings, load_settings

EVIDENCE_MAX_STATES = 50_000

_Evidence = tuple[str, tuple[dict[str, object], ...]]


def attach_evidence(
    findings: list[Finding], engine: Engine, max_states: int = EVIDENCE_MAX_STATES
) -> list[Finding]:
    scenario_of = {r.spec.id: r.spec.scenario for r in engine.rules if r.spec.scenario}
    if not any(f.rule in scenario_of for f in findings):
        return findings
    settings = load_settings()
    models: dict[str, dict[str, Function]] = {}
    cache: dict[tuple[str, str, str], _Evidence] = {}
    out: list[Finding] = []
    for f in findings:
        scenario = scenario_of.get(f.rule)
        if scenario is None:
            out.append(f)
            continue
        key = (f.path, f.function, scenario)
        if key not in cache:
            cache[key] = _evidence(f, scenario, engine, settings, models, max_states)
        text, trace = cache[key]
        out.append(replace(f, evidence=text, trace=trace))
    return out


def unresolved_in_trace(res: SimResult) -> list[str]:
    """Locks the code under review takes in the trace that no actor shares.

    A trace may only confirm a finding when every lock it takes resolved
    to the same lock classes as its actors: a lock the simulator could not
    classify excludes nobody, which makes any race look possible.
    """
    out: list[str] = []
    for step in res.trace:
        if step.thread >= res.reviewed or step.op.kind != "acquire":
            continue
        for index in step.op.locks:
            what = res.unresolved.get(index)
            if what is not None and what not in out:
                out.append(what)
    return out


def _evidence(
    f: Finding,
    scenario: str,
    engine: Engine,
    settings: SimSettings,
    models: dict[str, dict[str, Function]],
    max_states: int,
) -> _Evidence:
    try:
        if f.path not in models:
            models[f.path] = load_functions(engine, Path(f.path))
        states = 0
        bounded = False
        for split in (True, False):
            req = Request(
                scenario,
                Path(f.path),
                [f.function],
                split,
                max_states=max_states,
                all_invariants=False,
            )
            res = simulate(req, engine, settings, models[f.path])
            states += res.outcome.states
            if res.result == "violation":
                blind = unresolved_in_trace(res)
                if blind:
                    return (
                        f"not confirmed: the simulator could not resolve {blind[0]} to a lock "
                        f"of the scenario, so its trace of {len(res.trace)} steps runs as if "
                        "no other thread took it",
                        (),
                    )
                trace = tuple(step_dict(res, s) for s in res.trace)
                return f"confirmed: trace of {len(trace)} steps", trace
            bounded |= res.result == "bounded"
    except LockcheckError as exc:
        return f"not simulated: {exc}", ()
    note = " (search bounded)" if bounded else ""
    return f"not reproduced: {states} states explored{note}", ()
