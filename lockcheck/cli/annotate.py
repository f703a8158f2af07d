"""`lockcheck annotate EMAIL`: a review email, returned with lockcheck's notes.

Also home of the two things every mail-producing command needs and a
reporter may not compute itself: who the reply is from and its date.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Annotated

import typer

from lockcheck.cli import (
    DEFAULT_FAIL_ON,
    FailOnOpt,
    RulesOpt,
    SelectOpt,
    app,
    command_line,
    engine_for,
    exit_code,
    rule_options,
)
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree
from lockcheck.inputs.patch import parse_patch_text, read_input
from lockcheck.report import RunInfo
from lockcheck.report.annotate import render_annotated
from lockcheck.review import review


def _git_config(key: str) -> str:
    try:
        res = subprocess.run(
            ["git", "config", "--get", key], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def reply_sender() -> str:
    """From: as `git send-email` would take it: git's user.name and user.email."""
    name = os.environ.get("GIT_AUTHOR_NAME") or _git_config("user.name")
    addr = os.environ.get("GIT_AUTHOR_EMAIL") or _git_config("user.email")
    return formataddr((name, addr)) if addr else ""


def reply_date() -> str:
    """Date: now, or SOURCE_DATE_EPOCH when set, so that output can be reproduced."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = float(epoch) if epoch.isdigit() else time.time()
    return format_datetime(datetime.fromtimestamp(when, UTC))


@app.command()
def annotate(
    email_file: Annotated[Path, typer.Argument(metavar="EMAIL", help="A review email.")],
    tree: Annotated[
        Path | None,
        typer.Option("--tree", metavar="DIR", help="Apply the quoted patch to this directory."),
    ] = None,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
) -> int:
    """Print EMAIL with lockcheck's notes under the quoted lines they concern."""
    data, origin = read_input(email_file)  # once: `<(...)` cannot be read twice
    text = data.decode("utf-8", "surrogateescape")
    path = "" if origin == "<stdin>" else origin
    patches = parse_patch_text(data.decode("utf-8", "replace"), origin, path)
    if not any(p.files for p in patches):
        raise InputError(f"{email_file}: no quoted patch to annotate")
    if tree is not None and not tree.is_dir():
        raise InputError(f"{tree}: not a directory")
    engine = engine_for(rules, select)
    result = review(engine, patches, DirTree(tree) if tree is not None else None)
    findings = [rf.finding for rf in result.findings]
    tree_opt = ["--tree", str(tree)] if tree is not None else []
    run = RunInfo(
        rules=tuple(r.spec for r in engine.rules if not select or r.spec.id in select),
        command=command_line("annotate", *rule_options(rules, select), *tree_opt, email_file),
        review=result,
    )
    source = patches[0].path or patches[0].origin
    out = render_annotated(text, source, findings, run)
    sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
    return exit_code(findings, fail_on)
