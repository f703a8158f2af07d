"""The fast review (dataflows shared between a file's images, the pre-image
aligned with the post-image) gives exactly what analysing both whole images
gives: findings, their lines and messages, lock context, counts and notes.

Compared on the repository's review inputs (the series, the thread, every
fixture pair of two versions) and on patches to real 6.1 mm/ files (the
mutation bench's edits, and changes that add, remove and move lines around
and between functions). Each comparison also checks that the fast path did
reuse dataflows, so that it is not the full analysis under another name.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lockcheck.analysis.file as file_module
from lockcheck.engine import Engine
from lockcheck.inputs.apply import DirTree, Tree
from lockcheck.inputs.patch import Patch, order_series, parse_patch_text, read_patches
from lockcheck.review import ReviewResult, _aligned, review, review_versions
from tests.helpers import FIXTURES, ROOT

sys.path.insert(0, str(ROOT / "bench"))
bench: ModuleType = importlib.import_module("mutation_bench")
edits: ModuleType = importlib.import_module("mutations.edits")


def canon(result: ReviewResult) -> list[Any]:
    """Everything a report is made from, as comparable data."""

    def subject(p: Patch | None) -> str | None:
        return p.subject if p is not None else None

    return [
        [
            (
                repr(rf.finding),
                rf.finding.trace,
                subject(rf.introduced_by),
                subject(rf.fixed_by),
                rf.source,
                rf.image_text,
                rf.unquoted,
            )
            for rf in result.findings
        ],
        [c.as_dict() for c in result.lock_context],
        result.stats.as_dict(),
        result.notes(),
        result.mode,
        [str(e) for e in result.errors],
        [subject(p) for p in result.failed],
    ]


class Counting:
    """How many dataflows `analyse_file` really computes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = file_module.analyse

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(file_module, "analyse", counting)

    def take(self) -> int:
        n, self.calls = self.calls, 0
        return n


# one engine for the module: header and cross-file summaries are computed once
# (as in a long-lived run), whichever way a review goes
ENGINE = Engine()


def both(
    count: Counting, patches: list[Patch], tree: Tree, cache: Path | None = None
) -> tuple[int, int]:
    """Review fast and in full, assert the same result; the dataflows each computed."""
    full = canon(review(ENGINE, patches, tree, keep_going=True, fast=False))
    n_full = count.take()
    engine = ENGINE
    if cache is not None:
        engine = Engine()
        engine.use_cache(cache)
    fast = canon(review(engine, patches, tree, keep_going=True))
    n_fast = count.take()
    assert fast == full
    return n_fast, n_full


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    yield Counting(monkeypatch)


def test_series_and_its_patches(count: Counting) -> None:
    tree = DirTree(FIXTURES / "series" / "tree")
    series = order_series(read_patches(FIXTURES / "series" / "series.mbox"))
    n_fast, n_full = both(count, series, tree)
    assert n_fast < n_full
    for path in sorted((FIXTURES / "series").glob("*.patch")):
        both(count, read_patches(path), tree)
    # a reply quoting the patch: whole hunks applied to the tree
    both(count, order_series(read_patches(FIXTURES / "series" / "reply.eml")), tree)


def test_thread(count: Counting) -> None:
    tree = DirTree(FIXTURES / "thread" / "tree")
    for name in ("thread.mbox", "0009-mm-khugepaged-retract_page_tables-without-mmap-or-vm.patch"):
        both(count, order_series(read_patches(FIXTURES / "thread" / name)), tree)


def _pairs() -> list[tuple[Path, Path]]:
    out = [
        (p.with_name(p.name[: -len(".orig.c")] + ".c"), p)
        for p in sorted(FIXTURES.rglob("*.orig.c"))
    ]
    k = FIXTURES / "khugepaged"
    chain = ["pre_series.c", "v1.c", "merged_fix.c", "fix_goto.c", "check_after_unlock.c"]
    out += [(k / b, k / a) for a, b in zip(chain, chain[1:], strict=False)]
    return [(after, before) for after, before in out if after.is_file()]


@pytest.mark.parametrize(("after", "before"), _pairs(), ids=lambda p: p.name)
def test_fixture_pairs(after: Path, before: Path, count: Counting) -> None:
    old, new = before.read_text(), after.read_text()
    fast = canon(review_versions(ENGINE, after.name, old, new))
    full = canon(review_versions(ENGINE, after.name, old, new, fast=False))
    assert fast == full


