"""Every reporter in process: fixed findings and fixed reviews rendered by each
format, compared with golden files, then the details pinned one by one.

Fast on purpose (about a second): `make mutate` runs this module first for
every mutant of lockcheck/report/ (tests/test_report.py renders through the
CLI). The findings are made here, so they cover what real reviews rarely
give at once: every severity and an unknown one, related sites in the file
and in another, evidence, tabs, non-ASCII and control characters, an anchor
over two lines, a line the source does not have, characters the GitHub
runner must escape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree
from lockcheck.inputs.patch import FilePatch, Hunk, HunkLine, Patch, order_series, read_patches
from lockcheck.model.finding import Finding, Related
from lockcheck.packs import RuleSpec
from lockcheck.report import FORMATS, REVIEW_FORMATS, RunInfo, make_reporter, render_report
from lockcheck.report.annotate import AnnotateReporter, insert_notes, render_annotated
from lockcheck.report.b4 import status_of, summary_of
from lockcheck.report.base import char_column, drive, source_line
from lockcheck.report.email_reply import (
    MBOX_FROM,
    EmailReporter,
    _mboxrd,
    header_line,
    quote_patch,
    recipients,
)
from lockcheck.report.explain import render_explain, transitions
from lockcheck.report.github import escape_data, escape_property, workflow_command
from lockcheck.report.json_report import render_json
from lockcheck.report.notes import (
    context_note,
    context_paragraph,
    finding_paragraphs,
    held_set,
    rule_wants,
    wrap,
)
from lockcheck.report.text import parse_error_note, printable, render_text, want_color
from lockcheck.review import Location, ReviewResult, SiteContext, review, review_versions
from tests.helpers import FIXTURES, ROOT, assert_golden

SPEC = RuleSpec(
    "uffd-wp-under-ptl",
    "check-under-lock",
    "error",
    "m",
    "a summary",
    "mm",
    params={"flag": "uffd-wp", "locks": ["pte_lock", "mmap_lock"]},
)
OTHER = RuleSpec("lock-balance", "lock-balance", "note", "m", "", "mm")

SOURCE_A = [
    "static void f(struct vm_area_struct *vma)\n",
    "{\n",
    "\t/* é→ */ if (userfaultfd_wp(vma))\n",
    "\t\treturn;\n",
    "\tspin_lock(ptl);\n",
    "\tx = \x1b[2Jy;\n",
    "}\n",
]
SOURCE_B = ["int g(void)\n", "{\n", "\treturn 0;\n", "}"]


def finding(**kw: Any) -> Finding:
    base: dict[str, Any] = {
        "rule": "uffd-wp-under-ptl",
        "severity": "error",
        "path": "mm/a.c",
        "line": 3,
        "column": 1 + len("\t/* é→ */ if (".encode()),
        "function": "f",
        "message": "`userfaultfd_wp(vma)` tested without the pte lock",
        "held": ("mapping->i_mmap_rwsem:read",),
        "expected": ("pte_lock",),
        "related": (Related(5, 2, "`ptl` taken here"), Related(9, 1, "the act", "mm/b.c")),
        "anchor": "userfaultfd_wp(vma)",
    }
    base.update(kw)
    return Finding(**base)


FINDINGS = [
    finding(),
    finding(
        rule="lock-balance",
        severity="warning",
        line=5,
        column=2,
        message="`ptl` may be held at return: 50% of paths, a:b, c",
        held=(),
        expected=(),
        related=(),
        anchor="spin_lock(ptl);\n\tmore",
        evidence="simulated: a path returns holding `ptl`",
    ),
    finding(rule="stale-value", severity="note", line=6, column=6, anchor="\x1b[2Jy", related=()),
    finding(rule="odd", severity="strange", line=40, column=0, anchor="", related=()),
    finding(path="mm/b.c", line=3, column=2, function="g", anchor="return 0;", related=()),
    finding(path="mm/b.c", line=4, column=1, function="g", anchor="}", held=(), related=()),
]
SOURCES = {"mm/a.c": SOURCE_A, "mm/b.c": SOURCE_B}
STATS = {"files": 2, "functions": 3, "functions_analysed": 3}
STATS_MORE = {
    "files": 2,
    "functions": 5,
    "functions_analysed": 4,
    "budget_outs": 1,
    "parse_error_functions": 0,
    "parse_errors": 2,
    "baselined": 3,
    "input_errors": 1,
}
RUN = RunInfo(rules=(SPEC, OTHER), command="lockcheck check mm/a.c mm/b.c")


def test_fixed_findings_golden() -> None:
    parts = []
    for fmt in REVIEW_FORMATS:
        if fmt == "sarif":
            continue  # sarif.py has its own tests
        for stats in (STATS, STATS_MORE):
            out = render_report(fmt, FINDINGS, stats, SOURCES, RUN)
            parts.append(f"===== {fmt} {sorted(stats)}\n{out}")
    parts.append(
        "===== text colour\n" + render_report("text", FINDINGS, STATS, SOURCES, color=True)
    )
    parts.append("===== text quiet\n" + render_report("text", FINDINGS, STATS, SOURCES, quiet=True))
    parts.append("===== text quiet, none\n" + render_report("text", [], STATS, quiet=True) + "|")
    for fmt in FORMATS:
        if fmt != "sarif":
            parts.append(f"===== {fmt} none\n" + render_report(fmt, [], STATS, {}, RUN) + "|")
    assert_golden("report.fixed.txt", "".join(parts))


# --- reviews: the series against its tree, a reply quoting patch 2, the thread

ENGINE = Engine()
REPLY = "fixtures/series/reply.eml"


def _reviews() -> dict[str, tuple[ReviewResult, str]]:
    tree = DirTree(FIXTURES / "series" / "tree")
    series = order_series(read_patches(FIXTURES / "series" / "series.mbox"))
    # the reply by a relative name, as a user gives it: findings point into the
    # email by that name, so the output is the same wherever the checkout is
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        reply = order_series(read_patches(Path(REPLY)))
    thread = order_series(read_patches(FIXTURES / "thread" / "thread.mbox"))
    out = {
        "series": (review(ENGINE, series, tree), "lockcheck review series.mbox"),
        "series-no-command": (review(ENGINE, series, tree), ""),
        "patch-3": (review(ENGINE, series[3:], tree, keep_going=True), ""),
        "reply": (review(ENGINE, reply, None), "lockcheck annotate reply.eml"),
        "thread": (
            review(ENGINE, thread, DirTree(FIXTURES / "thread" / "tree"), keep_going=True),
            "lockcheck review thread.mbox",
        ),
        "show-all": (review(ENGINE, series, tree, show_all=True), "x"),
    }
    # a fix: the locks at the checks change, nothing new is found
    k = FIXTURES / "khugepaged"
    for name, before, after in (
        ("v1", "pre_series.c", "v1.c"),
        ("fix", "v1.c", "merged_fix.c"),
    ):
        old, new = (k / before).read_text(), (k / after).read_text()
        out[name] = (review_versions(ENGINE, "mm/khugepaged.c", old, new), f"lockcheck {name}")
    return out


@pytest.fixture(scope="module")
def reviews() -> dict[str, tuple[ReviewResult, str]]:
    return _reviews()


def _run(result: ReviewResult, command: str, **kw: Any) -> RunInfo:
    rules = tuple(r.spec for r in ENGINE.rules)
    return RunInfo(rules=rules, command=command, review=result, **kw)


def _sources(result: ReviewResult) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rf in result.findings:
        if rf.image_text:
            out[rf.finding.path] = rf.image_text.splitlines(keepends=True)
    return out


def test_reviews_golden(reviews: dict[str, tuple[ReviewResult, str]]) -> None:
    parts = []
    for name, (result, command) in reviews.items():
        findings = [rf.finding for rf in result.findings]
        stats = result.stats.as_dict()
        for fmt in REVIEW_FORMATS:
            if fmt == "sarif":
                continue
            run = _run(result, command, sender="Rob <rob@example.org>", date="Tue, 6 Jan 2026")
            out = render_report(fmt, findings, stats, _sources(result), run)
            parts.append(f"===== {name} {fmt}\n{out}")
        email_text = (FIXTURES / "series" / "reply.eml").read_text()
        source = REPLY
        annotated = render_annotated(email_text, source, findings, _run(result, command))
        parts.append(f"===== {name} annotate\n{annotated}")
    text = "".join(parts).replace(str(ROOT), "<root>")
    assert_golden("report.reviews.txt", text)


def test_explain_golden() -> None:
    parts = []
    for path in (
        FIXTURES / "khugepaged" / "v1.c",
        FIXTURES / "locking" / "mm_idioms.c",
        FIXTURES / "locking" / "identity_and_claims.c",
    ):
        analysis = ENGINE.analyse_source(path.name, path.read_bytes())
        parts.extend(render_explain(ff) for ff in analysis.facts.functions)
    analysis = ENGINE.analyse_source("x.c", EXPLAINED.encode())
    parts.extend(render_explain(ff) for ff in analysis.facts.functions)
    small = Engine(Config(max_nodes=4)).analyse_source("x.c", EXPLAINED.encode())
    parts.extend(render_explain(ff) for ff in small.facts.functions)
    assert_golden("report.explain.txt", "".join(parts))


# events the fixtures above lack: a downgrade, a check through a variable, an
# act inside a callee, claims, a trylock, a nested and a read acquisition
EXPLAINED = """
static void drop(struct vm_area_struct *vma, unsigned long addr, pmd_t *pmd)
{
	pmdp_collapse_flush(vma, addr, pmd);
}

