"""One simulation: a scenario, the code under review, a configuration.

This is the simulator's entry point for the CLI, the evidence step and the
bench: it loads the scenario, compiles the threads and runs the explorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.errors import InputError
from lockcheck.inputs.files import read_c_source
from lockcheck.model.ir import Function
from lockcheck.sim.actors import compile_actor
from lockcheck.sim.explore import Explorer, Outcome, Step
from lockcheck.sim.from_model import CompileContext, compile_function
from lockcheck.sim.program import LockTable, Program
from lockcheck.sim.scenarios import INVARIANTS, SimSettings, load_settings


@dataclass(slots=True)
class Request:
    scenario: str
    code: Path
    functions: list[str]
    split_ptl: bool = True
    vmas: int = 1
    max_states: int = 200_000
    max_depth: int = 10_000  # transitions from the initial state
    reduce: bool = True
    actors: list[Path] | None = None  # replaces the scenario's actors
    all_invariants: bool = True  # False: only the scenario's own (for evidence)
    exhaustive: bool = False  # explore every state, not only up to the first violation


@dataclass(slots=True)
class SimResult:
    scenario: str
    split_ptl: bool
    outcome: Outcome
    threads: list[Program] = field(default_factory=list)
    # locks the code under review takes that the simulator could not match
    # to a lock of the scenario's actors: index -> `spelling` (line N)
    unresolved: dict[int, str] = field(default_factory=dict)
    reviewed: int = 0  # the first `reviewed` threads run the code under review

    @property
    def result(self) -> str:
        return self.outcome.result

    @property
    def trace(self) -> list[Step]:
        return self.outcome.trace


def load_functions(engine: Engine, code: Path) -> dict[str, Function]:
    analysis = engine.analyse_source(str(code), read_c_source(code))
    out: dict[str, Function] = {}
    for fn in analysis.model.functions:
        out.setdefault(fn.name, fn)
    return out


def simulate(
    req: Request,
    engine: Engine | None = None,
    settings: SimSettings | None = None,
    functions: dict[str, Function] | None = None,
) -> SimResult:
    settings = settings or load_settings()
    scenario = settings.scenarios.get(req.scenario)
    if scenario is None:
        known = ", ".join(sorted(settings.scenarios))
        raise InputError(f"unknown scenario '{req.scenario}' (known: {known})")
    if req.vmas < 1:
        raise InputError("--vmas must be at least 1")
    engine = engine or Engine()
    if functions is None:
        functions = load_functions(engine, req.code)
    names = list(req.functions)
    for name in names:
        if name not in functions:
            raise InputError(f"{req.code}: no function named '{name}'")
    if not names:
        raise InputError("name the function under review with --function")
    while len(names) < scenario.min_threads:
        names.append(names[-1])
    locks = LockTable(settings.lock_templates(req.split_ptl), req.vmas)
    ctx = CompileContext(settings, engine.vocab, locks)
    threads = [compile_function(functions[n], functions, ctx, scenario.caller_holds) for n in names]
    reviewed = len(threads)
    for actor in req.actors if req.actors is not None else scenario.actors:
        threads.extend(compile_actor(actor, ctx))
    shared = {i for t in threads[reviewed:] for op in t.ops for i in op.locks}
    unresolved = {i: what for i, what in ctx.unresolved.items() if i not in shared}
    invariants = frozenset(INVARIANTS) if req.all_invariants else scenario.invariants
    explorer = Explorer(
        threads,
        locks.names,
        locks.rw,
        ctx.flags,
        req.vmas,
        invariants,
        reduce=req.reduce,
        max_states=req.max_states,
        max_depth=req.max_depth,
        exhaustive=req.exhaustive,
    )
    return SimResult(req.scenario, req.split_ptl, explorer.run(), threads, unresolved, reviewed)