def _diff(path: str, old: str, new: str) -> list[Patch]:
    text = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )
    return parse_patch_text(f"diff --git a/{path} b/{path}\n{text}", "<test>")


def _shaped_changes(text: str) -> list[tuple[str, str]]:
    """Changes of every shape around functions: lines added inside one
    (the bench's), removed from one, a new function between two, a deleted
    function, and two changes far apart that move lines both ways."""
    lines = text.splitlines(keepends=True)
    mid = next(
        i
        for i in range(len(lines) // 2, len(lines))
        if lines[i].startswith("\t") and lines[i].rstrip().endswith(";")
    )
    heads = [
        i for i, ln in enumerate(lines) if ln.startswith("static ") and ln.rstrip()[-1:] == ")"
    ]
    early, late = heads[len(heads) // 4], heads[3 * len(heads) // 4]
    ends = [i for i, ln in enumerate(lines) if ln.rstrip() == "}"]
    end_early = next(e for e in ends if e > early)
    new_fn = ["static void lockcheck_test_helper(spinlock_t *l)\n", "{\n", "\tspin_lock(l);\n"]
    new_fn += ["\tspin_unlock(l);\n", "}\n", "\n"]
    out = [
        ("comment added", [*lines[: mid + 1], "\t/* reviewed */\n", *lines[mid + 1 :]]),
        ("line removed", [*lines[:mid], *lines[mid + 1 :]]),
        ("function added", [*lines[:early], *new_fn, *lines[early:]]),
        ("function removed", [*lines[:early], *lines[end_early + 2 :]]),
        (
            "both ways",
            [*lines[: early + 2], "\t/* a */\n", "\t/* b */\n", *lines[early + 2 : late + 2]]
            + lines[late + 3 :],
        ),
    ]
    return [(what, "".join(new)) for what, new in out]


REAL_FILES = ("mm/khugepaged.c", "mm/mremap.c")


def test_real_files_changed_in_every_shape(
    kernel_tree: Path, count: Counting, tmp_path: Path
) -> None:
    tree = DirTree(kernel_tree)
    reused = 0
    for path in REAL_FILES:
        old = (kernel_tree / path).read_text()
        for what, new in _shaped_changes(old):
            patches = _diff(path, old, new)
            n_fast, n_full = both(count, patches, tree)
            assert n_fast <= n_full, (path, what)
            reused += n_full - n_fast
    # the bench's change again, with dataflows kept on disk: stored, then read back
    old = (kernel_tree / REAL_FILES[0]).read_text()
    patches = _diff(REAL_FILES[0], old, _shaped_changes(old)[0][1])
    both(count, patches, tree, tmp_path / "cache")
    n_fast, n_full = both(count, patches, tree, tmp_path / "cache")
    assert n_fast < n_full // 10  # nearly every dataflow came from the store
    assert reused > 0


def _earlier_comment(text: bytes, line: int) -> bytes:
    """`text` with a comment line added in the body of a function well above `line`."""
    lines = text.splitlines(keepends=True)
    body = next((i for i, ln in enumerate(lines) if ln.startswith(b"{") and i < line - 20), -1)
    return b"".join([*lines[: body + 1], b"\t/* earlier */\n", *lines[body + 1 :]])


def test_real_mutants(kernel_tree: Path, count: Counting) -> None:
    """The mutation bench's bug-making and benign edits of real functions."""
    files = [p for p in bench.source_files(kernel_tree, "mm") if p in REAL_FILES]
    mutants, _ = bench.choose(kernel_tree, files, edits.CLASSES, 1, 0, ENGINE)
    assert len(mutants) >= 10
    tree = DirTree(kernel_tree)
    introduced = 0
    for m in mutants:
        old = (kernel_tree / m.path).read_bytes()
        # as it is, and after a line added to an earlier function: the mutated
        # function's pre-image lines are then renumbered by the alignment
        for new in (m.text, _earlier_comment(m.text, m.line)):
            patches = parse_patch_text(bench.unified_diff(m.path, old, new), "<mutant>")
            full = review(ENGINE, patches, tree, fast=False)
            introduced += len(full.findings)
            count.take()
            assert canon(review(ENGINE, patches, tree)) == canon(full), m.ident
    assert introduced > 0  # the comparison covered findings, not only clean reviews


def test_alignment_moves_only_lines_between_definitions() -> None:
    pre = "int a;\n\nvoid f(void)\n{\n\tg();\n\tg();\n\tg();\n}\n\n"
    pre += "/* x\n\n */\nvoid h(void)\n{\n}\n"
    post = pre.replace("\tg();\n", "\tg();\n\tk();\n\tk();\n", 1)
    aligned = _aligned(pre, post, frozenset(), frozenset({6, 7}))
    assert aligned is not None
    text, pads = aligned
    # after the blank line below f(), not in it, nor inside the comment
    assert pads == ((9, 2),)
    assert text.splitlines()[11:] == post.splitlines()[11:]  # h() and its comment
    # a function of four lines or fewer: not right after it (annotations are looked
    # for up to three lines below a definition's first line)
    short = pre.replace("\tg();\n\tg();\n", "")
    grown = short.replace("\tg();\n", "\tg();\n\tk();\n")
    assert _aligned(short, grown, frozenset(), frozenset({6})) is None
    # a change that only removes lines cannot be aligned by adding lines
    assert _aligned(post, pre, frozenset({6, 7}), frozenset()) is None


def test_unchanged_functions_are_lowered_once_for_both_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A function the patch leaves alone (same text, same place) is lowered for
    the first image only; the models are those lowering each image gives."""
    import lockcheck.model.extract as extract
    from lockcheck.frontend.parse import parse_source

    calls: list[str] = []
    real = extract.lower_function

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(extract, "lower_function", counting)
    before = (
        "static void a(spinlock_t *l) { spin_lock(l); spin_unlock(l); }\n"
        "static void b(spinlock_t *l) { spin_lock(l); }\n"
        "static void c(spinlock_t *l) __must_hold(l) { spin_unlock(l); }\n"
    )
    after = before.replace("{ spin_lock(l); }", "{ spin_lock(l); spin_unlock(l); }")
    vocab = ENGINE.vocab
    memo: extract.LowerMemo = {}
    models = []
    for text in (before, after):
        pf = parse_source("x.c", text.encode())
        models.append(extract.build_file_model(pf, vocab, memo=memo))
    assert calls == ["a", "b", "c", "b"]
    for text, got in zip((before, after), models, strict=True):
        alone = extract.build_file_model(parse_source("x.c", text.encode()), vocab)
        assert repr(got.functions) == repr(alone.functions)
    # each image has its own copy: the annotation is not added twice
    assert len(models[1].functions[2].entry_claims) == 1
    assert models[0].functions[0] is not models[1].functions[0]


def test_review_keeps_the_post_image_models_for_the_simulator() -> None:
    old = (FIXTURES / "khugepaged" / "pre_series.c").read_text()
    new = (FIXTURES / "khugepaged" / "v1.c").read_text()
    result = review_versions(ENGINE, "mm/khugepaged.c", old, new)
    assert result.findings
    for rf in result.findings:
        names = [f.name for f in result.models[(rf.finding.path, rf.image_text)]]
        assert rf.finding.function in names


def test_a_second_review_reads_its_dataflows_back_whatever_the_hash_seed(tmp_path: Path) -> None:
    """The stores on disk are keyed by reprs of functions and events; a set's
    repr in hash order would make every new process miss them all."""
    import subprocess

    tree = FIXTURES / "series" / "tree"
    patch = FIXTURES / "series" / "series.mbox"
    cache = tmp_path / "cache"

    def review_with(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed, "LOCKCHECK_CACHE_DIR": str(cache)}
        run = subprocess.run(
            [sys.executable, "-m", "lockcheck", "review", str(patch), "--tree", str(tree)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert run.returncode in (0, 1), run.stderr
        return run.stdout

    def entries() -> dict[str, int]:
        return {d: sum(1 for _ in (cache / d).rglob("*.pickle")) for d in ("flows", "lowered")}

    first = review_with("1")
    stored = entries()
    assert stored["flows"] and stored["lowered"]
    assert review_with("2") == first
    assert entries() == stored  # nothing computed again, so nothing new written