static void f(struct mm_struct *mm, struct vm_area_struct *vma, spinlock_t *ptl, pmd_t *pmd)
	__must_hold(&mm->mmap_lock)
{
	bool wp;

	lockdep_assert_held(&mm->mmap_lock);
	mmap_write_downgrade(mm);
	wp = userfaultfd_wp(vma);
	if (!spin_trylock(ptl))
		return;
	lockdep_assert_not_held(&vma->lock);
	spin_lock_nested(&vma->lock, 1);
	if (wp)
		drop(vma, 0, pmd);
	spin_unlock(&vma->lock);
	spin_unlock(ptl);
	mmap_read_lock(mm);
}

static void g(struct vm_area_struct *vma, struct zone *z, struct anon *a)
{
	bool wp = (userfaultfd_wp(vma), spin_lock(&vma->lock), 1);

	spin_lock(&z->l); spin_lock(&a->l);
	spin_unlock(&a->l); spin_unlock(&z->l);
	spin_unlock(&vma->lock);
}
"""


# --- the details


def test_make_reporter_names_every_format() -> None:
    for fmt in REVIEW_FORMATS:
        assert make_reporter(fmt).name == fmt
    plain = make_reporter("text")
    assert plain.color is False and plain.quiet is False  # type: ignore[attr-defined]
    assert make_reporter("text", color=True).color is True  # type: ignore[attr-defined]
    assert make_reporter("text", quiet=True).quiet is True  # type: ignore[attr-defined]
    with pytest.raises(InputError) as exc:
        make_reporter("xml")
    assert str(exc.value) == (
        "unknown output format 'xml' (one of: text, json, sarif, github, b4, checkpatch, email)"
    )


def test_drive_feeds_files_in_order_with_their_lines() -> None:
    seen: list[tuple[str, Any]] = []

    class Spy(EmailReporter):
        def file(self, path: str, lines: Any) -> None:
            seen.append((path, lines))
            super().file(path, lines)

        def stop(self, stats: Any) -> str:
            return ",".join(f"{f.path}:{f.line}" for f in self.findings)

    out = drive(Spy(), list(reversed(FINDINGS)), {}, {"mm/b.c": SOURCE_B})
    assert out == "mm/a.c:3,mm/a.c:5,mm/a.c:6,mm/a.c:40,mm/b.c:3,mm/b.c:4"
    assert seen == [("mm/a.c", ()), ("mm/b.c", SOURCE_B)]
    assert drive(Spy(), FINDINGS[:1], {}) == "mm/a.c:3"


def test_source_line_and_char_column() -> None:
    assert source_line(["a\r\n", "b\n"], 1) == "a"
    assert source_line(["a\r\n", "b\n"], 2) == "b"
    assert source_line(["a\n"], 0) is None
    assert source_line(["a\n"], 2) is None
    assert char_column("é→x", 6) == 3
    assert char_column("é→x", 1) == 1
    assert char_column("é→x", 0) == 1
    assert char_column(None, 7) == 7
    assert char_column(None, -3) == 1
    assert char_column("ab", 2) == 2
    assert char_column("→x", 3) == 2  # inside a character: what is before it counts
    assert source_line(["abX\n"], 1) == "abX"


def test_want_color() -> None:
    assert want_color("always", False, {"NO_COLOR": "1"}) is True
    assert want_color("never", True, {}) is False
    assert want_color("auto", True, {}) is True
    assert want_color("auto", True, {"NO_COLOR": ""}) is True
    assert want_color("auto", True, {"NO_COLOR": "1"}) is False
    assert want_color("auto", False, {}) is False


def test_printable_keeps_tabs_and_shows_controls() -> None:
    assert printable("a\tb") == "a\tb"
    assert printable("\x1b[2J") == "\u241b[2J"
    assert printable("\x00\x1f\x7f") == "\u2400\u241f\u2421"
    assert printable("\x80\x9f\xa0") == "\ufffd\ufffd\xa0"
    assert printable("\n") == "\u240a"


def test_parse_error_note() -> None:
    assert parse_error_note({}) == ""
    assert (
        parse_error_note({"parse_errors": 1}) == ", 1 parse error outside functions (not analysed)"
    )
    assert parse_error_note({"parse_errors": 2}) == (
        ", 2 parse errors outside functions (not analysed)"
    )
    assert parse_error_note({"parse_error_functions": 1, "parse_errors": 4}) == (
        ", 1 of them with parse errors (their findings may be incomplete)"
    )


def test_text_summary_counts() -> None:
    one = render_text(FINDINGS[:1], {"files": 1, "functions": 2, "functions_analysed": 1})
    assert one.endswith("\n\n1 finding in 1 file(s), 1/2 functions analysed\n")
    assert render_text([], {}) == "0 findings in 0 file(s), 0/0 functions analysed\n"
    assert render_text([], {"budget_outs": 0, "input_errors": 0}).count(",") == 1
    assert render_text([], {"baselined": 0}).endswith(", 0 hidden by the baseline\n")


def test_text_excerpt_marks_the_line_and_points_the_caret() -> None:
    out = render_text(FINDINGS[:1], STATS, SOURCES)
    lines = out.splitlines()
    assert lines[0] == (
        "mm/a.c:3:18: error: `userfaultfd_wp(vma)` tested without the pte lock [uffd-wp-under-ptl]"
    )
    assert lines[1] == "       2 | {"
    assert lines[2] == "  >    3 | \t/* é→ */ if (userfaultfd_wp(vma))"
    assert lines[3] == "         | \t             ^~~~~~~~~~~~~~~~~~~"
    assert lines[4] == "       4 | \t\treturn;"
    assert lines[5] == "  in `f()`; held here: {mapping->i_mmap_rwsem:read}"
    assert lines[6] == "  mm/a.c:5: `ptl` taken here"
    assert lines[7] == "  mm/b.c:9: the act"
    # the first line: no line above it; an empty line shows no text
    top = render_text([finding(line=1, column=1, anchor="")], STATS, {"mm/a.c": ["x\n", "\n"]})
    assert top.splitlines()[1:4] == ["  >    1 | x", "         | ^", "       2 |"]
    # a caret never runs past the line's end; a long file widens the numbers
    long = ["a\n"] * 99999 + ["tail\n"]
    got = render_text(
        [finding(line=100000, column=3, anchor="tail_and_more")], STATS, {"mm/a.c": long}
    )
    assert got.splitlines()[1:4] == ["    99999 | a", "  >100000 | tail", "          |   ^~"]


def test_text_colour_is_plain_text_plus_escapes() -> None:
    import re

    plain = render_report("text", FINDINGS, STATS, SOURCES)
    coloured = render_report("text", FINDINGS, STATS, SOURCES, color=True)
    assert coloured != plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert "\x1b[1;31merror:\x1b[0m" in coloured
    assert "\x1b[1;35mwarning:\x1b[0m" in coloured
    assert "\x1b[1;36mnote:\x1b[0m" in coloured
    assert "\x1b[1mstrange:\x1b[0m" in coloured


def test_json_schema_and_review_keys(reviews: dict[str, tuple[ReviewResult, str]]) -> None:
    doc = json.loads(render_json(FINDINGS, STATS, {"top": 1}))
    assert doc["version"] == 1 and doc["top"] == 1 and doc["stats"] == STATS
    first = doc["findings"][0]
    assert first["related"][0] == {
        "path": "mm/a.c",
        "line": 5,
        "column": 2,
        "message": "`ptl` taken here",
    }
    assert first["related"][1]["path"] == "mm/b.c"
    assert "evidence" not in first
    assert doc["findings"][1]["evidence"] == "simulated: a path returns holding `ptl`"
    assert first["fingerprint"] == FINDINGS[0].fingerprint
    assert json.loads(render_json([], {}))["findings"] == []
    result, command = reviews["series"]
    out = json.loads(
        render_report(
            "json", [rf.finding for rf in result.findings], {}, None, _run(result, command)
        )
    )
    assert [f["introduced_by"] for f in out["findings"]] == [
        result.patches[2].subject,
        result.patches[2].subject,
    ]


def test_github_escaping_and_levels() -> None:
    assert escape_data("50%\r\na") == "50%25%0D%0Aa"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert workflow_command("error", {"file": "a,b", "line": 3}, "m:1") == (
        "::error file=a%2Cb,line=3::m:1"
    )
    out = render_report("github", FINDINGS, STATS, SOURCES).splitlines()
    assert out[0].startswith(
        "::error file=mm/a.c,line=3,col=15,title=lockcheck uffd-wp-under-ptl::"
    )
    assert out[1].startswith("::warning file=mm/a.c,line=5,col=2,")
    assert out[2].startswith("::notice ")
    assert out[3].startswith("::warning file=mm/a.c,line=40,title=")  # column 0: none
    assert "%0Aevidence: simulated" in out[1]
    assert "%0Ain `g()`; held here: {-}" in out[5]
    two = render_report("github", [finding(held=("a", "b:read"))], STATS)
    assert "%0Ain `f()`; held here: {a, b%3Aread}" not in two  # the message is data, not a property
    assert "%0Ain `f()`; held here: {a, b:read}%0A" in two


def test_checkpatch_levels() -> None:
    out = render_report("checkpatch", FINDINGS, STATS).splitlines()
    assert out[0] == (
        "mm/a.c:3: ERROR: `userfaultfd_wp(vma)` tested without the pte lock [uffd-wp-under-ptl]"
    )
    assert [ln.split(": ")[1] for ln in out] == [
        "ERROR",
        "WARNING",
        "CHECK",
        "WARNING",
        "ERROR",
        "ERROR",
    ]
    assert render_report("checkpatch", [finding(message="a\n  b")], STATS) == (
        "mm/a.c:3: ERROR: a b [uffd-wp-under-ptl]\n"
    )


def test_b4_status_and_summary() -> None:
    assert status_of([]) == "pass"
    assert status_of([FINDINGS[2]]) == "warn"  # a note
    assert status_of([FINDINGS[3]]) == "warn"  # an unknown severity ranks lowest
    assert status_of([FINDINGS[1]]) == "warn"
    assert status_of([FINDINGS[1], FINDINGS[0]]) == "fail"
    assert summary_of([]) == "no lock findings"
    assert summary_of(FINDINGS[:3]) == (
        "1 error, 1 warning, 1 note: lock-balance, stale-value, uffd-wp-under-ptl"
    )
    assert summary_of([FINDINGS[0], FINDINGS[4]]) == "2 errors: uffd-wp-under-ptl"
    doc = json.loads(render_report("b4", FINDINGS[:2], STATS, None, RUN))
    assert len(doc) == 1
    assert doc[0]["tool"] == "lockcheck" and doc[0]["status"] == "fail"
    assert doc[0]["details"].endswith("reproduce: lockcheck check mm/a.c mm/b.c")
    assert "\n  mm/b.c:9: the act\n" in doc[0]["details"]
    two = json.loads(render_report("b4", [finding(held=("a", "b"))], STATS))[0]["details"]
    assert "\n  in f(); held here: {a, b}\n" in two
    assert json.loads(render_report("b4", [], STATS)) == [
        {"tool": "lockcheck", "status": "pass", "summary": "no lock findings"}
    ]


def test_b4_one_entry_per_reviewed_patch(reviews: dict[str, tuple[ReviewResult, str]]) -> None:
    result, command = reviews["series"]
    doc = json.loads(
        render_report("b4", [rf.finding for rf in result.findings], {}, None, _run(result, ""))
    )
    assert [e["status"] for e in doc] == ["pass", "fail", "pass"]
    assert all(e["patch"].startswith(f"[PATCH {i}/3]") for i, e in enumerate(doc, 1))
    assert all("msgid" in e for e in doc)
    assert "fixed later in the series by: [PATCH 3/3]" in doc[1]["details"]
    assert "reproduce:" not in doc[1]["details"]


# --- notes, annotate, email


def _ctx(before: tuple[str, ...] | None, after: tuple[str, ...] | None, kind: str) -> SiteContext:
    patch = Patch("s", (), "o")
    return SiteContext(patch, "f.c", Location("f.c", 3), "fn", "x", kind, before, after)


def test_wrap_and_held_set() -> None:
    assert wrap(["a b", "c"], width=10, prefix="> ") == ["> a b", ">", "> c"]
    assert wrap([""], prefix="> ") == [">"]
    assert wrap(["word " * 20], width=20) == ["word word word word"] * 5
    assert wrap(["a-very-long-hyphenated-word x"], width=10) == [
        "a-very-long-hyphenated-word",
        "x",
    ]
    assert held_set(None) == "{}"
    assert held_set(("a", "b")) == "{a, b}"


def test_context_paragraphs_and_rule_wants() -> None:
    assert context_paragraph(_ctx(None, ("a",), "check uffd-wp")) == (
        "`x` (check uffd-wp) is new here and runs holding {a}."
    )
    assert context_paragraph(_ctx(("a",), None, "k")) == "`x` (k) is removed; it ran holding {a}."
    assert context_paragraph(_ctx(("a",), ("a",), "k")) == (
        "`x` (k) runs holding {a}, as before this patch."
    )
    assert context_paragraph(_ctx(("a",), ("b",), "k")) == (
        "`x` (k): before this patch it ran holding {a}; now it runs holding {b} "
        "(no longer held: `a`; now held: `b`)."
    )
    wants = rule_wants("check uffd-wp, act pt-detach", [OTHER, SPEC])
    assert wants == (
        "rule uffd-wp-under-ptl wants the pte lock or the mmap lock (either mode) held "
        "where this test decides a page-table removal."
    )
    assert rule_wants("act uffd-wp", [SPEC]) is None
    assert rule_wants("check anon-vma", [SPEC]) is None
    two = RuleSpec("a-rule", "check-under-lock", "error", "m", "", "mm", params=SPEC.params)
    both = rule_wants("check uffd-wp", [SPEC, two])
    assert both is not None and both.startswith("rule a-rule wants")
    assert "removal; rule uffd-wp-under-ptl wants" in both
    for change, before, after, extra in (
        ("added", None, ("a",), True),
        ("changed", ("a",), ("b",), True),
        ("unchanged", ("a",), ("a",), False),
        ("removed", ("a",), None, False),
    ):
        note = context_note(_ctx(before, after, "check uffd-wp"), [SPEC])
        assert note[0].startswith("lockcheck: `x`"), change
        assert (len(note) == 2) is extra, change
        if extra:
            assert note[1].startswith("Rule uffd-wp-under-ptl wants")
    assert context_note(_ctx(None, ("a",), "check uffd-wp"), [SPEC], lead="")[0].startswith("`x`")


def test_insert_notes() -> None:
    assert insert_notes("a\nb\n", {1: ["n1", "n2"]}) == "a\nn1\nn2\nb\n"
    assert insert_notes("a\r\nb", {1: ["n"], 2: ["m"]}) == "a\r\nn\r\nb\nm\n"
    assert insert_notes("a\rb\r", {2: ["n"]}) == "a\rb\rn\r"
    assert insert_notes("a\n", {}) == "a\n"
    assert insert_notes("aX\nb\n", {1: ["n"]}) == "aX\nn\nb\n"
    assert insert_notes("a\n", {5: ["n"]}) == "a\n"


def test_annotate_without_a_review_changes_nothing() -> None:
    assert render_annotated("x\ny\n", "e", FINDINGS, RunInfo()) == "x\ny\n"
    assert AnnotateReporter("x", "e").notes() == {}
    assert AnnotateReporter("x", "e").name == "annotate"


def test_annotate_reply(reviews: dict[str, tuple[ReviewResult, str]]) -> None:
    result, command = reviews["reply"]
    text = (FIXTURES / "series" / "reply.eml").read_text()
    source = REPLY
    findings = [rf.finding for rf in result.findings]
    out = render_annotated(text, source, findings, _run(result, command))
    added = [ln for ln in out.splitlines() if ln not in text.splitlines()]
    assert added and all(ln.startswith("[lockcheck]") for ln in added)
    assert sum(ln.startswith("[lockcheck] uffd-wp-under-ptl: ") for ln in added) == 1
    assert sum(ln.startswith("[lockcheck] anon-vma-under-ptl: ") for ln in added) == 1
    # a finding the review does not know, sorted first, changes nothing
    foreign = finding(path="a/x.c")
    assert render_annotated(text, source, [foreign, *findings], _run(result, command)) == out
    # another email's name: nothing is about it
    assert render_annotated(text, "other.eml", findings, _run(result, command)) == text


def test_header_line_folds_and_encodes() -> None:
    assert header_line("Subject", "a   b\n c") == "Subject: a b c"
    assert header_line("To", "Ann <ann@x.org>,, bob@y.org") == ("To: Ann <ann@x.org>, bob@y.org")
    enc = header_line("From", "Zoë <z@x.org>")
    assert enc.startswith("From: =?utf-8?") and enc.endswith(" <z@x.org>")
    assert header_line("Subject", "é").startswith("Subject: =?utf-8?")
    long = header_line("Subject", " ".join(["word"] * 30))
    assert "\n " in long and all(len(ln) <= 78 for ln in long.split("\n"))


def test_recipients_come_from_the_patch_header_block() -> None:
    lines = (
        "From x Mon Sep 17 00:00:00 2001",
        "From: Ann <ann@x.org>",
        "To: Bob <bob@x.org>",
        "Cc: list@x.org, not-an-address",
        "Message-ID: <m1@x>",
        "Subject: s",
        "",
        "To: body@x.org",
    )
    p = Patch("s", (), "o", message_id="<m1@x>", source_lines=lines)
    assert recipients(p) == ["Bob <bob@x.org>", "list@x.org"]
    assert recipients(Patch("s", (), "o", source_lines=lines)) == []
    assert recipients(Patch("s", (), "o", message_id="<m2@x>", source_lines=lines)) == []
    first = Patch("s", (), "o", message_id="<m1@x>", source_lines=lines[4:])
    assert recipients(first) == []  # the header block starts at the Message-ID
    top = Patch("s", (), "o", message_id="<m1@x>", source_lines=("To: a@x.org", *lines[4:6]))
    assert recipients(top) == ["a@x.org"]


def test_mboxrd_escapes_from_lines() -> None:
    assert _mboxrd("a\nFrom b\n>From c\nFromage") == "a\n>From b\n>>From c\nFromage"
    assert _mboxrd("XFrom b") == "XFrom b"


def _hunk(kinds_texts: list[tuple[str, str, int | None]]) -> Hunk:
    lines = tuple(
        HunkLine(kind, text, None, None, src)  # type: ignore[arg-type]
        for kind, text, src in kinds_texts
    )
    return Hunk(1, 9, 1, 9, "f()", lines)


def test_quote_patch_keeps_context_above_comments() -> None:
    rows = [(" ", f"l{i}", 10 + i) for i in range(10)]
    hunk = _hunk(rows)
    fp = FilePatch("mm/a.c", "mm/a.c", (hunk,))
    patch = Patch("s", (fp,), "o")
    out = quote_patch(patch, {15: ["c1"]})
    assert out == [
        "> diff --git a/mm/a.c b/mm/a.c",
        "> --- a/mm/a.c",
        "> +++ b/mm/a.c",
        "> @@ -1,9 +1,9 @@ f()",
        "...",
        ">  l2",
        ">  l3",
        ">  l4",
        ">  l5",
        "",
        "c1",
        "",
        "...",
    ]
    whole = quote_patch(patch, {10: ["a"], 19: ["b"]})
    assert whole[4:6] == [">  l0", ""] and whole[-1] == "b"
    assert quote_patch(patch, {99: ["x"]}) == []


def test_a_run_without_details(reviews: dict[str, tuple[ReviewResult, str]]) -> None:
    """RunInfo's defaults: no command to reproduce, the default sender, no date."""
    details = json.loads(render_report("b4", FINDINGS[:1], STATS))[0]["details"]
    assert "reproduce" not in details
    result, _ = reviews["series"]
    findings = [rf.finding for rf in result.findings]
    out = render_report("email", findings, {}, None, RunInfo(review=result))
    assert out.startswith("From: lockcheck <lockcheck@localhost>\n")
    assert "\nDate: " not in out
    # without rules, nothing is said of what they want
    assert "wants" not in out
    for result, _ in reviews.values():
        out = render_report(
            "email", [rf.finding for rf in result.findings], {}, None, RunInfo(review=result)
        )
        assert "wants" not in out


