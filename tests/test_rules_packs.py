"""Packs from the command line: schema errors, TOML-only rules, rules list/show, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, annotations, run_cli

KH = FIXTURES / "khugepaged"
RULES = FIXTURES / "rules"

GOOD_RULE = """
[[rule]]
id = "x"
kind = "check-under-lock"
message = "m"
flag = "uffd-wp"
acts = ["pt-detach"]
locks = ["pte_lock"]
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[api\n", "not valid TOML"),
        ("[apis]\n", "apis: unknown table"),
        ("[pack]\nname = 3\n", "pack.name: must be a string"),
        ('[pack]\nuses = ["nosuch"]\n', "pack.uses[0]: no built-in pack 'nosuch'"),
        ('[api]\nfoo = { effect = "grab" }\n', "api.foo.effect: must be one of"),
        ('[api]\nfoo = { effect = "acquire", colour = "red" }\n', "api.foo.colour: unknown key"),
        ('[api]\nfoo = { effect = "acquire", atomic = "yes" }\n', "api.foo.atomic: must be bool"),
        ('[api]\nfoo = { effect = "check" }\n', "api.foo.flag: a check needs a flag"),
        ("[guards]\nspinlock = { spins = true }\n", "guards.spinlock.spins: unknown key"),
        ("order = [1]\n", "order: must be a list of lock class names"),
        ('pure = ["test bit"]\n', "pure: must be a list of function names"),
        ('pure = "test_bit"\n', "pure: must be a list of function names"),
        ('[[rule]]\nid = "x"\nkind = "check-under-lock"\n', "rule[0].message: is required"),
        (
            GOOD_RULE.replace('"check-under-lock"', '"nope"'),
            "rule[0] (x).kind: unknown kind 'nope'",
        ),
        (GOOD_RULE + 'colour = "red"\n', "rule[0] (x).colour: unknown key for kind"),
        (GOOD_RULE.replace('flag = "uffd-wp"\n', ""), "rule[0] (x).flag: required by kind"),
        (GOOD_RULE.replace('["pt-detach"]', '"pt-detach"'), "rule[0] (x).acts: must be list"),
        (GOOD_RULE + 'severity = "fatal"\n', "rule[0].severity: must be error, warning or note"),
        (GOOD_RULE + "[rule.doc]\nwhy = 3\n", "rule[0].doc.why: must be a string"),
        (GOOD_RULE + '[rule.doc]\nhow = "x"\n', "rule[0].doc.how: unknown section"),
        (GOOD_RULE + GOOD_RULE, "rule[1].id: duplicate rule id 'x'"),
    ],
)
def test_malformed_pack_is_one_line_naming_file_key_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    pack = tmp_path / "bad.toml"
    pack.write_text(text)
    res = run_cli("check", "--no-sim", "--rules", str(pack), str(KH / "v1.c"))
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"lockcheck: error: rule pack {pack}: "), lines[0]
    assert problem in lines[0]


def test_unknown_rule_ids_exit_2() -> None:
    res = run_cli("rules", "show", "no-such-rule")
    assert res.returncode == 2
    assert (
        res.stderr
        == "lockcheck: error: unknown rule id 'no-such-rule' (see `lockcheck rules list`)\n"
    )
    res = run_cli("check", "--no-sim", "--select", "sleep-in-atomic", "--select", "nope", str(KH))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "lockcheck: error: unknown rule id 'nope' (see `lockcheck rules list`)"
    ]


REVIEWER_PACK = """
[pack]
name = "review"
uses = ["mm"]

[api]
vma_is_sealed = { effect = "check", flag = "sealed" }
zap_vma_range = { effect = "act", act = "vma-zap", target = 0 }

[[rule]]
id = "sealed-under-mmap-lock"
kind = "check-under-lock"
severity = "error"
flag = "sealed"
acts = ["vma-zap"]
locks = ["mmap_lock:write"]
message = "`{expr}` decides the zap but is tested without {wanted}"
"""

REVIEWED_C = """
static void zap_unless_sealed(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;

	if (vma_is_sealed(vma))
		return;
	mmap_write_lock(mm);
	zap_vma_range(vma, vma->vm_start, vma->vm_end);
	mmap_write_unlock(mm);
}

static void zap_unless_sealed_locked(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;

	mmap_write_lock(mm);
	if (!vma_is_sealed(vma))
		zap_vma_range(vma, vma->vm_start, vma->vm_end);
	mmap_write_unlock(mm);
}
"""


def test_a_new_check_under_lock_rule_in_toml_alone_fires(tmp_path: Path) -> None:
    pack = tmp_path / "review.toml"
    pack.write_text(REVIEWER_PACK)
    src = tmp_path / "seal.c"
    src.write_text(REVIEWED_C)
    res = run_cli("check", "--no-sim", "--format", "json", "--rules", str(pack), str(src))
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["findings"]
    assert [(f["rule"], f["function"], f["line"]) for f in findings] == [
        ("sealed-under-mmap-lock", "zap_unless_sealed", 6)
    ]
    assert "tested without the mmap lock for write" in findings[0]["message"]
    listed = run_cli("rules", "list", "--rules", str(pack))
    assert listed.stdout.split()[0] == "sealed-under-mmap-lock"


