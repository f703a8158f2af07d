"""Mail-shaped output of a patch review: the email reply, b4 results, annotate.

The reply is parsed back with the stdlib `email` module; the annotated seed
email is diffed against the original, which must come back line for line.
Golden files: see tests/test_report.py (LOCKCHECK_UPDATE_GOLDEN=1).
"""

from __future__ import annotations

import difflib
import email
import email.policy
import json
import mailbox
import os
import re
import shlex
from email.message import EmailMessage
from pathlib import Path

import pytest

from lockcheck.report.annotate import insert_notes
from tests.helpers import ROOT, assert_golden, assert_valid_sarif, run_cli, seed_email

SERIES = "fixtures/series/series.mbox"
TREE = "fixtures/series/tree"
SELECT = ("--select", "uffd-wp-under-ptl", "--select", "anon-vma-under-ptl")
NOTE = "[lockcheck]"


def as_reviewer(mp: pytest.MonkeyPatch) -> None:
    """A fixed sender and date, as a reviewer's git config and SOURCE_DATE_EPOCH give."""
    mp.setenv("GIT_AUTHOR_NAME", "Rob Reviewer")
    mp.setenv("GIT_AUTHOR_EMAIL", "rob@example.org")
    mp.setenv("SOURCE_DATE_EPOCH", "1767690000")


@pytest.fixture
def reviewer(monkeypatch: pytest.MonkeyPatch) -> None:
    as_reviewer(monkeypatch)


@pytest.fixture(scope="module")
def reply() -> str:
    """The reply to the 3-patch series, rendered once for the tests that read it."""
    with pytest.MonkeyPatch.context() as mp:
        as_reviewer(mp)
        res = run_cli("review", SERIES, "--tree", TREE, "--format", "email", *SELECT)
    assert res.returncode == 1, res.stderr
    return res.stdout


def parse(text: str) -> EmailMessage:
    msg = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects, msg.defects
    return msg


def test_reply_golden(reply: str) -> None:
    assert_golden("series.email", reply)


def test_reply_is_a_threaded_plain_text_mail(reply: str) -> None:
    msg = parse(reply)
    assert msg["Subject"] == (
        "Re: [PATCH 2/3] mm/khugepaged: retract_file_tables() without mmap lock"
    )
    assert msg["In-Reply-To"] == "<20260105.2.series@example.org>"
    assert msg["References"].split() == [
        "<20260105.0.series@example.org>",
        "<20260105.2.series@example.org>",
    ]
    assert msg["From"] == "Rob Reviewer <rob@example.org>"
    assert msg["To"] == "Ann Reviewee <ann@example.org>"
    assert msg["Date"] == "Tue, 06 Jan 2026 09:00:00 +0000"
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()
    body = msg.get_content()
    assert "<html" not in body.lower()
    assert all(len(line) <= 78 for line in reply.split("\n\n", 1)[0].splitlines())


def test_reply_quotes_the_patch_and_comments_under_the_lines(reply: str) -> None:
    body = parse(reply).get_content()
    prose, _, signature = body.partition("\n-- \n")
    lines = prose.splitlines()
    mbox = (ROOT / SERIES).read_text()
    for line in lines:
        if line.startswith("> "):
            assert line[2:] in mbox, f"not quoted from the patch: {line!r}"
        elif line not in ("", "...") and not line.startswith("On "):
            assert len(line) <= 72, line
    assert "..." in lines  # trimmed to the relevant parts
    for check, rule in (
        ("if (userfaultfd_wp(vma))", "uffd-wp-under-ptl"),
        ("if (READ_ONCE(vma->anon_vma))", "anon-vma-under-ptl"),
    ):
        i = next(i for i, line in enumerate(lines) if line.startswith(">") and check in line)
        assert lines[i + 1] == ""
        assert lines[i + 2].startswith(f"lockcheck [{rule}]: ")
    assert "[PATCH 3/3]" in prose  # the later fix is named
    assert "before this patch it ran holding" in prose


def test_reply_signature_reproduces_the_review(reply: str) -> None:
    signature = parse(reply).get_content().partition("\n-- \n")[2]
    command = signature.strip().splitlines()[-1].strip()
    argv = shlex.split(command)
    assert argv[:2] == ["lockcheck", "review"]
    res = run_cli(*argv[1:], "--format", "json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert {(f["rule"], f["introduced_by"]) for f in doc["findings"]} == {
        ("uffd-wp-under-ptl", "mm/khugepaged: retract_file_tables() without mmap lock"),
        ("anon-vma-under-ptl", "mm/khugepaged: retract_file_tables() without mmap lock"),
    }