def test_annotate_notes_checks_without_findings_and_merges_findings_on_a_line() -> None:
    from lockcheck.engine import Stats
    from lockcheck.review import ReviewedFinding

    text = "".join(f"> line {i}\n" for i in range(1, 9))
    patch = Patch("s", (), "o")

    def ctx(line: int, kind: str, before: Any, after: Any) -> SiteContext:
        loc = Location("mail", line)
        return SiteContext(patch, "f.c", loc, "fn", f"x{line}", kind, before, after, loc)

    contexts = [
        ctx(2, "check uffd-wp", None, ("a",)),
        ctx(3, "check uffd-wp", ("a",), ("b",)),
        ctx(4, "check uffd-wp", ("a",), ("a",)),
        ctx(5, "act pt-detach", None, ("a",)),
        ctx(1, "check anon-vma", ("a",), None),
        ctx(6, "check uffd-wp", None, ("a",)),  # a finding is there: no note of its own
        ctx(7, "check anon-vma", None, ()),
    ]
    f1 = finding(line=6, related=(), held=())
    f2 = finding(line=6, column=9, rule="anon-vma-under-ptl", related=(Related(2, 1, "r"),))
    rfs = [
        ReviewedFinding(f1, patch, None, Location("mail", 6)),
        ReviewedFinding(f2, patch, None, Location("mail", 6), unquoted="`y()` in fn()"),
    ]
    result = ReviewResult([patch], rfs, contexts, Stats(), [], None)
    out = render_annotated(text, "mail", [f1, f2], RunInfo(rules=(SPEC,), review=result))
    notes = [ln for ln in out.splitlines() if ln.startswith("[lockcheck]")]
    assert out.splitlines()[0] == "> line 1"
    assert out.splitlines()[2].startswith("[lockcheck] `x2` (check uffd-wp) is new here")
    assert "[lockcheck] `x3` (check uffd-wp): before this patch it ran holding {a};" in out
    assert "x4" not in out and "x5" not in out and "x1`" not in out
    assert "[lockcheck] Rule uffd-wp-under-ptl wants the pte lock" in out
    at6 = out.split("> line 6\n")[1].split("> line 7")[0].splitlines()
    assert at6 == [
        "[lockcheck] anon-vma-under-ptl: `userfaultfd_wp(vma)` tested without the",
        "[lockcheck] pte lock.",
        "[lockcheck]",
        "[lockcheck] Not quoted above: this is about `y()` in fn().",
        "[lockcheck]",
        "[lockcheck] In `f()`, see mm/a.c:2 (r).",
        "[lockcheck]",  # the two findings apart
        "[lockcheck] uffd-wp-under-ptl: `userfaultfd_wp(vma)` tested without the",
        "[lockcheck] pte lock.",
    ]
    assert len(notes) > 8
    assert "[lockcheck] `x7` (check anon-vma) is new here and runs holding {}." in notes
    assert "`x6`" not in out
    # no rules in the run: the same notes, without what rules want
    bare = render_annotated(text, "mail", [f1, f2], RunInfo(review=result))
    assert "wants" not in bare and "`x7` (check anon-vma) is new here" in bare


