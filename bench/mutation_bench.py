"""Mutation bench: recall of `lockcheck review` on real functions broken on purpose.

Takes the functions of a kernel tree (default: mm/ of linux-source-6.1),
applies one bug-making edit per mutant (the edit classes of
bench/mutations/edits.py: a dropped unlock on an error path, an unlock moved
above its lock, a swapped pairing release, a dropped pte_same() re-check, a
test hoisted above its lock, an act moved out from under its locks, a
sleeping call under a spinlock, two acquisitions reordered ...), writes each
as a unified diff against the tree (a/ b/ paths, as git does) in a temporary
directory, and reviews it as `lockcheck review PATCH --tree TREE` would
(in-process by default, `--cli` for the real command). A mutant is found
when the review reports at least one introduced finding in the mutated
function. Benign classes (a comment, a consistent rename of a local, a moved
blank line) must produce no finding at all: their findings are counted.

Sites are chosen deterministically: files and functions sorted, a seeded
shuffle per class, at most one mutant per function and class, sites whose
edit is a no-op or whose file no longer parses skipped. The tree is never
written to. Prints a table (class, mutants, found, recall, rules fired) and
the time taken; `--json` prints every mutant instead.

Usage: python bench/mutation_bench.py [TREE] [--dir mm] [--per-class 15]
       [--classes a,b] [--seed 0] [--jobs N] [--json] [--cli] [--keep DIR]
       [--missed] [--list]
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations.edits import BY_NAME, CLASSES, EditClass, Mutant, Site, sites  # noqa: E402

from lockcheck.analysis.file import FlowMemo  # noqa: E402
from lockcheck.config import find_config  # noqa: E402
from lockcheck.engine import Analysis, Config, Engine  # noqa: E402
from lockcheck.frontend.parse import count_errors, parse_source  # noqa: E402
from lockcheck.inputs.apply import DirTree  # noqa: E402
from lockcheck.inputs.patch import order_series, read_patches  # noqa: E402
from lockcheck.model.extract import LowerMemo  # noqa: E402
from lockcheck.packs import Vocabulary  # noqa: E402
from lockcheck.review import review  # noqa: E402

# where a 6.1 tree is found when none is given: an extracted Debian linux-source-6.1, or the
# corpus the tests extract (mm/ and include/linux/ only)
DEFAULT_TREES = (
    Path("/work/kernels/linux-source-6.1"),
    Path("/usr/src/linux-source-6.1"),
    Path(__file__).resolve().parent.parent / ".cache" / "linux-source-6.1",
)


def unified_diff(path: str, old: bytes, new: bytes) -> str:
    """The mutant as git writes a patch: `diff --git a/P b/P`, three lines of context."""
    a = old.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    b = new.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    body = "".join(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}", n=3))
    return f"diff --git a/{path} b/{path}\n{body}"


def patch_name(m: Mutant, index: int) -> str:
    return f"{index:04d}-{m.cls}-{m.function}.patch"


# -- choosing mutants --------------------------------------------------------------------------


def source_files(tree: Path, subdir: str) -> list[str]:
    root = tree / subdir
    files = sorted(p for p in root.rglob("*.c") if p.is_file()) if root.is_dir() else []
    return [p.relative_to(tree).as_posix() for p in files]


def choose(
    tree: Path,
    files: Sequence[str],
    classes: Sequence[EditClass],
    per_class: int,
    seed: int,
    engine: Engine,
    jobs: int = 1,
) -> tuple[list[Mutant], dict[str, int]]:
    """Up to `per_class` valid mutants per class, one per function; and each class's site count."""
    texts = {p: (tree / p).read_bytes() for p in files}
    by_class: dict[str, list[Site]] = {ec.name: [] for ec in classes}
    names = tuple(ec.name for ec in classes)
    if jobs > 1:
        with Pool(jobs) as pool:
            packs = tuple(engine.config.packs)
            work = [(tree, p, names, packs) for p in files]
            found = pool.map(_file_sites, work, chunksize=4)
    else:
        found = [sites(p, texts[p], engine.vocab, tuple(classes)) for p in files]
    for file_sites in found:  # in file order whatever the jobs: the choice does not depend on it
        for s in file_sites:
            by_class[s.cls].append(s)
    errors: dict[str, int] = {}
    chosen: list[Mutant] = []
    for ec in classes:
        cands = by_class[ec.name]
        random.Random(f"{seed}:{ec.name}").shuffle(cands)
        used: set[tuple[str, str]] = set()
        got = 0
        for s in _variants_in_turn(cands):
            if got >= per_class:
                break
            if (s.path, s.function) in used:
                continue
            if s.path not in errors:
                errors[s.path] = count_errors(parse_source(s.path, texts[s.path]).root)
            m = s.mutate(texts[s.path], errors[s.path])
            if m is None:
                continue
            used.add((s.path, s.function))
            chosen.append(m)
            got += 1
    counts = {ec.name: len(by_class[ec.name]) for ec in classes}
    return chosen, counts


