"""review.py in process: what a review reports, on every kind of input, in a
second (tests/test_review.py does the same through the CLI and git, at tens of
seconds; this file comes first in review.py's mutation runner).

The golden file holds everything a reporter is made from (findings with their
patches, locations, columns, related sites and sources; lock context; counts;
notes; mode; errors) for a series against its tree, alone, in fragments and
with `show_all`, a thread, a reply quoting a patch (alone and against the
tree), the review-only rules' fixture pairs, and patches made here: duplicate
sites, a patch that does not apply, new, deleted and non-C files. The parts
are then pinned one by one where the golden file would not say why.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

import lockcheck.analysis.file as file_module
from lockcheck.engine import Config, Engine
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree
from lockcheck.inputs.patch import (
    FilePatch,
    Hunk,
    HunkLine,
    Patch,
    order_series,
    parse_patch_text,
    read_patches,
)
from lockcheck.review import (
    FRAGMENT_NOTE,
    PARTIAL_NOTE,
    QUOTED_NOTE,
    Image,
    LineOrigin,
    Location,
    ReviewResult,
    SiteContext,
    _aligned,
    _current_function,
    _depths,
    _keyed,
    _scan,
    _Side,
    _source_map,
    _split_held,
    _wrap,
    fragment_image,
    review,
    review_versions,
)
from tests.helpers import FIXTURES, ROOT, SOURCE, V1, assert_golden

ENGINE = Engine()
SERIES = FIXTURES / "series"
THREAD = FIXTURES / "thread"


def _rel(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(str(ROOT), "<root>")
    if isinstance(value, dict):
        return {k: _rel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rel(v) for v in value]
    return value


def canon(result: ReviewResult) -> dict[str, Any]:
    """Everything a reporter reads, as JSON."""
    findings = []
    for rf in result.findings:
        f = rf.finding
        findings.append(
            {
                "finding": repr(f),
                "trace": [dict(s) for s in f.trace],
                "extra": rf.extra(),
                "image_text": len(rf.image_text.splitlines()),
                "image_sha": hash_text(rf.image_text),
            }
        )
    return _rel(
        {
            "findings": findings,
            "lock_context": [c.as_dict() for c in result.lock_context],
            "stats": result.stats.as_dict(),
            "notes": result.notes(),
            "mode": result.mode,
            "tree": result.tree,
            "errors": [str(e) for e in result.errors],
            "failed": [p.subject for p in result.failed],
            "reviewed": [p.subject for p in result.reviewed],
            "fragment": [p.subject for p in result.fragment],
            "patches": [p.subject for p in result.patches],
        }
    )


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def diff(path: str, old: str, new: str, header: bool = True) -> str:
    text = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )
    return f"diff --git a/{path} b/{path}\n{text}" if header else text


UFFD_TEST = "\t\tif (userfaultfd_wp(vma))\n\t\t\tcontinue;\n"
DUP_BEFORE = """\
struct s { spinlock_t lock; int flag; int v; };

static void one(struct s *p)
{
\tspin_lock(&p->lock);
\tp->v = 1;
\tspin_unlock(&p->lock);
}

