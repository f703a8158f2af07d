"""The command line: argument handling and exit codes only.

`app` and the shared options live here; each command group is a module of
this package that registers itself on `app` (check.py: check, explain, demo,
rules).

Exit 0: clean. Exit 1: findings at or above --fail-on. Exit 2: usage or
input error, always as one `lockcheck: error: ...` line on stderr.
"""

from __future__ import annotations

import os
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.engine import Config, Engine
from lockcheck.errors import LockcheckError
from lockcheck.model.finding import SEVERITY_RANK, Finding

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Patch-review assistant for Linux kernel locking.",
)
rules_app = typer.Typer(no_args_is_help=True, help="List and describe rules.")
app.add_typer(rules_app, name="rules")


class Format(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"
    b4 = "b4"
    checkpatch = "checkpatch"
    email = "email"


class Color(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


class Level(StrEnum):
    note = "note"
    warning = "warning"
    error = "error"


RulesOpt = Annotated[
    list[str] | None,
    typer.Option("--rules", help="Rule pack name or TOML path (repeatable); default: mm."),
]
SelectOpt = Annotated[
    list[str] | None, typer.Option("--select", help="Run only these rule ids (repeatable).")
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
FailOnOpt = Annotated[
    Level, typer.Option("--fail-on", help="Lowest severity that makes the exit status 1.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")]
ColorOpt = Annotated[
    Color, typer.Option("--color", help="Colour text output: auto (a TTY without NO_COLOR).")
]


def engine_for(rules: list[str] | None, select: list[str] | None) -> Engine:
    return Engine(Config(packs=list(rules or ["mm"]), select=set(select) if select else None))


def exit_code(findings: list[Finding], fail_on: Level) -> int:
    floor = SEVERITY_RANK[fail_on.value]
    return 1 if any(SEVERITY_RANK.get(f.severity, 0) >= floor for f in findings) else 0


def read_sources(findings: list[Finding]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        if f.path not in out:
            try:
                out[f.path] = Path(f.path).read_text("utf-8", "replace").splitlines()
            except OSError:
                out[f.path] = []
    return out


def command_line(*words: str | Path) -> str:
    """The shell command that reproduces a run, for reports to quote."""
    return shlex.join(["lockcheck", *map(str, words)])


def rule_options(rules: list[str] | None, select: list[str] | None) -> list[str]:
    """`--rules`/`--select` as given, for `command_line`."""
    out: list[str] = []
    for r in rules or []:
        out += ["--rules", r]
    for s in select or []:
        out += ["--select", s]
    return out


def error_line(msg: str) -> None:
    """One line, whatever the message quotes: input text may hold newlines or escapes."""
    flat = " ".join(msg.split("\n")).strip()
    flat = "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in flat)
    sys.stderr.write(f"lockcheck: error: {flat}\n")


# Command modules register themselves on `app`; import them for that effect.
from lockcheck.cli import check as _check  # noqa: E402,F401,I001
from lockcheck.cli import rules as _rules  # noqa: E402,F401,I001
from lockcheck.cli import simulate as _simulate  # noqa: E402,F401,I001
from lockcheck.cli import annotate as _annotate  # noqa: E402,F401,I001
from lockcheck.cli import review as _review  # noqa: E402,F401,I001
from lockcheck.cli import hook as _hook  # noqa: E402,F401,I001
from lockcheck.cli import order as _order  # noqa: E402,F401,I001
from lockcheck.cli import merge as _merge  # noqa: E402,F401,I001


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure is one line and exit status 2."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="lockcheck")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        error_line((exc.format_message().strip().splitlines() or ["usage error"])[0])
        sys.exit(2)
    except LockcheckError as exc:
        error_line(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # never a traceback for the user
        if os.environ.get("LOCKCHECK_DEBUG"):
            raise
        error_line(
            f"internal error: {type(exc).__name__}: {exc} (set LOCKCHECK_DEBUG=1 for details)"
        )
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
