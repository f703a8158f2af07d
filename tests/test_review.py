"""`lockcheck review`: findings a patch or series introduces, blame, lock context."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.frontend.parse import count_errors, parse_source
from lockcheck.inputs.patch import read_patches
from lockcheck.review import fragment_image
from tests.helpers import FIXTURES, git, run_cli, seed_email, tree_hash

SERIES = FIXTURES / "series"
TREE = SERIES / "tree"
MBOX = SERIES / "series.mbox"
REPLY = SERIES / "reply.eml"
PATCH_FILES = sorted(SERIES.glob("000*.patch"))
RULES = {"uffd-wp-under-ptl", "anon-vma-under-ptl"}
P2 = "mm/khugepaged: retract_file_tables() without mmap lock"
P3 = "mm/khugepaged: recheck anon_vma and uffd-wp under the pte lock"


def review_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    proc = run_cli("review", "--format", "json", *args, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def ours(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["rule"] in RULES]


def context(doc: dict[str, Any], site: str, patch: str | None = None) -> list[dict[str, Any]]:
    return [
        c
        for c in doc["lock_context"]
        if c["site"] == site and (patch is None or c["patch"] == patch)
    ]


def assert_series_blame(doc: dict[str, Any]) -> None:
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    for f in found:
        assert f["introduced_by"] == P2 and f["fixed_by"] == P3
        assert f["function"] == "retract_file_tables"


@pytest.fixture(scope="module")
def series_doc() -> dict[str, Any]:
    """The JSON review of the 3-patch mbox against its tree, made once; the
    tree must come out of it untouched."""
    before = tree_hash(TREE)
    code, doc = review_json(str(MBOX), "--tree", str(TREE))
    assert code == 1
    assert tree_hash(TREE) == before
    return doc


def test_series_mbox_blames_patch_2_and_credits_patch_3(series_doc: dict[str, Any]) -> None:
    assert_series_blame(series_doc)
    assert series_doc["review"]["mode"] == "tree"
    assert [p["number"] for p in series_doc["review"]["patches"]] == [1, 2, 3]


def test_series_lock_context_of_the_uffd_test_in_patch_2(series_doc: dict[str, Any]) -> None:
    """The reviewer's "with the new code we only hold ... i_mmap_lock read"."""
    [uffd] = context(series_doc, "userfaultfd_wp(vma)", P2)
    assert uffd["before"] == ["mapping->i_mmap_rwsem:write", "mm->mmap_lock:write"]
    assert uffd["after"] == ["mapping->i_mmap_rwsem:read"]
    assert uffd["change"] == "changed" and "mm->mmap_lock:write" in uffd["difference"]
    assert uffd["path"] == "mm/khugepaged.c" and uffd["function"] == "retract_file_tables"
    assert (SERIES / "stages/2.c").read_text().splitlines()[uffd["line"] - 1].strip() == (
        "if (userfaultfd_wp(vma))"
    )


def test_series_lock_context_of_the_rechecks_in_patch_3(series_doc: dict[str, Any]) -> None:
    """Patch 3 adds the re-checks, made under both page-table locks."""
    rechecks = context(series_doc, "vma->anon_vma", P3) + context(
        series_doc, "userfaultfd_wp(vma)", P3
    )
    added = [c for c in rechecks if c["change"] == "added"]
    assert len(added) == 2 and all({"pml", "ptl"} <= set(c["after"]) for c in added)


def test_series_text_output_spells_out_the_lock_context() -> None:
    proc = run_cli("review", str(MBOX), "--tree", str(TREE))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert f"introduced by: [PATCH 2/3] {P2}" in out
    assert f"fixed by:      [PATCH 3/3] {P3}" in out
    assert (
        "before {mapping->i_mmap_rwsem:write, mm->mmap_lock:write}; "
        "after {mapping->i_mmap_rwsem:read}" in out
    )
    assert "no longer held: `mm->mmap_lock:write`" in out


def test_format_patch_files_in_any_order_apply_by_number() -> None:
    _, doc = review_json(*map(str, reversed(PATCH_FILES)), "--tree", str(TREE))
    assert_series_blame(doc)


