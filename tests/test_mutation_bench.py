"""The mutation bench's machinery on a tiny tree of our own (fixtures/mutation/).

Each edit class must find a site there, make a patch that applies to the
tree and changes the statement the class is about (and nothing else), and
the benign classes must really be benign: reviewing them finds nothing.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from lockcheck.engine import Engine
from lockcheck.inputs.apply import DirTree, Series
from lockcheck.inputs.patch import parse_patch_text
from tests.conftest import FIXTURES, ROOT

TREE = FIXTURES / "mutation"
PATH = "mm/tables.c"
sys.path.insert(0, str(ROOT / "bench"))
bench: ModuleType = importlib.import_module("mutation_bench")
edits: ModuleType = importlib.import_module("mutations.edits")

SLEEPS = (["cond_resched();"], ["might_sleep();"])
RELEASE = re.compile(r"^\w*unlock\w*\(.*\);$")
Lines = list[str]


def _changed(patch: str) -> tuple[Lines, Lines]:
    """The removed and added lines of a one-file diff, stripped."""
    rem = [ln[1:].strip() for ln in patch.splitlines() if ln[:1] == "-" and ln[:3] != "---"]
    add = [ln[1:].strip() for ln in patch.splitlines() if ln[:1] == "+" and ln[:3] != "+++"]
    return rem, add


def _moved_release_above_lock(diff: str, rem: Lines, add: Lines) -> bool:
    """The release is gone from below and now sits right above an acquisition."""
    lines = diff.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("+") and not ln.startswith("+++"))
    after = lines[at + 1] if at + 1 < len(lines) else ""
    return (
        rem == add
        and bool(RELEASE.match(rem[0]))
        and after.startswith(" ")
        and re.search(r"(?<!un)lock\w*\(", after) is not None
    )


def _test_above_lock(diff: str) -> bool:
    """In the new text the hunk shows, the `*_same()` test comes before the acquisition."""
    new = [ln[1:].strip() for ln in diff.splitlines()[3:] if ln[:1] in (" ", "+")]
    test = next(i for i, ln in enumerate(new) if ln.startswith("if (") and "_same(" in ln)
    lock = next(i for i, ln in enumerate(new) if re.search(r"(?<!un)lock\w*\(", ln))
    return test < lock


def _act_below_release(diff: str) -> bool:
    """In the new text the hunk shows, an act now follows a release it used to precede."""
    new = [ln[1:].strip() for ln in diff.splitlines()[3:] if ln[:1] in (" ", "+")]
    old = [ln[1:].strip() for ln in diff.splitlines()[3:] if ln[:1] in (" ", "-")]
    act = re.compile(r"(set_p\w+_at|pte_clear)\(")
    for j, ln in enumerate(new):
        if j and act.match(ln) and RELEASE.match(new[j - 1]):
            later = [k for k, o in enumerate(old) if o == new[j - 1]]
            return old.index(ln) < max(later)
    return False


def _locks_swapped(diff: str) -> bool:
    new = [ln[1:].strip() for ln in diff.splitlines()[3:] if ln[:1] in (" ", "+")]
    old = [ln[1:].strip() for ln in diff.splitlines()[3:] if ln[:1] in (" ", "-")]
    acq = re.compile(r"(?:\w+ = )?(?!\w*unlock)\w*lock\w*\(")
    before, after = [x for x in old if acq.match(x)], [x for x in new if acq.match(x)]
    return len(before) == 2 and after == before[::-1]


def _same_but_blanks(diff: str) -> bool:
    new = [ln[1:] for ln in diff.splitlines()[3:] if ln[:1] in (" ", "+") and ln[1:].strip()]
    old = [ln[1:] for ln in diff.splitlines()[3:] if ln[:1] in (" ", "-") and ln[1:].strip()]
    return new == old and all(ln.startswith(("@@", " ", "+", "-")) for ln in diff.splitlines()[3:])


# what each class's patch must change: (removed lines, added lines) -> ok
INTENT: dict[str, Callable[[str, Lines, Lines], bool]] = {
    "drop-unlock-error-path": lambda d, r, a: len(r) == 1 and bool(RELEASE.match(r[0])) and not a,
    "exit-block-leak": lambda d, r, a: len(r) == 1 and bool(RELEASE.match(r[0])) and not a,
    "unlock-above-lock": _moved_release_above_lock,
    "double-unlock": lambda d, r, a: not r and len(a) == 1 and bool(RELEASE.match(a[0])),
    "delete-only-unlock": lambda d, r, a: len(r) == 1 and bool(RELEASE.match(r[0])) and not a,
    "swap-pairing-release": lambda d, r, a: (
        len(r) == len(a) == 1 and r[0] != a[0] and bool(RELEASE.match(a[0]))
    ),
    "drop-revalidation": lambda d, r, a: not a and bool(re.search(r"!\s*(?:pte|pmd)_same\(", r[0])),
    "hoist-check-keep-unlock": lambda d, r, a: sorted(r) == sorted(a) and _test_above_lock(d),
    "hoist-check-drop-unlock": lambda d, r, a: (
        _test_above_lock(d)
        and sorted(x for x in r if not RELEASE.match(x)) == sorted(a)
        and sum(bool(RELEASE.match(x)) for x in r) == 1
    ),
    "act-out-of-lock": lambda d, r, a: sorted(r) == sorted(a) and _act_below_release(d),
    "sleep-under-spinlock": lambda d, r, a: (
        not r and a in (["cond_resched();"], ["might_sleep();"])
    ),
    "reorder-nested-locks": lambda d, r, a: sorted(r) == sorted(a) and _locks_swapped(d),
    "benign-comment": lambda d, r, a: not r and len(a) == 1 and a[0].startswith("/*"),
    "benign-rename-local": lambda d, r, a: (
        len(r) == len(a) > 0
        and all(re.sub(r"(\w+)_mb\b", r"\1", y) == x for x, y in zip(r, a, strict=True))
    ),
    "benign-blank-lines": lambda d, r, a: bool(a) and _same_but_blanks(d),
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def source() -> bytes:
    return (TREE / PATH).read_bytes()


def test_every_class_is_checked() -> None:
    assert set(INTENT) == {c.name for c in edits.CLASSES}


@pytest.mark.parametrize("cls", [c.name for c in edits.CLASSES])
def test_class_patch_applies_and_changes_its_statement(
    cls: str, engine: Engine, source: bytes
) -> None:
    found = [s for s in edits.sites(PATH, source, engine.vocab) if s.cls == cls]
    assert found, f"no {cls} site in the fixture"
    errors = edits.count_errors(edits.parse_source(PATH, source).root)
    for site in found:
        m = site.mutate(source, errors)
        assert m is not None and m.text != source
        diff = bench.unified_diff(PATH, source, m.text)
        assert diff.startswith(f"diff --git a/{PATH} b/{PATH}\n--- a/{PATH}\n+++ b/{PATH}\n")
        (patch,) = parse_patch_text(diff, "mutant.patch")
        (change,) = Series(DirTree(TREE)).apply(patch)
        assert change.post == m.text.decode()
        rem, add = _changed(diff)
        assert INTENT[cls](diff, rem, add), f"{cls}: {site.edit.what}\n{diff}"


def test_no_op_and_unparsable_edits_are_skipped(source: bytes) -> None:
    errors = edits.count_errors(edits.parse_source(PATH, source).root)
    noop = edits.Site("x", PATH, "f", 0, edits.Edit(((10, 10, b""),), 1, "nothing"))
    assert noop.mutate(source, errors) is None
    at = source.index(b"c->hits++;")
    broken = edits.Site("x", PATH, "f", 0, edits.Edit(((at, at, b"{{ ("),), 1, "garbage"))
    assert broken.mutate(source, errors) is None


def test_bench_on_fixture_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def snapshot() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in TREE.rglob("*") if p.is_file()}

    before = snapshot()
    keep = tmp_path / "patches"
    assert bench.main([str(TREE), "--per-class", "3", "--json", "--keep", str(keep)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert snapshot() == before  # the tree is never written
    rows = {r["class"]: r for r in doc["classes"]}
    assert set(rows) == {c.name for c in edits.CLASSES}
    for name, row in rows.items():
        assert row["mutants"] >= 1 and row["errors"] == 0, name
    # benign edits are benign: no finding at all in their reviews
    for name in ("benign-comment", "benign-rename-local", "benign-blank-lines"):
        assert rows[name]["findings"] == 0, name
    # the review really runs: a sleeping call under a spinlock is reported where it is
    sleeps = [m for m in doc["mutants"] if m["class"] == "sleep-under-spinlock"]
    assert sleeps and all(m["found"] for m in sleeps)
    assert all("sleep-in-atomic" in {f["rule"] for f in m["findings"]} for m in sleeps)
    assert len(list(keep.glob("*.patch"))) == len(doc["mutants"])


def test_selection_is_deterministic(engine: Engine) -> None:
    files = bench.source_files(TREE, "mm")
    a, _ = bench.choose(TREE, files, edits.CLASSES, 2, 7, engine)
    b, _ = bench.choose(TREE, files, edits.CLASSES, 2, 7, engine)
    c, _ = bench.choose(TREE, files, edits.CLASSES, 2, 7, engine, jobs=2)
    assert [m.ident for m in a] == [m.ident for m in b] == [m.ident for m in c]
    per = {}
    for m in a:
        per.setdefault(m.cls, set()).add(m.function)
    # at most one mutant per function and class
    assert all(len(fns) == sum(m.cls == c for m in a) for c, fns in per.items())


def test_unknown_class_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([str(TREE), "--classes", "no-such-class"]) == 2
    assert "unknown class 'no-such-class'" in capsys.readouterr().err