def test_finding_paragraphs() -> None:
    f = finding(message="tested without the lock", evidence="a run that races", related=())
    assert finding_paragraphs(f, None, None) == [
        "lockcheck [uffd-wp-under-ptl]: Tested without the lock.",
        "Evidence: a run that races.",
    ]


def test_text_reporter_defaults_and_two_held_locks() -> None:
    from lockcheck.report.text import TextReporter

    reporter = TextReporter()
    assert reporter.color is False and reporter.quiet is False
    out = render_text([finding(held=("a", "b:read"), related=())], STATS)
    assert "\n  in `f()`; held here: {a, b:read}\n" in out


def test_text_caret_span_and_highlighting() -> None:
    src = {"mm/a.c": ["\n", "\tspin_lock(ptl);\n", "\n"]}
    # the caret covers the anchor's first line only; no anchor: one column
    two_lines = render_text([finding(line=2, column=2, anchor="spin_lock(\nptl)")], STATS, src)
    assert "         | \t^" + "~" * 9 + "\n" in two_lines  # len("spin_lock(")
    bare = render_text([finding(line=2, column=2, anchor="")], STATS, src)
    assert "         | \t^\n" in bare
    # with colour the code itself is highlighted, also after a blank first line
    coloured = render_text([finding(line=2, column=2, anchor="")], STATS, src, color=True)
    marked = next(ln for ln in coloured.splitlines() if "    2 | " in ln)
    assert "\x1b[" in marked.split("    2 | ")[1]