def test_reply_without_findings_says_so(reviewer: None) -> None:
    patch = next((ROOT / "fixtures" / "series").glob("0001-*.patch"))
    res = run_cli("review", str(patch.relative_to(ROOT)), "--tree", TREE, "--format", "email")
    assert res.returncode == 0, res.stderr
    msg = parse(res.stdout)
    assert msg["Subject"].startswith("Re: [PATCH 1/3] ")
    assert "no new locking problems" in msg.get_content()


def test_b4_has_one_result_per_patch_of_the_series() -> None:
    res = run_cli("review", SERIES, "--tree", TREE, "--format", "b4", *SELECT)
    assert res.returncode == 1, res.stderr
    entries = json.loads(res.stdout)
    assert_golden("series.b4.json", res.stdout)
    assert [(e["patch"][:13], e["status"]) for e in entries] == [
        ("[PATCH 1/3] m", "pass"),
        ("[PATCH 2/3] m", "fail"),
        ("[PATCH 3/3] m", "pass"),
    ]
    assert {e["tool"] for e in entries} == {"lockcheck"}
    assert entries[1]["msgid"] == "<20260105.2.series@example.org>"
    assert "fixed later in the series by: [PATCH 3/3]" in entries[1]["details"]
    assert all(isinstance(e["summary"], str) and e["summary"] for e in entries)


def only_insertions(original: str, annotated: str) -> list[tuple[int, list[str]]]:
    """(original line number the notes follow, the notes); fails on any other change."""
    a, b = original.splitlines(keepends=True), annotated.splitlines(keepends=True)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        assert op in ("equal", "insert"), (op, a[i1:i2], b[j1:j2])
        if op == "insert":
            out.append((i1, [line.rstrip("\n") for line in b[j1:j2]]))
    return out


def test_annotate_the_seed_keeps_every_line_and_notes_both_checks() -> None:
    seed = seed_email()
    original = seed.read_text()
    res = run_cli("annotate", str(seed))
    assert res.returncode == 0, res.stderr
    inserts = only_insertions(original, res.stdout)
    lines = original.splitlines()
    under = {lines[after - 1]: notes for after, notes in inserts}
    assert len(inserts) == 2
    anon = next(notes for line, notes in under.items() if "READ_ONCE(vma->anon_vma)" in line)
    uffd = next(notes for line, notes in under.items() if "userfaultfd_wp(vma)" in line)
    for notes in (anon, uffd):
        assert all(n.startswith(NOTE) and len(n) <= 72 for n in notes)
    anon_text = " ".join(n.removeprefix(NOTE).strip() for n in anon)
    uffd_text = " ".join(n.removeprefix(NOTE).strip() for n in uffd)
    assert "{mapping->i_mmap_rwsem:write}" in anon_text
    assert "{mapping->i_mmap_rwsem:read}" in anon_text
    assert "{mapping->i_mmap_rwsem:read}" in uffd_text
    assert "uffd-wp-under-ptl wants the pte lock" in uffd_text


def test_annotate_reply_fixture_notes_the_findings_under_their_lines() -> None:
    path = ROOT / "fixtures" / "series" / "reply.eml"
    res = run_cli("annotate", "fixtures/series/reply.eml", *SELECT)
    assert res.returncode == 1, res.stderr
    assert_golden("reply.annotated.eml", res.stdout)
    lines = path.read_text().splitlines()
    inserts = only_insertions(path.read_text(), res.stdout)
    firsts = {lines[after - 1]: notes[0] for after, notes in inserts}
    for check, rule in (
        ("if (READ_ONCE(vma->anon_vma))", "anon-vma-under-ptl"),
        ("if (userfaultfd_wp(vma))", "uffd-wp-under-ptl"),
    ):
        line = next(line for line in firsts if line.startswith(">") and check in line)
        assert firsts[line].startswith(f"{NOTE} {rule}: ")


def test_insert_notes_keeps_line_endings_and_a_last_line_without_newline() -> None:
    text = "a\r\nb\r\nc"
    assert insert_notes(text, {1: ["n1"], 3: ["n3"]}) == "a\r\nn1\r\nb\r\nc\nn3\n"
    assert insert_notes(text, {}) == text


