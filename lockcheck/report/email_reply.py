"""`--format email`: the reply a kernel reviewer would send to a patch.

For each patch of the reviewed series that introduces findings, one
RFC 5322 message: `Subject: Re: [PATCH n/m] ...`, threaded under the patch
with In-Reply-To/References when it has a Message-ID, addressed to its
author. The body quotes the patch with `> ` the way reviewers do -- only the
files and hunks that something is said about, a few lines of context before
each comment, `...` where lines are left out -- and puts each comment
directly under the line it concerns, as plain 72-column prose. It is signed
off (after the `-- ` signature marker) with the command that reproduces it.

Comments are placed by the input line that shows each finding's site
(`ReviewedFinding.source`, i.e. `HunkLine.source_line`), so the reply quotes
the very lines the author sent. A finding whose site no hunk shows is
commented after the quoted hunks. With no finding the reply says so, to the
cover letter when there is one. Several replies are printed as an mbox.

Besides findings, the reply answers the question reviewers ask by hand
("with the new code we only hold ..."): a patch that changes the locks held
at a check site gets a reply even without a finding, and each changed or
new check it quotes carries a note with the held sets before and after.
"""

from __future__ import annotations

import email.policy
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.header import Header
from email.parser import HeaderParser
from email.utils import formataddr, getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

from lockcheck import __version__
from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter
from lockcheck.report.notes import context_note, finding_paragraphs, wrap

if TYPE_CHECKING:
    from lockcheck.inputs.patch import FilePatch, Hunk, Patch
    from lockcheck.review import SiteContext

CONTEXT_LINES = 3  # quoted lines kept above each commented line
DEFAULT_SENDER = "lockcheck <lockcheck@localhost>"
MBOX_FROM = "From lockcheck Mon Sep 17 00:00:00 2001"
ADDRESS_HEADERS = frozenset({"From", "To", "Cc"})


@dataclass(slots=True)
class _Reply:
    patch: Patch
    comments: dict[int, list[str]] = field(default_factory=dict)  # input line -> lines
    loose: list[list[str]] = field(default_factory=list)  # sites no hunk shows
    rules: set[str] = field(default_factory=set)


def header_line(name: str, value: str) -> str:
    """`Name: value`, folded at spaces like git does, RFC 2047 only where needed."""
    value = " ".join(value.split())
    if name in ADDRESS_HEADERS:
        value = ", ".join(
            formataddr((n, a), charset="utf-8") for n, a in getaddresses([value]) if a
        )
    charset = "us-ascii" if value.isascii() else "utf-8"
    folded = Header(value, charset, header_name=name, continuation_ws=" ").encode(linesep="\n")
    return f"{name}: {folded}"


def recipients(patch: Patch) -> list[str]:
    """The To: and Cc: of the patch mail, from its header block in the input.

    Kernel replies go to everyone the patch went to (the lists above all).
    The block is found by the patch's Message-ID and read by the stdlib
    header parser; a patch without one (a bare diff, an archive copy) has none.
    """
    if not patch.message_id:
        return []
    lines = patch.source_lines
    at = next(
        (
            i
            for i, ln in enumerate(lines)
            if ln.lower().startswith("message-id:") and patch.message_id in ln
        ),
        None,
    )
    if at is None:
        return []
    start = at
    while start > 0 and lines[start - 1].strip() and not lines[start - 1].startswith("From "):
        start -= 1
    end = at
    while end < len(lines) and lines[end].strip():
        end += 1
    headers = HeaderParser(policy=email.policy.default).parsestr("\n".join(lines[start:end]))
    values = [str(v) for key in ("To", "Cc") for v in headers.get_all(key, [])]
    return [formataddr(pair) for pair in getaddresses(values) if "@" in pair[1]]


def _file_header(fp: FilePatch) -> list[str]:
    old = f"a/{fp.old_path}" if fp.old_path else "/dev/null"
    new = f"b/{fp.new_path}" if fp.new_path else "/dev/null"
    return [f"diff --git a/{fp.path} b/{fp.path}", f"--- {old}", f"+++ {new}"]


def _quote_hunk(hunk: Hunk, comments: Mapping[int, list[str]]) -> list[str]:
    """The hunk's header and the lines around its comments, `...` for the rest."""
    marked = [i for i, ln in enumerate(hunk.lines) if ln.source_line in comments]
    keep: set[int] = set()
    for i in marked:
        keep.update(range(max(0, i - CONTEXT_LINES), i + 1))
    out = [f"> {hunk.header} {hunk.section}".rstrip()]
    last = -1
    for i, ln in enumerate(hunk.lines):
        if i not in keep:
            continue
        if i != last + 1:
            out.append("...")
        out.append(f"> {ln.kind}{ln.text}".rstrip())
        if ln.source_line is not None and ln.source_line in comments:
            out += ["", *comments[ln.source_line], ""]
        last = i
    if last != len(hunk.lines) - 1:
        out.append("...")
    return out


def quote_patch(patch: Patch, comments: Mapping[int, list[str]]) -> list[str]:
    """The files and hunks of `patch` that carry comments, quoted and trimmed."""
    out: list[str] = []
    for fp in patch.files:
        hunks = [h for h in fp.hunks if any(ln.source_line in comments for ln in h.lines)]
        if not hunks:
            continue
        out += [f"> {line}" for line in _file_header(fp)]
        for hunk in hunks:
            out += _quote_hunk(hunk, comments)  # each starts with its `@@` line
    while out and out[-1] == "":
        out.pop()
    return out


