"""`review`: the findings a patch or series introduces, and its lock context."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from lockcheck.cli import (
    DEFAULT_FAIL_ON,
    Color,
    ColorOpt,
    FailOnOpt,
    Format,
    FormatOpt,
    QuietOpt,
    RulesOpt,
    SelectOpt,
    StrictOpt,
    ThreadOpt,
    app,
    command_line,
    error_line,
    exit_code,
    parse_error_line,
    rule_options,
    without_baseline,
)
from lockcheck.config import find_config, patch_root
from lockcheck.engine import Engine
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree, GitTree, Tree, resolve_paths
from lockcheck.inputs.files import C_SUFFIXES
from lockcheck.inputs.gitrepo import commit_range, staged
from lockcheck.inputs.patch import Patch, order_series, read_patches
from lockcheck.inputs.quote import headerless_quote
from lockcheck.report import RunInfo, render_report
from lockcheck.report.text import printable, want_color
from lockcheck.review import ReviewResult
from lockcheck.review import review as run_review


def _inputs(
    patches: list[Path],
    tree: Path | None,
    base: str | None,
    git_range: str | None,
    index: bool,
    unread: list[InputError] | None = None,
) -> tuple[Tree | None, list[Patch]]:
    """The tree and the series; PATCH files that cannot be read go to `unread` if given."""
    if sum(bool(x) for x in (patches, git_range, index)) != 1:
        raise InputError("give PATCH files, or --git A..B, or --staged (exactly one of them)")
    repo = tree or Path(".")
    if git_range:
        if base:
            raise InputError("--base does not go with --git: the range's start is the base")
        return commit_range(repo, git_range)
    if index:
        if base:
            raise InputError("--base does not go with --staged: the base is HEAD")
        return staged(repo)
    read: list[Patch] = []
    for p in patches:
        try:
            got = read_patches(p)
            if not any(q.files for q in got):
                raise InputError(
                    f"{p}: no diff in it (a cover letter, or a reply quoting no patch)"
                )
        except InputError as exc:
            if unread is None or len(patches) == 1:
                raise
            unread.append(exc)  # the other inputs are still reviewed
            continue
        read.extend(got)
    return _tree(tree, base), order_series(read)


def _tree(tree: Path | None, base: str | None) -> Tree | None:
    """The --tree directory, or its revision --base when given."""
    if base is not None:
        return GitTree.at(tree or Path("."), base)
    if tree is not None:
        if not tree.is_dir():
            raise InputError(f"{tree}: no such directory")
        return DirTree(tree)
    return None


def with_evidence(result: ReviewResult, engine: Engine) -> None:
    """The simulator's verdict on each finding of an applied patch, as `check` gives it.

    Run on the post-image the finding was found in (a file that is not on
    disk); findings of fragments are left without: their lines are not code.
    """
    if result.tree is None:
        return
    groups: dict[tuple[str, str], list[int]] = {}
    for i, rf in enumerate(result.findings):
        if rf.image_text and rf.finding.path.endswith(C_SUFFIXES):
            groups.setdefault((rf.finding.path, rf.image_text), []).append(i)
    if not groups:
        return
    # imported here, and only for findings: the simulator costs start-up time
    # a clean review (or `--no-sim`) need not pay
    from lockcheck.sim.evidence import attach_evidence

    for (path, text), idxs in groups.items():
        models = result.models.get((path, text))
        if models is None:  # a finding of a pre-image (one a patch fixes)
            source = text.encode("utf-8", "surrogateescape")
            models = engine.analyse_source(path, source).model.functions
        functions: dict[str, Any] = {}
        for fn in models:
            functions.setdefault(fn.name, fn)
        got = attach_evidence(
            [result.findings[i].finding for i in idxs], engine, functions={path: functions}
        )
        for i, f in zip(idxs, got, strict=True):
            result.findings[i] = replace(result.findings[i], finding=f)


def _sources(result: ReviewResult) -> dict[str, list[str]]:
    """Source lines for excerpts, where one text per path is known."""
    texts: dict[str, set[str]] = {}
    for rf in result.findings:
        texts.setdefault(rf.finding.path, set()).add(rf.image_text)
    return {p: next(iter(t)).splitlines() for p, t in texts.items() if len(t) == 1}


def _patch_name(p: Patch | None) -> str:
    return p.label if p is not None else "-"


def render_review_text(result: ReviewResult, findings_text: str) -> str:
    out: list[str] = []
    block = -1
    reviewed = result.reviewed
    where = f" onto {result.tree}" if result.tree else ""
    out.append(f"review of {len(reviewed)} patch{'es' if len(reviewed) != 1 else ''}{where}:")
    for p in reviewed:
        out.append(f"  {p.label}")
    for note in result.notes():
        out.append(f"note: {note}")
    out.append("")
    attributed = [rf for rf in result.findings if rf.introduced_by or rf.fixed_by]
    if findings_text.strip():
        out.append(findings_text.rstrip("\n"))  # made printable by its reporter
        block = len(out) - 1
        out.append("")
    if attributed and len(reviewed) > 1 or any(rf.fixed_by for rf in result.findings):
        out.append("attribution:")
        for rf in result.findings:
            f = rf.finding
            out.append(f"  {f.path}:{f.line}: [{f.rule}] in `{f.function}()`")
            out.append(f"    introduced by: {_patch_name(rf.introduced_by)}")
            out.append(f"    fixed by:      {_patch_name(rf.fixed_by)}")
        out.append("")
    out.append("lock context (check and act sites of the changed functions):")
    if not result.lock_context:
        out.append("  no check or act sites in the changed functions")
    current: Patch | None = None
    unchanged = 0
    for ctx in result.lock_context:
        if ctx.change == "unchanged":
            unchanged += 1
            continue
        if ctx.patch is not current and len(reviewed) > 1:
            out.append(f"  {ctx.patch.label}")
            current = ctx.patch
        before = "{" + ", ".join(ctx.before) + "}" if ctx.before is not None else "(absent)"
        after = "{" + ", ".join(ctx.after) + "}" if ctx.after is not None else "(absent)"
        when = " (before the patch)" if ctx.after is None else ""
        out.append(
            f"  {ctx.location.path}:{ctx.location.line}{when}: `{ctx.site}` "
            f"in `{ctx.function}()` [{ctx.kind}]"
        )
        out.append(f"    before {before}; after {after}")
        out.append(f"    {ctx.difference()}")
    if unchanged:
        out.append(f"  ({unchanged} more site{'s' if unchanged != 1 else ''} with unchanged locks)")
    # subjects, labels and sites are input text: no control characters reach the terminal
    return "\n".join(ln if i == block else printable(ln) for i, ln in enumerate(out)) + "\n"


def _extra(result: ReviewResult) -> dict[str, Any]:
    return {
        "review": {
            "mode": result.mode,
            "notes": result.notes(),
            "tree": result.tree,
            "patches": [
                {
                    "subject": p.subject,
                    "number": p.number,
                    "total": p.total,
                    "origin": p.origin,
                    "message_id": p.message_id,
                    "files": [fp.path for fp in p.files],
                    "fragment": any(p is q for q in result.fragment),
                }
                for p in result.reviewed
            ],
        },
        "lock_context": [ctx.as_dict() for ctx in result.lock_context],
    }


@app.command()
def review(
    patches: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATCH",
            help="Patch files: diffs, format-patch mails, mboxes, replies; - is stdin.",
        ),
    ] = None,
    tree: Annotated[
        Path | None,
        typer.Option(
            "--tree", metavar="DIR", help="The tree the patches apply to (a directory or git repo)."
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="REV",
            help="Apply to this revision of the --tree git repo (default .).",
        ),
    ] = None,
    git_range: Annotated[
        str | None,
        typer.Option(
            "--git", metavar="A..B", help="Review the commits A..B of the --tree repo (default .)."
        ),
    ] = None,
    index: Annotated[
        bool, typer.Option("--staged", help="Review what is staged in the --tree repo (default .).")
    ] = False,
    thread: ThreadOpt = None,
    strip: Annotated[
        int | None,
        typer.Option(
            "-p",
            "--strip",
            metavar="N",
            help="Strip N leading components from a plain diff's file names, as patch -pN"
            " (default: guess).",
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also show findings the patches did not introduce.")
    ] = False,
    no_sim: Annotated[
        bool, typer.Option("--no-sim", help="No simulator evidence on findings.")
    ] = False,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    format: FormatOpt = Format.text,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    quiet: QuietOpt = False,
    color: ColorOpt = Color.auto,
    strict: StrictOpt = False,
) -> int:
    """Review a patch or series: the lock findings it introduces and the lock context.

    A series is applied in `[PATCH n/m]` order. Exit status 1 when a patch
    introduces a finding at or above --fail-on, even if a later patch of the
    series fixes it (it breaks bisection); the output says which patch does.
    A reply quoting whole hunks is applied like the patch; with --thread, a
    reply is reviewed as the whole patch it answers.
    """
    project = find_config(tree or Path("."))  # the reviewed repository's .lockcheck.toml
    engine = project.engine(rules, select)
    known = without_baseline(engine)  # applied below, so that the summary can count it
    unread: list[InputError] = []
    if thread is not None:
        if len(patches or []) != 1 or git_range or index:
            raise InputError("--thread goes with one reply EMAIL (the message answering a patch)")
        # imported here: only a reply with its thread needs them (start-up time)
        from lockcheck.cli.annotate import read_thread_opt
        from lockcheck.reply import review_reply

        assert patches is not None
        got = read_patches(patches[0])
        reply = next((p for p in map(headerless_quote, got) if p.files), got[0])
        tree_obj = _tree(tree, base)
        thread_obj = read_thread_opt(thread)
        assert thread_obj is not None
        source = reply.path or reply.origin
        result = review_reply(engine, reply, tree_obj, thread_obj, source, False).result
    else:
        tree_obj, series = _inputs(list(patches or []), tree, base, git_range, index, unread)
        series = resolve_paths(series, tree_obj, strip)  # `diff -u a.orig a` names as the tree does
        series = project.select_patches(series, patch_root(tree_obj, Path(".")))
        result = run_review(engine, series, tree_obj, show_all, keep_going=True)
    shown = [rf for rf in result.findings if known is None or rf.finding.fingerprint not in known]
    hidden, result.findings = len(result.findings) - len(shown), shown
    if not no_sim:
        with_evidence(result, engine)
    errors = [*unread, *result.errors]
    result.stats.input_errors = len(errors)
    if errors and not result.reviewed:  # nothing was reviewed: the error lines say it all
        for err in errors:
            error_line(str(err))
        return 2
    findings = [rf.finding for rf in result.findings]
    stats: dict[str, int] = result.stats.as_dict()
    if known is not None:
        stats["baselined"] = hidden
    words: list[str | Path] = ["review", *rule_options(rules, select)]
    for flag, value in (
        ("--tree", tree),
        ("--base", base),
        ("--git", git_range),
        ("--thread", thread),
    ):
        if value is not None:
            words += [flag, value]
    words += ["--staged"] * index + ["--all"] * show_all + ["--no-sim"] * no_sim
    words += list(patches or [])
    sender = date = ""
    if format is Format.email:  # who the reply is from, and when: as `annotate` does it
        from lockcheck.cli.annotate import reply_date, reply_sender

        sender, date = reply_sender(), reply_date()
    run = RunInfo(
        rules=tuple(r.spec for r in engine.rules if not select or r.spec.id in select),
        command=command_line(*words),
        extra=_extra(result),
        review=result,
        sender=sender,
        date=date,
    )
    use_color = want_color(color.value, sys.stdout.isatty(), os.environ)
    out = render_report(
        format.value,
        findings,
        stats,
        _sources(result),
        run,
        color=use_color,
        quiet=quiet,
    )
    if format is Format.text:
        out = render_review_text(result, out if findings or not quiet else "")
    sys.stdout.write(out)
    for err in errors:
        error_line(str(err))
    if errors:
        return 2
    strict_error = parse_error_line(result.stats) if strict else None
    if strict_error:
        error_line(strict_error)
        return 2
    return exit_code(findings, fail_on)