def test_header_lines_of_addresses_and_long_encoded_words() -> None:
    assert header_line("Cc", "A  <a@x.org>,, b@y.org") == "Cc: A <a@x.org>, b@y.org"
    long = header_line("Subject", " ".join(["é" + "x" * 10] * 12))
    assert long.count("\n =?utf-8?q?") == 3  # continuation lines start with a space


def test_recipients_of_a_header_block_after_a_body() -> None:
    lines = (
        "the previous mail's last line",
        "",
        "Cc: c@x.org",
        "To: b@x.org",
        "Message-ID: <m@x>",
        "",
        "body",
    )
    p = Patch("s", (), "o", message_id="<m@x>", source_lines=lines)
    assert recipients(p) == ["b@x.org", "c@x.org"]


def test_replies_to_two_patches_come_as_an_mbox(tmp_path: Path) -> None:
    base = "struct s { spinlock_t lock; int v; };\n\n"
    fns = [
        f"static void {n}(struct s *p)\n{{\n\tspin_lock(&p->lock);\n\tp->v = 1;\n"
        "\tspin_unlock(&p->lock);\n}\n"
        for n in ("one", "two")
    ]
    v0 = base + fns[0] + "\n" + fns[1]
    v1 = v0.replace("\tp->v = 1;\n", "\tp->v = 1;\n\tif (p->v)\n\t\treturn;\n", 1)
    v2 = v1[: v1.rindex("\tp->v = 1;\n")] + "\tp->v = 1;\n\tif (p->v)\n\t\treturn;\n"
    v2 += v1[v1.rindex("\tp->v = 1;\n") + len("\tp->v = 1;\n") :]
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "s.c").write_text(v0)
    text = ""
    for n, (a, b) in enumerate(((v0, v1), (v1, v2)), 1):
        import difflib

        d = "".join(
            difflib.unified_diff(
                a.splitlines(keepends=True), b.splitlines(keepends=True), "a/mm/s.c", "b/mm/s.c"
            )
        )
        text += f"From x Mon Sep 17 00:00:00 2001\nFrom: a@b\nSubject: [PATCH {n}/2] p{n}\n\n"
        text += f"diff --git a/mm/s.c b/mm/s.c\n{d}\n"
    mbox = tmp_path / "s.mbox"
    mbox.write_text(text)
    result = review(ENGINE, order_series(read_patches(mbox)), DirTree(tmp_path))
    assert len({rf.introduced_by.subject for rf in result.findings if rf.introduced_by}) == 2
    out = render_report(
        "email", [rf.finding for rf in result.findings], {}, None, RunInfo(review=result)
    )
    assert out.startswith("From lockcheck Mon Sep 17 00:00:00 2001\nFrom: ")
    assert out.count("\nFrom lockcheck Mon Sep 17 00:00:00 2001\n") == 1
    assert "Subject: Re: [PATCH 1/2] p1" in out and "Subject: Re: [PATCH 2/2] p2" in out


