"""`rules list`, `rules show ID` and `rules docs DIR`: what the loaded rules are."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import RulesOpt, engine_for, rules_app
from lockcheck.errors import InputError, RuleError
from lockcheck.rules.docs import render_text, write_docs
from lockcheck.rules.fixtures import rule_examples


@rules_app.command("list")
def rules_list(rules: RulesOpt = None) -> int:
    """List the rules of the selected packs."""
    engine = engine_for(rules, None)
    for rule in engine.rules:
        s = rule.spec
        sys.stdout.write(f"{s.id:<26} {s.severity:<8} {s.kind:<20} {s.summary}\n")
    return 0


@rules_app.command("show")
def rules_show(
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="A rule id.")],
    rules: RulesOpt = None,
) -> int:
    """Describe one rule: what it finds, why, examples, limits, and its fixtures."""
    engine = engine_for(rules, None)
    match = [r for r in engine.rules if r.spec.id == rule_id]
    if not match:
        raise RuleError(f"unknown rule id '{rule_id}' (see `lockcheck rules list`)")
    sys.stdout.write(render_text(match[0], rule_examples(rule_id)))
    return 0


@rules_app.command("docs")
def rules_docs(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write one page per rule.")
    ],
    rules: RulesOpt = None,
) -> int:
    """Regenerate the Markdown rule pages (docs/rules) from the rule objects."""
    engine = engine_for(rules, None)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    try:
        written = write_docs(engine.rules, directory)
    except OSError as exc:  # a directory that cannot be made or written is bad input
        where = exc.filename or directory
        raise InputError(f"{where}: cannot write the rule pages: {exc.strerror or exc}") from None
    for path in written:
        sys.stdout.write(f"{path}\n")
    return 0
