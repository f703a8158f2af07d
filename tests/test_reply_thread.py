"""Review emails against the patch they quote: whole quotes applied to the tree,
partial quotes completed from the thread, and quotes as archives render them.

The thread fixture (fixtures/thread/, see make_thread.sh) is a tree, patch
09/12 made against it and a thread mbox holding the cover letter, the patch
and a reply quoting part of it. Replies in other renderings are built here
from the patch's own diff.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import quopri
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockcheck.inputs.mailtext import decoded_mail
from lockcheck.inputs.patch import parse_patch_text, read_patches
from lockcheck.inputs.quote import align, headerless_quote, tokens
from lockcheck.inputs.thread import find_answered
from tests.helpers import ROOT, assert_contract, run_cli, run_main, seed_email

THREAD_DIR = ROOT / "fixtures" / "thread"
THREAD = THREAD_DIR / "thread.mbox"
TREE = THREAD_DIR / "tree"
PATCH = next(THREAD_DIR.glob("0009-*.patch"))
NOTE = "[lockcheck]"
UFFD = "userfaultfd_wp(vma)"
ANON = "READ_ONCE(vma->anon_vma)"
HEADERS = (
    "From: Pat Reviewer <pat@example.org>\n"
    "Subject: Re: [PATCH 09/12] mm/khugepaged: retract_page_tables() without mmap or vma lock\n"
    "Date: Tue, 3 Feb 2026 09:00:00 +0000\n"
    "Message-ID: <built.pat@example.org>\n"
    "In-Reply-To: <20260202.9.thread@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
)


def diff_lines(patch: Path = PATCH) -> list[str]:
    """The diff of a format-patch file: from `diff --git` to the signature."""
    lines = patch.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("diff --git "))
    end = next((i for i, ln in enumerate(lines) if ln == "-- "), len(lines))
    return lines[start:end]


def only_insertions(original: str, annotated: str) -> list[tuple[int, list[str]]]:
    """(original line the notes follow, the notes); fails on any other change."""
    a, b = original.splitlines(keepends=True), annotated.splitlines(keepends=True)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        assert op in ("equal", "insert"), (op, a[i1:i2], b[j1:j2])
        if op == "insert":
            out.append((i1, [line.rstrip("\r\n") for line in b[j1:j2]]))
    return out


def notes_under(original: str, annotated: str) -> dict[int, str]:
    """Original line number (1-based) -> the notes after it, joined."""
    return {
        after: " ".join(n.removeprefix(NOTE).strip() for n in notes)
        for after, notes in only_insertions(original, annotated)
    }


def line_with(text: str, needle: str, quoted: bool = True) -> int:
    lines = text.splitlines()
    return next(
        i for i, ln in enumerate(lines, 1) if needle in ln and (ln.startswith(">") or not quoted)
    )


def annotate(path: Path, *args: str) -> tuple[int, str, str]:
    res = run_cli("annotate", str(path), *args)
    return res.returncode, res.stdout, res.stderr


# ---------------------------------------------------------------------------
# a quote of whole hunks is a patch file


def test_whole_hunk_quote_is_applied_to_the_tree_like_the_patch(tmp_path: Path) -> None:
    reply = tmp_path / "reply.eml"
    body = ["On Mon, Hal Patcher wrote:", *("> " + ln for ln in diff_lines()), "", "Hmm."]
    reply.write_text(HEADERS + "\n" + "\n".join(body) + "\n")
    code, out, err = annotate(reply, "--tree", str(TREE))
    assert code == 1, err
    under = notes_under(reply.read_text(), out)
    text = reply.read_text()
    assert under[line_with(text, f"+\t\tif ({UFFD})")].startswith("uffd-wp-under-ptl: ")
    assert under[line_with(text, f"+\t\tif ({ANON})")].startswith("anon-vma-under-ptl: ")
    assert "fragment" not in err and "quoted patch" not in err

    def findings(*args: str) -> list[tuple[str, str, int, str]]:
        res = run_cli("review", *args, "--tree", str(TREE), "--format", "json", "--no-sim")
        assert res.returncode == 1, res.stderr
        doc = json.loads(res.stdout)
        return [(f["rule"], f["path"], f["line"], f["function"]) for f in doc["findings"]]

    as_patch = findings(str(PATCH))
    assert as_patch and findings(str(reply)) == as_patch


def test_whole_hunk_quote_through_an_archive_that_collapsed_white_space(tmp_path: Path) -> None:
    """Archives turn tabs into single spaces: the hunks still apply, ignoring white space."""
    reply = tmp_path / "reply.txt"
    quoted = []
    for ln in diff_lines():
        kind, rest = ln[:1], ln[1:]
        if ln.startswith(HEADER_LINE):
            quoted.append("> " + ln)
        else:
            quoted.append("> " + (kind + " " + " ".join(rest.split()) if rest.strip() else kind))
    reply.write_text(HEADERS.splitlines()[1].removeprefix("Subject: ") + "\n\n" + "\n".join(quoted))
    code, out, err = annotate(reply, "--tree", str(TREE))
    assert code == 1, err
    under = notes_under(reply.read_text(), out)
    assert under[line_with(reply.read_text(), f"+ if ({UFFD})")].startswith("uffd-wp-under-ptl")


def test_whole_hunk_quote_that_does_not_apply_is_read_as_fragments(tmp_path: Path) -> None:
    reply = tmp_path / "reply.eml"
    reply.write_text(HEADERS + "\n" + "\n".join("> " + ln for ln in diff_lines()) + "\n")
    for command in ("annotate", "review"):
        res = run_cli(command, str(reply), "--tree", "fixtures/series/tree")
        assert res.returncode == 1, res.stderr  # the hunks alone show both tests unlocked
        assert "the quoted hunks do not apply, so they were analysed alone" in (
            res.stderr + res.stdout
        )
        assert "--thread FILE" not in res.stderr + res.stdout


def test_partial_quote_with_a_tree_but_no_thread_says_what_to_give() -> None:
    reply = ROOT / "fixtures" / "series" / "reply.eml"
    code, out, err = annotate(reply, "--tree", "fixtures/series/tree")
    assert code in (0, 1)
    assert "--thread FILE" in err and err.startswith("lockcheck: note: ")
    only_insertions(reply.read_text(), out)


def test_fragment_mode_without_tree_or_thread_keeps_working_and_says_so() -> None:
    reply = ROOT / "fixtures" / "series" / "reply.eml"
    code, out, err = annotate(reply)
    assert code == 1
    assert "quoted patch: analysed the hunks the email quotes" in err
    under = notes_under(reply.read_text(), out)
    assert under[line_with(reply.read_text(), f"if ({UFFD})")].startswith("uffd-wp-under-ptl")


# ---------------------------------------------------------------------------
# the patch a reply answers, from the thread


def test_the_answered_patch_is_found_by_in_reply_to_references_subject_and_quoted_lines() -> None:
    from dataclasses import replace

    thread = read_patches(THREAD)
    raw = THREAD.read_text()
    text = raw[raw.rindex("\nFrom pat@example.org") + 1 :].split("\n", 1)[1]
    reply = headerless_quote(parse_patch_text(text, "pat.eml")[0])
    assert reply.quoted and reply.files
    patch = next(p for p in thread if p.files and not p.quoted)
    got = find_answered(reply, thread, "thread.mbox")
    assert got.patch is patch and got.how == "In-Reply-To"
    # a reply to the reply: followed up to the patch
    second = replace(reply, message_id="<x@y>", in_reply_to=reply.message_id, references=())
    assert find_answered(second, [*thread, second], "t").patch is patch
    no_irt = replace(reply, in_reply_to=None)
    assert find_answered(no_irt, thread, "t").how == "References"
    no_ids = replace(no_irt, references=())
    assert find_answered(no_ids, thread, "t").how == "subject"
    renamed = replace(no_ids, raw_subject="Re: a question", subject="a question")
    got = find_answered(renamed, thread, "t")
    assert got.patch is patch and got.how == "quoted lines"


def test_no_answered_patch_is_one_error_line(tmp_path: Path) -> None:
    other = tmp_path / "other.eml"
    other.write_text(
        "From: a <a@b>\nSubject: Re: [PATCH] something else\nMessage-ID: <o@b>\n\n"
        "> @@ -1,2 +1,2 @@\n> -\tfoo_lock(x);\n> +\tbar_lock(y);\n>  \tbaz();\n"
    )
    res = run_cli("annotate", str(other), "--thread", str(THREAD), "--tree", str(TREE))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no patch in it that" in res.stderr


def test_thread_without_a_patch_and_review_with_two_replies_are_one_error_line(
    tmp_path: Path,
) -> None:
    cover = tmp_path / "c.mbox"
    cover.write_text("From: a <a@b>\nSubject: [PATCH 0/2] hi\n\nno patch here\n")
    reply = "fixtures/series/reply.eml"
    for args, says in (
        (("annotate", reply, "--thread", str(cover)), "c.mbox: no patch in it (a thread"),
        (("review", reply, reply, "--thread", str(THREAD)), "--thread goes with one reply"),
    ):
        res = run_cli(*args)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and says in res.stderr


def test_similar_code_in_another_patch_is_not_taken_for_the_quoted_one() -> None:
    """The series reply quotes `@@ -17,29 +16,20 @@`: patch 09's hunk is elsewhere."""
    res = run_cli(
        "annotate", "fixtures/series/reply.eml", "--thread", str(PATCH), "--tree", str(TREE)
    )
    assert res.returncode == 2 and "no patch in it that" in res.stderr


