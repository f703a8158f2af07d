"""What a new reviewer meets first: wording, help, docs and paths (issue 18)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from lockcheck import __version__
from lockcheck.engine import Engine
from lockcheck.model.ir import Check
from lockcheck.report import FORMATS, REVIEW_FORMATS
from lockcheck.report.explain import render_explain
from tests.helpers import FIXTURES, ROOT, new_repo, run_cli, stage

KH = FIXTURES / "khugepaged"


def _function(path: Path, name: str, source: bytes | None = None) -> object:
    analysis = Engine().analyse_source(str(path), path.read_bytes() if source is None else source)
    (ff,) = [f for f in analysis.facts.functions if f.fn.name == name]
    return ff


# -- 1. a lock call's argument is not a flag test ---------------------------

LOCKS_ANON_VMA = b"""\
static void take_rmap(struct vm_area_struct *vma)
{
	anon_vma_lock_write(vma->anon_vma);
	anon_vma_unlock_write(vma->anon_vma);
	if (anon_vma_trylock_read(vma->anon_vma))
		anon_vma_unlock_read(vma->anon_vma);
	if (vma->anon_vma)
		return;
}
"""


def test_lock_call_arguments_are_not_flag_checks(tmp_path: Path) -> None:
    path = tmp_path / "rmap.c"
    path.write_bytes(LOCKS_ANON_VMA)
    ff = _function(path, "take_rmap")
    checks = [ev for evs in ff.events for ev in evs if isinstance(ev, Check)]  # type: ignore[attr-defined]
    # only the `if (vma->anon_vma)` test on line 7 is a check
    assert [(c.flag, c.site.line) for c in checks] == [("anon-vma", 7)]


def test_explain_lists_no_anon_vma_check_at_a_lock_call() -> None:
    res = run_cli("explain", str(FIXTURES / "order" / "inversions.c"), "in_order")
    assert res.returncode == 0, res.stderr
    assert "acquire `vma->anon_vma->root->rwsem`" in res.stdout
    assert "check anon-vma" not in res.stdout


# -- 2. the simulator's trace follows the branch it names --------------------


def test_trace_of_a_not_equal_branch_says_the_outcome_it_takes() -> None:
    res = run_cli(
        "simulate", "uffd-wp", "--code", str(KH / "v1.c"),
        "--function", "shrink_file_tables", "--split-ptl", "on", "--format", "json",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    cpu0 = [s for s in json.loads(res.stdout)["trace"] if s["thread"] == "CPU0"]
    at = next(i for i, s in enumerate(cpu0) if "!= SCAN_SUCCEED" in s["event"])
    # `if (find_pmd_or_thp_or_none(...) != SCAN_SUCCEED) continue;` then line 29:
    # the trace went on past the `continue`, so the test was false
    assert cpu0[at]["state_change"] == "assume false"
    assert cpu0[at + 1]["line"] == 29


# -- 3. simulate runs the bundled example only when asked ---------------------


def test_simulate_without_code_is_a_usage_error() -> None:
    res = run_cli("simulate", "uffd-wp")
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith("lockcheck: error: say what to simulate: --code FILE")
    assert "--example" in res.stderr


def test_simulate_example_names_the_bundled_file_and_finds_the_race() -> None:
    res = run_cli("simulate", "uffd-wp", "--example", "--split-ptl", "on")
    assert res.returncode == 1, res.stderr
    assert "CPU0: shrink_file_tables() in fixtures/khugepaged/v1.c" in res.stdout
    both = run_cli("simulate", "uffd-wp", "--example", "--code", str(KH / "v1.c"))
    assert both.returncode == 2 and "--example runs the bundled code" in both.stderr


# -- 4. the kernel locking document the rules cite ---------------------------


def _cited_docs() -> list[tuple[str, str | None]]:
    """(docs/... path, section number or None) cited by the packs' rules and comments."""
    out: list[tuple[str, str | None]] = []
    for pack in sorted((ROOT / "rules").glob("*.toml")):
        text = pack.read_text("utf-8")
        for m in re.finditer(r"(docs/[\w./-]+\.md)(?: section (\d+))?", text):
            out.append((m.group(1), m.group(2)))
        for rule in tomllib.loads(text).get("rule", []):
            for ref in rule.get("doc", {}).get("references", []):
                for m in re.finditer(r"(docs/[\w./-]+\.md)(?: section (\d+))?", ref):
                    out.append((m.group(1), m.group(2)))
    return out