def test_quote_patch_of_new_and_deleted_files() -> None:
    hunk = _hunk([("+", "x", 10)])
    new = Patch("s", (FilePatch(None, "mm/n.c", (hunk,)),), "o")
    assert quote_patch(new, {10: ["c"]})[:3] == [
        "> diff --git a/mm/n.c b/mm/n.c",
        "> --- /dev/null",
        "> +++ b/mm/n.c",
    ]
    gone = Patch("s", (FilePatch("mm/g.c", None, (hunk,)),), "o")
    assert quote_patch(gone, {10: ["c"]})[1:3] == ["> --- a/mm/g.c", "> +++ /dev/null"]


def test_quote_patch_of_several_files_and_hunks() -> None:
    def h(first: int) -> Hunk:
        return _hunk([(" ", f"l{i}", first + i) for i in range(8)])

    files = (
        FilePatch("mm/a.c", "mm/a.c", (h(10),)),  # nothing said about it
        FilePatch("mm/b.c", "mm/b.c", (h(30), h(50))),
        FilePatch("mm/c.c", "mm/c.c", (h(70),)),
    )
    out = quote_patch(Patch("s", files, "o"), {34: ["one"], 54: ["two"], 70: ["three"]})
    quoted = [">  l1", ">  l2", ">  l3", ">  l4"]
    head = "> @@ -1,9 +1,9 @@ f()"
    assert out == [
        "> diff --git a/mm/b.c b/mm/b.c",
        "> --- a/mm/b.c",
        "> +++ b/mm/b.c",
        *(head, "...", *quoted, "", "one", "", "..."),
        *(head, "...", *quoted, "", "two", "", "..."),
        "> diff --git a/mm/c.c b/mm/c.c",
        "> --- a/mm/c.c",
        "> +++ b/mm/c.c",
        *(head, ">  l0", "", "three", "", "..."),
    ]


