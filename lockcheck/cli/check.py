"""`check`, `explain`, `demo` and `rules`: the file-level commands."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockcheck.cli import (
    DEFAULT_FAIL_ON,
    CheckFormat,
    CheckFormatOpt,
    Color,
    ColorOpt,
    FailOnOpt,
    Format,
    Level,
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
from lockcheck.engine import CheckResult, Engine, Stats
from lockcheck.errors import InputError
from lockcheck.inputs.files import read_c_source
from lockcheck.report import RunInfo, render_report
from lockcheck.report.explain import render_explain
from lockcheck.report.text import render_text, want_color
from lockcheck.rules.baseline import baseline_json, load_baseline

if TYPE_CHECKING:  # the pool, cache and shard code load only when a check runs
    from lockcheck.parallel import Shard

JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", help="Worker processes (default: all cores).", min=1),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Result cache (default: $LOCKCHECK_CACHE_DIR or ~/.cache/lockcheck)."
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.")]


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
    jobs: JobsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Check only part K of N of the files; `lockcheck merge` joins the parts'"
            " --format json outputs.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Run on the Dask cluster at tcp://HOST:PORT (lockcheck[distributed]).",
        ),
    ] = None,
) -> int:
    """Check C files or directories for lock findings."""
    from lockcheck.parallel import Shard
    from lockcheck.results import shard_payload

    part = Shard.parse(shard) if shard is not None else None
    project = config_for(paths)  # the checked repository's .lockcheck.toml
    engine = project.engine(rules, select, baseline=baseline is None and write_baseline is None)
    if baseline is not None:
        engine.config.baseline = load_baseline(baseline)
    known = without_baseline(engine)  # applied below, so that the summary can count it
    result = run_files(
        engine, project.select_paths(paths), jobs, cache_dir, no_cache, part, scheduler
    )
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
    command = command_line("check", *rule_options(rules, select), *["--no-sim"] * no_sim, *paths)
    extra: dict[str, object] = {}
    if part is not None:
        extra["shard"] = shard_payload(part, engine, command, result)
    code = emit(engine, select, result, format, fail_on, quiet, color, command, extra, stats)
    if code is not None:
        return code
    strict_error = parse_error_line(result.stats) if strict else None
    if strict_error:
        error_line(strict_error)
        return 2
    if write_baseline is not None:
        return 0
    return exit_code(result.findings, fail_on)


def run_files(
    engine: Engine,
    paths: list[Path],
    jobs: int | None,
    cache_dir: Path | None,
    no_cache: bool,
    shard: Shard | None = None,
    scheduler: str | None = None,
) -> CheckResult:
    """The files' results through the pool, the cache or the cluster asked for."""
    from lockcheck.parallel import default_jobs, progress_bar, run_check

    cache = None
    engine.use_cache(None)
    with contextlib.ExitStack() as stack:
        if not no_cache:
            from lockcheck.cache import ResultCache, default_cache_dir

            directory = cache_dir or default_cache_dir()
            if directory is not None:
                cache = ResultCache(directory, engine)
                engine.use_cache(directory)
        elif (jobs or default_jobs()) > 1:
            # nothing read or kept, but the pool's workers still share what
            # one of them summarised (a header or a callee file reached only
            # in a later phase) through a store of this run's own
            stack.callback(engine.use_cache, None)
            engine.use_cache(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        with progress_bar(sys.stderr.isatty()) as (advance, total):
            return run_check(
                engine,
                paths,
                jobs=jobs or default_jobs(),
                shard=shard,
                cache=cache,
                scheduler=scheduler,
                progress=advance,
                on_total=total,
            )


def emit(
    engine: Engine,
    select: list[str] | None,
    result: CheckResult,
    format: CheckFormat | Format,
    fail_on: Level,
    quiet: bool,
    color: Color,
    command: str,
    extra: dict[str, object],
    stats: dict[str, int] | None = None,
) -> int | None:
    """Print the report and the error lines; 2 on errors, else None (exit by findings)."""
    if not result.errors or result.stats.files:  # else the error lines say it all
        run = RunInfo(
            rules=tuple(r.spec for r in engine.rules if not select or r.spec.id in select),
            command=command,
            extra=extra,
        )
        use_color = want_color(color.value, sys.stdout.isatty(), os.environ)
        out = render_report(
            format.value,
            result.findings,
            stats if stats is not None else result.stats.as_dict(),
            read_sources(result.findings),
            run,
            color=use_color,
            quiet=quiet,
        )
        sys.stdout.write(out)
    for err in result.errors:
        error_line(str(err))
    return 2 if result.errors else None


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