def test_rules_list_shows_the_mm_pack() -> None:
    res = run_cli("rules", "list")
    assert res.returncode == 0, res.stderr
    ids = [line.split()[0] for line in res.stdout.splitlines()]
    assert ids == sorted(ids)
    for rid in ("claim-mismatch", "lock-order", "nested-same-class", "sleep-in-atomic"):
        assert rid in ids


def test_rules_show_prints_docs_and_scenario() -> None:
    res = run_cli("rules", "show", "uffd-wp-under-ptl")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("uffd-wp-under-ptl: a userfaultfd_wp() test")
    assert "scenario: uffd-wp (lockcheck simulate uffd-wp --example)" in out
    titles = ["What it finds", "Why it is a bug", "Example (bad C)", "Use instead (good C)"]
    titles += ["Limits", "References"]
    positions = [out.index(f"\n{t}\n") for t in titles]
    assert positions == sorted(positions)
    assert "    if (userfaultfd_wp(vma))" in out
    res = run_cli("rules", "show", "sleep-in-atomic")
    assert "scenario:" not in res.stdout
    assert "spin_lock(&mm->page_table_lock);" in res.stdout


def test_rules_show_finds_rules_of_a_pack_by_path() -> None:
    res = run_cli("rules", "show", "foo-lock-order", "--rules", str(RULES / "packs/foo/pack.toml"))
    assert res.returncode == 0, res.stderr
    assert "pack: foo" in res.stdout


def test_baseline_hides_known_findings_and_keeps_new_ones(tmp_path: Path) -> None:
    first = run_cli("check", "--no-sim", "--format", "json", str(KH / "v1.c"))
    assert first.returncode == 1
    base = tmp_path / "base.json"
    base.write_text(first.stdout)
    res = run_cli("check", "--no-sim", "--baseline", str(base), str(KH / "v1.c"))
    assert res.returncode == 0, res.stdout + res.stderr
    # a finding the baseline does not know is still shown
    both = run_cli("check", "--no-sim", "--format", "json", "--baseline", str(base), str(KH))
    rules_files = {(f["rule"], Path(f["path"]).name) for f in json.loads(both.stdout)["findings"]}
    assert rules_files and all(name != "v1.c" for _, name in rules_files)


def test_write_baseline_then_shifted_lines_stay_hidden(tmp_path: Path) -> None:
    src = tmp_path / "v1.c"
    src.write_text((KH / "v1.c").read_text())
    base = tmp_path / "known.json"
    res = run_cli("check", "--no-sim", "--write-baseline", str(base), str(src))
    assert res.returncode == 0, res.stderr
    doc = json.loads(base.read_text())
    assert doc["version"] == 1 and len(doc["fingerprints"]) == 2
    src.write_text("/* a new comment */\n\n" + src.read_text())
    res = run_cli("check", "--no-sim", "--baseline", str(base), str(src))
    assert res.returncode == 0, res.stdout
    assert "0 findings" in res.stdout


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "not valid JSON"), ('{"x": 1}', "expected `lockcheck check"), ("[1]", "entry 0")],
)
def test_bad_baseline_exit_2(tmp_path: Path, text: str, problem: str) -> None:
    base = tmp_path / "b.json"
    base.write_text(text)
    res = run_cli("check", "--no-sim", "--baseline", str(base), str(KH / "v1.c"))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and problem in res.stderr


def test_reasonless_suppression_is_reported_and_hides_nothing(tmp_path: Path) -> None:
    src = (KH / "v1.c").read_text().splitlines()
    idx = next(i for i, line in enumerate(src) if "if (userfaultfd_wp(vma))" in line)
    src.insert(idx, "\t\t/* lockcheck: ignore uffd-wp-under-ptl */")
    p = tmp_path / "v1.c"
    p.write_text("\n".join(src) + "\n")
    doc = json.loads(run_cli("check", "--no-sim", "--format", "json", str(p)).stdout)
    got = {(f["rule"], f["line"]) for f in doc["findings"]}
    assert ("suppression-without-reason", idx + 1) in got
    assert ("uffd-wp-under-ptl", idx + 2) in got


def test_rules_show_quotes_the_fixtures_that_fire_and_stay_quiet() -> None:
    res = run_cli("rules", "show", "sleep-in-atomic")
    assert res.returncode == 0, res.stderr
    fixtures = res.stdout.split("\nFixtures\n", 1)[1].splitlines()
    want = annotations(RULES / "sleep-in-atomic.c")["sleep-in-atomic"]
    verdict = {"ruleid": "fires", "ok": "quiet"}
    for kind, lines in want.items():
        for line in lines:
            where = f"rules/sleep-in-atomic.c:{line} in "
            assert any(f.split()[0] == verdict[kind] and where in f for f in fixtures), where
    assert len(fixtures) == sum(len(lines) for lines in want.values())


def test_a_bare_annotation_word_names_a_lock_only_through_one_fixed_row() -> None:
    from lockcheck.packs import Vocabulary, load_pack

    voc = Vocabulary.merge([load_pack("mm")])
    assert voc.named_lock("RCU") == "rcu"  # [names] "rcu", and rcu_read_lock's fixed lock
    assert voc.named_lock("rcu_read_lock") == "rcu"
    assert voc.named_lock("mmap_lock") is None  # its rows take `{0}->mmap_lock`
    assert voc.named_lock("ptl") is None  # several classes
    assert voc.named_lock("nothing_known") is None
