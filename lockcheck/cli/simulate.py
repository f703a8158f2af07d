"""`simulate`: run the code under review against a scenario's actors."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import RulesOpt, app, engine_for
from lockcheck.cli.check import bundled_examples, shown_path
from lockcheck.errors import InputError
from lockcheck.inputs.files import read_c_source
from lockcheck.model.ir import Function

DEFAULT_FIXTURE = "v1.c"
DEFAULT_FUNCTION = "shrink_file_tables"


class SimFormat(StrEnum):
    text = "text"
    json = "json"
    svg = "svg"


class Split(StrEnum):
    on = "on"
    off = "off"
    both = "both"


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Argument(metavar="SCENARIO", help="Scenario id (see rules/scenarios.toml).")
    ],
    code: Annotated[
        Path | None,
        typer.Option("--code", metavar="FILE", help="C file holding the function(s) under review."),
    ] = None,
    function: Annotated[
        list[str] | None,
        typer.Option(
            "--function",
            metavar="NAME",
            help="Function under review (repeatable: one thread each).",
        ),
    ] = None,
    split_ptl: Annotated[
        Split, typer.Option("--split-ptl", help="Split pte locks (off: ptl == pml).")
    ] = Split.both,
    max_states: Annotated[
        int, typer.Option("--max-states", metavar="N", help="Bound on states.")
    ] = 200_000,
    vmas: Annotated[
        int, typer.Option("--vmas", metavar="N", help="VMAs a loop over VMAs visits.")
    ] = 1,
    actor: Annotated[
        list[Path] | None,
        typer.Option(
            "--actor",
            metavar="FILE",
            help="Actor model C file, instead of the scenario's (repeatable).",
        ),
    ] = None,
    format: Annotated[SimFormat, typer.Option("--format", help="Output format.")] = SimFormat.text,
    example: Annotated[
        bool,
        typer.Option(
            "--example",
            help=f"Run the bundled {DEFAULT_FIXTURE}, {DEFAULT_FUNCTION}(), not --code.",
        ),
    ] = False,
    rules: RulesOpt = None,
) -> int:
    """Search the interleavings of FUNCTION with the scenario's actors.

    Prints the shortest interleaving that breaks an invariant, or how many
    states were explored without finding one. Exit 1 on a violation.
    """
    if max_states < 1:
        raise InputError("--max-states must be at least 1")
    if example:
        # only on request: a violation found in code the user never gave would mislead
        if code is not None or function:
            raise InputError("--example runs the bundled code: no --code or --function with it")
        bundled = bundled_examples() / DEFAULT_FIXTURE
        code = Path(shown_path(bundled))  # the trace names it so, not by a site-packages path
        function = [DEFAULT_FUNCTION]
    elif code is None:
        raise InputError(
            "say what to simulate: --code FILE --function NAME, or --example for the bundled"
            f" {DEFAULT_FIXTURE}"
        )
    elif not function:
        raise InputError("--code needs at least one --function")
    # the simulator is imported only by the commands that run it
    from lockcheck.sim.render import combined, render_json, render_svg, render_text
    from lockcheck.sim.run import Request
    from lockcheck.sim.run import simulate as run_simulation
    from lockcheck.sim.scenarios import load_settings

    settings = load_settings()
    engine = engine_for(rules, None)
    functions: dict[str, Function] | None = None
    if example:
        functions = {}
        for fn in engine.analyse_source(str(code), read_c_source(bundled)).model.functions:
            functions.setdefault(fn.name, fn)
    splits = [True, False] if split_ptl is Split.both else [split_ptl is Split.on]
    results = [
        run_simulation(
            Request(scenario, code, list(function), split, vmas, max_states, actors=actor),
            engine,
            settings,
            functions,
        )
        for split in splits
    ]
    if format is SimFormat.json:
        sys.stdout.write(render_json(results))
    elif format is SimFormat.svg:
        sys.stdout.write(render_svg(results))
    else:
        sys.stdout.write(render_text(results, settings.scenarios[scenario].description))
    return 1 if combined(results)[0] == "violation" else 0