def test_thread_reply_gets_the_whole_patch_and_an_unquoted_finding_at_its_hunk_end(
    tmp_path: Path,
) -> None:
    raw = THREAD.read_text()
    reply = tmp_path / "pat.eml"
    reply.write_text(raw[raw.rindex("\nFrom pat@example.org") + 1 :].split("\n", 1)[1])
    code, out, err = annotate(reply, "--thread", str(THREAD), "--tree", str(TREE))
    assert code == 1, err
    assert "found by In-Reply-To" in err
    text = reply.read_text()
    under = notes_under(text, out)
    uffd = line_with(text, f"if ({UFFD})")
    assert under[uffd].startswith("uffd-wp-under-ptl: ")
    # vma->anon_vma is not quoted: its finding goes at the end of the quoted hunk
    anon = next(n for n in under.values() if n.startswith("anon-vma-under-ptl: "))
    assert f"Not quoted above: this is about `+if ({ANON})` (mm/khugepaged.c:46 after" in anon
    assert "in its hunk 1: @@ -26,81 +26,63 @@)" in anon
    end = max(under)
    assert text.splitlines()[end - 1].startswith("> +") and under[end] == anon


def test_review_of_a_reply_with_thread_reviews_the_whole_patch(tmp_path: Path) -> None:
    raw = THREAD.read_text()
    reply = tmp_path / "pat.eml"
    reply.write_text(raw[raw.rindex("\nFrom pat@example.org") + 1 :].split("\n", 1)[1])
    res = run_cli(
        "review", str(reply), "--thread", str(THREAD), "--tree", str(TREE), "--format", "json"
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    rules = sorted(f["rule"] for f in doc["findings"])
    assert rules == ["anon-vma-under-ptl", "uffd-wp-under-ptl"]
    assert any("answers [PATCH 9/12]" in n for n in doc["review"]["notes"])
    # a review of the patch: its lines are the thread's, so a reply to it quotes them
    mail = run_cli(
        "review", str(reply), "--thread", str(THREAD), "--tree", str(TREE), "--format", "email"
    ).stdout.splitlines()
    for check, rule in ((ANON, "anon-vma-under-ptl"), (UFFD, "uffd-wp-under-ptl")):
        i = next(i for i, ln in enumerate(mail) if ln.startswith(f"lockcheck [{rule}]"))
        assert mail[i - 1] == "" and mail[i - 2] == f"> +\t\tif ({check})"


# ---------------------------------------------------------------------------
# quotes as archives and mailers render them


def _partial(lines: list[str]) -> list[str]:
    """The quote a reviewer keeps: the signature, an elision, the uffd-wp test."""
    head = lines[: next(i for i, ln in enumerate(lines) if "vma_interval_tree_foreach" in ln) + 1]
    i = next(i for i, ln in enumerate(lines) if "hpage_collapse_test_exit" in ln and ln[0] == "+")
    j = next(i for i, ln in enumerate(lines) if UFFD in ln and ln[0] == "+")
    return [*head, "...", *lines[i : j + 2]]


def _quote(lines: list[str], marks: str = "> ") -> list[str]:
    return [ln if ln in ("...", "[snip]", "<snip>") else marks + ln for ln in lines]


HEADER_LINE = ("diff ", "index ", "--- ", "+++ ", "@@", "...")


def _collapsed(lines: list[str]) -> list[str]:
    """As some archives show a quote: each run of white space one space."""
    out = []
    for ln in _partial(lines):
        kind, rest = ln[:1], ln[1:]
        out.append(ln if ln.startswith(HEADER_LINE) else kind + " " + " ".join(rest.split()))
    return _quote(out)


def _lost_indent(lines: list[str]) -> list[str]:
    """Leading white space gone, the context lines' diff prefix with it."""
    out = []
    for ln in _partial(lines):
        kind, rest = ln[:1], ln[1:]
        keep = ln.startswith(HEADER_LINE)
        out.append(ln if keep else (kind if kind in "+-" else "") + rest.strip())
    return _quote(out)


def _nested(lines: list[str]) -> list[str]:
    inner = _quote(_partial(lines), "> > ")
    inner = ["> ..." if ln == "..." else ln for ln in inner]
    return ["> On Monday, Hal Patcher wrote:", *inner, ">", "> Is that safe?"]


def _wrapped(lines: list[str]) -> list[str]:
    """A mailer that breaks lines longer than 20 characters at a space."""
    out: list[str] = []
    for ln in _partial(lines):
        while len(ln) > 20 and " " in ln[1:20]:
            cut = ln.rindex(" ", 1, 20)
            out.append(ln[:cut])
            ln = ln[cut + 1 :]
        out.append(ln)
    return _quote(out)


def _snipped(lines: list[str]) -> list[str]:
    out = _partial(lines)
    k = out.index("...")
    out[k] = "[snip]"
    out.insert(3, "<snip>")
    return _quote(out)


def _plain(lines: list[str]) -> list[str]:
    return _quote(_partial(lines))


RENDER: dict[str, Callable[[list[str]], list[str]]] = {
    "elided": _plain,
    "collapsed-indentation": _collapsed,
    "lost-indentation": _lost_indent,
    "nested": _nested,
    "wrapped": _wrapped,
    "snipped": _snipped,
}


def _mail(body: list[str]) -> str:
    return HEADERS + "\n" + "On Monday, Hal Patcher wrote:\n" + "\n".join(body) + "\n\nHm?\n"


def _check_uffd_note(text: str, out: str) -> None:
    under = notes_under(text, out)
    lines = text.splitlines()
    uffd = [n for n in under if n and "uffd-wp-under-ptl" in under[n]]
    assert len(uffd) == 1, under
    noted = lines[uffd[0] - 1]
    assert noted.startswith(">") and "(userfaultfd_wp(vma))" in noted.replace(" ", "")
    assert under[uffd[0]].startswith("uffd-wp-under-ptl: ")
    assert any(v.startswith("anon-vma-under-ptl: ") for v in under.values())


@pytest.mark.parametrize("name", sorted(RENDER))
def test_quote_renderings_are_matched_by_tokens(tmp_path: Path, name: str) -> None:
    reply = tmp_path / f"{name}.eml"
    text = _mail(RENDER[name](diff_lines()))
    reply.write_text(text)
    code, out, err = annotate(reply, "--thread", str(PATCH), "--tree", str(TREE))
    assert code == 1, err
    _check_uffd_note(text, out)


def test_wrapped_line_gets_its_note_under_its_last_piece(tmp_path: Path) -> None:
    reply = tmp_path / "wrapped.eml"
    text = _mail(_wrapped(diff_lines()))
    reply.write_text(text)
    _, out, _ = annotate(reply, "--thread", str(PATCH), "--tree", str(TREE))
    lines = text.splitlines()
    after = next(n for n, v in notes_under(text, out).items() if v.startswith("uffd-wp"))
    assert lines[after - 1] == "> (userfaultfd_wp(vma))" and lines[after - 2] == "> +\t\tif"


def test_crlf_reply_keeps_its_line_endings(tmp_path: Path) -> None:
    reply = tmp_path / "crlf.eml"
    text = _mail(_plain(diff_lines())).replace("\n", "\r\n")
    reply.write_bytes(text.encode())
    proc = subprocess.run(
        [sys.executable, "-m", "lockcheck", "annotate", str(reply), "--thread", str(PATCH)]
        + ["--tree", str(TREE)],
        cwd=ROOT,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert b"\n" not in proc.stdout.replace(b"\r\n", b"")  # every line, notes too, ends CRLF
    _check_uffd_note(text, proc.stdout.decode())


@pytest.mark.parametrize("encoding", ["quoted-printable", "base64"])
def test_transfer_encoded_body_is_decoded_and_annotated(tmp_path: Path, encoding: str) -> None:
    body = ("On Monday, Hal Patcher wrote:\n" + "\n".join(_plain(diff_lines())) + "\n").encode()
    encode = base64.encodebytes if encoding == "base64" else quopri.encodestring
    payload = encode(body)
    assert b"userfaultfd_wp(vma)" not in payload.replace(b"=\n", b"") or encoding != "base64"
    head = HEADERS + f"Content-Transfer-Encoding: {encoding}\n"
    reply = tmp_path / f"{encoding}.eml"
    reply.write_bytes(head.encode() + b"\n" + payload)
    decoded = decoded_mail(reply.read_bytes(), str(reply)).decode()
    assert "Content-Transfer-Encoding: 8bit" in decoded
    assert f"> +\t\tif ({UFFD})" in decoded
    code, out, err = annotate(reply, "--thread", str(PATCH), "--tree", str(TREE))
    assert code == 1, err
    _check_uffd_note(decoded, out)


def test_multipart_reply_is_annotated_as_its_text_part(tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    for line in HEADERS.splitlines()[:5]:
        name, value = line.split(": ", 1)
        msg[name] = value
    text = "On Monday, Hal Patcher wrote:\n" + "\n".join(_plain(diff_lines())) + "\n"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative("<p>" + text.replace("\n", "<br>") + "</p>", subtype="html")
    reply = tmp_path / "multipart.eml"
    reply.write_bytes(bytes(msg))
    decoded = decoded_mail(reply.read_bytes(), str(reply)).decode()
    assert "multipart" not in decoded and "<br>" not in decoded
    assert "Content-Type: text/plain; charset=utf-8" in decoded
    code, out, err = annotate(reply, "--thread", str(PATCH), "--tree", str(TREE))
    assert code == 1, err
    _check_uffd_note(decoded, out)


def test_plain_mail_is_annotated_byte_for_byte() -> None:
    raw = (ROOT / "fixtures" / "series" / "reply.eml").read_bytes()
    assert decoded_mail(raw, "reply.eml") is raw


# ---------------------------------------------------------------------------
# token matching


def test_tokens_ignore_white_space_and_keep_operators() -> None:
    assert (
        tokens("if (a->b != c)")
        == tokens("if(a -> b!=c)")
        == ["if", "(", "a", "->", "b", "!=", "c", ")"]
    )


def test_align_maps_a_wrapped_quoted_line_to_its_last_piece() -> None:
    full = parse_patch_text("\n".join(diff_lines()) + "\n", "p")[0].files[0]
    text = _mail(_wrapped(diff_lines()))
    quoted = parse_patch_text(text, "r")[0].files[0]
    qmap = align(quoted, full)
    lines = text.splitlines()
    hi, li = next(
        (hi, li)
        for hi, h in enumerate(full.hunks)
        for li, ln in enumerate(h.lines)
        if ln.kind == "+" and UFFD in ln.text
    )
    assert lines[qmap.lines[(hi, li)] - 1] == "> (userfaultfd_wp(vma))"
    assert qmap.score > 0.9


# ---------------------------------------------------------------------------
# the seed email: a real review thread, with a thread and tree written for it


def test_the_seed_email_annotated_with_a_thread_and_a_tree() -> None:
    seed = seed_email()  # skips with a reason, fails when CI=true
    code, out, err = annotate(seed, "--thread", str(THREAD), "--tree", str(TREE))
    assert code == 1, err
    assert "found by subject" in err
    text = seed.read_text()
    under = notes_under(text, out)
    lines = text.splitlines()
    uffd = next(n for n, ln in enumerate(lines, 1) if ln.startswith("> >") and f"if ({UFFD})" in ln)
    anon = next(n for n, ln in enumerate(lines, 1) if ln.startswith("> > +") and ANON in ln)
    assert under[uffd].startswith("uffd-wp-under-ptl: ")
    assert under[anon].startswith("anon-vma-under-ptl: ")
    assert "{mapping->i_mmap_rwsem:read}" in under[uffd]
    assert "no longer held: `mm->mmap_lock:write`" in under[uffd]
    assert set(under) == {uffd, anon}
    # the README's worked example shows this run: its note lines are the real ones
    readme = (ROOT / "README.md").read_text()
    example = readme[readme.index("### Worked example") :].split("```")[3]
    shown = [ln for ln in example.splitlines() if ln.startswith(NOTE)]
    assert len(shown) > 10 and all(ln in out.splitlines() for ln in shown)


# ---------------------------------------------------------------------------
# a real kernel file: a patch moving the uffd-wp test out of the mmap lock


def _kernel_patch(tree: Path) -> str:
    """Made here from the tree itself: the test above `mmap_write_trylock()`."""
    src = (tree / "mm" / "khugepaged.c").read_text()
    lines = src.splitlines(keepends=True)
    fn = next(i for i, ln in enumerate(lines) if ln.startswith("static int retract_page_tables("))
    i_try = next(i for i in range(fn, len(lines)) if "mmap_write_trylock(mm)) {" in lines[i])
    i_uffd = next(i for i in range(i_try, len(lines)) if f"if ({UFFD}) {{" in lines[i])
    block = [ln.replace("\t", "", 1) for ln in lines[i_uffd : i_uffd + 4]]
    block = [re.sub(r"goto unlock_next;", "goto next;", ln) for ln in block]
    new = lines[: i_try - 1] + block + lines[i_try - 1 : i_uffd] + lines[i_uffd + 4 :]
    diff = difflib.unified_diff(lines, new, "a/mm/khugepaged.c", "b/mm/khugepaged.c")
    return "".join(diff)


def test_whole_hunk_reply_on_the_6_1_kernel_gives_the_patch_files_findings(
    kernel_tree: Path, tmp_path: Path
) -> None:
    diff = _kernel_patch(kernel_tree)
    patch = tmp_path / "move.patch"
    patch.write_text(diff)
    reply = tmp_path / "reply.eml"
    quoted = "\n".join("> " + ln for ln in diff.splitlines())
    reply.write_text(
        "From: r <r@example.org>\nSubject: Re: [PATCH] mm/khugepaged: test uffd-wp early\n\n"
        f"On Monday someone wrote:\n{quoted}\n\nIs this safe without the mmap lock?\n"
    )
    code, out, err = annotate(reply, "--tree", str(kernel_tree))
    assert code == 1, err
    text = reply.read_text()
    under = notes_under(text, out)
    notes = under[line_with(text, f"+\t\tif ({UFFD}) {{")]
    # the test now runs before the mmap lock it ran under: both the pte-lock
    # rule and the before/after comparison speak about that line
    assert notes.startswith("moved-out-of-lock: ")
    assert " uffd-wp-under-ptl: " in notes

    def findings(path: Path) -> list[tuple[str, int]]:
        res = run_cli(
            "review", str(path), "--tree", str(kernel_tree), "--format", "json", "--no-sim"
        )
        assert res.returncode == 1, res.stderr
        return [(f["rule"], f["line"]) for f in json.loads(res.stdout)["findings"]]

    assert findings(reply) == findings(patch) != []


# ---------------------------------------------------------------------------
# review gives the simulator's evidence, as check does


def test_review_of_a_patch_has_simulator_evidence_and_sarif_code_flows() -> None:
    res = run_cli("review", str(PATCH), "--tree", str(TREE), "--format", "sarif")
    assert res.returncode == 1, res.stderr
    results = json.loads(res.stdout)["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"anon-vma-under-ptl", "uffd-wp-under-ptl"}
    for r in results:
        assert r["properties"]["evidence"].startswith("confirmed: trace of ")
        flow = r["codeFlows"][0]["threadFlows"]
        steps = [loc for tf in flow for loc in tf["locations"]]
        assert len(flow) >= 2 and steps  # the reviewed function and a racing actor
        paths = {
            loc["location"]["physicalLocation"]["artifactLocation"]["uri"]
            for loc in steps
            if "physicalLocation" in loc["location"]
        }
        assert "mm/khugepaged.c" in paths
    text = run_cli("review", str(PATCH), "--tree", str(TREE))
    assert "evidence: confirmed: trace of" in text.stdout
    quiet = run_cli("review", str(PATCH), "--tree", str(TREE), "--format", "sarif", "--no-sim")
    assert all("codeFlows" not in r for r in json.loads(quiet.stdout)["runs"][0]["results"])


# ---------------------------------------------------------------------------
# broken replies and threads: one error line or a result, never a traceback


@settings(
    max_examples=int(30 * float(os.environ.get("LOCKCHECK_FUZZ_EXAMPLES", "1"))),
    deadline=None,
    derandomize=True,  # as the other fuzz tests: CI runs the same cases each time
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_replies_and_threads_keep_the_contract(data: st.DataObject) -> None:
    reply = _mail(RENDER[data.draw(st.sampled_from(sorted(RENDER)))](diff_lines())).splitlines()
    thread = THREAD.read_text().splitlines()
    for lines in (reply, thread):
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(lines) - 1))
            op = data.draw(st.sampled_from(["drop", "repeat", "swap", "edit"]))
            if op == "drop":
                del lines[i]
            elif op == "repeat":
                lines.insert(i, lines[i])
            elif op == "swap":
                j = data.draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = data.draw(st.sampled_from(["> +", "> @@ -1 +1 @@", "...", "> >", ""]))
    with tempfile.TemporaryDirectory() as tmp:
        r, t = Path(tmp) / "r.eml", Path(tmp) / "t.mbox"
        r.write_text("\n".join(reply) + "\n")
        t.write_text("\n".join(thread) + "\n")
        for command in ("annotate", "review"):
            code, _, err = run_main(command, str(r), "--thread", str(t), "--tree", str(TREE))
            assert_contract(code, err)


def test_an_empty_quoted_line_in_a_quote_without_hunk_headers_is_context() -> None:
    """`> ` alone (a blank line of the patch, its indentation lost) is not a
    `+`/`-` line: it once made the reader index an empty string."""
    raw = THREAD.read_text()
    text = raw[raw.rindex("\nFrom pat@example.org") + 1 :].split("\n", 1)[1]
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("> +"))
    lines.insert(i, ">")
    reply = headerless_quote(parse_patch_text("\n".join(lines) + "\n", "pat.eml")[0])
    assert reply.files
    kinds = [hl.kind for f in reply.files for h in f.hunks for hl in h.lines]
    assert set(kinds) <= {"+", "-", " "} and "+" in kinds
