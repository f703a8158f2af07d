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
    ThreadOpt,
    app,
    command_line,
    engine_for,
    exit_code,
    rule_options,
)
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree
from lockcheck.inputs.mailtext import decoded_mail
from lockcheck.inputs.patch import parse_patch_text, read_input
from lockcheck.inputs.quote import headerless_quote
from lockcheck.inputs.thread import read_thread
from lockcheck.reply import Thread, review_reply
from lockcheck.report import RunInfo
from lockcheck.report.annotate import render_annotated


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


def read_thread_opt(thread: Path | None) -> Thread | None:
    """The `--thread` file's messages, if one was given."""
    if thread is None:
        return None
    return Thread(str(thread), read_thread(thread))


def note_lines(notes: list[str]) -> None:
    """How the email was analysed, on stderr: standard output is the email itself."""
    for note in notes:
        sys.stderr.write(f"lockcheck: note: {' '.join(note.split())}\n")


@app.command()
def annotate(
    email_file: Annotated[Path, typer.Argument(metavar="EMAIL", help="A review email.")],
    tree: Annotated[
        Path | None,
        typer.Option(
            "--tree",
            metavar="DIR",
            help="The tree the patch applies to: a quote of whole hunks is applied to it; "
            "with --thread, the whole patch is.",
        ),
    ] = None,
    thread: ThreadOpt = None,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
) -> int:
    """Print EMAIL with lockcheck's notes under the quoted lines they concern.

    Without --tree or --thread only the quoted lines are analysed (fragment
    mode). A multipart or transfer-encoded mail (base64, quoted-printable)
    is printed as its decoded text. How the email was read is said on
    standard error.
    """
    raw, origin = read_input(email_file)  # once: `<(...)` cannot be read twice
    data = decoded_mail(raw, origin)
    text = data.decode("utf-8", "surrogateescape")
    path = "" if origin == "<stdin>" else origin
    patches = parse_patch_text(data.decode("utf-8", "replace"), origin, path)
    reply = next((p for p in patches if p.files), None)
    if reply is None and thread is not None:  # lines quoted without their @@ header
        reply = next((q for q in map(headerless_quote, patches) if q.files), None)
    if reply is None:
        raise InputError(f"{email_file}: no quoted patch to annotate")
    if tree is not None and not tree.is_dir():
        raise InputError(f"{tree}: not a directory")
    thread_obj = read_thread_opt(thread)
    engine = engine_for(rules, select)
    source = reply.path or reply.origin
    tree_obj = DirTree(tree) if tree is not None else None
    rr = review_reply(engine, reply, tree_obj, thread_obj, source)
    findings = [rf.finding for rf in rr.result.findings]
    opts: list[str | Path] = []
    for flag, value in (("--tree", tree), ("--thread", thread)):
        if value is not None:
            opts += [flag, value]
    run = RunInfo(
        rules=tuple(r.spec for r in engine.rules if not select or r.spec.id in select),
        command=command_line("annotate", *rule_options(rules, select), *opts, email_file),
        review=rr.result,
    )
    out = render_annotated(text, source, findings, run)
    sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
    note_lines(rr.notes())
    return exit_code(findings, fail_on)
