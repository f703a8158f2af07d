"""Reading patches (diffs, format-patch mails, mboxes, quoted replies) and applying them."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree, Series
from lockcheck.inputs.patch import (
    ELISION_RE,
    FilePatch,
    Hunk,
    Patch,
    _is_mail,
    guess_path,
    mbox_split,
    order_series,
    parse_patch_text,
    quoted_depth,
    read_patches,
    split_subject,
)
from lockcheck.review import fragment_image
from tests.helpers import FIXTURES, seed_email

SERIES = FIXTURES / "series"
TREE = SERIES / "tree"
MBOX = SERIES / "series.mbox"
REPLY = SERIES / "reply.eml"
PATCH_FILES = sorted(SERIES.glob("000*.patch"))
# Pieces of patches and replies, shuffled by the property test.
SAMPLE_LINES = [
    "From 1234 Mon Sep 17 00:00:00 2001",
    "From: A <a@b>",
    "Subject: Re: [PATCH 1/2] mm: x",
    "",
    "diff --git a/mm/x.c b/mm/x.c",
    "--- a/mm/x.c",
    "+++ b/mm/x.c",
    "@@ -1,3 +1,3 @@ static void f(void)",
    "> @@ -10,2 +10,3 @@",
    "> > @@ -5 +5 @@ int g(int x)",
    " \tspin_lock(&l);",
    "-\tif (userfaultfd_wp(vma)) {",
    "+\t}",
    "> +\tif (vma->anon_vma) /* { */",
    '> -\t"}"',
    "> > } }",
    "...",
    "> ...",
    "-- ",
    "\\ No newline at end of file",
]


def stage(n: int) -> str:
    return (SERIES / "stages" / f"{n}.c").read_text()


def assert_lines_map_back(p: Patch, text: str) -> int:
    """Every hunk line with a source line is that line of `text`, minus its prefixes."""
    lines = text.splitlines()
    checked = 0
    for fp in p.files:
        for h in fp.hunks:
            for ln in h.lines:
                if ln.source_line is None:
                    continue
                src = lines[ln.source_line - 1]
                assert src.endswith(ln.text), (ln, src)
                if ln.kind != " ":
                    assert src[: len(src) - len(ln.text)].rstrip().endswith(ln.kind)
                checked += 1
    return checked


@pytest.mark.parametrize(
    ("raw", "subject", "number", "total"),
    [
        ("[PATCH 2/3] mm/khugepaged: foo", "mm/khugepaged: foo", 2, 3),
        ("Re: [PATCH v2 09/12] mm: bar()", "mm: bar()", 9, 12),
        ("RE: Re: [RFC PATCH mm-unstable 1/1] x: y", "x: y", 1, 1),
        ("[PATCH] mm: single", "mm: single", None, None),
        ("plain words", "plain words", None, None),
        ("Fwd:  [PATCH 1/2] [PATCH 2/9]  a:   b", "a: b", 1, 2),  # the first n/m wins
        ("AW: SV: [v3 3 / 4] c: d", "c: d", 3, 4),
    ],
)
def test_split_subject(raw: str, subject: str, number: int | None, total: int | None) -> None:
    assert split_subject(raw) == (subject, number, total)


def test_model_names_hunks_files_and_patches() -> None:
    h = Hunk(10, 4, 12, 5, "f()", ())
    assert h.header == "@@ -10,4 +12,5 @@"
    assert FilePatch("a.c", "b.c", ()).path == "b.c"  # renamed: the new name
    assert FilePatch("gone.c", None, ()).path == "gone.c"  # deleted: the old one
    assert FilePatch(None, None, ()).path == "unknown.c"
    assert Patch("mm: x", (), "s.mbox#2", number=2, total=3).label == "[PATCH 2/3] mm: x"
    assert Patch("mm: x", (), "s.mbox#2", number=2).label == "s.mbox#2 (mm: x)"
    assert Patch("", (), "a.diff").label == "a.diff"
    assert Patch("a.diff", (), "dir/a.diff").label == "dir/a.diff"


@pytest.mark.parametrize(
    ("text", "elided"),
    [
        ("...", True),
        ("  .... ", True),
        ("[...]", True),
        ("[ ... ]", True),
        ("<snip>", True),
        ("< snip >", True),
        ("[snip]", True),
        ("[... snip ...]", True),
        ("..", False),
        ("x ...", False),
        ("foo(...);", False),
    ],
)
def test_elision_markers(text: str, elided: bool) -> None:
    assert bool(ELISION_RE.match(text)) is elided


def test_format_patch_file() -> None:
    [p] = read_patches(PATCH_FILES[1])
    assert (p.number, p.total) == (2, 3)
    assert p.subject == "mm/khugepaged: retract_file_tables() without mmap lock"
    assert p.author == "Ann Reviewee <ann@example.org>"
    assert "rmap lock for read" in p.message and "diff --git" not in p.message
    assert not p.quoted
    [fp] = p.files
    assert (fp.old_path, fp.new_path) == ("mm/khugepaged.c", "mm/khugepaged.c")
    assert len(fp.hunks) == 3
    added = [ln.text.strip() for h in fp.hunks for ln in h.lines if ln.kind == "+"]
    assert "if (userfaultfd_wp(vma))" in added
    assert assert_lines_map_back(p, PATCH_FILES[1].read_text()) > 50


def test_mbox_series_in_order_with_threading() -> None:
    patches = read_patches(MBOX)
    assert [p.number for p in patches] == [0, 1, 2, 3]
    cover, *rest = patches
    assert not cover.files and all(p.files for p in rest)
    assert [p.message_id for p in patches] == [
        f"<20260105.{i}.series@example.org>" for i in range(4)
    ]
    assert all(p.in_reply_to == cover.message_id for p in rest)
    # the folded Subject: of patch 1 is read whole
    assert rest[0].subject == "mm/khugepaged: drop the target arguments of retract_file_tables()"
    text = MBOX.read_text()
    for p in rest:
        assert assert_lines_map_back(p, text) > 10
    shuffled = [patches[3], patches[1], patches[0], patches[2]]
    assert [p.number for p in order_series(shuffled)] == [0, 1, 2, 3]


def test_reply_email_quotes_map_to_email_lines() -> None:
    [p] = read_patches(REPLY)
    assert p.quoted and (p.number, p.total) == (2, 3)
    assert p.in_reply_to == "<20260105.2.series@example.org>"
    assert p.message_id == "<20260106.rob@example.org>"
    [fp] = p.files
    assert fp.path == "mm/khugepaged.c" and not fp.path_guessed
    [h] = fp.hunks
    text = REPLY.read_text()
    assert assert_lines_map_back(p, text) == len(h.lines)
    lines = text.splitlines()
    uffd = next(ln for ln in h.lines if "userfaultfd_wp(vma)" in ln.text)
    assert uffd.kind == "+" and lines[uffd.source_line - 1] == "> +\t\tif (userfaultfd_wp(vma))"
    # each `...` elision starts a stretch whose line numbers are unknown
    gaps = [ln for ln in h.lines if ln.gap_before]
    assert len(gaps) == 3
    assert all(ln.old_line is None and ln.new_line is None for ln in h.lines)


def test_seed_reply_with_nested_quotes_and_lost_indentation() -> None:
    seed = seed_email()
    [p] = read_patches(seed)
    assert p.quoted and (p.number, p.total) == (9, 12)
    assert p.subject == "mm/khugepaged: retract_page_tables() without mmap or vma lock"
    [fp] = p.files
    assert fp.path == "mm/khugepaged.c" and fp.path_guessed
    [h] = fp.hunks
    assert (h.old_start, h.new_start) == (1748, 1747)
    lines = seed.read_text().splitlines()
    uffd = next(ln for ln in h.lines if "userfaultfd_wp(vma)" in ln.text)
    assert uffd.kind == "+" and uffd.gap_before is False
    assert lines[uffd.source_line - 1].startswith("> > +")
    # Peter's `> ` comments between the quoted hunks are not part of the patch
    assert not any("IIUC" in ln.text for ln in h.lines)
    first_gap = next(ln for ln in h.lines if ln.gap_before)
    assert first_gap.new_line is None
    assert assert_lines_map_back(p, seed.read_text()) == len(h.lines)


def test_plain_unified_diff() -> None:
    text = "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    [p] = parse_patch_text(text, "x.diff", "x.diff")
    assert p.subject == "x.diff" and p.number is None
    [h] = p.files[0].hunks
    assert [(ln.kind, ln.text, ln.old_line, ln.new_line) for ln in h.lines] == [
        (" ", "a", 1, 1),
        ("-", "b", 2, None),
        ("+", "c", None, 2),
    ]


def test_corrupt_and_empty_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="corrupt patch"):
        parse_patch_text("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n", "bad.diff")
    with pytest.raises(InputError, match="no patch found"):
        parse_patch_text("hello\nworld\n", "notes.txt")


def test_series_applies_in_memory_to_the_stages() -> None:
    series = Series(DirTree(TREE))
    patches = [p for p in order_series(read_patches(MBOX)) if p.files]
    for n, p in enumerate(patches, 1):
        [ch] = series.apply(p)
        assert ch.post == stage(n)
        assert ch.pre == (stage(n - 1) if n > 1 else (TREE / "mm/khugepaged.c").read_text())
        removed_text = {ch.pre.splitlines()[i - 1] for i in ch.removed}
        minus = {ln.text for h in ch.file.hunks for ln in h.lines if ln.kind == "-"}
        assert removed_text == minus


class ShiftedTree:
    """The base with lines added on top: every hunk lands at an offset."""

    def read(self, path: str) -> str | None:
        text = DirTree(TREE).read(path)
        return None if text is None else "/* one */\n/* two */\n/* three */\n" + text

    def describe(self) -> str:
        return "shifted tree"


def test_offset_tolerance_like_patch() -> None:
    series = Series(ShiftedTree())
    patches = [p for p in order_series(read_patches(MBOX)) if p.files]
    for n, p in enumerate(patches, 1):
        [ch] = series.apply(p)
        assert ch.post == "/* one */\n/* two */\n/* three */\n" + stage(n)


def test_hunk_that_does_not_apply_names_patch_file_and_hunk(tmp_path: Path) -> None:
    (tmp_path / "mm").mkdir()
    text = (TREE / "mm/khugepaged.c").read_text()
    # the first hunk still applies; the second's context is gone
    (tmp_path / "mm/khugepaged.c").write_text(text.replace("scan_slot_defer", "scan_slot_later"))
    [p] = read_patches(PATCH_FILES[0])
    with pytest.raises(InputError) as exc:
        Series(DirTree(tmp_path)).apply(p)
    msg = str(exc.value)
    assert msg.startswith("[PATCH 1/3] mm/khugepaged: drop the target arguments of ")
    assert "mm/khugepaged.c: hunk #2 (@@ -64,25 +60,19 @@ static int retract_file" in msg
    assert "does not apply" in msg


def test_missing_file_and_escaping_paths(tmp_path: Path) -> None:
    [p] = read_patches(PATCH_FILES[0])
    with pytest.raises(InputError, match=r"mm/khugepaged\.c: no such file in "):
        Series(DirTree(tmp_path)).apply(p)
    [bad] = parse_patch_text("--- a/../x.c\n+++ b/../x.c\n@@ -1 +1 @@\n-a\n+b\n", "up.diff")
    with pytest.raises(InputError, match="outside the tree"):
        Series(DirTree(tmp_path)).apply(bad)


def test_patch_attached_to_a_multipart_mail() -> None:
    msg = EmailMessage()
    msg["From"] = "Ann Reviewee <ann@example.org>"
    msg["Subject"] = "[PATCH] mm/khugepaged: as an attachment"
    msg["Message-ID"] = "<attached@example.org>"
    msg.set_content("The patch is attached.\n")
    msg.add_attachment(
        PATCH_FILES[1].read_bytes(), maintype="text", subtype="x-patch", filename="0002.patch"
    )
    [p] = parse_patch_text(msg.as_string(), "attached.eml")
    assert (
        p.subject == "mm/khugepaged: as an attachment" and p.message_id == "<attached@example.org>"
    )
    [fp] = p.files
    assert len(fp.hunks) == 3
    assert p.message.startswith("The patch is attached.")  # the plain-text part first
    # base64 hides which line of the mail holds a diff line
    assert all(ln.source_line is None for h in fp.hunks for ln in h.lines)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(SAMPLE_LINES), max_size=30))
def test_any_text_is_patches_or_an_input_error(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    try:
        patches = parse_patch_text(text, "fuzz")
    except InputError:
        return
    for p in patches:
        for fp in p.files:
            for side in ("old", "new"):
                fragment_image(fp, side, p.source_lines)  # type: ignore[arg-type]


def quoted_reply(patch_text: str, prefix: str = "> ") -> str:
    """A reply quoting a patch's whole diff, every line, no elision, with a
    remark inside the first hunk one quote level up (the reviewer's own words,
    or an earlier reply's when the diff is quoted twice)."""
    headers, _, body = patch_text.partition("\n\n")
    subject = next(h for h in headers.splitlines() if h.startswith("Subject: "))
    diff = body[body.index("diff --git ") :].split("\n-- \n")[0]
    quoted = [prefix + line if line else prefix.rstrip() for line in diff.splitlines()]
    # a comment inside the first hunk: neither a gap nor part of the patch
    first = next(i for i, line in enumerate(quoted) if line.startswith(prefix + "@@"))
    quoted.insert(first + 2, prefix[2:] + "A remark between the quoted lines.")
    return (
        "From: Rob Reviewer <rob@example.org>\n"
        + subject.replace("Subject: ", "Subject: Re: ")
        + "\nMessage-ID: <q@example.org>\n\nOn Monday Ann wrote:\n"
        + "\n".join(quoted)
        + "\n\nThanks.\n"
    )


@pytest.mark.parametrize("prefix", ["> ", "> > "], ids=["quoted", "quoted-twice"])
@pytest.mark.parametrize("path", PATCH_FILES, ids=lambda p: p.name[:4])
def test_gap_free_quoted_hunks_count_lines_as_the_patch_does(
    tmp_path: Path, path: Path, prefix: str
) -> None:
    """Old and new line numbers of a wholly quoted diff equal the patch's own."""
    [plain] = read_patches(path)
    reply = tmp_path / "reply.eml"
    reply.write_text(quoted_reply(path.read_text(), prefix))
    [quoted] = read_patches(reply)
    assert quoted.quoted

    def numbered(p: Patch) -> list[tuple[str, str, int | None, int | None]]:
        return [
            (ln.kind, ln.text, ln.old_line, ln.new_line)
            for fp in p.files
            for h in fp.hunks
            for ln in h.lines
        ]

    want = numbered(plain)
    assert numbered(quoted) == want
    assert any(k == "+" for k, *_ in want) and any(k == "-" for k, *_ in want)
    assert not any(ln.gap_before for fp in quoted.files for h in fp.hunks for ln in h.lines)


def test_gap_free_quoted_hunk_line_numbers() -> None:
    """The counters by hand: context and `-` lines count on the old side,
    context and `+` lines on the new side."""
    text = (
        "From: R <r@example.org>\nSubject: Re: [PATCH] mm: x\n\nOn Monday A wrote:\n"
        "> diff --git a/mm/x.c b/mm/x.c\n> --- a/mm/x.c\n> +++ b/mm/x.c\n"
        "> @@ -10,4 +20,4 @@ static void f(void)\n"
        ">  a();\n> -b();\n> +c();\n> +d();\n>  e();\n> -g();\n"
    )
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    [h] = fp.hunks
    got = [(ln.kind, ln.text, ln.old_line, ln.new_line, ln.source_line) for ln in h.lines]
    assert got == [
        (" ", "a();", 10, 20, 9),
        ("-", "b();", 11, None, 10),
        ("+", "c();", None, 21, 11),
        ("+", "d();", None, 22, 12),
        (" ", "e();", 12, 23, 13),
        ("-", "g();", 13, None, 14),
    ]


@pytest.mark.parametrize(
    ("subject", "path"),
    [
        ("mm/khugepaged: foo", "mm/khugepaged.c"),
        ("fs/ext4/inode.c: bar", "fs/ext4/inode.c"),
        ("include/linux/mm.h: baz", "include/linux/mm.h"),
        ("mm: no file", "unknown.c"),
        ("", "unknown.c"),
    ],
)
def test_guess_path_from_a_kernel_subject(subject: str, path: str) -> None:
    assert guess_path(subject) == path


HEADERS = "From: Ann <ann@example.org>\nSubject: [PATCH 1/2] mm: x\nDate: Mon, 5 Jan 2026\n"
DIFF = "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"


def test_a_mail_needs_a_from_or_subject_and_a_date_id_or_subject() -> None:
    assert [p.subject for p in parse_patch_text(HEADERS + "\nwhy\n---\n" + DIFF, "m")] == ["mm: x"]
    assert not _is_mail(["From: a", "X-Other: b", ""])  # no date, id or subject
    assert not _is_mail(["Date: x", "Message-ID: <a@b>", ""])  # no from or subject
    assert _is_mail(["Subject: s", ""]) and _is_mail(["From: a", "Message-ID: <a@b>", ""])
    assert _is_mail(["From: a", "Subject: folded", " continued", "Date: d", ""])
    assert not _is_mail(["not a header", "Subject: s"])


def test_mail_fields_message_and_threading() -> None:
    text = (
        HEADERS
        + "Message-ID: <1@example.org>\nIn-Reply-To: <0@example.org>\n"
        + "References: <a@example.org> <0@example.org>\n\n"
        + "The why of it.\n\nSigned-off-by: Ann\n---\n mm/x.c | 2 +-\n\n"
        + "diff --git a/mm/x.c b/mm/x.c\n"
        + DIFF
    )
    [p] = parse_patch_text(text, "one.eml", "one.eml")
    assert (p.number, p.total, p.raw_subject) == (1, 2, "[PATCH 1/2] mm: x")
    assert p.message_id == "<1@example.org>" and p.in_reply_to == "<0@example.org>"
    assert p.references == ("<a@example.org>", "<0@example.org>")
    assert p.author == "Ann <ann@example.org>" and p.date == "Mon, 5 Jan 2026"
    assert p.message == "The why of it.\n\nSigned-off-by: Ann"
    assert p.path == "one.eml" and not p.quoted and p.origin == "one.eml"
    [fp] = p.files
    assert fp.path == "mm/x.c" and not fp.path_guessed
    lines = text.splitlines()
    for ln in fp.hunks[0].lines:  # body lines are the file's lines
        assert ln.source_line is not None and lines[ln.source_line - 1] == ln.kind + ln.text


def test_archived_reply_without_headers_reads_subject_and_author() -> None:
    text = (
        "Re: [PATCH 2/3] mm/khugepaged: foo\n\nFrom: Rob <rob@example.org>\nDate: today\n\n"
        "On Monday Ann wrote:\n> @@ -5,2 +5,2 @@ f()\n>  a\n> -b\n> +c\n\nWhy?\n"
    )
    [p] = parse_patch_text(text, "archive.txt", "archive.txt")
    assert (p.subject, p.number, p.total) == ("mm/khugepaged: foo", 2, 3)
    assert p.author == "Rob <rob@example.org>" and p.quoted
    [fp] = p.files
    assert fp.path == "mm/khugepaged.c" and fp.path_guessed
    assert [ln.source_line for ln in fp.hunks[0].lines] == [8, 9, 10]
    assert p.source_lines == tuple(text.splitlines())


def test_plain_diff_is_named_by_its_file() -> None:
    [p] = parse_patch_text(DIFF, "<stdin>")
    assert p.subject == "<stdin>" and p.label == "<stdin>" and p.message == ""
    [p] = parse_patch_text(DIFF, "x", "dir/fix.diff")
    assert p.subject == "fix.diff" and p.path == "dir/fix.diff"


def test_mbox_split_keeps_messages_whole() -> None:
    raw = b"From a\nSubject: 1\n\nbody 1\n\nFrom b\nSubject: 2\n\nbody 2\n"
    assert mbox_split(raw) == [b"Subject: 1\n\nbody 1\n", b"Subject: 2\n\nbody 2\n"]
    assert mbox_split(b"no from line\n") == []
    assert mbox_split(b"From a\n") == [b""]


def test_mbox_messages_are_numbered_and_map_to_file_lines() -> None:
    one = "From x Mon Jan  5 2026\n" + HEADERS + "\n" + DIFF
    two = one.replace("[PATCH 1/2]", "[PATCH 2/2]")
    text = one + "\n" + two
    patches = parse_patch_text(text, "s.mbox", "s.mbox")
    assert [(p.origin, p.number, p.path) for p in patches] == [
        ("s.mbox#1", 1, "s.mbox"),
        ("s.mbox#2", 2, "s.mbox"),
    ]
    lines = text.splitlines()
    for p in patches:
        for ln in p.files[0].hunks[0].lines:
            assert ln.source_line is not None and lines[ln.source_line - 1] == ln.kind + ln.text
    [single] = parse_patch_text(one, "one.mbox")
    assert single.origin == "one.mbox"


def test_order_series_drops_replies_to_present_patches_and_rejects_twins() -> None:
    def patch(n: int | None, files: bool = True, quoted: bool = False, s: str = "x") -> Patch:
        fp = (FilePatch("a.c", "a.c", ()),) if files else ()
        return Patch(s, fp, f"o{n}", number=n, total=2, quoted=quoted)

    p1, p2, reply2 = patch(1), patch(2), patch(2, quoted=True)
    assert order_series([p2, reply2, p1]) == [p1, p2]
    assert order_series([reply2, p1]) == [p1, reply2]  # the quoted patch is all there is
    cover = patch(0, files=False)
    assert order_series([p2, cover, p1]) == [cover, p1, p2]
    assert order_series([p2, patch(None)]) == [p2, patch(None)]  # not all numbered: as given
    assert order_series([]) == []
    with pytest.raises(InputError, match="two patches numbered 2: 'x' and 'y'"):
        order_series([p2, patch(2, s="y")])
    assert order_series([p2, patch(2, files=False, s="y")]) == [p2, patch(2, files=False, s="y")]


def test_read_input_refuses_what_is_not_a_patch(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        read_patches(tmp_path / "nope.patch")
    with pytest.raises(InputError, match="is a directory"):
        read_patches(tmp_path)
    binary = tmp_path / "b.patch"
    binary.write_bytes(b"--- a\n\0\0")
    with pytest.raises(InputError, match="binary file, not a patch"):
        read_patches(binary)
    with pytest.raises(InputError, match="no patch found"):
        parse_patch_text("just words\n", "w.txt")


def quoted(*lines: str, depth: int = 1) -> str:
    """A reply quoting `lines` at `depth`, after mail headers (4 lines)."""
    q = "> " * depth
    body = "\n".join(q + line if line else q.rstrip() for line in lines)
    return "From: R <r@example.org>\nSubject: Re: [PATCH] mm/x: y\n\nOn Monday A wrote:\n" + body


def test_quoted_reply_with_git_headers_names_each_file() -> None:
    text = quoted(
        "diff --git a/mm/a.c b/mm/a.c",
        "index 111..222 100644",
        "--- a/mm/a.c\t2026-01-05 10:00:00",
        "+++ b/mm/a.c\t2026-01-05 10:00:01",
        "@@ -5 +5 @@ f()",
        "-x",
        "+y",
        "\\ No newline at end of file",
        "diff --git a/mm/gone.c b/mm/gone.c",
        "--- a/mm/gone.c",
        "+++ /dev/null",
        "@@ -1,2 +0,0 @@",
        "-p",
        "-q",
        "--- a/mm/c.c",
        "+++ b/mm/c.c",
        "@@ -3,1 +3,2 @@   g()  ",
        " r",
        "+s",
    )
    [p] = parse_patch_text(text, "reply.eml")
    assert p.quoted
    a, gone, c = p.files
    assert (a.old_path, a.new_path, a.path_guessed) == ("mm/a.c", "mm/a.c", False)
    [h] = a.hunks
    assert (h.old_start, h.old_len, h.new_start, h.new_len, h.section) == (5, 1, 5, 1, "f()")
    assert h.source_line == 9
    assert [(ln.kind, ln.text, ln.old_line, ln.new_line) for ln in h.lines] == [
        ("-", "x", 5, None),
        ("+", "y", None, 5),
    ]
    assert (gone.old_path, gone.new_path, gone.path) == ("mm/gone.c", None, "mm/gone.c")
    assert [ln.text for ln in gone.hunks[0].lines] == ["p", "q"]
    assert (c.old_path, c.new_path) == ("mm/c.c", "mm/c.c")
    assert c.hunks[0].section == "g()"
    assert [(ln.kind, ln.old_line, ln.new_line) for ln in c.hunks[0].lines] == [
        (" ", 3, 3),
        ("+", None, 4),
    ]


def test_quoted_signature_ends_the_hunk_and_elisions_reset_at_a_header() -> None:
    text = quoted(
        "@@ -1,3 +1,3 @@",
        " a",
        "...",
        " c",
        "@@ -10,2 +10,2 @@",
        " d",
        "-e",
        "--",
        "2.43.0",
    )
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert fp.path == "mm/x.c" and fp.path_guessed
    first, second = fp.hunks
    assert [(ln.text, ln.gap_before, ln.old_line) for ln in first.lines] == [
        ("a", False, 1),
        ("c", True, None),  # after an elision the numbers are unknown
    ]
    assert [(ln.text, ln.gap_before, ln.old_line) for ln in second.lines] == [
        ("d", False, 10),
        ("e", False, 11),
    ]


def test_quote_depth_is_the_one_quoting_most_hunks() -> None:
    lines = ["> @@ -1 +1 @@", "> > @@ -2 +2 @@", "> > @@ -3 +3 @@", "> > diff --git a/x b/x"]
    assert quoted_depth(lines) == 2
    assert quoted_depth(["> @@ -1 +1 @@", "> > @@ -2 +2 @@"]) == 1  # a tie: the outer
    assert quoted_depth(["> text", "@@ -1 +1 @@"]) is None
    assert quoted_depth([">> @@ -1 +1 @@", ">>> diff --git a/x b/x"]) == 2


def test_plain_diff_hunk_positions_and_no_newline_markers() -> None:
    text = (
        "--- a/mm/x.c\t(old)\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@  f()  \n a\n-b\n+c\n"
        "\\ No newline at end of file\n"
    )
    [p] = parse_patch_text(text, "x.diff")
    [fp] = p.files
    assert (fp.old_path, fp.new_path) == ("mm/x.c", "mm/x.c")
    [h] = fp.hunks
    assert h.section == "f()" and h.source_line == 3
    assert [ln.text for ln in h.lines] == ["a", "b", "c"]
    assert [ln.source_line for ln in h.lines] == [4, 5, 6]
    created = "--- /dev/null\n+++ b/mm/new.c\n@@ -0,0 +1 @@\n+n\n"
    [p] = parse_patch_text(created, "n.diff")
    assert (p.files[0].old_path, p.files[0].new_path) == (None, "mm/new.c")


@pytest.mark.parametrize(
    ("subtype", "filename"),
    [
        ("x-diff", None),
        ("x-patch-file", None),
        ("octet-stream", "fix.diff"),
        ("octet-stream", "0001-Fix.PATCH"),
    ],
)
def test_patch_attachments_by_type_or_name(subtype: str, filename: str | None) -> None:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["Subject"] = "[PATCH] mm/x: y"
    msg.set_content("See the attachment.\n")
    main = "application" if subtype == "octet-stream" else "text"
    msg.add_attachment(DIFF.encode(), maintype=main, subtype=subtype, filename=filename)
    msg.add_attachment(b"not a diff", maintype="text", subtype="plain", filename="notes.txt")
    [p] = parse_patch_text(msg.as_string(), "a.eml")
    assert [fp.path for fp in p.files] == ["mm/x.c"]


def test_single_part_encodings_decide_whether_lines_map_back() -> None:
    for cte, maps in (("8bit", True), ("base64", False), ("quoted-printable", False)):
        msg = EmailMessage()
        msg["From"], msg["Subject"] = "A <a@example.org>", "[PATCH] mm/x: y"
        msg.set_content("why\n\n" + DIFF, cte=cte)
        [p] = parse_patch_text(msg.as_string(), "m.eml")
        lines = [ln for h in p.files[0].hunks for ln in h.lines]
        assert all((ln.source_line is not None) is maps for ln in lines), cte


def test_unidiff_details_crlf_sections_binary_and_no_newline_markers() -> None:
    crlf = DIFF.replace("\n", "\r\n")
    [p] = parse_patch_text(crlf, "crlf.diff")
    assert [ln.text for ln in p.files[0].hunks[0].lines] == ["a", "b", "c"]
    assert p.files[0].hunks[0].section == ""
    mid = "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-b\n\\ No newline at end of file\n+c\n"
    [p] = parse_patch_text(mid, "m.diff")
    assert [(ln.kind, ln.text) for ln in p.files[0].hunks[0].lines] == [("-", "b"), ("+", "c")]
    binary = (
        "diff --git a/img.png b/img.png\nindex 1..2 100644\n"
        "Binary files a/img.png and b/img.png differ\n"
        "diff --git a/x.c b/x.c\n" + DIFF.replace("mm/x.c", "x.c")
    )
    [p] = parse_patch_text(binary, "b.diff")
    assert [fp.path for fp in p.files] == ["x.c"]


def test_quoted_or_plain_diff_which_one_counts() -> None:
    both = "> @@ -7 +7 @@\n> -q\n> +r\n\n" + DIFF
    reply = "From: R <r@example.org>\nSubject: Re: [PATCH] mm/x: y\n\n" + both
    [p] = parse_patch_text(reply, "r.eml")
    assert p.quoted and p.files[0].hunks[0].old_start == 7
    mail = reply.replace("Subject: Re: ", "Subject: ")
    [p] = parse_patch_text(mail, "m.eml")
    assert not p.quoted and p.files[0].hunks[0].old_start == 1
    assert p.message == "> @@ -7 +7 @@\n> -q\n> +r"  # the text before its own diff
    none = "From: R <r@example.org>\nSubject: [PATCH 0/2] cover\nDate: d\n\nJust words.\n"
    [cover] = parse_patch_text(none, "c.eml")
    assert cover.files == () and not cover.quoted and cover.message == "Just words."


def test_message_is_the_text_before_the_diff_and_a_subject_may_be_missing() -> None:
    mail = "From: A <a@example.org>\nDate: d\n\nWhy it is done.\n\n" + DIFF
    [p] = parse_patch_text(mail, "m.eml")
    assert p.subject == "" and p.raw_subject == "" and p.message == "Why it is done."
    assert p.label == "m.eml"


def test_mail_header_recognition_details() -> None:
    assert _is_mail(["From: a", "\tfolded on", "Subject: s", ""])
    assert _is_mail(["From: a", "Date: d", ""])
    assert _is_mail(["From: a", "Message-Id: <x@y>", ""])


def test_archived_reply_details() -> None:
    body = "> @@ -1 +1 @@\n> -a\n> +b\n"
    [p] = parse_patch_text("From: Rob\nFrom: Other\n\n" + body, "a.txt")
    assert p.raw_subject == "" and p.author == "Rob"
    [p] = parse_patch_text("Re: x\nFrom:Bob\n\n" + body, "a.txt")
    assert p.raw_subject == "Re: x" and p.author == "Bob"
    [p] = parse_patch_text("Some words\n\n" + body + "\n" + DIFF, "a.txt")
    assert p.author is None and p.quoted and p.files[0].hunks[0].lines[0].text == "a"


def test_errors_say_exactly_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        parse_patch_text("just words\n", "w.txt")
    assert str(exc.value) == (
        "w.txt: no patch found (expected a unified diff, a git format-patch mail, "
        "an mbox, or a reply quoting a patch)"
    )
    with pytest.raises(InputError) as exc:
        read_patches(tmp_path / "nope")
    assert str(exc.value) == f"{tmp_path / 'nope'}: no such file or directory"
    with pytest.raises(InputError) as exc:
        read_patches(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a directory"
    binary = tmp_path / "b.patch"
    binary.write_bytes(b"x\0")
    with pytest.raises(InputError) as exc:
        read_patches(binary)
    assert str(exc.value) == f"{binary}: binary file, not a patch"
    with pytest.raises(InputError) as exc:
        parse_patch_text("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n", "bad.diff")
    assert str(exc.value).startswith("bad.diff: corrupt patch: ")


def test_invalid_utf8_and_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latin = tmp_path / "l.diff"
    latin.write_bytes(DIFF.replace("+c", "+caf\xe9").encode("latin-1"))
    [p] = read_patches(latin)
    assert p.files[0].hunks[0].lines[-1].text == "caf\ufffd"
    assert p.path == str(latin) and p.origin == str(latin)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(DIFF.encode())))
    [p] = read_patches(Path("-"))
    assert (p.origin, p.path, p.subject) == ("<stdin>", "", "<stdin>")


def test_git_headers_alone_decide_the_quote_depth() -> None:
    lines = ["> diff --git a/x b/x", "> > diff --git a/y b/y", "> > diff --git a/z b/z"]
    assert quoted_depth(lines) == 2
    assert quoted_depth(["> > diff --git a/x b/x", "> text"]) == 2
    assert quoted_depth(["> diff --git x", "> > diffs --git a b"]) == 1
    assert quoted_depth(["> diff --git", "> diffs --git a b"]) is None  # no header there


def test_a_short_git_header_names_no_file() -> None:
    text = quoted("diff --git a/mm/a.c", "@@ -1 +1 @@", "-x", "+y")
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert (fp.path, fp.path_guessed) == ("mm/x.c", True)  # from the subject
    assert [ln.text for ln in fp.hunks[0].lines] == ["x", "y"]


def test_a_removed_line_starting_with_dashes_is_not_a_file_header() -> None:
    """`--- ` starts a file only when `+++ ` follows; otherwise it is a removed
    line whose text starts with `-- ` (at the end of the quote too)."""
    text = quoted("@@ -1,3 +1,1 @@", "--- a", " b", "--- c")
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert [(ln.kind, ln.text, ln.old_line) for ln in fp.hunks[0].lines] == [
        ("-", "-- a", 1),
        (" ", "b", 2),
        ("-", "-- c", 3),
    ]


def test_quoted_text_after_a_signature_is_not_part_of_the_hunk() -> None:
    text = quoted("@@ -1,2 +1,2 @@", " a", "-b", "--", "Ann", " not code", "+nor this")
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert [ln.text for ln in fp.hunks[0].lines] == ["a", "b"]


@pytest.mark.parametrize(
    ("subject", "path"),
    [
        ("fs/xfs.d/inode: fix", "fs/xfs.d/inode.c"),  # a dot in a directory is not a suffix
        (
            "drivers/net/ethernet/intel/e1000e/netdev.c: fix",
            "drivers/net/ethernet/intel/e1000e/netdev.c",
        ),
    ],
)
def test_guess_path_reads_the_suffix_of_the_last_part(subject: str, path: str) -> None:
    assert guess_path(subject) == path


def test_a_multipart_mail_without_a_plain_text_part() -> None:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["Subject"] = "[PATCH] mm/x: y"
    msg["Message-ID"] = "<html@example.org>"
    msg.set_content("<p>see the patch</p>", subtype="html")
    msg.add_attachment(DIFF.encode(), maintype="text", subtype="x-diff", filename="fix.txt")
    [p] = parse_patch_text(msg.as_string(), "html.eml")
    [fp] = p.files
    assert fp.path == "mm/x.c" and [ln.text for ln in fp.hunks[0].lines] == ["a", "b", "c"]
    assert "see the patch" not in p.message


def test_a_git_header_without_file_lines_names_both_sides() -> None:
    text = quoted("diff --git a/mm/old.c b/mm/new.c", "@@ -1 +1 @@", "-x", "+y")
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert (fp.old_path, fp.new_path, fp.path_guessed) == ("mm/old.c", "mm/new.c", False)


def test_a_signature_ends_its_hunk_not_the_reply() -> None:
    text = quoted("@@ -1 +1 @@", "-a", "--", "@@ -5 +5 @@", "-b", "+c")
    [p] = parse_patch_text(text, "reply.eml")
    [fp] = p.files
    assert [[ln.text for ln in h.lines] for h in fp.hunks] == [["a"], ["b", "c"]]