def test_all_shows_what_a_patch_did_not_introduce(tmp_path: Path) -> None:
    (tmp_path / "mm").mkdir()
    shutil.copy(SERIES / "stages/2.c", tmp_path / "mm/khugepaged.c")
    code, doc = review_json(str(PATCH_FILES[2]), "--tree", str(tmp_path))
    assert ours(doc) == [] and code in (0, 1)
    _, doc = review_json(str(PATCH_FILES[2]), "--tree", str(tmp_path), "--all")
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    assert all(f["introduced_by"] is None and f["fixed_by"] == P3 for f in found)


def test_output_is_byte_stable() -> None:
    a = run_cli("review", "--format", "json", str(MBOX), "--tree", str(TREE))
    b = run_cli("review", "--format", "json", str(MBOX), "--tree", str(TREE))
    assert a.stdout == b.stdout and a.stdout


def corrupt_patch(tmp_path: Path) -> Path:
    text = PATCH_FILES[0].read_text()
    cut = text.index("-\t\tint result = SCAN_FAIL;")  # the first hunk ends early
    bad = tmp_path / "corrupt.patch"
    bad.write_text(text[:cut])
    return bad


def missing_file_patch(tmp_path: Path) -> Path:
    bad = tmp_path / "elsewhere.patch"
    bad.write_text(PATCH_FILES[0].read_text().replace("mm/khugepaged.c", "mm/nowhere.c"))
    return bad


def stale_patch(tmp_path: Path) -> Path:
    bad = tmp_path / "stale.patch"
    text = PATCH_FILES[0].read_text().replace(" \t\t\tscan_slot_defer(", " \t\t\tscan_slot_later(")
    bad.write_text(text)
    return bad


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (corrupt_patch, "corrupt patch"),
        (missing_file_patch, "mm/nowhere.c: no such file in "),
        (stale_patch, "mm/khugepaged.c: hunk #2 (@@ -64,25 +60,19 @@"),
    ],
    ids=["corrupt", "missing-file", "hunk-does-not-apply"],
)
def test_bad_patches_exit_2_with_one_line_and_leave_the_tree_alone(
    tmp_path: Path, make: Any, expect: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(TREE, tree)
    before = tree_hash(tree)
    proc = run_cli("review", str(make(tmp_path)), "--tree", str(tree))
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("lockcheck: error: ") and expect in line
    assert tree_hash(tree) == before


def test_fragment_mode_without_a_tree() -> None:
    code, doc = review_json(str(PATCH_FILES[1]))
    assert doc["review"]["mode"] == "fragment"
    assert any("fragment mode" in n for n in doc["review"]["notes"])
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES) and code == 1
    assert all(f["introduced_by"] == P2 and f["path"] == "mm/khugepaged.c" for f in found)
    # hunk line numbers are real post-image lines
    lines = (SERIES / "stages/2.c").read_text().splitlines()
    for f in found:
        assert ("anon_vma" if f["rule"] == "anon-vma-under-ptl" else "userfaultfd_wp") in (
            lines[f["line"] - 1]
        )
    text = run_cli("review", str(PATCH_FILES[1])).stdout
    assert "note: fragment mode" in text


def test_reply_quoting_a_patch_points_into_the_email() -> None:
    code, doc = review_json(str(REPLY))
    assert code == 1
    lines = REPLY.read_text().splitlines()
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    for f in found:
        assert f["path"] == str(REPLY) and f["introduced_by"] == P2
        quoted = lines[f["line"] - 1]
        assert quoted.startswith(">")
        site = "anon_vma" if f["rule"] == "anon-vma-under-ptl" else "userfaultfd_wp"
        assert quoted[f["column"] - 1 :].startswith(site) or site in quoted[f["column"] - 1 :]


def test_fragment_wrapping_parses_cleanly() -> None:
    [p] = read_patches(REPLY)
    for side in ("old", "new"):
        img = fragment_image(p.files[0], side, p.source_lines)  # type: ignore[arg-type]
        pf = parse_source(img.path, img.text.encode())
        assert count_errors(pf.root) == 0, img.text
        engine = Engine(Config(select=RULES))
        names = [
            ff.fn.name for ff in engine.analyse_source(img.path, img.text.encode()).facts.functions
        ]
        assert names == ["retract_file_tables"]


