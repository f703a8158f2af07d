"""`check`, `explain`, `demo` and `rules`: the file-level commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import (
    DEFAULT_FAIL_ON,
    CheckFormat,
    CheckFormatOpt,
    Color,
    ColorOpt,
    FailOnOpt,
    QuietOpt,
    RulesOpt,
    SelectOpt,
    StrictOpt,
    app,
    apply_baseline,
    command_line,
    engine_for,
    error_line,
    exit_code,
    parse_error_line,
    read_sources,
    rule_options,
    without_baseline,
)
from lockcheck.config import config_for
from lockcheck.engine import Stats
from lockcheck.errors import InputError
from lockcheck.inputs.files import read_c_source
from lockcheck.report import RunInfo, render_report
from lockcheck.report.explain import render_explain
from lockcheck.report.text import render_text, want_color
from lockcheck.rules.baseline import baseline_json, load_baseline


@app.command()
def check(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="C files or directories.")],
    rules: RulesOpt = None,
    select: SelectOpt = None,
    format: CheckFormatOpt = CheckFormat.text,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    quiet: QuietOpt = False,
    color: ColorOpt = Color.auto,
    strict: StrictOpt = False,
    no_sim: Annotated[
        bool, typer.Option("--no-sim", help="No simulator evidence on findings.")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", metavar="FILE", help="Hide the findings whose fingerprints FILE lists."
        ),
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(
            "--write-baseline", metavar="FILE", help="Record this run's findings in FILE; exit 0."
        ),
    ] = None,
) -> int:
    """Check C files or directories for lock findings."""
    project = config_for(paths)  # the checked repository's .lockcheck.toml
    engine = project.engine(rules, select, baseline=baseline is None and write_baseline is None)
    if baseline is not None:
        engine.config.baseline = load_baseline(baseline)
    known = without_baseline(engine)  # applied below, so that the summary can count it
    result = engine.check_paths(project.select_paths(paths))
    result.findings, hidden = apply_baseline(result.findings, known)
    if write_baseline is not None:
        try:
            write_baseline.write_text(baseline_json(result.findings), "utf-8")
        except OSError as exc:
            raise InputError(f"{write_baseline}: cannot write: {exc.strerror or exc}") from None
        if not quiet:  # on stderr: stdout is the report, in whatever format
            n = len({f.fingerprint for f in result.findings})
            sys.stderr.write(
                f"lockcheck: wrote {write_baseline}: {n} finding{'s' * (n != 1)} recorded;"
                f" `--baseline {write_baseline}` hides them\n"
            )
    if not no_sim:
        # imported here: the simulator (and pycparser) cost start-up time that
        # `--no-sim`, the hook and the other commands need not pay
        from lockcheck.sim.evidence import attach_evidence

        result.findings = attach_evidence(result.findings, engine)
    stats: dict[str, int] = result.stats.as_dict()
    if known is not None:
        stats["baselined"] = hidden
    if result.errors and not result.stats.files:
        pass  # nothing was analysed: the error lines say it all
    else:
        run = RunInfo(
            rules=tuple(r.spec for r in engine.rules if not select or r.spec.id in select),
            command=command_line(
                "check", *rule_options(rules, select), *["--no-sim"] * no_sim, *paths
            ),
        )
        use_color = want_color(color.value, sys.stdout.isatty(), os.environ)
        out = render_report(
            format.value,
            result.findings,
            stats,
            read_sources(result.findings),
            run,
            color=use_color,
            quiet=quiet,
        )
        sys.stdout.write(out)
    for err in result.errors:
        error_line(str(err))
    if result.errors:
        return 2
    strict_error = parse_error_line(result.stats) if strict else None
    if strict_error:
        error_line(strict_error)
        return 2
    if write_baseline is not None:
        return 0
    return exit_code(result.findings, fail_on)


@app.command()
def explain(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A C file.")],
    function: Annotated[str, typer.Argument(metavar="FUNCTION", help="The function to explain.")],
    rules: RulesOpt = None,
) -> int:
    """Show the held-lock set at every lock, check and act event of FUNCTION."""
    engine = engine_for(rules, None)
    source = read_c_source(file)
    analysis = engine.analyse_source(str(file), source)
    matches = [ff for ff in analysis.facts.functions if ff.fn.name == function]
    if not matches:
        raise InputError(f"{file}: no function named '{function}'")
    sys.stdout.write("\n".join(render_explain(ff) for ff in matches))
    return 0


def bundled_examples() -> Path:
    """The demo fixtures: inside the wheel, or in the source tree."""
    here = Path(__file__).resolve().parent.parent  # the lockcheck package
    for candidate in (here / "_fixtures" / "khugepaged", here.parent / "fixtures" / "khugepaged"):
        if candidate.is_dir():
            return candidate
    raise InputError("the bundled example fixtures are missing from this installation")


def shown_path(path: Path) -> str:
    """A bundled file as the user can reach it: relative to the cwd, else its bundled name."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return f"{path.parent.name}/{path.name}"  # the wheel's site-packages path helps nobody


@app.command()
def demo() -> int:
    """Run lockcheck on the bundled retract_page_tables() example."""
    base = bundled_examples()
    engine = engine_for(None, None)
    steps = [
        ("pre_series.c", "before the series: checks re-made under mmap_write_trylock()"),
        ("v1.c", "the posted v1: checks made before the page-table locks"),
        ("merged_fix.c", "the merged fix: both flags re-checked under pml and ptl"),
    ]
    for name, title in steps:
        label = shown_path(base / name)
        source = read_c_source(base / name)
        analysis = engine.analyse_source(label, source)
        stats = Stats()
        stats.add(analysis.model, analysis.facts)
        findings = engine.findings_for(analysis)
        lines = {label: source.decode("utf-8", "replace").splitlines()}
        sys.stdout.write(f"== {label}: {title}\n")
        sys.stdout.write(render_text(findings, stats.as_dict(), lines) + "\n")
    sys.stdout.write("== lock timeline of the v1 shape (lockcheck explain)\n")
    label = shown_path(base / "v1.c")
    analysis = engine.analyse_source(label, read_c_source(base / "v1.c"))
    for ff in analysis.facts.functions:
        sys.stdout.write(render_explain(ff))
    return 0