def test_every_document_the_rules_cite_exists_with_its_section() -> None:
    cited = _cited_docs()
    assert ("docs/kernel-locking.md", "3") in cited
    for doc, section in cited:
        path = ROOT / doc
        assert path.is_file(), f"{doc} is cited but not in the project"
        if section is not None:
            headings = re.findall(r"^## (\d+)\. ", path.read_text("utf-8"), re.M)
            assert section in headings, f"{doc} has no section {section}"


def test_kernel_locking_doc_covers_what_the_pack_models() -> None:
    text = (ROOT / "docs" / "kernel-locking.md").read_text("utf-8")
    assert "../shared" not in text
    pack = tomllib.loads((ROOT / "rules" / "mm.toml").read_text("utf-8"))
    # every effect the vocabulary uses is explained, and every class of the order
    for effect in sorted({row["effect"] for row in pack["api"].values()} - {"sleeps"}):
        assert f"`{effect}`" in text, effect
    for name in ("mmap_lock", "i_mmap_rwsem", "anon_vma->rwsem", "page_table_lock"):
        assert name in text
    for words in ("May sleep", "userfaultfd_wp(vma)", "vma->anon_vma", "pte_offset_map_lock"):
        assert words in text


# -- 5. rules docs into a directory that cannot be written ------------------


@pytest.mark.parametrize("target", ["/proc/nonexistent/x", "/dev/null"])
def test_rules_docs_bad_directory_is_an_input_error(target: str) -> None:
    res = run_cli("rules", "docs", target)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith("lockcheck: error: ")
    assert "internal error" not in res.stderr


# -- 6 and 10. help: what each command offers, and how it reads --------------


def test_format_choices_are_what_each_command_supports() -> None:
    from lockcheck.cli import CheckFormat, Format

    assert tuple(CheckFormat) == FORMATS
    assert tuple(Format) == REVIEW_FORMATS
    check = run_cli("check", "--help").stdout
    review = run_cli("review", "--help").stdout
    assert "--format [text|json|sarif|github|b4|checkpatch]" in check
    assert "email" in review.split("--format", 1)[1].split("\n", 1)[0]


COMMANDS = [
    (), ("check",), ("explain",), ("demo",), ("simulate",), ("annotate",), ("review",),
    ("order",), ("rules",), ("rules", "list"), ("rules", "show"), ("rules", "docs"),
    ("hook",), ("hook", "install"), ("hook", "uninstall"), ("hook", "run"),
]  # fmt: skip


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "lockcheck")
def test_help_reads_like_git_or_ruff(words: tuple[str, ...]) -> None:
    long = run_cli(*words, "--help")
    short = run_cli(*words, "-h")
    assert long.returncode == 0 and short.returncode == 0, long.stderr + short.stderr
    assert long.stdout == short.stdout
    out = long.stdout
    assert "<bool>" not in out and "<list" not in out and "<path>" not in out
    usage = out.splitlines()[0]
    assert usage.startswith("Usage: lockcheck")
    assert "{" not in usage and "}" not in usage
    # placeholders are upper case: PATH..., [PATCH]..., FILE FUNCTION
    for word in usage.split()[2 + len(words) :]:
        assert word.strip("[].") == word.strip("[].").upper(), usage
    assert "╭" not in out  # plain text, no panels


@pytest.mark.parametrize("words", [(), ("rules",), ("hook",)])
def test_a_bare_command_group_prints_its_help(words: tuple[str, ...]) -> None:
    res = run_cli(*words)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == run_cli(*words, "-h").stdout


def test_a_usage_error_points_at_the_help() -> None:
    res = run_cli("rules", "show")
    assert res.returncode == 2
    assert (
        res.stderr == "lockcheck: error: Missing argument 'ID'. (see `lockcheck rules show -h`)\n"
    )