def test_annotate_errors_are_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "note.txt"
    plain.write_text("Hello,\n\nno patch here.\n")
    res = run_cli("annotate", str(plain))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("lockcheck: error: ")


def test_reply_to_the_seed_notes_the_lock_context_of_both_checks(reviewer: None) -> None:
    rel = os.path.relpath(seed_email(), ROOT)
    res = run_cli("review", rel, "--format", "email")
    assert res.returncode == 0, res.stderr  # fragment mode: no finding, but a changed lock
    msg = parse(res.stdout)
    assert msg["Subject"].startswith("Re: [PATCH 09/12] mm/khugepaged: retract_page_tables()")
    assert msg["To"] is None  # the archive copy names no address to reply to
    lines = msg.get_content().splitlines()
    for check, says in (
        ("if (READ_ONCE(vma->anon_vma))", "before this patch it ran"),
        ("if (userfaultfd_wp(vma))", "is new here and runs"),
    ):
        i = next(i for i, line in enumerate(lines) if line.startswith("> ") and check in line)
        assert lines[i + 1] == "" and lines[i + 2].startswith("lockcheck: ")
        assert says in " ".join(lines[i + 2 : i + 5])
    assert lines[-1].strip() == f"lockcheck review {rel}"


def test_reply_goes_to_everyone_the_patch_went_to(reviewer: None, tmp_path: Path) -> None:
    mid = "Message-Id: <20260105.2.series@example.org>\n"
    text = (ROOT / SERIES).read_text()
    assert text.count(mid) == 1
    cc = "Cc: linux-mm@kvack.org, Ann Reviewee <ann@example.org>, Rob Reviewer <rob@example.org>\n"
    mbox = tmp_path / "series.mbox"
    mbox.write_text(text.replace(mid, mid + "To: Andrew Morton <akpm@example.org>\n" + cc))
    res = run_cli("review", str(mbox), "--tree", TREE, "--format", "email", *SELECT)
    assert res.returncode == 1, res.stderr
    msg = parse(res.stdout)
    assert msg["To"] == "Ann Reviewee <ann@example.org>"
    # the author is already To:, the sender does not Cc himself
    assert msg["Cc"] == "Andrew Morton <akpm@example.org>, linux-mm@kvack.org"


def test_several_replies_come_as_an_mbox(reviewer: None, tmp_path: Path) -> None:
    reply_eml = (ROOT / "fixtures" / "series" / "reply.eml").read_text()
    later = tmp_path / "later.eml"  # a quoted patch numbered after the real 2/3
    later.write_text(reply_eml.replace("Subject: Re: [PATCH 2/3]", "Subject: Re: [PATCH 3/3]"))
    patch = next((ROOT / "fixtures" / "series").glob("0002-*.patch"))
    res = run_cli("review", str(patch), str(later), "--format", "email")
    assert res.returncode == 1, res.stderr
    spool = tmp_path / "replies.mbox"
    spool.write_text(res.stdout)
    box = mailbox.mbox(spool)
    subjects = [" ".join(str(m["Subject"]).split()) for m in box]
    box.close()
    assert [s[:16] for s in subjects] == ["Re: [PATCH 2/3] ", "Re: [PATCH 3/3] "]
    parts = re.split(r"^From lockcheck .*\n", res.stdout, flags=re.MULTILINE)
    assert parts[0] == "" and len(parts) == 3
    for part in parts[1:]:
        assert parse(part)["Subject"].startswith("Re: [PATCH ")


def test_sarif_of_a_review_validates_and_points_into_the_email() -> None:
    res = run_cli("review", "fixtures/series/reply.eml", "--format", "sarif", *SELECT)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    run = doc["runs"][0]
    assert run["artifacts"] == [
        {"location": {"uri": "fixtures/series/reply.eml", "uriBaseId": "%SRCROOT%"}}
    ]
    lines = (ROOT / "fixtures" / "series" / "reply.eml").read_text().splitlines()
    for res_ in run["results"]:
        start = res_["locations"][0]["physicalLocation"]["region"]["startLine"]
        assert lines[start - 1].startswith(">")  # a quoted line of the patch
    assert_valid_sarif(doc)  # last: it skips without the schema
