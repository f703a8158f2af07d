"""`hook install|uninstall|run`: lockcheck as a git pre-commit hook."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import (
    DEFAULT_FAIL_ON,
    App,
    Color,
    ColorOpt,
    FailOnOpt,
    RulesOpt,
    SelectOpt,
    app,
    command_line,
    exit_code,
    rule_options,
)
from lockcheck.hook import install, run_hook, uninstall
from lockcheck.model.finding import SEVERITY_RANK
from lockcheck.report import RunInfo, render_report
from lockcheck.report.text import want_color

hook_app = App(
    no_args_is_help=True,
    help="Block commits that introduce lock findings (a git pre-commit hook).",
)
app.add_typer(hook_app, name="hook")

RepoOpt = Annotated[
    Path, typer.Option("--repo", metavar="DIR", help="The git repository (default: the cwd's).")
]


@hook_app.command("install")
def hook_install(
    repo: RepoOpt = Path("."),
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a pre-commit hook lockcheck did not write.")
    ] = False,
) -> int:
    """Write .git/hooks/pre-commit running `lockcheck hook run` (no framework needed)."""
    path = install(repo, fail_on.value, force)
    sys.stdout.write(f"installed {path}\n")
    return 0


@hook_app.command("uninstall")
def hook_uninstall(repo: RepoOpt = Path(".")) -> int:
    """Remove the hook `lockcheck hook install` wrote (never a foreign one)."""
    path = uninstall(repo)
    sys.stdout.write(f"removed {path}\n" if path else "no pre-commit hook installed\n")
    return 0


@hook_app.command("run")
def hook_run(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE", help="Review only these staged files (the framework passes them)."
        ),
    ] = None,
    repo: RepoOpt = Path("."),
    from_ref: Annotated[
        str | None,
        typer.Option(
            "--from-ref",
            envvar="PRE_COMMIT_FROM_REF",
            metavar="REF",
            help="Review commits from this ref...",
        ),
    ] = None,
    to_ref: Annotated[
        str | None,
        typer.Option(
            "--to-ref",
            envvar="PRE_COMMIT_TO_REF",
            metavar="REF",
            help="...to this ref (not staged).",
        ),
    ] = None,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    color: ColorOpt = Color.auto,
) -> int:
    """Report the findings the staged change introduces; exit 1 at or above --fail-on.

    Prints nothing when the change introduces no finding.
    """
    run = run_hook(repo, list(files or []), rules, select, from_ref, to_ref)
    findings = [rf.finding for rf in run.result.findings]
    if not findings:
        return 0
    sources = {rf.finding.path: rf.image_text.splitlines() for rf in run.result.findings}
    info = RunInfo(
        rules=tuple(r.spec for r in run.engine.rules if not select or r.spec.id in select),
        command=command_line("hook", "run", *rule_options(rules, select), *(files or [])),
        review=run.result,
    )
    use_color = want_color(color.value, sys.stdout.isatty(), os.environ)
    out = render_report(
        "text", findings, run.result.stats.as_dict(), sources, info, color=use_color
    )
    sys.stdout.write(out)
    code = exit_code(findings, fail_on)
    if code:
        floor = SEVERITY_RANK[fail_on.value]
        n = sum(SEVERITY_RANK.get(f.severity, 0) >= floor for f in findings)
        sys.stdout.write(
            f"lockcheck: the {run.what} introduce {n} finding{'s' * (n != 1)} at or above"
            f" `{fail_on.value}`: fix, or suppress with `/* lockcheck: ignore RULE-ID reason */`"
            " (`--no-verify` skips the hook)\n"
        )
    return code