def test_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout == f"lockcheck {__version__}\n"


# -- 11. explain says which held set it shows --------------------------------


def test_explain_shows_the_held_set_before_and_after_each_event() -> None:
    out = render_explain(_function(KH / "v1.c", "shrink_file_tables"))  # type: ignore[arg-type]
    lines = out.splitlines()
    assert "held: the locks surely held before each event" in lines[1]
    release = lines.index("     41  release `ptl` via spin_unlock")
    assert lines[release + 1] == (
        "         held: {mapping->i_mmap_rwsem:read, pml, ptl} -> {mapping->i_mmap_rwsem:read, pml}"
    )
    act = lines.index("     39  act pt-detach: `pmdp_collapse_flush(vma, haddr, pmdp)`")
    assert lines[act + 1] == "         held: {mapping->i_mmap_rwsem:read, pml, ptl}"


# -- 17. demo prints paths the user can use ---------------------------------


def test_demo_prints_no_absolute_paths(tmp_path: Path) -> None:
    res = run_cli("demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert str(ROOT) not in res.stdout and "site-packages" not in res.stdout
    assert "khugepaged/v1.c:32:7: error:" in res.stdout
    here = run_cli("demo")  # from the repository root: a path that opens
    assert "\nfixtures/khugepaged/v1.c:32:7: error:" in here.stdout


# -- 7. parse errors are said, and --strict fails on them --------------------

BROKEN = b"""\
static void f(struct mm_struct *mm)
{
\tmmap_read_lock(mm);
\tif (x +) {
\t}
\tmmap_read_unlock(mm);
}
"""


def test_parse_errors_are_in_the_summary_and_strict_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.c"
    path.write_bytes(BROKEN)
    res = run_cli("check", "--no-sim", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        "0 findings in 1 file(s), 1/1 functions analysed,"
        " 1 of them with parse errors (their findings may be incomplete)\n"
    )
    strict = run_cli("check", "--no-sim", "--strict", str(path))
    assert strict.returncode == 2
    assert strict.stderr == (
        "lockcheck: error: --strict: 1 parse error, 1 function affected:"
        " the findings may be incomplete\n"
    )
    clean = run_cli("check", "--no-sim", "--strict", str(KH / "merged_fix.c"))
    assert clean.returncode == 0 and "parse error" not in clean.stdout


def test_a_truncated_file_says_code_was_not_analysed(tmp_path: Path) -> None:
    path = tmp_path / "cut.c"
    path.write_bytes((KH / "pre_series.c").read_bytes()[:1500])  # the second function cut
    res = run_cli("check", "--no-sim", str(path))
    assert "parse error outside functions (not analysed)" in res.stdout


# -- 8. Latin-1 sources are analysed, at the file's own columns --------------

LATIN1 = (
    b"/* Copyright (c) 2003 Fran\xe7ois M\xfcller */\n"
    b"static void f(struct mm_struct *mm, int err)\n"
    b"{\n"
    b"\t/* d\xe9j\xe0 vu */ mmap_read_lock(mm);\n"
    b"\tif (err)\n"
    b"\t\treturn;\n"
    b"\tmmap_read_unlock(mm);\n"
    b"}\n"
)


def test_latin1_source_is_analysed_with_a_note_and_true_columns(tmp_path: Path) -> None:
    path = tmp_path / "old_driver.c"
    path.write_bytes(LATIN1)
    res = run_cli("check", "--no-sim", "--format", "json", str(path))
    assert res.returncode == 1, res.stderr
    assert res.stderr == (
        f"lockcheck: note: {path}: not UTF-8 text (byte 26); 4 bytes read as"
        " replacement characters\n"
    )
    (finding,) = json.loads(res.stdout)["findings"]
    line = LATIN1.splitlines()[3]
    assert (finding["line"], finding["column"]) == (4, line.index(b"mmap_read_lock") + 1)
    text = run_cli("check", "--no-sim", str(path)).stdout
    assert "\t/* d\ufffdj\ufffd vu */ mmap_read_lock(mm);" in text  # the excerpt


# -- 9. the README's examples run as written ---------------------------------


def _readme_block(after: str) -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    block = text.split(after, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [ln.split("  #", 1)[0].strip() for ln in block.splitlines() if ln.strip()]


def test_readme_examples_run_from_a_fresh_clone(tmp_path: Path) -> None:
    commands = _readme_block("## Using it")
    assert len(commands) >= 10
    for command in commands:
        words = command.split()
        assert words[0] == "lockcheck", command
        if words[1:3] == ["rules", "docs"]:
            words[3] = str(tmp_path)  # the same, without rewriting the clone's docs
        res = run_cli(*words[1:])
        assert res.returncode in (0, 1), (command, res.stderr)
        # no errors; `annotate` says on stderr how it read the email
        notes = [ln for ln in res.stderr.splitlines() if not ln.startswith("lockcheck: note: ")]
        assert notes == [], (command, res.stderr)
        assert res.stdout, command


# -- 12. counts and words of review and order --------------------------------


def test_review_counts_each_function_once() -> None:
    res = run_cli("review", "--format", "json", "--tree", str(FIXTURES / "series" / "tree"),
                  str(FIXTURES / "series" / "series.mbox"))  # fmt: skip
    assert res.returncode == 1, res.stderr
    stats = json.loads(res.stdout)["stats"]
    # mm/khugepaged.c has 4 functions in the tree and after every patch
    assert (stats["functions"], stats["functions_analysed"], stats["files"]) == (4, 4, 1)


def test_order_needs_no_claims_flag_and_counts_sites_in_words() -> None:
    plain = run_cli("order", str(FIXTURES / "order" / "foo_dev.c"))
    flagged = run_cli("order", "--claims", str(FIXTURES / "order" / "foo_dev.c"))
    assert plain.returncode == flagged.returncode == 1
    assert plain.stdout == flagged.stdout
    assert "(1 site)" in plain.stdout and "(1 sites)" not in plain.stdout


# -- 13. baselines say what they did -----------------------------------------


def test_write_baseline_says_what_it_wrote_and_the_summary_counts_hidden(tmp_path: Path) -> None:
    base = tmp_path / "known.json"
    wrote = run_cli("check", "--no-sim", "--write-baseline", str(base), str(KH / "v1.c"))
    assert wrote.returncode == 0
    assert wrote.stderr == (
        f"lockcheck: wrote {base}: 2 findings recorded; `--baseline {base}` hides them\n"
    )
    assert len(json.loads(base.read_text())["fingerprints"]) == 2
    hidden = run_cli("check", "--no-sim", "--baseline", str(base), str(KH))
    assert hidden.stdout.endswith(", 2 hidden by the baseline\n")
    doc = run_cli("check", "--no-sim", "--format", "json", "--baseline", str(base), str(KH))
    assert json.loads(doc.stdout)["stats"]["baselined"] == 2
    plain = run_cli("check", "--no-sim", "--format", "json", str(KH / "merged_fix.c"))
    assert "baselined" not in json.loads(plain.stdout)["stats"]  # no baseline, no count


# -- 14. one --fail-on default, and a leak blocks the commit -----------------


@pytest.mark.parametrize(
    "words", [("check",), ("review",), ("annotate",), ("hook", "run"), ("hook", "install")]
)
def test_fail_on_defaults_agree(words: tuple[str, ...]) -> None:
    out = " ".join(run_cli(*words, "--help").stdout.split())
    assert re.search(r"--fail-on \[note\|warning\|error\] .*?\[default: warning\]", out), out


LEAK_BASE = """\
static int count_entries(struct list_lock *w, int err)
{
\tspin_lock(&w->lock);
\tw->count++;
\tspin_unlock(&w->lock);
\treturn 0;
}
"""
LEAK = LEAK_BASE.replace("\tw->count++;\n", "\tif (err)\n\t\treturn -EINVAL;\n\tw->count++;\n")


def test_hook_blocks_a_commit_that_leaks_a_lock(tmp_path: Path) -> None:

    repo = new_repo(tmp_path / "linux", {"drivers/x.c": LEAK_BASE})
    stage(repo, {"drivers/x.c": LEAK})
    res = run_cli("hook", "run", cwd=repo)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "[lock-balance]" in res.stdout


# -- 15. plain diffs, with -p N or guessed ------------------------------------


def _plain_diffs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tree, a `diff -u a.orig a` patch made in it, and a `diff -ur old new` one."""
    pre, post = (KH / "pre_series.c").read_text(), (KH / "v1.c").read_text()
    tree = tmp_path / "linux"
    (tree / "mm").mkdir(parents=True)
    (tree / "mm" / "khugepaged.c").write_text(pre)
    hunk = _hunks(pre, post)
    p0 = tmp_path / "p0.diff"
    p0.write_text("--- mm/khugepaged.c.orig\t2024-01-01\n+++ mm/khugepaged.c\t2024-01-02\n" + hunk)
    p1 = tmp_path / "p1.diff"
    p1.write_text(
        "diff -ur linux/mm/khugepaged.c linux.new/mm/khugepaged.c\n"
        "--- linux/mm/khugepaged.c\t2024-01-01\n+++ linux.new/mm/khugepaged.c\t2024-01-02\n" + hunk
    )
    return tree, p0, p1


def _hunks(a: str, b: str) -> str:
    import difflib

    lines = difflib.unified_diff(a.splitlines(True), b.splitlines(True), n=3)
    return "".join(list(lines)[2:])  # no ---/+++: the caller names the files


@pytest.mark.parametrize(("patch", "strip"), [("p0", None), ("p1", None), ("p1", "1")])
def test_plain_diff_applies_to_the_tree(tmp_path: Path, patch: str, strip: str | None) -> None:
    tree, p0, p1 = _plain_diffs(tmp_path)
    args = ["-p", strip] if strip is not None else []
    path = p0 if patch == "p0" else p1
    res = run_cli("review", "--format", "json", "--tree", str(tree), *args, str(path))
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["findings"]
    assert {f["path"] for f in findings} == {"mm/khugepaged.c"}
    assert {f["rule"] for f in findings} == {"anon-vma-under-ptl", "uffd-wp-under-ptl"}


def test_strip_count_is_honoured_and_checked(tmp_path: Path) -> None:
    tree, _p0, p1 = _plain_diffs(tmp_path)
    as_is = run_cli("review", "--tree", str(tree), "-p", "0", str(p1))
    assert as_is.returncode == 2 and "linux/mm/khugepaged.c: no such file" in as_is.stderr
    too_far = run_cli("review", "--tree", str(tree), "-p", "9", str(p1))
    assert too_far.returncode == 2
    assert too_far.stderr == (
        "lockcheck: error: -p 9: linux/mm/khugepaged.c has not that many leading components\n"
    )


def test_git_diffs_keep_their_names(tmp_path: Path) -> None:
    from lockcheck.inputs.apply import DirTree, resolve_paths
    from lockcheck.inputs.patch import read_patches

    patches = read_patches(FIXTURES / "series" / "series.mbox")
    resolved = resolve_paths(patches, DirTree(FIXTURES / "series" / "tree"), None)
    assert resolved == patches


# -- 16. the b4 configuration line works as b4 runs it -----------------------


def test_readme_b4_line_fails_the_v1_patch_and_passes_the_fix() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    (command,) = re.findall(r"^\s*prep-perpatch-check-cmd = (.+)$", text, re.M)
    words = command.split()
    assert words[0] == "lockcheck" and words[-1] == "-"
    series = FIXTURES / "series"
    verdicts = []
    for name in sorted(p.name for p in series.glob("000*.patch")):
        res = run_cli(*words[1:], stdin=(series / name).read_bytes())
        assert res.returncode in (0, 1) and res.stderr == "", res.stderr
        lines = [ln for ln in res.stdout.splitlines() if ln]
        verdicts.append("fail" if any("ERROR:" in ln for ln in lines) else "pass")
    assert verdicts == ["pass", "fail", "pass"]
