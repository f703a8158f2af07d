"""`merge`: the shards of a `check --shard K/N` run joined into one report."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import (
    Color,
    ColorOpt,
    FailOnOpt,
    Format,
    FormatOpt,
    Level,
    QuietOpt,
    app,
    exit_code,
)
from lockcheck.cli.check import emit
from lockcheck.engine import Engine, FileResult, combine
from lockcheck.errors import InputError
from lockcheck.inputs.files import read_regular
from lockcheck.model.finding import Finding
from lockcheck.order.graph import LockGraph
from lockcheck.results import ShardResult, read_shard


class GraphFormat(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"


@app.command()
def merge(
    results: Annotated[
        list[Path], typer.Argument(help="The --format json outputs of every shard.")
    ],
    format: FormatOpt = Format.text,
    fail_on: FailOnOpt = Level.note,
    quiet: QuietOpt = False,
    color: ColorOpt = Color.auto,
    graph: Annotated[
        GraphFormat | None,
        typer.Option("--graph", help="Print the merged lock-order graph instead (text|json|dot)."),
    ] = None,
) -> int:
    """Join the shards of `check --shard K/N --format json` into the report one run makes.

    Every shard 1..N must be given once, made with the same command and settings.
    """
    if format is Format.email:
        raise InputError("--format email replies to a patch: use `lockcheck review PATCH`")
    shards = [_load(p) for p in results]
    first = shards[0]
    count = first.shard[1]
    seen: dict[int, Path] = {}
    for path, s in zip(results, shards, strict=True):
        if s.shard[1] != count or s.command != first.command or s.config != first.config:
            raise InputError(f"{path}: a shard of another run than {results[0]}")
        if s.shard[0] in seen:
            raise InputError(f"{path}: shard {s.shard[0]}/{count} given twice")
        seen[s.shard[0]] = path
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise InputError(f"shard {missing[0]}/{count} is missing")
    parts: list[FileResult] = [p for s in shards for p in s.parts]
    bad = [b for s in sorted(shards, key=lambda s: s.shard) for b in s.bad]
    result = combine(parts, bad)
    result.findings = sorted((f for s in shards for f in s.findings), key=Finding.sort_key)
    if graph is not None:
        lock_graph = LockGraph.build(e for p in result.parts for e in p.edges)
        if graph is GraphFormat.json:
            sys.stdout.write(json.dumps(lock_graph.as_dict(), indent=2, sort_keys=True) + "\n")
        elif graph is GraphFormat.dot:
            sys.stdout.write(lock_graph.dot())
        else:
            sys.stdout.write(lock_graph.text())
        return 1 if lock_graph.cycles() else 0
    engine = Engine(first.config)
    select = sorted(first.config.select) if first.config.select is not None else None
    code = emit(engine, select, result, format, fail_on, quiet, color, first.command, {})
    return code or exit_code(result.findings, fail_on)


def _load(path: Path) -> ShardResult:
    try:
        data = json.loads(read_regular(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    return read_shard(data, str(path))