def test_email_replies_from_a_review() -> None:
    from lockcheck.engine import Stats
    from lockcheck.review import ReviewedFinding

    def patch(subject: str, first: int) -> Patch:
        hunk = _hunk([(" ", f"l{i}", first + i) for i in range(8)])
        fp = FilePatch("mm/a.c", "mm/a.c", (hunk,))
        return Patch(subject, (fp,), "o", raw_subject=f"[PATCH] {subject}", author="Ann <a@x.org>")

    p1, p2 = patch("one", 10), patch("two", 30)

    def ctx(p: Patch, line: int, kind: str, before: Any, after: Any) -> SiteContext:
        loc = Location("o", line)
        return SiteContext(p, "mm/a.c", loc, "fn", f"x{line}", kind, before, after, loc)

    f1 = finding(line=12, related=(), held=())
    f2 = finding(line=12, column=30, rule="r2", related=(), held=())
    f3 = finding(line=99, rule="r3", related=(), held=())
    f4 = finding(line=13, rule="r4", related=(), held=())
    rfs = [
        ReviewedFinding(f1, p1, None, Location("o", 12)),
        ReviewedFinding(f2, p1, None, Location("o", 12)),
        ReviewedFinding(f3, p1, None, Location("o", 99)),
        ReviewedFinding(f4, None, None, Location("o", 13)),
    ]
    contexts = [
        ctx(p1, 14, "check uffd-wp", ("a",), ("b",)),
        ctx(p1, 15, "check uffd-wp", None, ("a",)),
        ctx(p1, 16, "check uffd-wp", ("a",), ("a",)),
        ctx(p1, 17, "act pt-detach", ("a",), ("b",)),
        ctx(p2, 31, "check anon-vma", ("a",), ("b",)),
    ]
    result = ReviewResult([p2, p1], rfs, contexts, Stats(), [], None)
    out = render_report("email", [f1, f2, f3, f4], {}, None, RunInfo(review=result))
    assert out.startswith(MBOX_FROM + "\nFrom: ")
    assert out.count("\n\n" + MBOX_FROM + "\nFrom: ") == 1 and out.endswith("\n\n")
    two, one = out.split(MBOX_FROM + "\n")[1:]
    assert "Subject: Re: [PATCH] two" in two and "Subject: Re: [PATCH] one" in one
    assert "To: Ann <a@x.org>" in one
    nameless = Patch("s", p1.files, "o", author="Ann")  # no address: no To:
    alone = ReviewResult(
        [nameless], [ReviewedFinding(f1, nameless, None, Location("o", 12))], [], Stats(), [], None
    )
    assert "\nTo: " not in render_report("email", [f1], {}, None, RunInfo(review=alone))
    assert "`x31` (check anon-vma): before this patch" in two
    body = one.split("\n\n", 1)[1]
    assert "lockcheck [uffd-wp-under-ptl]:" in body and "lockcheck [r2]:" in body
    assert "\n\nlockcheck [r2]:" in body.split("lockcheck [uffd-wp-under-ptl]:")[1]
    assert "\n\nmm/a.c:99, in `f()`, outside the quoted hunks:\n" in body
    assert body.startswith("Ann <a@x.org> wrote:\n> diff --git a/mm/a.c b/mm/a.c\n")
    dated = Patch("s", p1.files, "o", author="Ann <a@x.org>", date="Mon, 5 Jan 2026")
    lone = ReviewResult(
        [dated], [ReviewedFinding(f1, dated, None, Location("o", 12))], [], Stats(), [], None
    )
    assert "\n\nOn Mon, 5 Jan 2026, Ann <a@x.org> wrote:\n" in render_report(
        "email", [f1], {}, None, RunInfo(review=lone)
    )
    # nothing found: the reply goes to the cover letter
    cover = Patch("cover", (), "o", raw_subject="[PATCH 0/1] cover")
    quiet = ReviewResult([p1, cover], [], [], Stats(), [], None)
    said = render_report("email", [], {}, None, RunInfo(review=quiet))
    assert "Subject: Re: [PATCH 0/1] cover" in said
    assert "r4" not in body
    assert "`x14` (check uffd-wp): before this patch" in body
    assert "`x15` (check uffd-wp) is new here" in body
    assert "x16" not in body and "x17" not in body