def test_seed_email_in_fragment_mode_shows_the_check_sites_and_their_locks() -> None:
    seed = seed_email()
    proc = run_cli("review", "--format", "json", str(seed))
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["review"]["mode"] == "fragment"
    lines = seed.read_text().splitlines()
    [anon] = context(doc, "vma->anon_vma")
    [uffd] = context(doc, "userfaultfd_wp(vma)")
    for c in (anon, uffd):
        assert c["function"] == "retract_page_tables" and c["file"] == "mm/khugepaged.c"
        assert c["path"] == str(seed) and lines[c["line"] - 1].startswith("> > ")
    assert "anon_vma" in lines[anon["line"] - 1] and "userfaultfd_wp" in lines[uffd["line"] - 1]
    # the rmap lock went from write to read; uffd-wp is tested under it alone
    assert anon["before"] == ["mapping->i_mmap_rwsem:write"]
    assert anon["after"] == ["mapping->i_mmap_rwsem:read"]
    assert uffd["before"] is None and uffd["after"] == ["mapping->i_mmap_rwsem:read"]
    text = run_cli("review", str(seed)).stdout
    assert "`userfaultfd_wp(vma)` in `retract_page_tables()`" in text
    assert "after {mapping->i_mmap_rwsem:read}" in text


# --- git: --base, --git A..B and --staged on a real repository


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The base and the three stages of the series as commits."""
    r = tmp_path / "repo"
    shutil.copytree(TREE, r)
    git(r, "init", "-q")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    subjects = ["drop the target arguments", "without mmap lock", "recheck under the pte lock"]
    for n, subject in enumerate(subjects, 1):
        shutil.copy(SERIES / f"stages/{n}.c", r / "mm/khugepaged.c")
        git(r, "commit", "-q", "-am", f"mm/khugepaged: {subject}")
    return r


def test_git_range(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").stdout
    _, doc = review_json("--git", "HEAD~3..HEAD", "--tree", str(repo))
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    for f in found:
        assert f["introduced_by"] == "mm/khugepaged: without mmap lock"
        assert f["fixed_by"] == "mm/khugepaged: recheck under the pte lock"
    assert git(repo, "rev-parse", "HEAD").stdout == head
    assert git(repo, "status", "--porcelain").stdout == ""
    # the range as a reader gives it, from inside the repository (a subdirectory:
    # git paths stay relative to the top)
    _, doc2 = review_json("--git", "HEAD~3..", cwd=repo / "mm")
    assert [f["rule"] for f in ours(doc2)] == [f["rule"] for f in found]


def test_staged_changes(repo: Path) -> None:
    git(repo, "reset", "-q", "--hard", "HEAD~2")  # at stage 1
    shutil.copy(SERIES / "stages/2.c", repo / "mm/khugepaged.c")
    git(repo, "add", "mm/khugepaged.c")
    (repo / "mm/khugepaged.c").write_text("/* not staged: must not be reviewed */\n")
    code, doc = review_json("--staged", "--tree", str(repo))
    assert code == 1
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    assert all(f["introduced_by"] == "staged changes" for f in found)
    assert (repo / "mm/khugepaged.c").read_text() == "/* not staged: must not be reviewed */\n"
    git(repo, "reset", "-q", "--hard")
    proc = run_cli("review", "--staged", "--tree", str(repo))
    assert proc.returncode == 0 and "review of 0 patches" in proc.stdout


def test_base_revision_of_a_repository(repo: Path) -> None:
    code, doc = review_json(str(PATCH_FILES[1]), "--tree", str(repo), "--base", "HEAD~2")
    assert code == 1 and sorted(f["rule"] for f in ours(doc)) == sorted(RULES)
    assert doc["review"]["tree"].endswith(git(repo, "rev-parse", "HEAD~2").stdout[:12])
    proc = run_cli("review", str(PATCH_FILES[1]), "--tree", str(repo), "--base", "nosuchrev")
    assert proc.returncode == 2 and "unknown revision 'nosuchrev'" in proc.stderr


def test_new_deleted_and_non_c_files_from_stdin(tmp_path: Path) -> None:
    """A git diff that adds a C file and a document and deletes another file."""
    r = tmp_path / "r"
    (r / "mm").mkdir(parents=True)
    (r / "mm/old.c").write_text("static void unused(void)\n{\n}\n")
    git(r, "init", "-q")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    shutil.copy(SERIES / "stages/2.c", r / "mm/new.c")
    (r / "README.rst").write_text("if (userfaultfd_wp(vma)) { not C at all\n")
    git(r, "rm", "-q", "mm/old.c")
    git(r, "add", "-A")
    diff = git(r, "diff", "--cached", "--no-renames").stdout
    git(r, "reset", "-q", "--hard")
    before = tree_hash(r)
    proc = run_cli("review", "--format", "json", "-", "--tree", str(r), stdin=diff.encode())
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    found = ours(doc)
    assert sorted(f["rule"] for f in found) == sorted(RULES)
    assert {f["path"] for f in found} == {"mm/new.c"}
    assert doc["review"]["patches"][0]["files"] == ["README.rst", "mm/new.c", "mm/old.c"]
    assert all(c["file"] != "README.rst" for c in doc["lock_context"])
    assert tree_hash(r) == before


def test_input_without_a_diff_is_an_error(tmp_path: Path) -> None:
    cover = tmp_path / "cover.mbox"
    text = MBOX.read_text()
    cover.write_text(text[: text.index("From ", 10)])  # the cover letter alone
    proc = run_cli("review", str(cover), "--tree", str(TREE))
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert (
        line
        == f"lockcheck: error: {cover}: no diff in it (a cover letter, or a reply quoting no patch)"
    )


def test_thread_mbox_with_replies_reviews_the_patches(tmp_path: Path) -> None:
    """`b4 mbox` gives the whole thread: the replies quote the patches again."""
    thread = tmp_path / "thread.mbox"
    reply = "From rob@example.org Tue Jan  6 09:15:00 2026\n" + REPLY.read_text()
    thread.write_text(MBOX.read_text() + "\n" + reply)
    _, doc = review_json(str(thread), "--tree", str(TREE))
    assert [p["number"] for p in doc["review"]["patches"]] == [1, 2, 3]
    assert_series_blame(doc)


def test_review_reads_the_trees_headers_from_any_working_directory(tmp_path: Path) -> None:
    """Lock helpers in the tree's include/linux/ are known to a review run
    from outside the tree as well as from inside it."""
    tree = tmp_path / "tree"
    (tree / "include" / "linux").mkdir(parents=True)
    (tree / "mm").mkdir()
    (tree / "include" / "linux" / "gadget.h").write_text(
        "static inline void gadget_lock(struct gadget *g)\n{\n\tspin_lock(&g->lock);\n}\n\n"
        "static inline void gadget_unlock(struct gadget *g)\n{\n\tspin_unlock(&g->lock);\n}\n"
    )
    (tree / "mm" / "gadget.c").write_text(
        "#include <linux/gadget.h>\n\n"
        "void gadget_poke(struct gadget *g, struct vm_area_struct *vma)\n{\n"
        "\tgadget_lock(g);\n\tif (userfaultfd_wp(vma))\n\t\tg->count++;\n"
        "\tgadget_unlock(g);\n}\n"
    )
    patch = tmp_path / "0001.patch"
    patch.write_text(
        "--- a/mm/gadget.c\n+++ b/mm/gadget.c\n@@ -6,3 +6,4 @@\n"
        " \tif (userfaultfd_wp(vma))\n \t\tg->count++;\n+\tg->count++;\n \tgadget_unlock(g);\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (tree, elsewhere):
        _, doc = review_json(str(patch), "--tree", str(tree), cwd=cwd)
        (site,) = doc["lock_context"]
        assert (site["before"], site["after"]) == (["g->lock"], ["g->lock"]), cwd