_VOCAB: dict[tuple[str, ...], Vocabulary] = {}  # a worker's vocabulary, loaded once


def _file_sites(args: tuple[Path, str, tuple[str, ...], tuple[str, ...]]) -> list[Site]:
    tree, path, names, packs = args
    if packs not in _VOCAB:
        _VOCAB[packs] = Engine(Config(packs=list(packs))).vocab
    vocab = _VOCAB[packs]
    return sites(path, (tree / path).read_bytes(), vocab, tuple(BY_NAME[n] for n in names))


def _variants_in_turn(cands: list[Site]) -> Iterator[Site]:
    """The shuffled sites, one variant after the other (`pte_unmap_unlock`, then
    `spin_unlock_irqrestore` ...), so a common variant does not crowd out the rest."""
    kinds: dict[str, list[Site]] = {}
    for s in cands:
        kinds.setdefault(s.edit.kind, []).append(s)
    queues = [kinds[k][::-1] for k in sorted(kinds)]
    while queues:
        for q in queues:
            yield q.pop()
        queues = [q for q in queues if q]


# -- reviewing ---------------------------------------------------------------------------------


class MemoEngine(Engine):
    """An engine that analyses each exact file text once: the pre-image every mutant of a file
    shares is analysed once instead of once per review (results are identical)."""

    def __init__(self, base: Engine, size: int = 4) -> None:
        super().__init__(base.config, base.registry)
        self._memo: OrderedDict[tuple[str, bytes], Analysis] = OrderedDict()
        self._size = size

    def analyse_source(
        self,
        path: str,
        source: bytes,
        tree: Path | None = None,
        memo: FlowMemo | None = None,
        lowered: LowerMemo | None = None,
    ) -> Analysis:
        key = (path, hashlib.sha256(source).digest())
        hit = self._memo.get(key)
        if hit is None:
            hit = super().analyse_source(path, source, tree, memo, lowered)
            self._memo[key] = hit
            if len(self._memo) > self._size:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
        return hit


@contextlib.contextmanager
def inside(directory: Path) -> Iterator[None]:
    """Run in the tree, as a reviewer does (`cd linux; lockcheck review P --tree .`): the
    review then finds the headers a changed file includes."""
    old = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old)


@dataclass
class Outcome:
    index: int
    mutant: Mutant
    patch: str  # the patch file's name
    findings: list[dict[str, Any]] = field(default_factory=list)  # introduced findings
    error: str | None = None  # the patch did not apply / the review failed

    @property
    def in_function(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["function"] == self.mutant.function]

    @property
    def found(self) -> bool:
        return bool(self.in_function)


def _finding_dict(f: Any) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "path": f.path,
        "line": f.line,
        "function": f.function,
        "message": f.message,
    }


def review_in_process(engine: Engine, tree: Path, patch: Path) -> tuple[list[dict[str, Any]], str]:
    series = order_series(read_patches(patch))
    result = review(engine, series, DirTree(tree), False, keep_going=True)
    err = "; ".join(str(e) for e in result.errors)
    return [_finding_dict(rf.finding) for rf in result.findings], err


