"""Read patches: unified diffs, `git format-patch` mails, mbox series, quoted replies.

Every input becomes a list of `Patch` objects, so the review step never needs
to know which transport a change came in. The model is also what renderers
build on (a kernel-style reply, or notes inserted into an existing email):

* `Patch` — one message or diff. `subject` is the subject without `Re:` and
  the `[PATCH v2 n/m]` tag; `raw_subject` keeps them; `number`/`total` are
  the `n/m` of the tag (None when absent); `message_id`, `in_reply_to`,
  `references`, `author`, `date` come from the mail headers (None or empty
  for a bare diff); `message` is the commit message (the text before the
  diff); `files` holds the diff; `origin` names the input (`FILE`, or
  `FILE#k` for the k-th message of an mbox, 1-based); `path` is the input
  file; `quoted` is True when the diff was recovered from the quoted
  (`> `, `> > `) lines of a reply, whose hunks may be elided with `...`.
  `label` is how reports and errors name the patch.
* `FilePatch` — `old_path`/`new_path` (None for /dev/null), `hunks`, and
  `path_guessed` when a quoted reply never names the file (the path is then
  taken from the subject's `mm/khugepaged:` prefix).
* `Hunk` — `old_start, old_len, new_start, new_len, section` (the text
  after the second `@@`, usually the enclosing function), `lines`, and
  `source_line` (where its `@@` line is in the input file).
* `HunkLine` — `kind` (" " context, "-" removed, "+" added), `text` (no diff
  prefix, no quote marks, no newline), `old_line`/`new_line` (the line in the
  pre-/post-image; None where the line is not in that image or an elision
  made the number unknown), `source_line` (1-based line of the input file
  holding it; None when a transfer encoding hides it), `gap_before` (an
  elision such as `...` precedes it in a quoted reply).

To annotate an existing email, read it with `read_patches(path)`; the quoted
lines of `Patch.files[*].hunks[*].lines` carry `source_line`, the index into
`Patch.source_lines` (the input text, one entry per line) under which a note
belongs. To write a reply, quote `Hunk.lines` and thread it with
`message_id`/`references`.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import sys
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, cast

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from lockcheck.errors import InputError
from lockcheck.inputs.files import read_bounded

LineKind = Literal[" ", "-", "+"]

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
# `...`, `[...]`, `<snip>` and friends: the quoter left something out here.
ELISION_RE = re.compile(
    r"^\s*(\.\.\.+|\[\s*\.\.\.+\s*\]|<\s*snip\s*>|\[\s*snip\s*\]|\[\.\.\. *snip.*\])\s*$"
)
QUOTE_RE = re.compile(r"^((?:[ \t]?>)+[ ]?)")
TAG_RE = re.compile(r"^\s*\[([^\]]*)\]\s*")
REPLY_RE = re.compile(r"^\s*(?:re|fwd?|aw|sv)\s*:\s*", re.IGNORECASE)
NUMBER_RE = re.compile(r"\b(\d+)\s*/\s*(\d+)\b")
SUBSYSTEM_RE = re.compile(r"^([\w.-]+(?:/[\w.-]+)+):")
UNQUOTED_DIFF_RE = re.compile(r"^(?:diff --git |--- \S.*\n\+\+\+ |@@ -\d)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class HunkLine:
    kind: LineKind
    text: str
    old_line: int | None
    new_line: int | None
    source_line: int | None = None
    gap_before: bool = False


@dataclass(frozen=True, slots=True)
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    section: str
    lines: tuple[HunkLine, ...]
    source_line: int | None = None

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"


@dataclass(frozen=True, slots=True)
class FilePatch:
    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]
    path_guessed: bool = False
    # a plain (not git) diff's names as written, a/ b/ and all: `apply.resolve_paths`
    # finds the tree's file from them as patch(1) does
    written: tuple[str, str] | None = None

    @property
    def path(self) -> str:
        """The name a reader knows the file by: the new one, or the old if deleted."""
        return self.new_path or self.old_path or "unknown.c"


@dataclass(frozen=True, slots=True)
class Patch:
    subject: str
    files: tuple[FilePatch, ...]
    origin: str
    raw_subject: str = ""
    number: int | None = None
    total: int | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    author: str | None = None
    date: str | None = None
    message: str = ""
    path: str = ""
    quoted: bool = False
    source_lines: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def label(self) -> str:
        if self.number is not None and self.total is not None:
            return f"[PATCH {self.number}/{self.total}] {self.subject}"
        if not self.subject or self.subject in self.origin:
            return self.origin
        return f"{self.origin} ({self.subject})"


def split_subject(raw: str) -> tuple[str, int | None, int | None]:
    """`Re: [PATCH v2 3/7] mm: foo` -> ("mm: foo", 3, 7)."""
    s = " ".join(raw.split())
    number = total = None
    while True:
        m = REPLY_RE.match(s)
        if m:
            s = s[m.end() :]
            continue
        m = TAG_RE.match(s)
        if m:
            n = NUMBER_RE.search(m.group(1))
            if n and number is None:
                number, total = int(n.group(1)), int(n.group(2))
            s = s[m.end() :]
            continue
        break
    return s.strip(), number, total


def _strip_ab(name: str) -> str | None:
    name = name.split("\t")[0].strip()
    if name == "/dev/null":
        return None
    if name[:2] in ("a/", "b/"):
        return name[2:]
    return name


def _from_unidiff(body: str, origin: str, offset: int | None) -> tuple[FilePatch, ...]:
    """A well-formed diff, parsed by unidiff; `offset` maps body lines to the file."""
    try:
        ps = PatchSet(body)
    except UnidiffParseError as exc:
        raise InputError(f"{origin}: corrupt patch: {exc}") from None
    files: list[FilePatch] = []
    for pf in ps:
        if pf.is_binary_file:
            continue
        hunks: list[Hunk] = []
        for h in pf:
            lines: list[HunkLine] = []
            for ln in h:
                if ln.line_type not in (" ", "-", "+"):
                    continue  # "\ No newline at end of file"
                no = ln.diff_line_no
                src = no + offset if offset is not None and no is not None else None
                kind = cast(LineKind, ln.line_type)
                lines.append(
                    HunkLine(
                        kind,
                        ln.value.rstrip("\r\n"),
                        ln.source_line_no,
                        ln.target_line_no,
                        src,
                    )
                )
            first = lines[0].source_line if lines else None
            header_src = first - 1 if first is not None else None
            hunks.append(
                Hunk(
                    h.source_start,
                    h.source_length,
                    h.target_start,
                    h.target_length,
                    (h.section_header or "").strip(),
                    tuple(lines),
                    header_src,
                )
            )
        old = _strip_ab(pf.source_file) if pf.source_file else None
        new = _strip_ab(pf.target_file) if pf.target_file else None
        git = any(str(ln).startswith("diff --git ") for ln in pf.patch_info or ())
        written = None if git else (pf.source_file or "", pf.target_file or "")
        files.append(FilePatch(old, new, tuple(hunks), written=written))
    return tuple(files)


@dataclass(slots=True)
class _HunkBuilder:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    section: str
    source_line: int | None
    lines: list[HunkLine] = field(default_factory=list)
    old_no: int | None = None
    new_no: int | None = None

    def build(self) -> Hunk:
        return Hunk(
            self.old_start,
            self.old_len,
            self.new_start,
            self.new_len,
            self.section,
            tuple(self.lines),
            self.source_line,
        )


@dataclass(slots=True)
class _FileBuilder:
    old_path: str | None = None
    new_path: str | None = None
    named: bool = False
    hunks: list[_HunkBuilder] = field(default_factory=list)


def quote_split(line: str) -> tuple[int, str]:
    """(quote depth, text after the quote marks)."""
    m = QUOTE_RE.match(line)
    if not m:
        return 0, line
    return m.group(1).count(">"), line[m.end() :]


def quoted_depth(lines: list[str]) -> int | None:
    """The quote depth at which a reply quotes a diff, or None if it quotes none."""
    votes: dict[int, int] = {}
    for line in lines:
        depth, text = quote_split(line)
        if depth and (HUNK_RE.match(text) or text.startswith("diff --git ")):
            votes[depth] = votes.get(depth, 0) + 1
    if not votes:
        return None
    return max(sorted(votes), key=lambda d: votes[d])


def _from_quoted(
    lines: list[str], offset: int | None, subject: str, depth: int
) -> tuple[FilePatch, ...]:
    """Recover the diff from a reply's quoted lines, elisions and all.

    Lines at other quote depths (the reviewer's comments, earlier replies)
    are interleaved text, not gaps; an elision marker at any depth is a gap,
    after which line numbers are unknown. Archive copies often lose the
    leading space of context lines: a quoted line with no diff prefix inside
    a hunk is context.
    """
    files: list[_FileBuilder] = []
    cur_file: _FileBuilder | None = None
    hunk: _HunkBuilder | None = None
    gap = False
    for idx, line in enumerate(lines):
        d, text = quote_split(line)
        if ELISION_RE.match(text):
            gap = True
            continue
        if d != depth:
            continue
        src = idx + 1 + offset if offset is not None else None
        if text.startswith("diff --git "):
            parts = text.split()
            cur_file = _FileBuilder(
                _strip_ab(parts[2]) if len(parts) > 3 else None,
                _strip_ab(parts[3]) if len(parts) > 3 else None,
                named=len(parts) > 3,
            )
            files.append(cur_file)
            hunk = None
            continue
        nxt = quote_split(lines[idx + 1])[1] if idx + 1 < len(lines) else ""
        if text.startswith("--- ") and nxt.startswith("+++ "):
            if cur_file is None or cur_file.hunks:
                cur_file = _FileBuilder()
                files.append(cur_file)
            cur_file.old_path = _strip_ab(text[4:])
            hunk = None
            continue
        if text.startswith("+++ ") and cur_file is not None and hunk is None:
            cur_file.new_path = _strip_ab(text[4:])
            cur_file.named = True
            continue
        m = HUNK_RE.match(text)
        if m:
            if cur_file is None:
                cur_file = _FileBuilder()
                files.append(cur_file)
            a, b, c, e, section = m.groups()
            hunk = _HunkBuilder(
                int(a),
                int(b) if b is not None else 1,
                int(c),
                int(e) if e is not None else 1,
                section.strip(),
                src,
            )
            hunk.old_no, hunk.new_no = int(a), int(c)
            cur_file.hunks.append(hunk)
            gap = False
            continue
        if hunk is None or text.startswith("\\"):
            continue
        if text.rstrip() == "--":  # the mail signature after the last hunk
            hunk = None
            continue
        kind: LineKind
        if text[:1] in ("+", "-"):
            kind, body = text[0], text[1:]  # type: ignore[assignment]
        elif text[:1] == " ":
            kind, body = " ", text[1:]
        else:
            kind, body = " ", text
        if gap:
            hunk.old_no = hunk.new_no = None
        old_line = hunk.old_no if kind != "+" else None
        new_line = hunk.new_no if kind != "-" else None
        hunk.lines.append(HunkLine(kind, body, old_line, new_line, src, gap))
        gap = False
        if kind != "+" and hunk.old_no is not None:
            hunk.old_no += 1
        if kind != "-" and hunk.new_no is not None:
            hunk.new_no += 1
    out: list[FilePatch] = []
    for fb in files:
        hunks = tuple(h.build() for h in fb.hunks if h.lines)
        if not hunks:
            continue
        if fb.named:
            out.append(FilePatch(fb.old_path, fb.new_path, hunks))
        else:
            guess = guess_path(subject)
            out.append(FilePatch(guess, guess, hunks, path_guessed=True))
    return tuple(out)


def guess_path(subject: str) -> str:
    """`mm/khugepaged: foo` -> `mm/khugepaged.c`: kernel subjects name the file."""
    m = SUBSYSTEM_RE.match(subject)
    if not m:
        return "unknown.c"
    name = m.group(1)
    return name if "." in name.rsplit("/", 1)[-1] else name + ".c"


def _diff_from_body(
    body: str, origin: str, subject: str, offset: int | None, prefer_quoted: bool
) -> tuple[tuple[FilePatch, ...], bool]:
    """The files a message body changes, and whether they came from quoted lines."""
    lines = body.splitlines()
    depth = quoted_depth(lines)
    unquoted = UNQUOTED_DIFF_RE.search(body) is not None
    if depth is not None and (prefer_quoted or not unquoted):
        return _from_quoted(lines, offset, subject, depth), True
    if unquoted:
        return _from_unidiff(body, origin, offset), False
    return (), False


def _header_end(raw_lines: list[str], start: int) -> int:
    """Index of the first body line of a message starting at `start`."""
    for i in range(start, len(raw_lines)):
        if not raw_lines[i].strip():
            return i + 1
    return len(raw_lines)


PATCH_TYPES = ("text/x-patch", "text/x-diff", "text/x-patch-file")


def _part_text(part: EmailMessage) -> str:
    try:
        text = part.get_content()
    except (LookupError, UnicodeError) as exc:
        raise InputError(f"cannot decode the message body: {exc}") from None
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return text if isinstance(text, str) else ""


def _text_body(msg: EmailMessage) -> tuple[str, bool]:
    """The message's text, and whether its lines are the file's lines verbatim.

    A patch sent as an attachment (text/x-patch, or a .patch/.diff file)
    is appended to the text part.
    """
    if not msg.is_multipart():
        cte = str(msg.get("Content-Transfer-Encoding", "")).lower()
        return _part_text(msg), cte not in ("base64", "quoted-printable")
    texts: list[str] = []
    body = msg.get_body(preferencelist=("plain",))
    if isinstance(body, EmailMessage):
        texts.append(_part_text(body))
    for part in msg.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        name = (part.get_filename() or "").lower()
        if part.get_content_type() in PATCH_TYPES or name.endswith((".patch", ".diff")):
            texts.append(_part_text(part))
    return "\n".join(texts), False


def _addresses(value: object) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", str(value or "")))


def _from_message(
    msg: EmailMessage,
    origin: str,
    path: str,
    body_offset: int | None,
    source_lines: tuple[str, ...],
) -> Patch:
    raw_subject = " ".join(str(msg.get("Subject", "")).split())
    subject, number, total = split_subject(raw_subject)
    try:
        body, verbatim = _text_body(msg)
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None
    offset = body_offset if verbatim else None
    files, quoted = _diff_from_body(
        body, origin, subject, offset, REPLY_RE.match(raw_subject) is not None
    )
    m = UNQUOTED_DIFF_RE.search(body)
    message = body[: m.start()] if m and not quoted else body
    message = message.split("\n---\n", 1)[0].strip()
    mid = _addresses(msg.get("Message-ID"))
    irt = _addresses(msg.get("In-Reply-To"))
    return Patch(
        subject=subject,
        files=files,
        origin=origin,
        raw_subject=raw_subject,
        number=number,
        total=total,
        message_id=mid[0] if mid else None,
        in_reply_to=irt[0] if irt else None,
        references=_addresses(msg.get("References")),
        author=str(msg["From"]) if msg.get("From") else None,
        date=str(msg["Date"]) if msg.get("Date") else None,
        message=message,
        path=path,
        quoted=quoted,
        source_lines=source_lines,
    )


HEADER_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]+:[ \t]")


def _is_mail(lines: list[str]) -> bool:
    """Starts with RFC 5322 headers that include From or Subject."""
    seen = set()
    for line in lines[:64]:
        if not line.strip():
            break
        if line[:1] in (" ", "\t"):
            continue
        if not HEADER_RE.match(line):
            return False
        seen.add(line.split(":", 1)[0].lower())
    return bool(seen & {"from", "subject"}) and bool(seen & {"date", "message-id", "subject"})


def _archive_text(text: str, origin: str, path: str) -> Patch:
    """A reply as a list archive shows it: a subject line, From:/Date:, the body."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    raw_subject = first.strip() if not HEADER_RE.match(first) or REPLY_RE.match(first) else ""
    subject, number, total = split_subject(raw_subject)
    author = None
    for ln in lines[:12]:
        if ln.startswith("From:"):
            author = ln[5:].strip() or None
            break
    files, quoted = _diff_from_body(text, origin, subject, 0, True)
    return Patch(
        subject=subject,
        files=files,
        origin=origin,
        raw_subject=raw_subject,
        number=number,
        total=total,
        author=author,
        path=path,
        quoted=quoted,
        source_lines=tuple(lines),
    )


def _plain_diff(text: str, origin: str, path: str) -> Patch:
    files = _from_unidiff(text, origin, 0)
    subject = Path(path).name if path else origin
    return Patch(
        subject=subject, files=files, origin=origin, path=path, message="", source_lines=()
    )


def mbox_split(raw: bytes) -> list[bytes]:
    """The messages of an mbox, split in memory exactly as `mailbox.mbox` splits a file.

    A message starts after each line beginning with `From `; an empty line
    just before the next `From ` line (or the end) is the separator's. In
    memory, so that nothing of the input is ever written to disk.
    """
    messages: list[list[bytes]] = []
    for line in io.BytesIO(raw):  # lines end at b"\n" only, as mailbox reads them
        if line.startswith(b"From "):
            messages.append([])
        elif messages:
            messages[-1].append(line)
    return [b"".join(m[:-1] if m and m[-1] == b"\n" else m) for m in messages]


def _mbox_messages(text: str, origin: str) -> list[Patch]:
    lines = tuple(text.splitlines())
    starts = [i for i, ln in enumerate(lines) if ln.startswith("From ")]
    raw = mbox_split(text.encode("utf-8", "surrogateescape"))
    out: list[Patch] = []
    for k, data in enumerate(raw):
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        body_offset = _header_end(list(lines), starts[k] + 1) if len(starts) == len(raw) else None
        name = f"{origin}#{k + 1}" if len(raw) > 1 else origin
        out.append(_from_message(msg, name, "", body_offset, lines))
    return out


def parse_patch_text(text: str, origin: str, path: str = "") -> list[Patch]:
    """Patches in `text`: an mbox, one mail, an archived reply, or a bare diff."""
    lines = text.splitlines()
    if lines and lines[0].startswith("From ") and _is_mail(lines[1:]):
        return [replace(p, path=path) for p in _mbox_messages(text, origin)]
    if _is_mail(lines):
        msg = email.message_from_string(text, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return [_from_message(msg, origin, path, _header_end(lines, 0), tuple(lines))]
    if quoted_depth(lines) is not None:
        return [_archive_text(text, origin, path)]
    if UNQUOTED_DIFF_RE.search(text):
        return [_plain_diff(text, origin, path)]
    raise InputError(
        f"{origin}: no patch found (expected a unified diff, a git format-patch mail, "
        "an mbox, or a reply quoting a patch)"
    )


def read_input(path: Path) -> tuple[bytes, str]:
    """(the bytes of one patch or email input, its origin); read once: it may be a pipe."""
    if str(path) == "-":
        data = read_bounded(sys.stdin.buffer, "<stdin>")
        origin = "<stdin>"
    else:
        origin = str(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_dir():
            raise InputError(f"{path}: is a directory")
        if not (path.is_file() or path.is_fifo()):  # a pipe is fine: `<(git diff)`
            raise InputError(f"{path}: not a regular file")
        try:
            with path.open("rb") as f:
                data = read_bounded(f, origin)
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data[:8192]:
        raise InputError(f"{origin}: binary file, not a patch")
    return data, origin


def read_patches(path: Path) -> list[Patch]:
    """The patches in one input file (`-` reads standard input)."""
    data, origin = read_input(path)
    text = data.decode("utf-8", "replace")
    patches = parse_patch_text(text, origin, "" if origin == "<stdin>" else origin)
    return patches


def order_series(patches: list[Patch]) -> list[Patch]:
    """Apply order: by `[PATCH n/m]` when every patch is numbered, else as given.

    A whole thread (`b4 mbox`) also holds replies quoting the patches: a
    reply is dropped when the patch it quotes is there itself.
    """
    originals = {p.number for p in patches if p.files and not p.quoted and p.number is not None}
    patches = [p for p in patches if not (p.quoted and p.number in originals)]
    numbered = [p for p in patches if p.number is not None]
    if len(numbered) != len(patches) or not patches:
        return list(patches)
    seen: dict[int, Patch] = {}
    for p in patches:
        assert p.number is not None
        if p.number in seen and seen[p.number].files and p.files:
            raise InputError(
                f"{p.origin}: two patches numbered {p.number}: "
                f"'{seen[p.number].subject}' and '{p.subject}'"
            )
        seen.setdefault(p.number, p)
    return sorted(patches, key=lambda p: p.number or 0)
