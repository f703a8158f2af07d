"""The command line: argument handling and exit codes only.

`app` and the shared options live here; each command group is a module of
this package that registers itself on `app` (check.py: check, explain, demo,
rules).

Exit 0: clean. Exit 1: findings at or above --fail-on. Exit 2: usage or
input error, always as one `lockcheck: error: ...` line on stderr.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

if TYPE_CHECKING:  # typer's own copy of click, for the help layout's annotations only
    from typer import _click as click

from lockcheck import __version__, tune_collector
from lockcheck.cli.coerce import quick_param
from lockcheck.engine import Config, Engine, Stats
from lockcheck.errors import LockcheckError
from lockcheck.inputs.files import DecodeNote
from lockcheck.model.finding import SEVERITY_RANK, Finding


class Command(TyperCommand):
    """Help laid out as git's and ruff's: `lockcheck check [OPTIONS] PATH...`, `--rules PACK`.

    Every argument and valued option gets an upper-case placeholder (or its
    choices, `[text|json]`) and flags get none, instead of typer's `{paths}`
    and `<bool>`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            quick_param(param)  # no pydantic adapters for values typer's helpers convert
            if param.metavar is not None or getattr(param, "is_flag", False):
                continue
            choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
            if choices and param.param_type_name == "option":
                param.metavar = "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
            else:
                param.metavar = (param.name or "value").upper()

    def get_help_option(self, ctx: click.Context) -> Any:
        option = super().get_help_option(ctx)
        quick_param(option)
        return option

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        out = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                out.append(self._placeholder(param, bracket=not param.required))
        return out

    @staticmethod
    def _placeholder(param: click.Parameter, bracket: bool = False) -> str:
        name = param.metavar or (param.name or "").upper()
        name = f"[{name}]" if bracket else name
        return name + ("..." if param.nargs != 1 else "")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        params = self.get_params(ctx)
        args = [
            (self._placeholder(p), getattr(p, "help", None) or "")
            for p in params
            if p.param_type_name == "argument"
        ]
        opts = [
            rec
            for p in params
            if p.param_type_name == "option" and (rec := p.get_help_record(ctx)) is not None
        ]
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)

    def get_short_help_str(self, limit: int = 45) -> str:
        """The docstring's first line, whole: the command list wraps it rather than cut it."""
        return self.short_help or (self.help or "").strip().split("\n", 1)[0]


class Group(TyperGroup):
    """A command group whose command list shows each summary whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            quick_param(param)

    def get_help_option(self, ctx: click.Context) -> Any:
        option = super().get_help_option(ctx)
        quick_param(option)
        return option

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or (self.help or "").strip().split("\n", 1)[0]


class App(typer.Typer):
    """A typer app in plain help (no panels) whose commands use `Command`'s layout."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(  # only `cls` gets a default
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"lockcheck {__version__}\n")
        raise typer.Exit(0)


app = App(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Patch-review assistant for Linux kernel locking.",
)
rules_app = App(no_args_is_help=True, help="List and describe rules.")
app.add_typer(rules_app, name="rules")


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Patch-review assistant for Linux kernel locking."""


class CheckFormat(StrEnum):
    """The formats of `check`: all but `email`, which replies to a patch."""

    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"
    b4 = "b4"
    checkpatch = "checkpatch"


class Format(StrEnum):
    """The formats of `review` (report.REVIEW_FORMATS)."""

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
    typer.Option(
        "--rules", metavar="PACK", help="Rule pack name or TOML path (repeatable); default: mm."
    ),
]
SelectOpt = Annotated[
    list[str] | None,
    typer.Option("--select", metavar="ID", help="Run only these rule ids (repeatable)."),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
CheckFormatOpt = Annotated[
    CheckFormat,
    typer.Option("--format", help="Output format (an email reply: `lockcheck review`)."),
]
FailOnOpt = Annotated[
    Level, typer.Option("--fail-on", help="Lowest severity that makes the exit status 1.")
]
# One default for check, review, annotate and the hook (see the README): every
# built-in rule reports at warning or error, so any finding fails; a rule a
# project demotes to `note` is shown without failing.
DEFAULT_FAIL_ON = Level.warning
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="Exit 2 when code could not be parsed (findings may be missing)."
    ),
]
ColorOpt = Annotated[
    Color, typer.Option("--color", help="Colour text output: auto (a TTY without NO_COLOR).")
]
ThreadOpt = Annotated[
    Path | None,
    typer.Option(
        "--thread",
        help="The thread or series the email replies to (an mbox, as `b4 mbox` writes, "
        "or a patch file): the whole patch it quotes is analysed.",
    ),
]


def engine_for(rules: list[str] | None, select: list[str] | None) -> Engine:
    return Engine(Config(packs=list(rules or ["mm"]), select=set(select) if select else None))


def parse_error_line(stats: Stats) -> str | None:
    """The `--strict` error for code the parser could not read, or None."""
    if not stats.parse_errors and not stats.parse_error_functions:
        return None
    n = stats.parse_errors
    return (
        f"--strict: {n} parse error{'s' * (n != 1)}, {stats.parse_error_functions} function"
        f"{'s' * (stats.parse_error_functions != 1)} affected: the findings may be incomplete"
    )


def without_baseline(engine: Engine) -> set[str] | None:
    """Take the engine's baseline, so that the command can count what it hides."""
    known, engine.config.baseline = engine.config.baseline, None
    return known