def review_cli(tree: Path, patch: Path) -> tuple[list[dict[str, Any]], str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lockcheck",
            "review",
            "--format",
            "json",
            "--tree",
            ".",
            str(patch),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    if proc.returncode == 2 or not proc.stdout.strip():
        return [], proc.stderr.strip() or f"exit {proc.returncode}"
    data = json.loads(proc.stdout)
    return [
        {k: f.get(k) for k in ("rule", "path", "line", "function", "message")}
        for f in data.get("findings", [])
    ], ""


def review_mutants(
    tree: Path, mutants: list[tuple[int, Mutant]], patch_dir: Path, cli: bool
) -> list[Outcome]:
    """Write each mutant's patch and review it; mutants of one file share the pre-image."""
    engine = MemoEngine(find_config(tree).engine(None, None))
    out: list[Outcome] = []
    with inside(tree):
        for index, m in mutants:
            name = patch_name(m, index)
            patch = patch_dir / name
            old = (tree / m.path).read_bytes()
            patch.write_text(unified_diff(m.path, old, m.text), "utf-8", "surrogateescape")
            try:
                if cli:
                    findings, err = review_cli(tree, patch)
                else:
                    findings, err = review_in_process(engine, tree, patch)
            except Exception as exc:  # a bench reports a crash of the reviewed tool, not dies
                findings, err = [], f"{type(exc).__name__}: {exc}"
            out.append(Outcome(index, m, name, findings, err or None))
    return out


def _worker(args: tuple[Path, list[tuple[int, Mutant]], Path, bool]) -> list[Outcome]:
    return review_mutants(*args)


def run(
    tree: Path,
    mutants: list[Mutant],
    patch_dir: Path,
    jobs: int = 1,
    cli: bool = False,
) -> list[Outcome]:
    indexed = list(enumerate(mutants, 1))
    if jobs <= 1:
        outcomes = review_mutants(tree, indexed, patch_dir, cli)
    else:
        # one chunk per file: a worker analyses each pre-image once
        groups: dict[str, list[tuple[int, Mutant]]] = {}
        for i, m in indexed:
            groups.setdefault(m.path, []).append((i, m))
        chunks = sorted(groups.values(), key=len, reverse=True)
        with Pool(jobs) as pool:
            parts = pool.map(_worker, [(tree, c, patch_dir, cli) for c in chunks], chunksize=1)
        outcomes = [o for part in parts for o in part]
    outcomes.sort(key=lambda o: o.index)
    return outcomes


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class ClassRow:
    cls: EditClass
    sites: int
    outcomes: list[Outcome]

    @property
    def reviewed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None]

    @property
    def found(self) -> int:
        return sum(o.found for o in self.reviewed)

    @property
    def expected(self) -> int:
        """Found by one of the rules the class is meant for (not by a side effect)."""
        want = set(self.cls.expect)
        return sum(bool(want & {f["rule"] for f in o.in_function}) for o in self.reviewed)

    @property
    def findings(self) -> int:
        """Benign classes: every introduced finding counts, wherever it is."""
        return sum(len(o.findings) for o in self.reviewed)

    @property
    def false_mutants(self) -> int:
        return sum(bool(o.findings) for o in self.reviewed)

    def rules(self) -> Counter[str]:
        """Rules that fired in the mutated function (benign: anywhere), once per mutant."""
        c: Counter[str] = Counter()
        for o in self.reviewed:
            c.update({f["rule"] for f in (o.findings if self.cls.benign else o.in_function)})
        return c

    def as_dict(self) -> dict[str, Any]:
        n = len(self.reviewed)
        d: dict[str, Any] = {
            "class": self.cls.name,
            "family": self.cls.family,
            "expect": list(self.cls.expect),
            "sites": self.sites,
            "mutants": n,
            "errors": len(self.outcomes) - n,
            "rules": dict(sorted(self.rules().items())),
        }
        if self.cls.benign:
            d.update(findings=self.findings, mutants_with_findings=self.false_mutants)
        else:
            d.update(
                found=self.found,
                recall=round(100 * self.found / n, 1) if n else None,
                by_expected_rule=self.expected,
            )
        return d


def _rules_text(c: Counter[str]) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(c.items(), key=lambda x: (-x[1], x[0]))) or "-"


def table(rows: list[ClassRow]) -> str:
    """Bug classes: found (any rule, in the mutated function) and found by an expected rule."""
    out = []
    bug = [r for r in rows if not r.cls.benign]
    if bug:
        w = max(len(r.cls.name) for r in bug)
        out.append(
            f"{'class':<{w}}  {'mutants':>7}  {'found':>5}  {'recall':>6}  {'expected':>8}"
            "  rules fired"
        )

        def line(name: str, n: int, f: int, e: int, tail: str = "") -> str:
            return f"{name:<{w}}  {n:>7}  {f:>5}  {_pct(f, n):>6}  {e:>8}  {tail}".rstrip()

        for r in bug:
            n = len(r.reviewed)
            errs = f" ({len(r.outcomes) - n} did not apply)" if len(r.outcomes) > n else ""
            out.append(line(r.cls.name, n, r.found, r.expected, _rules_text(r.rules()) + errs))
        groups = [
            (f"({fam})", [r for r in bug if r.cls.family == fam])
            for fam in sorted({r.cls.family for r in bug})
        ]
        for name, fr in [*groups, ("(all bug classes)", bug)]:
            n = sum(len(r.reviewed) for r in fr)
            out.append(line(name, n, sum(r.found for r in fr), sum(r.expected for r in fr)))
    benign = [r for r in rows if r.cls.benign]
    if benign:
        out.append("")
        w = max(len(r.cls.name) for r in benign)
        out.append(f"{'benign class':<{w}}  {'mutants':>7}  {'findings':>8}  rules fired")
        for r in benign:
            fired = _rules_text(r.rules())
            out.append(f"{r.cls.name:<{w}}  {len(r.reviewed):>7}  {r.findings:>8}  {fired}")
    return "\n".join(out)