class EmailReporter(Reporter):
    name = "email"

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[Finding] = []

    def finding(self, f: Finding) -> None:
        self.findings.append(f)

    def _contexts(self) -> dict[tuple[int, int], SiteContext]:
        """Lock context by (patch, input line): what was held there before and after."""
        out: dict[tuple[int, int], SiteContext] = {}
        review = self.run.review
        for ctx in review.lock_context if review is not None else ():
            if ctx.source is not None:
                out.setdefault((id(ctx.patch), ctx.source.line), ctx)
        return out

    def _replies(self) -> list[_Reply]:
        review = self.run.review
        if review is None:
            return []
        reviewed = self.run.reviewed()
        contexts = self._contexts()
        replies: dict[int, _Reply] = {}
        for f in self.findings:
            rf = reviewed.get(f)
            if rf is None or rf.introduced_by is None:
                continue
            patch = rf.introduced_by
            reply = replies.setdefault(id(patch), _Reply(patch))
            reply.rules.add(f.rule)
            src = rf.source.line if rf.source is not None else None
            shown = src is not None and any(
                ln.source_line == src for fp in patch.files for h in fp.hunks for ln in h.lines
            )
            ctx = contexts.get((id(patch), src)) if src is not None else None
            text = wrap(finding_paragraphs(f, rf, ctx))
            if shown and src is not None:
                block = reply.comments.setdefault(src, [])
                reply.comments[src] = [*block, "", *text] if block else text
            else:
                where = f"{f.path}:{f.line}, in `{f.function}()`, outside the quoted hunks:"
                reply.loose.append([where, *text])
        # the reviewer's other question, "what is held here now?": a patch that
        # changes the locks at a check gets a reply, with every changed or new
        # check noted under its line
        checks = sorted(
            (c for c in contexts.values() if c.kind.startswith("check") and c.source is not None),
            key=lambda c: (id(c.patch), c.source.line if c.source else 0),
        )
        for ctx in checks:
            if ctx.change == "changed":
                replies.setdefault(id(ctx.patch), _Reply(ctx.patch))
        for ctx in checks:
            reply_for = replies.get(id(ctx.patch))
            line = ctx.source.line if ctx.source is not None else 0
            if reply_for is None or line in reply_for.comments:
                continue
            if ctx.change in ("changed", "added"):
                reply_for.comments[line] = wrap(context_note(ctx, self.run.rules))
        order = {id(p): i for i, p in enumerate(review.patches)}
        return sorted(replies.values(), key=lambda r: order.get(id(r.patch), 0))

    def _message(self, patch: Patch, body: list[str]) -> str:
        subject = patch.raw_subject or patch.subject
        headers = [("From", self.run.sender or DEFAULT_SENDER)]
        to = patch.author if patch.author and "@" in parseaddr(patch.author)[1] else ""
        if to:
            headers.append(("To", to))
        me = {parseaddr(to)[1].lower(), parseaddr(self.run.sender)[1].lower()}
        cc: list[str] = []
        for who in recipients(patch):
            addr = parseaddr(who)[1].lower()
            if addr not in me:
                me.add(addr)
                cc.append(who)
        if cc:
            headers.append(("Cc", ", ".join(cc)))
        headers.append(
            ("Subject", subject if subject.lower().startswith("re:") else f"Re: {subject}")
        )
        if self.run.date:
            headers.append(("Date", self.run.date))
        if patch.message_id:
            headers.append(("In-Reply-To", patch.message_id))
            headers.append(("References", " ".join([*patch.references, patch.message_id])))
        headers += [
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", "8bit"),
        ]
        head = "".join(header_line(name, value) + "\n" for name, value in headers)
        return head + "\n" + "\n".join(body) + "\n"

    def _signature(self, rules: set[str]) -> list[str]:
        review = self.run.review
        command = self.run.command
        if not command and review is not None and review.patches:
            command = f"lockcheck review {review.patches[0].path or review.patches[0].origin}"
        what = f" ({', '.join(sorted(rules))})" if rules else ""
        return ["", "-- ", f"lockcheck {__version__}{what}; to reproduce:", f"  {command}"]

    def _attribution(self, patch: Patch) -> list[str]:
        if patch.author and patch.date:
            return [f"On {patch.date}, {patch.author} wrote:"]
        if patch.author:
            return [f"{patch.author} wrote:"]
        return []

    def stop(self, stats: Mapping[str, Any]) -> str:
        replies = self._replies()
        messages: list[str] = []
        for reply in replies:
            body = [*self._attribution(reply.patch), *quote_patch(reply.patch, reply.comments)]
            for block in reply.loose:
                body += ["", *block]
            body += self._signature(reply.rules)
            messages.append(self._message(reply.patch, body))
        review = self.run.review
        if not messages and review is not None and review.patches:
            target = next((p for p in review.patches if not p.files), review.patches[0])
            n = len(review.reviewed)
            said = wrap(
                [
                    f"lockcheck found no new locking problems in "
                    f"{'this patch' if n == 1 else f'these {n} patches'}."
                ]
            )
            messages.append(self._message(target, [*said, *self._signature(set())]))
        if len(messages) == 1:
            return messages[0]
        return "".join(f"{MBOX_FROM}\n{_mboxrd(m)}\n" for m in messages)


def _mboxrd(message: str) -> str:
    """Escape body lines that an mbox reader would take for a message start."""
    lines = message.split("\n")
    return "\n".join(">" + ln if ln.lstrip(">").startswith("From ") else ln for ln in lines)
