"""The reviewer's prose: what lockcheck says about one site, for mail formats.

Shared by the email reply and `lockcheck annotate`, so that a note reads the
same wherever it is inserted. Paragraphs are plain sentences; callers wrap
them (72 columns for mail, as kernel lists expect).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.rules.check_under_lock import lock_phrase

if TYPE_CHECKING:
    from lockcheck.review import ReviewedFinding, SiteContext

WIDTH = 72


def wrap(paragraphs: Sequence[str], width: int = WIDTH, prefix: str = "") -> list[str]:
    """Paragraphs filled to `width` (prefix included), a blank line between them."""
    out: list[str] = []
    for i, para in enumerate(paragraphs):
        if i:
            out.append(prefix.rstrip())
        out.extend(
            textwrap.wrap(
                para,
                width=width,
                initial_indent=prefix,
                subsequent_indent=prefix,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [prefix.rstrip()]
        )
    return out


def held_set(held: Sequence[str] | None) -> str:
    return "{" + ", ".join(held or ()) + "}"


def rule_wants(kinds: str, rules: Sequence[RuleSpec]) -> str | None:
    """What the check-under-lock rules about this site's flag require, if any."""
    flags = {k.split()[1] for k in kinds.split(", ") if k.startswith("check ")}
    wants = []
    for spec in sorted(rules, key=lambda s: s.id):
        if spec.kind != "check-under-lock" or spec.params.get("flag") not in flags:
            continue
        locks = " or ".join(lock_phrase(w) for w in spec.params.get("locks", ()))
        wants.append(
            f"rule {spec.id} wants {locks} held where this test decides a page-table removal"
        )
    return "; ".join(wants) + "." if wants else None


def context_paragraph(ctx: SiteContext) -> str:
    """How the patch changed the locks held at one check or act site."""
    what = f"`{ctx.site}` ({ctx.kind})"
    if ctx.change == "added":
        return f"{what} is new here and runs holding {held_set(ctx.after)}."
    if ctx.change == "removed":
        return f"{what} is removed; it ran holding {held_set(ctx.before)}."
    if ctx.change == "unchanged":
        return f"{what} runs holding {held_set(ctx.after)}, as before this patch."
    return (
        f"{what}: before this patch it ran holding {held_set(ctx.before)}; "
        f"now it runs holding {held_set(ctx.after)} ({ctx.difference()})."
    )


def finding_paragraphs(
    f: Finding, rf: ReviewedFinding | None, ctx: SiteContext | None, lead: str = ""
) -> list[str]:
    """A finding as a reviewer would put it under the line."""
    lead = lead or f"lockcheck [{f.rule}]: "
    paras = [f"{lead}{f.message[:1].upper()}{f.message[1:]}."]
    if ctx is not None and ctx.change == "changed":
        paras.append(context_paragraph(ctx))
    if f.related:
        sites = [f"{r.path or f.path}:{r.line} ({r.message})" for r in f.related]
        paras.append(f"In `{f.function}()`, see " + ", ".join(sites) + ".")
    if f.evidence:
        paras.append(f"Evidence: {f.evidence}.")
    if rf is not None and rf.fixed_by is not None:
        paras.append(
            f'"{rf.fixed_by.label}" later in the series fixes this, but the series '
            "should not break in between (bisection)."
        )
    return paras


def context_note(
    ctx: SiteContext, rules: Sequence[RuleSpec], lead: str = "lockcheck: "
) -> list[str]:
    """A lock-context note for a site without a finding."""
    paras = [f"{lead}{context_paragraph(ctx)}"]
    wants = rule_wants(ctx.kind, rules)
    if wants and ctx.change in ("added", "changed"):
        paras.append(wants[:1].upper() + wants[1:])
    return paras