def _cpu() -> float:
    """CPU seconds of this process and its finished workers: the figure load does not inflate."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _pct(found: int, n: int) -> str:
    return f"{100 * found / n:5.1f}%" if n else "     -"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("tree", nargs="?", type=Path, help="kernel tree (default: a 6.1 tree found)")
    ap.add_argument("--dir", default="mm", help="the tree's directory to mutate (default mm)")
    ap.add_argument("--per-class", type=int, default=15)
    ap.add_argument("--classes", default="", help="comma-separated class names (default all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="every mutant and the table as JSON")
    ap.add_argument("--cli", action="store_true", help="review through `python -m lockcheck`")
    ap.add_argument("--keep", type=Path, help="write the patches here (kept) instead of a tmpdir")
    ap.add_argument("--missed", action="store_true", help="list missed mutants and benign hits")
    ap.add_argument("--list", action="store_true", help="list the edit classes and exit")
    args = ap.parse_args(argv)
    if args.list:
        for ec in CLASSES:
            expect = ", ".join(ec.expect) or "no finding"
            print(f"{ec.name} [{ec.family}; expect {expect}]\n    {ec.doc}")
        return 0
    names = [c for c in args.classes.split(",") if c]
    unknown = [c for c in names if c not in BY_NAME]
    if unknown:
        print(f"mutation_bench: error: unknown class '{unknown[0]}' (see --list)", file=sys.stderr)
        return 2
    classes = [BY_NAME[c] for c in names] if names else list(CLASSES)
    if args.tree is None:
        args.tree = next((t for t in DEFAULT_TREES if (t / args.dir).is_dir()), None)
        if args.tree is None:
            print(
                "mutation_bench: error: no linux-source-6.1 tree found; give TREE", file=sys.stderr
            )
            return 2
    tree = args.tree.resolve()
    files = source_files(tree, args.dir)
    if not files:
        print(f"mutation_bench: error: no C files under {tree / args.dir}", file=sys.stderr)
        return 2
    if args.keep is not None and args.keep.resolve().is_relative_to(tree):
        print("mutation_bench: error: --keep must not be inside the tree", file=sys.stderr)
        return 2
    t0, c0 = time.perf_counter(), _cpu()
    engine = find_config(tree).engine(None, None)
    mutants, counts = choose(tree, files, classes, args.per_class, args.seed, engine, args.jobs)
    t1 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            patch_dir = args.keep.resolve()
            patch_dir.mkdir(parents=True, exist_ok=True)
        else:
            patch_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mutbench-")))
        outcomes = run(tree, mutants, patch_dir, args.jobs, args.cli)
    t2 = time.perf_counter()
    rows = [
        ClassRow(ec, counts[ec.name], [o for o in outcomes if o.mutant.cls == ec.name])
        for ec in classes
    ]
    head = (
        f"mutation bench: {tree / args.dir} ({len(files)} files), {len(mutants)} mutants, "
        f"per class {args.per_class}, seed {args.seed}"
    )
    timing = (
        f"time: {t2 - t0:.1f} s ({t1 - t0:.1f} s choosing sites, "
        f"{t2 - t1:.1f} s reviewing, {(t2 - t1) / max(len(mutants), 1):.2f} s/mutant, "
        f"jobs {args.jobs}{', cli' if args.cli else ''}); cpu {_cpu() - c0:.1f} s"
    )
    if args.json:
        doc = {
            "tree": str(tree),
            "dir": args.dir,
            "seed": args.seed,
            "per_class": args.per_class,
            "classes": [r.as_dict() for r in rows],
            "mutants": [
                {
                    "class": o.mutant.cls,
                    "path": o.mutant.path,
                    "function": o.mutant.function,
                    "line": o.mutant.line,
                    "edit": o.mutant.what,
                    "found": o.found,
                    "error": o.error,
                    "findings": o.findings,
                }
                for o in outcomes
            ],
            "seconds": round(t2 - t0, 1),
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    print(head)
    print()
    print(table(rows))
    if args.missed:
        print()
        for o in outcomes:
            benign = BY_NAME[o.mutant.cls].benign
            if (benign and o.findings) or (not benign and not o.found) or o.error:
                tag = "ERROR" if o.error else ("FALSE" if benign else "MISSED")
                print(
                    f"{tag} {o.mutant.cls} {o.mutant.path}:{o.mutant.line} "
                    f"{o.mutant.function}(): {o.mutant.what}  [{o.patch}]"
                )
                for f in o.findings if benign else []:
                    print(f"    {f['path']}:{f['line']}: [{f['rule']}] {f['message']}")
                if o.error:
                    print(f"    {o.error}")
    print()
    print(timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
