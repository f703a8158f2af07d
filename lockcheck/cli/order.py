"""`lockcheck order --claims`: the documented lock order against the code's."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import RulesOpt, app, engine_for, error_line
from lockcheck.cli.check import CacheDirOpt, JobsOpt, NoCacheOpt, run_files
from lockcheck.errors import InputError, LockcheckError
from lockcheck.inputs.files import collect_sources, read_c_source
from lockcheck.inputs.tree import kernel_root
from lockcheck.order.compare import OrderReport, render_text, tree_doc
from lockcheck.order.graph import LockGraph


class OrderFormat(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"


@app.command()
def order(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="C files or directories.")],
    claims: Annotated[
        bool,
        typer.Option("--claims", help="Compare the documented order with the code's (default)."),
    ] = True,
    tree: Annotated[
        Path | None,
        typer.Option(
            "--tree",
            metavar="DIR",
            help="Kernel tree whose mm/rmap.c and mm/filemap.c document it.",
        ),
    ] = None,
    graph: Annotated[
        bool,
        typer.Option(
            "--graph", help="The code's lock-order graph over all files, with its cycles."
        ),
    ] = False,
    rules: RulesOpt = None,
    format: Annotated[
        OrderFormat, typer.Option("--format", help="Output format (dot: --graph only).")
    ] = OrderFormat.text,
    jobs: JobsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> int:
    """Which documented lock-order edges the code confirms, contradicts, never exercises;
    or (--graph) the order the code takes locks in, tree-wide, and its cycles.

    Exit 1 when the code contradicts the documented order, or the graph has a cycle.
    """
    if graph:
        return _graph(paths, rules, format, jobs, cache_dir, no_cache)
    del claims  # comparing is what `order` does without --graph; the flag stays for scripts
    if format is OrderFormat.dot:
        raise InputError("--format dot draws the lock-order graph: add --graph")
    if tree is not None and not tree.is_dir():
        raise InputError(f"{tree}: --tree is not a directory")
    engine = engine_for(rules, None)
    files, bad = collect_sources(paths)
    errors: list[LockcheckError] = list(bad)  # reported after the files that worked, as check does
    if not files and not errors:
        raise InputError("no C files to compare")
    root = tree or (kernel_root(files[0]) if files else None)
    base = tree_doc(root, engine.vocab)
    report = OrderReport()
    analysed = 0
    for path in files:
        try:
            source = read_c_source(path)
        except LockcheckError as exc:
            errors.append(exc)
            continue
        analysis = engine.analyse_source(str(path), source, root)
        report.add_file(str(path), source, analysis.facts, base, engine.vocab, _label(path, root))
        analysed += 1
    data = report.as_dict()
    if analysed:
        if format is OrderFormat.json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        else:
            sys.stdout.write(render_text(data))
    for err in errors:
        error_line(str(err))
    if errors:
        return 2
    return 1 if data["contradicted"] else 0


def _graph(
    paths: list[Path],
    rules: list[str] | None,
    format: OrderFormat,
    jobs: int | None,
    cache_dir: Path | None,
    no_cache: bool,
) -> int:
    """The lock-order edges of every file checked, merged by lock class."""
    engine = engine_for(rules, None)
    result = run_files(engine, paths, jobs, cache_dir, no_cache)
    graph = LockGraph.build(e for part in result.parts for e in part.edges)
    if result.stats.files:
        if format is OrderFormat.json:
            sys.stdout.write(json.dumps(graph.as_dict(), indent=2, sort_keys=True) + "\n")
        elif format is OrderFormat.dot:
            sys.stdout.write(graph.dot())
        else:
            sys.stdout.write(graph.text())
    for err in result.errors:
        error_line(str(err))
    if result.errors:
        return 2
    return 1 if graph.cycles() else 0


def _label(path: Path, root: Path | None) -> str:
    """The file's path in the tree (`mm/rmap.c`), else as given."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)
