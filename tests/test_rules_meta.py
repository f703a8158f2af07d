"""Meta-tests: every rule documents itself, has fixtures both ways, and the docs match."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.packs import DOC_SECTIONS, builtin_pack_names, packs_dir
from lockcheck.review import review_versions
from lockcheck.rules.base import Rule
from lockcheck.rules.docs import doc_pages
from tests.helpers import ANNOTATED, FIXTURES, ROOT, annotations

DOCS = ROOT / "docs" / "rules"
PACK_FIXTURES = sorted(FIXTURES.rglob("pack.toml"))


def builtin_rules() -> list[Rule]:
    return Engine(Config(packs=builtin_pack_names())).rules


def fixture_pack_rules() -> list[Rule]:
    return [r for p in PACK_FIXTURES for r in Engine(Config(packs=[str(p)])).rules]


ALL_RULES = builtin_rules() + fixture_pack_rules()


def polarities() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for path in ANNOTATED:
        for rule, kinds in annotations(path).items():
            seen.setdefault(rule, set()).update(kinds)
    return seen


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.spec.id)
def test_rule_has_every_doc_section(rule: Rule) -> None:
    doc = rule.doc
    assert rule.spec.summary, f"{rule.spec.id}: no summary"
    assert not doc.missing(), f"{rule.spec.id}: missing doc sections {doc.missing()}"
    assert set(DOC_SECTIONS) == {"what", "why", "bad", "good", "limits", "references"}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.spec.id)
def test_rule_has_firing_and_quiet_fixtures(rule: Rule) -> None:
    kinds = polarities().get(rule.spec.id, set())
    assert "ruleid" in kinds, f"{rule.spec.id}: no /* ruleid: */ fixture under fixtures/"
    assert "ok" in kinds, f"{rule.spec.id}: no /* ok: */ fixture under fixtures/"


def example_source(snippet: str) -> str:
    """A doc example as a function body; a loop so that `continue` means something."""
    body = "\n".join("\t\t" + line for line in snippet.strip("\n").splitlines())
    head = "static void example(struct mm_struct *mm, pmd_t *pmd)"
    return f"{head}\n{{\n\tfor (;;) {{\n{body}\n\t}}\n}}\n"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.spec.id)
def test_doc_examples_are_true(rule: Rule, tmp_path: Path) -> None:
    """The bad example fires the rule and the good one does not."""
    pack = next((p for p in PACK_FIXTURES if rule.spec.path == str(p)), None)
    packs = ["mm", str(pack)] if pack else builtin_pack_names()
    engine = Engine(Config(packs=packs, select={rule.spec.id}))
    if getattr(rule, "review_only", False):
        # a patch from the good example to the bad one fires; the reverse does not
        good, bad = example_source(rule.doc.good), example_source(rule.doc.bad)
        assert review_versions(engine, "example.c", good, bad).findings, rule.spec.id
        fixed = review_versions(engine, "example.c", bad, good).findings
        if getattr(rule, "symmetric", False):
            # a reversal either way is a reversal: the fix is the bad patch read backwards
            assert fixed, f"{rule.spec.id}: symmetric, but the reverse patch is quiet"
            return
        assert not fixed, f"{rule.spec.id}: the fix fires: {fixed[0].finding.message}"
        return
    got = {}
    for name in ("bad", "good"):
        path = tmp_path / f"{name}.c"
        path.write_text(example_source(getattr(rule.doc, name)))
        got[name] = engine.check_paths([path]).findings
    assert got["bad"], f"{rule.spec.id}: the bad example does not fire"
    assert not got["good"], f"{rule.spec.id}: the good example fires: {got['good'][0].message}"


def test_docs_rules_match_the_rule_objects() -> None:
    """docs/rules is generated: regenerate with `lockcheck rules docs docs/rules`."""
    want = doc_pages(builtin_rules())
    have = {p.name: p.read_text() for p in DOCS.glob("*.md")}
    assert sorted(have) == sorted(want), "run `lockcheck rules docs docs/rules`"
    for name, text in want.items():
        assert have[name] == text, (
            f"docs/rules/{name} drifted: run `lockcheck rules docs docs/rules`"
        )


TABLE_RE = re.compile(r"^\[+([\w.]+)\]+\s*$")
ROW_RE = re.compile(r"^([A-Za-z_][\w-]*)\s*=")


@pytest.mark.parametrize("name", builtin_pack_names())
def test_pack_tables_have_no_duplicate_rows(name: str) -> None:
    """One row per primitive: a second row would silently win over the first."""
    text = (packs_dir() / f"{name}.toml").read_text()
    tomllib.loads(text)  # TOML itself rejects duplicate keys in one table
    table = ""
    seen: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = TABLE_RE.match(line)
        if m:
            table = m.group(1)
            continue
        m = ROW_RE.match(line)
        if m and table in ("api", "guards", "fields", "identifiers"):
            assert m.group(1) not in seen.setdefault(table, set()), (table, m.group(1))
            seen[table].add(m.group(1))
    assert seen.get("api"), "no api rows found"


def test_rule_ids_are_unique_and_sorted_in_the_registry() -> None:
    ids = [r.spec.id for r in builtin_rules()]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    assert {
        "uffd-wp-under-ptl",
        "anon-vma-under-ptl",
        "lock-order",
        "sleep-in-atomic",
        "nested-same-class",
        "claim-mismatch",
        "suppression-without-reason",
    } <= set(ids)


def test_every_mutated_module_has_a_runner_of_existing_tests() -> None:
    """`make mutate` covers the analysis, the rules, review, the patch reader
    and the reporters, each with test files that exist."""
    from tests.mutate import runners

    table = runners()
    for package in ("analysis", "rules", "report"):
        for path in (ROOT / "lockcheck" / package).glob("*.py"):
            if path.name != "__init__.py":
                assert str(path.relative_to(ROOT)) in table, path
    assert {"lockcheck/review.py", "lockcheck/inputs/patch.py"} <= set(table)
    for tests in table.values():
        assert tests and all((ROOT / t).is_file() for t in tests), tests


def test_mutate_since_needs_a_good_revision(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m tests.mutate --since REV` mutates only lines changed since
    REV: a missing or unknown revision is an error before anything runs."""
    from tests.mutate import main

    assert main(["--since"]) == 2
    assert "needs a revision" in capsys.readouterr().err
    assert main(["--since", "no-such-revision-xyz", "lockcheck/analysis/state.py"]) == 2
    assert "git diff no-such-revision-xyz" in capsys.readouterr().err
