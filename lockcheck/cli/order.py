"""`lockcheck order --claims`: the documented lock order against the code's."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import RulesOpt, app, engine_for, error_line
from lockcheck.errors import InputError, LockcheckError
from lockcheck.inputs.files import collect_sources, read_c_source
from lockcheck.inputs.tree import kernel_root
from lockcheck.order.compare import OrderReport, render_text, tree_doc


class OrderFormat(StrEnum):
    text = "text"
    json = "json"


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
    rules: RulesOpt = None,
    format: Annotated[OrderFormat, typer.Option("--format", help="Output format.")] = (
        OrderFormat.text
    ),
) -> int:
    """Which documented lock-order edges the code confirms, contradicts, never exercises.

    Exit 1 when the code contradicts the documented order.
    """
    del claims  # comparing is all `order` does; the flag stays for scripts that pass it
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


def _label(path: Path, root: Path | None) -> str:
    """The file's path in the tree (`mm/rmap.c`), else as given."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)