static void two(struct s *p)
{
\tp->v = 2;
}
"""


def _dup_after(n: int) -> str:
    """`one()` left holding its lock on `n` identical early returns."""
    leak = "\tif (p->flag)\n\t\treturn;\n" * n
    return DUP_BEFORE.replace("\tp->v = 1;\n", "\tp->v = 1;\n" + leak)


def _inputs(tmp: Path) -> dict[str, ReviewResult]:
    tree = DirTree(SERIES / "tree")
    series = order_series(read_patches(SERIES / "series.mbox"))
    reply = order_series(read_patches(SERIES / "reply.eml"))
    out = {
        "series": review(ENGINE, series, tree),
        "series-all": review(ENGINE, series, tree, show_all=True),
        "series-slow": review(ENGINE, series, tree, fast=False),
        "series-fragments": review(ENGINE, series, None),
        "thread": review(
            ENGINE,
            order_series(read_patches(THREAD / "thread.mbox")),
            DirTree(THREAD / "tree"),
            keep_going=True,
        ),
        "reply": review(ENGINE, reply, None),
        "reply-tree": review(ENGINE, reply, tree),
    }
    for after in sorted((FIXTURES / "effects").glob("*.orig.c")):
        name = after.name[: -len(".orig.c")]
        new = after.with_name(name + ".c").read_text()
        out[f"effects-{name}"] = review_versions(ENGINE, f"mm/{name}.c", after.read_text(), new)
    # a tree of our own: duplicate sites added, a patch that does not apply
    # (kept going), a new, a deleted and a non-C file
    root = tmp / "tree"
    (root / "mm").mkdir(parents=True)
    (root / "mm" / "s.c").write_text(DUP_BEFORE)
    (root / "mm" / "gone.c").write_text(DUP_BEFORE)
    (root / "README").write_text("text\n")
    own = DirTree(root)
    (root / SOURCE).parent.mkdir(parents=True, exist_ok=True)
    (root / SOURCE).write_text(V1)
    dup = parse_patch_text(diff(SOURCE, V1, V1.replace(UFFD_TEST, UFFD_TEST * 2)), "<dup>")
    out["duplicates"] = review(ENGINE, dup, own)
    out["duplicates-all"] = review(ENGINE, dup, own, show_all=True)
    out["duplicates-fragments"] = review(ENGINE, dup, None)
    stale = diff("mm/s.c", DUP_BEFORE.replace("p->v = 2", "p->v = 3"), DUP_BEFORE)
    bad = parse_patch_text(
        "From: a@b\nSubject: [PATCH 1/2] stale\n\n" + stale, "<bad>"
    ) + parse_patch_text(
        "From: a@b\nSubject: [PATCH 2/2] leak once\n\n" + diff("mm/s.c", DUP_BEFORE, _dup_after(1)),
        "<good>",
    )
    out["keep-going"] = review(ENGINE, bad, own, keep_going=True)
    files = "".join(
        [
            diff("README", "text\n", "more text\n"),
            "diff --git a/mm/new.c b/mm/new.c\nnew file mode 100644\n"
            + diff("mm/new.c", "", _dup_after(1), header=False).replace(
                "--- a/mm/new.c", "--- /dev/null"
            ),
            "diff --git a/mm/gone.c b/mm/gone.c\ndeleted file mode 100644\n"
            + diff("mm/gone.c", DUP_BEFORE, "", header=False).replace(
                "+++ b/mm/gone.c", "+++ /dev/null"
            ),
        ]
    )
    out["files"] = review(ENGINE, parse_patch_text(files, "<files>"), own)
    return out


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("review")


@pytest.fixture(scope="module")
def results(tmp_root: Path) -> dict[str, ReviewResult]:
    return _inputs(tmp_root)


def test_reviews_golden(results: dict[str, ReviewResult], tmp_root: Path) -> None:
    doc = {name: canon(r) for name, r in results.items()}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    assert_golden("review.inprocess.json", text.replace(str(tmp_root), "<tmp>"))


def test_each_image_is_analysed_once_and_the_fast_review_shares_dataflows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The series' file in four versions: each analysed once (five times when
    fast: a pre-image is also analysed aligned), fewer dataflows when fast;
    fragments are never aligned."""
    calls = {"flow": 0, "source": 0}
    real = file_module.analyse

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["flow"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(file_module, "analyse", counting)
    tree = DirTree(SERIES / "tree")
    series = order_series(read_patches(SERIES / "series.mbox"))
    got = {}
    for name, where, fast in (
        ("tree-fast", tree, True),
        ("tree-full", tree, False),
        ("fragments-fast", None, True),
        ("fragments-full", None, False),
    ):
        fresh = Engine()
        analyse_source = fresh.analyse_source

        def source(*args: Any, real: Any = analyse_source, **kwargs: Any) -> Any:
            calls["source"] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(fresh, "analyse_source", source)
        calls.update(flow=0, source=0)
        review(fresh, series, where, **({} if fast else {"fast": False}))  # fast by default
        got[name] = (calls["source"], calls["flow"])
    # fast: a function a later patch only moves is read back, moved (model/lines.py)
    assert got == {
        "tree-fast": (5, 10),
        "tree-full": (4, 14),
        # statement-only hunks are wrapped in a function and analysed too; a
        # hunk that cuts a function before its `}` has the next one found
        # inside it (frontend/parse.py is_swallowed_definition)
        "fragments-fast": (6, 17),
        "fragments-full": (6, 18),
    }


def test_series_blames_patch_2_and_credits_patch_3(results: dict[str, ReviewResult]) -> None:
    series = results["series"]
    subjects = [p.subject for p in series.patches]
    got = sorted(
        (
            rf.finding.rule,
            subjects.index(rf.introduced_by.subject) if rf.introduced_by else None,
            subjects.index(rf.fixed_by.subject) if rf.fixed_by else None,
        )
        for rf in series.findings
    )
    # patches[0] is the cover letter
    assert got == [("anon-vma-under-ptl", 2, 3), ("uffd-wp-under-ptl", 2, 3)]
    assert series.mode == "tree" and series.notes() == []
    # every finding's source is the series' line showing the site
    lines = (SERIES / "series.mbox").read_text().splitlines()
    for rf in series.findings:
        assert rf.source is not None
        shown = lines[rf.source.line - 1]
        assert shown[1:].strip() == rf.finding.anchor.strip() or rf.finding.anchor in shown


def test_duplicate_sites_stay_two(results: dict[str, ReviewResult]) -> None:
    """The copy of an unlocked test has the original's fingerprint, and is new."""
    second = V1.splitlines().index("\t\tif (userfaultfd_wp(vma))") + 3
    got = [(rf.finding.rule, rf.finding.line) for rf in results["duplicates"].findings]
    assert got == [("uffd-wp-under-ptl", second)]


def test_keep_going_skips_the_patch_that_does_not_apply(
    results: dict[str, ReviewResult], tmp_path: Path
) -> None:
    r = results["keep-going"]
    assert [p.subject for p in r.failed] == ["stale"]
    assert len(r.errors) == 1 and r.stats.input_errors == 1
    assert [p.subject for p in r.reviewed] == ["leak once"]
    assert {rf.introduced_by.subject for rf in r.findings if rf.introduced_by} == {"leak once"}
    with pytest.raises(InputError):
        review(ENGINE, r.patches, DirTree(tmp_path))  # not kept going by default


def test_fragment_and_quoted_notes(results: dict[str, ReviewResult]) -> None:
    assert results["series-fragments"].mode == "fragment"
    assert results["series-fragments"].notes() == [FRAGMENT_NOTE]
    assert results["reply"].notes() == [QUOTED_NOTE]
    # the reply quotes only part of the patch: analysed as fragments even with a tree
    assert results["reply-tree"].notes() == [QUOTED_NOTE, PARTIAL_NOTE]
    assert results["reply-tree"].mode == "fragment"
    assert results["reply-tree"].tree is not None


def test_mixed_mode() -> None:
    tree = DirTree(SERIES / "tree")
    series = order_series(read_patches(SERIES / "series.mbox"))
    reply = read_patches(SERIES / "reply.eml")
    r = review(ENGINE, [*series, *reply], tree)
    assert r.mode == "mixed"
    assert len(r.fragment) == 1 and len(r.reviewed) == 4


def test_quoted_findings_point_into_the_email_past_the_quote_marks(
    results: dict[str, ReviewResult],
) -> None:
    email = (SERIES / "reply.eml").read_text()
    lines = email.splitlines()
    r = results["reply"]
    assert r.findings
    for rf in r.findings:
        f = rf.finding
        assert f.path == str(SERIES / "reply.eml")
        line = lines[f.line - 1]
        assert line.startswith(">")
        # the column counts the quote marks and the diff prefix
        assert line[f.column - 1 :].startswith(f.anchor.split("(")[0].strip()[:8])
        assert rf.image_text == email if email.endswith("\n") else email + "\n"
        assert rf.source == Location(str(SERIES / "reply.eml"), f.line)


def test_show_all_adds_what_the_tree_already_had(results: dict[str, ReviewResult]) -> None:
    ours = {repr(rf.finding) for rf in results["duplicates"].findings}
    everything = results["duplicates-all"].findings
    assert ours < {repr(rf.finding) for rf in everything}
    old = [rf for rf in everything if rf.introduced_by is None]
    assert old and all(rf.fixed_by is None for rf in old)
    assert len(old) + len(ours) == len(everything)


def test_review_versions_same_text_is_an_error() -> None:
    with pytest.raises(InputError) as exc:
        review_versions(ENGINE, "x.c", "int a;\n", "int a;\n")
    assert str(exc.value) == "x.c: the two versions are the same"


def test_select_limits_the_review_only_rules() -> None:
    base = FIXTURES / "effects" / "order_reversed"
    old = base.with_name("order_reversed.orig.c").read_text()
    new = base.with_name("order_reversed.c").read_text()
    every = {rf.finding.rule for rf in review_versions(ENGINE, "o.c", old, new).findings}
    assert "order-reversed" in every
    engine = Engine(Config(select={"lock-balance"}))
    rules = {rf.finding.rule for rf in review_versions(engine, "o.c", old, new).findings}
    assert "order-reversed" not in rules


# --- the parts


def _ctx(before: tuple[str, ...] | None, after: tuple[str, ...] | None) -> SiteContext:
    patch = Patch("s", (), "o")
    return SiteContext(patch, "f.c", Location("f.c", 3), "fn", "x", "check x", before, after)


def test_site_context_change_and_difference() -> None:
    assert _ctx(None, ("a",)).change == "added"
    assert _ctx(None, ("a",)).difference() == "site added by the patch"
    assert _ctx(("a",), None).change == "removed"
    assert _ctx(("a",), None).difference() == "site removed"
    assert _ctx(("a",), ("a",)).change == "unchanged"
    assert _ctx(("a",), ("a",)).difference() == "unchanged"
    c = _ctx(("m:read", "p", "q"), ("m:write", "p", "r:read"))
    assert c.change == "changed"
    assert c.difference() == "`m` read -> write; no longer held: `q`; now held: `r:read`"
    assert _ctx(("a", "b", "c"), ("c", "d", "e")).difference() == (
        "no longer held: `a`, `b`; now held: `d`, `e`"
    )
    assert _ctx(("m:read",), ("m",)).difference() == "`m` read -> held"
    assert _ctx(("m",), ("m:write",)).difference() == "`m` held -> write"
    d = _ctx(("a",), ("a", "b")).as_dict()
    assert d == {
        "patch": "s",
        "path": "f.c",
        "file": "f.c",
        "function": "fn",
        "line": 3,
        "site": "x",
        "kind": "check x",
        "before": ["a"],
        "after": ["a", "b"],
        "change": "changed",
        "difference": "now held: `b`",
        "source": None,
    }
    assert _ctx(None, None).as_dict()["before"] is None
    assert _ctx(("a",), None).as_dict()["after"] is None


def test_reviewed_finding_extra() -> None:
    from lockcheck.model.finding import Finding
    from lockcheck.review import ReviewedFinding

    f = Finding("r", "warning", "f.c", 3, 1, "fn", "m")
    p1, p2 = Patch("one", (), "o"), Patch("two", (), "o")
    rf = ReviewedFinding(f, p1, p2, Location("mail", 9))
    assert rf.extra() == {
        "introduced_by": "one",
        "fixed_by": "two",
        "source": {"path": "mail", "line": 9},
    }
    bare = ReviewedFinding(f, None, None, unquoted="`x()` in f()")
    assert bare.extra() == {
        "introduced_by": None,
        "fixed_by": None,
        "source": None,
        "unquoted": "`x()` in f()",
    }


def test_split_held() -> None:
    assert _split_held("m:read") == ("m", "read")
    assert _split_held("m:write") == ("m", "write")
    assert _split_held("a:b") == ("a:b", "")
    assert _split_held("m") == ("m", "")


def test_scan_counts_braces_outside_comments_strings_and_chars() -> None:
    assert _scan("{ {", False) == (2, False)
    assert _scan("} x", False) == (-1, False)
    assert _scan("/* { */ {", False) == (1, False)
    assert _scan("/* { ", False) == (0, True)
    assert _scan("{ */ }", True) == (-1, False)
    assert _scan("{ // }", False) == (1, False)
    assert _scan('"{\\"{" }', False) == (-1, False)
    assert _scan("'{' {", False) == (1, False)
    assert _scan("'\\'' {", False) == (1, False)
    assert _scan("x / y {", False) == (1, False)
    # a comment that ends at the line's start, or right before a brace
    assert _scan("*/ {", True) == (1, False)
    assert _scan("*/{", True) == (1, False)
    assert _scan("/**/ {", False) == (1, False)
    assert _scan("/*{*/{", False) == (1, False)
    assert _scan("X { X {", False) == (2, False)
    assert _scan('"{{" x', False) == (0, False)
    assert _scan('"x"{', False) == (1, False)


def test_image_locations() -> None:
    tree_img = Image("f.c", "a\nb\n", frozenset(), None, {2: 40})
    patch = Patch("s", (), "p.patch", path="mail.eml")
    assert tree_img.locate(2, patch) == Location("f.c", 2)
    assert tree_img.column(2, 5, patch) == 5
    assert tree_img.source(2, patch) == Location("mail.eml", 40)
    assert tree_img.source(1, patch) is None
    origins = (LineOrigin(10, 20, True, 3), None, LineOrigin(12, None, False, 4))
    img = Image("f.c", "a\nb\nc\n", frozenset({1}), origins)
    quoted = Patch("s", (), "o", quoted=True)
    plain = Patch("s", (), "o")
    assert img.locate(1, quoted) == Location("o", 20)
    assert img.locate(1, plain) == Location("f.c", 10)
    assert img.locate(2, plain) == Location("f.c", 0)
    assert img.locate(3, quoted) == Location("f.c", 12)
    assert img.locate(4, plain) == Location("f.c", 0)
    assert img.locate(0, plain) == Location("f.c", 0)
    assert img.column(1, 5, quoted) == 8
    assert img.column(1, 5, plain) == 5
    assert img.column(2, 5, quoted) == 5
    assert img.column(3, 5, quoted) == 5  # no source line: not where locate points
    assert img.column(4, 5, quoted) == 5
    assert img.column(0, 5, quoted) == 5
    assert img.source(1, plain) == Location("o", 20)
    assert img.source(2, plain) is None
    assert img.source(3, plain) is None
    assert img.source(4, plain) is None
    assert img.source(0, plain) is None
    # the last line, and the lines just outside: the bounds are the image's own
    last = Image("f.c", "a\nb\n", frozenset(), (None, LineOrigin(7, 30, True, 2)))
    assert last.column(2, 5, quoted) == 7
    assert last.column(0, 5, quoted) == 5
    assert last.column(3, 5, quoted) == 5
    assert last.source(2, plain) == Location("o", 30)
    assert last.source(0, plain) is None
    assert last.locate(2, quoted) == Location("o", 30)
    assert last.locate(0, quoted) == Location("f.c", 0)


def test_source_map_follows_hunk_offsets() -> None:
    text = diff("f.c", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", "a\nB\nc\nd\ne\nf\ng\nh\nI\nj\n")
    fp = parse_patch_text(text, "<t>")[0].files[0]
    new = _source_map(fp, "new")
    old = _source_map(fp, "old")
    assert sorted(new) == list(range(1, 11))
    assert new[1] == old[1] and new[2] == old[2] + 1  # -b, then +B
    shifted = _source_map(fp, "new", (5,))
    assert shifted == {k + 5: v for k, v in new.items()}
    two = diff(
        "f.c",
        "".join(f"{i}\n" for i in range(30)),
        "".join(f"{i}\n" if i not in (2, 25) else "x\n" for i in range(30)),
    )
    fp2 = parse_patch_text(two, "<t>")[0].files[0]
    assert len(fp2.hunks) == 2
    plain = _source_map(fp2, "old")
    moved = _source_map(fp2, "old", (1, 2))
    first = [k for k in plain if k < 10]
    second = [k for k in plain if k > 10]
    assert all(moved[k + 1] == plain[k] for k in first)
    assert all(moved[k + 2] == plain[k] for k in second)


def test_keyed_keeps_identical_findings_apart() -> None:
    from lockcheck.model.finding import Finding

    f1 = Finding("r", "warning", "f.c", 3, 1, "fn", "m", anchor="x")
    f2 = Finding("r", "warning", "f.c", 9, 1, "fn", "m", anchor="x")
    f3 = Finding("r", "warning", "f.c", 5, 1, "fn", "m", anchor="y")
    keyed = _keyed([f2, f3, f1])
    assert keyed == {(f1.fingerprint, 0): f1, (f1.fingerprint, 1): f2, (f3.fingerprint, 0): f3}


def test_side_lines_through_padding() -> None:
    side = _Side(Image("f.c", "", frozenset()), None, [], ((5, 2), (10, 3)))  # type: ignore[arg-type]
    assert [side.analysed(n) for n in (1, 5, 6, 10, 11)] == [1, 5, 8, 12, 16]
    assert [side.real(n) for n in (1, 5, 8, 12, 16)] == [1, 5, 6, 10, 11]
    assert all(side.real(side.analysed(n)) == n for n in range(1, 30))
    assert side.held(["ptl@12", "m"]) == frozenset({"ptl@10", "m"})
    plain = _Side(Image("f.c", "", frozenset()), None, [])  # type: ignore[arg-type]
    assert plain.held(["ptl@8"]) == frozenset({"ptl@8"})
    assert plain.real(8) == 8 and plain.analysed(8) == 8


def test_alignment_edges() -> None:
    pre = "int a;\n\nvoid f(void)\n{\n\tg();\n}\n\nint b;\n\nint c;\n\nint d;\n"
    post = pre.replace("\tg();\n", "\tg();\n\tk();\n")
    aligned = _aligned(pre, post, frozenset(), frozenset({6}))
    assert aligned is not None
    text, pads = aligned
    # not on line 7: within four lines of f()'s head
    assert pads == ((9, 1),)
    assert text.splitlines()[9:] == post.splitlines()[9:]
    # a last line without its newline in either image
    assert _aligned(pre.rstrip("\n"), post, frozenset(), frozenset({6})) is None
    assert _aligned(pre, post.rstrip("\n"), frozenset(), frozenset({6})) is None
    # lines added at two places: two pads, the second counting only its own lines
    post2 = post.replace("int c;\n", "int c;\nint cc;\n")
    aligned2 = _aligned(pre, post2, frozenset(), frozenset({6, 12}))
    assert aligned2 is not None
    assert aligned2[1] == ((9, 1), (11, 1))
    assert aligned2[0].splitlines()[12:] == post2.splitlines()[12:]
    # a blank line after a macro continuation is not safe
    mac = "#define M \\\n\nint z;\n\nvoid f(void)\n{\n\tg();\n}\n"
    got = _aligned(mac, "int y;\n" + mac, frozenset(), frozenset({1}))
    assert got is not None and got[1] == ((4, 1),)
    # nor is a blank line inside a block comment
    com = "/*\n\n*/\nint z;\n\nint w;\n"
    got = _aligned(com, "int y;\n" + com, frozenset(), frozenset({1}))
    assert got is not None and got[1] == ((5, 1),)


TWO_PADS_F1 = "static void f1(struct mm_struct *mm)\n{\n\tmmap_read_lock(mm);\n\tx();\n"
TWO_PADS_F1 += "\tmmap_read_unlock(mm);\n}\n\n"
TWO_PADS_F2 = "static void f2(struct vm_area_struct *vma, spinlock_t *ptl)\n{\n"
TWO_PADS_F2 += "".join(f"\ty{i}();\n" for i in range(12))
TWO_PADS_F2 += "\tspin_lock(ptl);\n\tif (userfaultfd_wp(vma))\n\t\tz();\n\tspin_unlock(ptl);\n}\n\n"


def test_fast_review_with_two_pads_locates_removed_sites() -> None:
    """The pre-image padded after two definitions: a site between the pads
    is read back at its own line (it was one pad's lines off once)."""
    f3 = "static void f3(void)\n{\n\tw();\n}\n"
    pre = TWO_PADS_F1 + TWO_PADS_F2 + f3
    post = TWO_PADS_F1.replace("\tx();\n", "\tx();\n" * 11)
    post += TWO_PADS_F2.replace("\ty0();\n", "\ty0();\n" + "\tq();\n" * 3).replace(
        "\tif (userfaultfd_wp(vma))\n\t\tz();\n", ""
    )
    post += f3
    got = []
    for fast in (True, False):
        r = review_versions(ENGINE, "mm/x.c", pre, post, fast=fast)
        got.append([(c.function, c.location.line, c.site, c.change) for c in r.lock_context])
    line = pre.splitlines().index("\tif (userfaultfd_wp(vma))") + 1
    assert got[0] == got[1] == [("f2", line, "userfaultfd_wp(vma)", "removed")]


def test_fragment_image_keeps_each_sides_lines_and_where_they_come_from() -> None:
    before = "void f(void)\n{\n\tx0();\n\tif (a) {\n"
    before += "".join(f"\t\tx{i}();\n" for i in range(1, 20)) + "\t}\n\tw();\n}\n"
    after = before.replace("\t\tx1();\n", "\t\tx1();\n\t\ty();\n").replace("\t\tx18();\n", "")
    text = diff("f.c", before, after).replace(" @@\n", " @@ void f(void)\n")
    fp = parse_patch_text(text, "<t>")[0].files[0]
    assert len(fp.hunks) == 2
    new = fragment_image(fp, "new")
    old = fragment_image(fp, "old")
    for img, real in ((new, after), (old, before)):
        assert img.origins is not None
        lines = img.text.splitlines()
        assert len(lines) == len(img.origins)
        shown = [o.code_line for o in img.origins if o is not None]
        assert shown == sorted(shown) and len(shown) == 13
        for i, o in enumerate(img.origins, 1):
            if o is not None:
                assert o.code_line is not None
                assert real.splitlines()[o.code_line - 1] == lines[i - 1]
        # whole hunks: no elision marker inside them
        assert "/* ... */" not in img.text
        # braces balanced: the hunk that closes the `if` gets a head to close
        assert img.text.count("{") == img.text.count("}")
    assert [new.text.splitlines()[i - 1] for i in sorted(new.changed)] == ["\t\ty();"]
    assert [old.text.splitlines()[i - 1] for i in sorted(old.changed)] == ["\t\tx18();"]
    # each hunk inside its own wrapper, the first one's statements too
    assert new.text.startswith("void f(void)\n{\n\tx0();\n")
    assert new.text.count("void f(void)") == 2


def test_fragment_columns_skip_the_quote_marks_of_each_line() -> None:
    lines = (
        HunkLine(" ", "a;", 1, 1, 1),
        HunkLine("+", "bX", None, 2, 2),  # the text ends in the letter X
        HunkLine(" ", "c;", 2, 3, 3),
        HunkLine(" ", "zz;", 3, 4, 0),  # a line number the input does not have
        HunkLine(" ", "d;", 4, 5, 9),
        HunkLine(" ", "e;", 5, 6, 4),
        HunkLine(" ", "zz;", 6, 7, 5),
    )
    fp = FilePatch("f.c", "f.c", (Hunk(1, 6, 1, 7, "", lines),))
    source = ("> \ta;", ">> +bX", "> c;", "> \t\te;\r\n", ">> zz;")
    img = fragment_image(fp, "new", source)
    assert img.origins is not None
    got = [(o.code_line, o.source_line, o.shift) for o in img.origins if o is not None]
    assert got == [(1, 1, 3), (2, 2, 4), (3, 3, 2), (4, 0, 0), (5, 9, 0), (6, 4, 4), (7, 5, 3)]
    # without the input, no shifts
    plain = fragment_image(fp, "new")
    assert plain.origins is not None
    assert {o.shift for o in plain.origins if o is not None} == {0}


def test_current_function_and_wrapping() -> None:
    # a prototype after a function is not the function the lines end in
    assert _current_function(["void f(void)", "{", "\tx();", "}", "int g(int a);"], None) == (
        "f",
        0,
    )
    # lines that close a brace they did not open are inside the wrapper's function
    assert _current_function(["\t\tx1();", "\t}", "\tif (b) {", "\t\ty();"], "f") == ("f", 1)
    assert _current_function(["\tx();"], "f") == (None, 0)
    o = LineOrigin(1, None)
    closing = [("\t\tx();", o), ("\t}", o), ("\ty();", o)]
    # one brace more than the text closes: `y();` stays inside the function
    assert [t for t, _ in _wrap(closing, "f")] == [
        "void f(void)",
        "{{",
        "\t\tx();",
        "\t}",
        "\ty();",
        "}",
    ]
    # statements alone: wrapped, not left at the top level where no function holds them
    assert [t for t, _ in _wrap([("\tx();", o), ("\ty();", o)], "h")] == [
        "void h(void)",
        "{",
        "\tx();",
        "\ty();",
        "}",
    ]
    assert [t for t, _ in _wrap([("\tx();", o), ("\t}", o), ("\t}", o)], "g")] == [
        "void g(void)",
        "{{",
        "\tx();",
        "\t}",
        "\t}",
    ]
    opening = [("void f(void)", o), ("{", o), ("\tif (a) {", o)]
    assert [t for t, _ in _wrap(opening, "f")] == [*(t for t, _ in opening), "}}"]


def test_hunks_of_one_function_share_its_wrapper() -> None:
    before = "void f(void)\n{\n\tif (a) {\n" + "".join(f"\t\tx{i}();\n" for i in range(1, 9))
    before += "\t}\n\tif (b) {\n" + "".join(f"\t\tw{i}();\n" for i in range(12)) + "\t}\n}\n"
    after = before.replace("\t\tx7();\n", "\t\tx7();\n\t\ty();\n").replace(
        "\t\tw9();\n", "\t\tw9();\n\t\tz();\n"
    )
    text = diff("f.c", before, after).replace(" @@\n", " @@ void f(void)\n")
    fp = parse_patch_text(text, "<t>")[0].files[0]
    assert len(fp.hunks) == 2
    img = fragment_image(fp, "new")
    assert img.text.count("void f(void)") == 1
    assert img.text.count("/* ... */") == 1
    assert ENGINE.analyse_source("f.c", img.text.encode()).model.parse_errors == 0


def test_an_elision_inside_a_comment_closes_it_first() -> None:
    lines = (
        HunkLine(" ", "\tx();", 1, 1, None),
        HunkLine(" ", "\t/* a comment", 2, 2, None),
        HunkLine(" ", "\t * that goes on */", 9, 9, None, gap_before=True),
        HunkLine("+", "\ty();", None, 10, None),
        HunkLine(" ", "}", 10, 11, None),
    )
    fp = FilePatch("f.c", "f.c", (Hunk(1, 10, 1, 11, "", lines),))
    img = fragment_image(fp, "new")
    texts = img.text.splitlines()
    assert texts[0] == "void fragment(void)"  # no section to name the wrapper
    assert texts.index("*/ /* ... */") == texts.index("\t/* a comment") + 1
    plain = fragment_image(FilePatch("f.c", "f.c", (Hunk(1, 2, 1, 2, "", lines[3:]),)), "new")
    assert plain.text.splitlines()[0] == "void fragment(void)"


def _pads(pre: str, post: str, added: set[int]) -> tuple[tuple[int, int], ...] | None:
    got = _aligned(pre, post, frozenset(), frozenset(added))
    if got is not None:  # the kept lines have their post-image numbers
        assert got[0].count("\n") == post.count("\n")
    return got[1] if got is not None else None


def test_alignment_blocks_functions_to_their_last_line() -> None:
    body = ["int a;", "", "void f(void)", "{", "\tx();", "\tx();", "\tx();", ""]
    body += ["\ty();", "", "}", "", "int b;"]
    pre = "".join(t + "\n" for t in body)
    post = pre.replace("\tx();\n", "\tx();\n\tnew();\n", 1)
    # not inside f() (line 8 is past the four lines after its head): the blank line
    # right after its closing brace
    assert _pads(pre, post, {6}) == ((12, 1),)


def test_alignment_blocks_four_lines_after_a_short_function() -> None:
    pre = "void f(void)\n{\n}\n\n\n\nint a;\n"
    assert _pads(pre, "int y;\n" + pre, {1}) == ((6, 1),)


def test_alignment_blocks_lines_inside_comments_only() -> None:
    pre = "int q;\nint r;\n/*\n\n\n*/\nint z;\n\nint w;\n"
    post = pre.replace("int q;\n", "int q;\nint n;\n")
    assert _pads(pre, post, {2}) == ((8, 1),)
    # a blank line just before a comment, or just after it, is safe
    before = pre.replace("int r;\n", "\n")
    assert _pads(before, before.replace("int q;\n", "int q;\nint n;\n"), {2}) == ((2, 1),)
    after = pre.replace("*/\nint z;\n", "*/\n\n")
    assert _pads(after, after.replace("int q;\n", "int q;\nint n;\n"), {2}) == ((7, 1),)


def test_alignment_from_the_first_line() -> None:
    assert _pads("\nint a;\n", "int y;\n\nint a;\n", {1}) == ((1, 1),)
    # the first line has no line before it, even when the file ends in a backslash
    pre = "\nint a;\n#define X \\\n"
    assert _pads(pre, "int y;\n" + pre, {1}) == ((1, 1),)


READ_EARLY = """
static void f(struct vm_area_struct *vma, spinlock_t *ptl, pmd_t *pmd, unsigned long addr)
{
	bool wp;

	spin_lock(ptl);
	wp = userfaultfd_wp(vma);
	spin_unlock(ptl);
	if (wp)
		pmdp_collapse_flush(vma, addr, pmd);
}
"""


def test_a_check_through_a_variable_holds_what_was_held_at_the_read() -> None:
    after = READ_EARLY.replace("\tif (wp)\n", "\tg();\n\tif (wp)\n")
    r = review_versions(ENGINE, "mm/f.c", READ_EARLY, after)
    sites = {(c.site, c.kind): (c.before, c.after) for c in r.lock_context}
    assert sites[("userfaultfd_wp(vma)", "check uffd-wp")] == (("ptl",), ("ptl",))
    assert sites[("pmdp_collapse_flush(vma, addr, pmd)", "act pt-detach")] == ((), ())
    # one statement that takes the lock and then reads the flag: the state at
    # the read, not the one entering the statement
    comma = READ_EARLY.replace(
        "\tspin_lock(ptl);\n\twp = userfaultfd_wp(vma);\n",
        "\twp = (spin_lock(ptl), userfaultfd_wp(vma));\n",
    )
    later = comma.replace("\tif (wp)\n", "\tg();\n\tif (wp)\n")
    r = review_versions(ENGINE, "mm/f.c", comma, later)
    sites = {(c.site, c.kind): (c.before, c.after) for c in r.lock_context}
    assert sites[("userfaultfd_wp(vma)", "check uffd-wp")] == (("ptl",), ("ptl",))


def test_a_change_on_a_functions_first_or_last_line_changes_the_function() -> None:
    head = READ_EARLY.replace("static void f(", "static noinline void f(")
    tail = READ_EARLY[: READ_EARLY.rindex("}")] + "} /* f */\n"
    for after in (head, tail):
        r = review_versions(ENGINE, "mm/f.c", READ_EARLY, after)
        assert {c.function for c in r.lock_context} == {"f"}
        assert len(r.lock_context) == 2


def test_select_picks_a_review_only_rule_and_inline_suppressions_apply() -> None:
    base = FIXTURES / "effects" / "order_reversed"
    old = base.with_name("order_reversed.orig.c").read_text()
    new = base.with_name("order_reversed.c").read_text()
    engine = Engine(Config(select={"order-reversed"}))
    (rf,) = review_versions(engine, "o.c", old, new).findings
    assert rf.finding.rule == "order-reversed"
    lines = new.splitlines(keepends=True)
    line = lines[rf.finding.line - 1]
    lines[rf.finding.line - 1] = (
        line.rstrip("\n") + " /* lockcheck: ignore order-reversed the caller holds big */\n"
    )
    assert review_versions(engine, "o.c", old, "".join(lines)).findings == []


def test_a_tree_review_reads_the_trees_headers_and_callers(tmp_path: Path) -> None:
    """From the checkout's directory, not the tree's: the tree's own headers
    give the helper's lock, its other files the callers of a changed function."""
    tree = tmp_path / "tree"
    (tree / "include" / "linux").mkdir(parents=True)
    (tree / "mm").mkdir()
    (tree / "include" / "linux" / "gadget.h").write_text(
        "static inline void gadget_lock(struct gadget *g)\n{\n\tspin_lock(&g->lock);\n}\n\n"
        "static inline void gadget_unlock(struct gadget *g)\n{\n\tspin_unlock(&g->lock);\n}\n"
    )
    grab = (
        "#include <linux/gadget.h>\n\n"
        "int gadget_poke(struct gadget *g, struct vm_area_struct *vma)\n{\n"
        "\tgadget_lock(g);\n\tif (userfaultfd_wp(vma))\n\t\tg->count++;\n"
        "\tspin_lock(&g->inner);\n\tg->count++;\n\tspin_unlock(&g->inner);\n"
        "\treturn 0;\n}\n"
    )
    (tree / "mm" / "gadget.c").write_text(grab)
    (tree / "mm" / "user.c").write_text(
        "void use(struct gadget *g, struct vm_area_struct *vma)\n{\n\tgadget_poke(g, vma);\n}\n"
    )
    after = grab.replace("\tspin_unlock(&g->inner);\n", "")
    patches = parse_patch_text(diff("mm/gadget.c", grab, after), "<p>")
    r = review(ENGINE, patches, DirTree(tree))
    site = next(c for c in r.lock_context if c.site == "userfaultfd_wp(vma)")
    assert (site.before, site.after) == (("g->lock",), ("g->lock",))
    effect = [rf.finding for rf in r.findings if rf.finding.rule == "lock-effect-changed"]
    assert effect and all("callers that expect it released: user.c:3" in f.message for f in effect)


def test_counts_of_functions_over_budget_and_of_one_name_twice() -> None:
    twice = DUP_BEFORE + "\n#ifdef X\nstatic void two(struct s *p)\n{\n}\n#endif\n"
    after = twice.replace("\tp->v = 2;\n", "\tp->v = 3;\n")
    r = review_versions(ENGINE, "mm/s.c", twice, after)
    assert (r.stats.functions, r.stats.functions_analysed, r.stats.budget_outs) == (3, 3, 0)
    small = Engine(Config(max_nodes=4))
    r = review_versions(small, "mm/s.c", twice, after)
    assert r.stats.budget_outs > 0
    assert r.stats.functions_analysed == r.stats.functions - r.stats.budget_outs


def _mail(n: int, subject: str, body: str) -> str:
    return f"From: a@b\nSubject: [PATCH {n}/2] {subject}\n\n{body}"


def test_a_finding_kept_by_a_later_patch_stays_and_one_it_removes_is_fixed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    (root / "mm").mkdir(parents=True)
    (root / "mm" / "s.c").write_text(DUP_BEFORE)
    leak_two = DUP_BEFORE.replace(
        "\tp->v = 2;\n",
        "\tspin_lock(&p->lock);\n\tif (p->flag)\n\t\treturn;\n\tp->v = 2;\n"
        "\tspin_unlock(&p->lock);\n",
    )
    both = (
        _dup_after(1).split("static void two")[0]
        + "static void two"
        + leak_two.split("static void two")[1]
    )
    one_only = _dup_after(1)
    patches = parse_patch_text(
        _mail(1, "two leaks", diff("mm/s.c", DUP_BEFORE, both)), "<1>"
    ) + parse_patch_text(_mail(2, "fix two()", diff("mm/s.c", both, one_only)), "<2>")
    for show_all in (False, True):
        r = review(ENGINE, patches, DirTree(root), show_all=show_all)
        got = sorted(
            (
                rf.finding.function,
                rf.introduced_by.subject if rf.introduced_by else None,
                rf.fixed_by.subject if rf.fixed_by else None,
            )
            for rf in r.findings
        )
        assert got == [("one", "two leaks", None), ("two", "two leaks", "fix two()")], show_all


def test_quoted_whole_hunks_that_do_not_apply_are_read_alone(tmp_path: Path) -> None:
    new = _dup_after(1)
    quoted = "".join("> " + ln + "\n" for ln in diff("mm/s.c", DUP_BEFORE, new).splitlines())
    reply = (
        "From: r@b\nSubject: Re: [PATCH] leak\nMessage-ID: <r@b>\n\nOn Mon, a@b wrote:\n"
        + quoted
        + "\nThis leaks.\n"
    )
    patches = parse_patch_text(reply, "<reply>")
    assert patches[0].quoted
    root = tmp_path / "tree"
    (root / "mm").mkdir(parents=True)
    (root / "mm" / "s.c").write_text(DUP_BEFORE.replace("p->v = 1", "p->v = 9"))
    r = review(ENGINE, patches, DirTree(root))
    assert r.mode == "fragment"
    (remark,) = r.remarks
    assert remark.startswith("the quoted hunks do not apply, so they were analysed alone: ")
    assert r.notes()[0] == remark
    # where they apply, the tree is used
    (root / "mm" / "s.c").write_text(DUP_BEFORE)
    assert review(ENGINE, patches, DirTree(root)).mode == "tree"


def test_review_versions_is_fast_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = file_module.analyse

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(file_module, "analyse", counting)
    before = TWO_PADS_F1 + TWO_PADS_F2
    after = TWO_PADS_F1.replace("\tx();\n", "\tx();\n\tx();\n") + TWO_PADS_F2
    got = []
    for kwargs in ({}, {"fast": False}):
        calls = 0
        review_versions(Engine(), "mm/x.c", before, after, **kwargs)  # type: ignore[arg-type]
        got.append(calls)
    assert got[0] < got[1]


def test_depths() -> None:
    assert _depths(["{", "\tx();", "}"]) == ([0, 1, 1], 0, 0)
    assert _depths(["\tif (a) {", "\t\tx();"]) == ([0, 1], 0, 1)
    assert _depths(["\t}", "}", "{"]) == ([0, -1, -2], -2, -1)


def test_a_tree_finding_sorts_before_its_twin_a_patch_added(tmp_path: Path) -> None:
    """Patch 1 adds a copy of a test the tree already has; patch 2 moves the
    tree's one down to where the copy was: the two findings have one place and
    one message. The one no patch introduced comes first."""
    twice = V1.replace(UFFD_TEST, UFFD_TEST * 2)
    moved = twice.replace(UFFD_TEST * 2, "\t\t/* a */\n\t\t/* b */\n" + UFFD_TEST * 2)
    root = tmp_path / "tree"
    (root / "mm").mkdir(parents=True)
    (root / SOURCE).write_text(V1)
    patches = parse_patch_text(
        _mail(1, "twice", diff(SOURCE, V1, twice)), "<1>"
    ) + parse_patch_text(_mail(2, "comment", diff(SOURCE, twice, moved)), "<2>")
    r = review(ENGINE, patches, DirTree(root), show_all=True)
    uffd = [rf for rf in r.findings if rf.finding.rule == "uffd-wp-under-ptl"]
    assert [rf.finding.sort_key() for rf in uffd][0] == uffd[1].finding.sort_key()
    assert [rf.introduced_by.subject if rf.introduced_by else None for rf in uffd] == [
        None,
        "twice",
    ]


def test_a_hunk_of_statements_alone_is_analysed_in_fragment_mode() -> None:
    """No brace and no function head in the hunk: tree-sitter-c takes the
    statements at the top level without an error, where no function holds
    them; wrapped in one, the leak the patch adds is found."""
    text = _mail(
        1,
        "leak",
        "diff --git a/mm/s.c b/mm/s.c\n--- a/mm/s.c\n+++ b/mm/s.c\n"
        "@@ -10,3 +10,5 @@ static void two(struct s *p)\n"
        " \tspin_lock(&p->lock);\n+\tif (p->flag)\n+\t\treturn;\n"
        " \tp->v = 2;\n \tspin_unlock(&p->lock);\n",
    )
    r = review(ENGINE, parse_patch_text(text, "<p>"), None)
    assert r.mode == "fragment" and r.stats.functions_analysed == 1
    assert [(rf.finding.rule, rf.finding.line, rf.finding.function) for rf in r.findings] == [
        ("lock-balance", 10, "two")
    ]