TWO_ACTS = """
static void set_two(struct mm_struct *mm, pte_t *pte, pte_t e)
{
	set_pte_at(mm, 0, pte, e);
	set_pte_at(mm, 0, pte + 1, e);
}

static void caller(struct mm_struct *mm, pte_t *pte, spinlock_t *ptl, pte_t e)
{
	spin_lock(ptl);
	set_two(mm, pte, e), spin_unlock(ptl);
}
"""


def test_explain_shows_an_event_repeated_at_one_site_once_and_goes_on() -> None:
    """The helper's two acts land at its call as two equal rows: one is shown,
    and the release after them in the statement still is."""
    (ff,) = [
        f
        for f in ENGINE.analyse_source("x.c", TWO_ACTS.encode()).facts.functions
        if f.fn.name == "caller"
    ]
    assert transitions(ff) == [
        (10, 2, "acquire `ptl` [pte_lock] via spin_lock", [], ["ptl"]),
        (11, 2, "act pte-set inside `set_two()`: `set_two(mm, pte, e)`", ["ptl"], ["ptl"]),
        (11, 23, "release `ptl` via spin_unlock", ["ptl"], []),
    ]


def test_email_notes_go_on_past_a_check_on_a_line_with_a_finding() -> None:
    from lockcheck.engine import Stats
    from lockcheck.review import ReviewedFinding

    hunk = _hunk([(" ", f"l{i}", 10 + i) for i in range(8)])
    p1 = Patch("one", (FilePatch("mm/a.c", "mm/a.c", (hunk,)),), "o", raw_subject="[PATCH] one")

    def ctx(line: int) -> SiteContext:
        loc = Location("o", line)
        return SiteContext(
            p1, "mm/a.c", loc, "fn", f"x{line}", "check uffd-wp", ("a",), ("b",), loc
        )

    f1 = finding(line=12, related=(), held=())
    # the check on the finding's line sorts first: its line already has the
    # finding's comment, and the changed check after it still gets its note
    result = ReviewResult(
        [p1],
        [ReviewedFinding(f1, p1, None, Location("o", 12))],
        [ctx(12), ctx(14)],
        Stats(),
        [],
        None,
    )
    body = render_report("email", [f1], {}, None, RunInfo(review=result)).split("\n\n", 1)[1]
    assert "`x14` (check uffd-wp): before this patch" in body
