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
from tests.conftest import FIXTURES, ROOT, run_cli

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
        "         held: {mapping->i_mmap_rwsem:read, pml, ptl}"
        " -> {mapping->i_mmap_rwsem:read, pml}"
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
