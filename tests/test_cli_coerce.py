"""cli/coerce.py converts option values as typer itself does, without pydantic up front."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer._click import Context
from typer._coercion import build_runtime_param

from lockcheck.cli import app, register_commands
from lockcheck.cli.coerce import QuickParam


def _params() -> list[tuple[Any, Any]]:
    """(command, parameter) for every parameter of every command."""
    register_commands(["--help"])  # all of them
    out = []
    stack = [typer.main.get_command(app)]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for p in cmd.params:
            out.append((cmd, p))
    return out


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "value", fn()
    except Exception as exc:  # the error typer shows the user
        return type(exc).__name__, str(exc)


def test_every_parameter_converts_as_typer_does(tmp_path: Path) -> None:
    afile = tmp_path / "a.patch"
    afile.write_text("x\n")
    values: list[Any] = [
        None,
        str(afile),
        str(tmp_path),
        str(tmp_path / "missing"),
        "-",
        "",
        "text",
        "json",
        "TEXT",
        "warning",
        "never",
        "bogus",
        "12",
        "-3",
        "x1",
        "a..b",
        (str(afile), str(tmp_path / "missing")),
        ("mm", "lock-balance"),
        (),
    ]
    quick = 0
    compared = 0
    for cmd, param in _params():
        runtime = getattr(param, "_runtime_param", None)
        if not isinstance(runtime, QuickParam):
            continue
        quick += 1
        ctx = Context(cmd, info_name=cmd.name)
        for value in values:
            if param.type_descriptor.annotation is bool and isinstance(value, bool):
                continue  # typer converts no bool flag's bool
            real = build_runtime_param(param.type_descriptor)
            want = _outcome(partial(real.coerce, value, param=param, ctx=ctx))
            got = _outcome(partial(runtime.coerce, value, param=param, ctx=ctx))
            assert got == want, (cmd.name, param.name, value)
            compared += 1
    assert quick > 30 and compared > 500


def test_a_review_imports_no_pydantic(tmp_path: Path) -> None:
    """The review, its commit hook's command included, runs without pydantic."""
    (tmp_path / "a.c").write_text("int f(void)\n{\n\treturn 0;\n}\n")
    patch = tmp_path / "p.diff"
    patch.write_text(
        "--- a/a.c\n+++ b/a.c\n@@ -1,4 +1,4 @@\n int f(void)\n {\n-\treturn 0;\n+\treturn 1;\n }\n"
    )
    code = (
        "import sys; from lockcheck.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print('pydantic' in sys.modules, e.code)\n"
    )
    argv = ["review", str(patch), "--tree", str(tmp_path), "--fail-on", "error", "--no-sim"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
    )
    assert proc.stdout.splitlines()[-1] == "False 0", proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["review", "--format", "bogus", "x.patch"], "'bogus' is not one of"),
        (["review", "--strip", "x", "x.patch"], "--strip"),
    ],
)
def test_bad_values_keep_typer_messages(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lockcheck", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("lockcheck: error: ") and message in proc.stderr, proc.stderr