def apply_baseline(findings: list[Finding], known: set[str] | None) -> tuple[list[Finding], int]:
    """The findings a baseline does not list, and how many it hid."""
    if known is None:
        return findings, 0
    kept = [f for f in findings if f.fingerprint not in known]
    return kept, len(findings) - len(kept)


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


def _one_line(msg: str) -> str:
    """One line, whatever the message quotes: input text may hold newlines or escapes."""
    flat = " ".join(msg.split("\n")).strip()
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in flat)


def error_line(msg: str) -> None:
    sys.stderr.write(f"lockcheck: error: {_one_line(msg)}\n")


# Command modules register themselves on `app` when imported, in this order
# (the order of `lockcheck --help`). A run that names its command first
# imports that command's module alone: start-up is most of a review's and a
# commit hook's latency. Anything else (help, options first, an unknown
# name) imports them all.
COMMAND_MODULES = ("check", "rules", "simulate", "annotate", "review", "hook", "order", "merge")
_MODULE_OF = {"explain": "check", "demo": "check"}


def register_commands(argv: Sequence[str] | None = None) -> None:
    """Import the command modules a run with `argv` (default: sys.argv) needs."""
    args = list(sys.argv[1:] if argv is None else argv)
    first = args[0] if args else ""
    module = _MODULE_OF.get(first, first)
    if module in COMMAND_MODULES:
        importlib.import_module(f"lockcheck.cli.{module}")
        return
    for name in COMMAND_MODULES:
        importlib.import_module(f"lockcheck.cli.{name}")
    # in the order above, whichever a process imported first (`review` imports `annotate`)
    place = {f"lockcheck.cli.{name}": i for i, name in enumerate(COMMAND_MODULES)}
    app.registered_commands.sort(key=lambda c: place.get(getattr(c.callback, "__module__", ""), 0))


def _show_note(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A note from the pipeline (a source read with replacements) as one stderr line."""
    if issubclass(category, DecodeNote):
        flat = _one_line(str(message))
        if flat not in _notes_shown:  # a file read twice (the simulator's evidence) is one note
            _notes_shown.add(flat)
            sys.stderr.write(f"lockcheck: note: {flat}\n")
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning
_notes_shown: set[str] = set()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure is one line and exit status 2."""
    tune_collector()
    with warnings.catch_warnings():  # notes: each once per run, as `lockcheck: note:` lines
        warnings.simplefilter("always", DecodeNote)
        warnings.showwarning = _show_note
        _notes_shown.clear()
        _main(argv)


def _main(argv: list[str] | None) -> None:
    register_commands(argv)
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="lockcheck")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # `lockcheck`, `lockcheck hook`: help
            sys.stdout.write(exc.format_message().rstrip("\n") + "\n")
            sys.exit(0)
        msg = (exc.format_message().strip().splitlines() or ["usage error"])[0]
        msg = msg.replace("Value error, ", "")  # typer's prefix on a bad choice
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
        error_line(msg + hint)
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
