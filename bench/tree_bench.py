"""Whole-tree speed: lockcheck against the raw tree-sitter parse of the same files.

For the C files under TREE, in this one run:

- the raw tree-sitter parse of every file (the floor), in this process;
- `lockcheck check` cold with --jobs 1 (no cache), cold with --jobs N into an
  empty cache, and warm (the same cache again): wall and CPU seconds, the
  ratio of each to the parse, peak RSS of the largest process, files/s, MB/s;
- one patch review of a khugepaged-sized file (about 2,800 lines, one
  function changed), process start included, and of a one-line change to
  the tree's own khugepaged.c when TREE has one (run from the tree's top, so
  the review reads the tree's headers as a maintainer's would): into an
  empty cache, as the next review after another patch to the file, and the
  same review again;
- a `git commit` of that change through the installed pre-commit hook, and
  without a hook;
- where a cold run's time goes: the CPU of analysing each file on its own
  (no header inlines, no other files' summaries) in this process, which is
  what is left of a cold run with all cross-file work taken away.

lockcheck's modules are compiled to bytecode first (as `pip install` does),
so that no timed process compiles them from source.

Every lockcheck run is a fresh process, timed from its start. CPU seconds
(user + sys of the process and its workers) are less sensitive than wall
time to other jobs on the machine; the figures printed are what they are,
nothing is asserted. Installs nothing.
Usage: python bench/tree_bench.py TREE [JOBS] [--review-only]
(--review-only: just the review and hook figures, without the whole-tree runs.)
(Debian's kernel: `apt-get install linux-source-6.1`, then
`tar xf /usr/src/linux-source-6.1.tar.xz` and pass linux-source-6.1/mm.)
"""

from __future__ import annotations

import compileall
import difflib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hook_bench import V1, generate, git, stage  # noqa: E402

from lockcheck.frontend.parse import parser  # noqa: E402
from lockcheck.hook import install  # noqa: E402
from lockcheck.inputs.files import collect_sources  # noqa: E402
from lockcheck.parallel import default_jobs  # noqa: E402

KHUGEPAGED_LINES = 2800


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    rc: int
    out: bytes


def run(cmd: list[str], cwd: Path | None = None) -> Run:
    """One process: wall time, its CPU (with waited-for workers) and peak RSS."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        data = out.read()
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss / 1024, proc.returncode, data)


def lockcheck(*args: str) -> list[str]:
    return [sys.executable, "-m", "lockcheck", *args]


def parse_all(sources: list[bytes]) -> tuple[float, float]:
    """Best of three: wall and CPU seconds to parse every file once."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        w0, c0 = time.perf_counter(), time.process_time()
        for src in sources:
            parser().parse(src)
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def single_file_cpu(files: list[Path]) -> float:
    """CPU seconds to check every file on its own, in this process: the
    lowering, dataflow and rules of each function with no header inlines and
    no other file's summaries, so the floor of a cold run's analysis."""
    from lockcheck import tune_collector
    from lockcheck.engine import Config, Engine

    tune_collector()  # as the CLI does
    engine = Engine(Config(headers=False))
    c0 = time.process_time()
    for path in files:
        engine.check_file(path)
    return time.process_time() - c0


def review_and_hook(repeats: int = 3) -> tuple[Run, float, float]:
    """A khugepaged-sized file with one function changed into the v1 shape:
    `lockcheck review` of the patch, and `git commit` with and without the hook."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "linux"
        (repo / "mm").mkdir(parents=True)
        git(repo, "init", "-q")
        git(repo, "config", "user.name", "bench")
        git(repo, "config", "user.email", "bench@example.org")
        base = generate(KHUGEPAGED_LINES)
        stage(repo, base)
        git(repo, "commit", "-q", "-m", "base")
        middle = base.count("static void") // 2
        blocked = generate(KHUGEPAGED_LINES, middle, V1)
        stage(repo, blocked)
        patch = Path(tmp) / "change.patch"
        patch.write_bytes(git(repo, "diff", "--cached").stdout)
        git(repo, "reset", "-q", "--hard")
        reviews = [
            run(lockcheck("review", str(patch), "--tree", str(repo))) for _ in range(repeats)
        ]
        review = min(reviews, key=lambda r: r.wall)
        stage(repo, blocked)

        def commit() -> float:
            t0 = time.perf_counter()
            proc = git(repo, "commit", "-q", "-m", "bench", check=False)
            took = time.perf_counter() - t0
            if proc.returncode == 0:
                git(repo, "reset", "-q", "--soft", "HEAD~1")
            return took

        plain = min(commit() for _ in range(repeats))
        install(repo)
        hooked = min(commit() for _ in range(repeats))
    return review, plain, hooked


def _one_line_change(lines: list[str], start: int) -> list[str]:
    """A comment line added after the first statement from `start` on."""
    at = next(
        i
        for i in range(start, len(lines))
        if lines[i].startswith("\t") and lines[i].rstrip().endswith(";")
    )
    return [*lines[: at + 1], "\t/* reviewed by the bench */\n", *lines[at + 1 :]]


@dataclass
class RealReview:
    path: Path
    first: Run  # this patch's first review (another patch to the file reviewed before)
    again: Run  # the same review again: best of the repeats
    cold: Run  # into an empty cache: header and cross-file summaries computed too


def review_real(tree: Path, repeats: int = 3) -> RealReview | None:
    """`lockcheck review` of a one-line change in the middle of the tree's own
    khugepaged.c (a comment line added inside a function), if it has one, run
    from the tree's top: into an empty cache; then as a maintainer's next
    review (a change at a quarter of the file reviewed before, so header and
    cross-file summaries are cached); then the same review again."""
    found = [p for p in (tree / "khugepaged.c", tree / "mm" / "khugepaged.c") if p.is_file()]
    if not found:
        return None
    path = found[0]
    lines = path.read_text("utf-8").splitlines(keepends=True)
    name = path.relative_to(path.parent.parent).as_posix()
    root = path.parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        patches = []
        for k, start in enumerate((len(lines) // 4, len(lines) // 2)):
            diff = difflib.unified_diff(
                lines, _one_line_change(lines, start), f"a/{name}", f"b/{name}"
            )
            patches.append(Path(tmp) / f"change{k}.patch")
            patches[-1].write_text("".join(diff))

        def review(patch: Path, cache: str) -> Run:
            os.environ["LOCKCHECK_CACHE_DIR"] = cache
            return run(lockcheck("review", str(patch), "--tree", str(root)), cwd=root)

        with tempfile.TemporaryDirectory() as cache:
            cold = review(patches[1], cache)
        with tempfile.TemporaryDirectory() as cache:
            review(patches[0], cache)
            first = review(patches[1], cache)
            again = min((review(patches[1], cache) for _ in range(repeats)), key=lambda r: r.wall)
    return RealReview(path, first, again, cold)


def bytecode() -> str:
    """Compile lockcheck's modules to bytecode first, as an install does: with
    PYTHONDONTWRITEBYTECODE set and no __pycache__ yet (a fresh checkout),
    every timed process would otherwise compile them from source again."""
    package = Path(sys.modules["lockcheck"].__file__ or "").parent
    ok = compileall.compile_dir(str(package), quiet=1)
    return f"lockcheck bytecode: {'compiled' if ok else 'NOT all compiled'} ({package})"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--review-only"]
    review_only = len(args) < len(sys.argv) - 1
    if not args or args[0] in ("-h", "--help"):
        raise SystemExit("usage: python bench/tree_bench.py TREE [JOBS] [--review-only]")
    tree = Path(args[0])
    jobs = int(args[1]) if len(args) > 1 else default_jobs()
    print(bytecode())
    if review_only:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["LOCKCHECK_CACHE_DIR"] = cache
            review, plain, hooked = review_and_hook()
            real = review_real(tree)
        print_review(review, real, plain, hooked)
        return
    files, _ = collect_sources([tree])
    if not files:
        raise SystemExit(f"{tree}: no C files")
    sources = [p.read_bytes() for p in files]
    mb = sum(len(s) for s in sources) / 1e6
    parse_wall, parse_cpu = parse_all(sources)

    common = ["check", "--no-sim", "--format", "json", str(tree)]
    with tempfile.TemporaryDirectory() as cache:
        cold1 = run(lockcheck(*common, "--no-cache", "--jobs", "1"))
        coldn = run(lockcheck(*common, "--cache-dir", cache, "--jobs", str(jobs)))
        warm = run(lockcheck(*common, "--cache-dir", cache, "--jobs", str(jobs)))
    same = cold1.out == coldn.out == warm.out
    alone = single_file_cpu(files)
    with tempfile.TemporaryDirectory() as cache:
        # review and the hook keep header summaries in the cache: the first of
        # each best-of-three fills it, as a maintainer's first review would
        os.environ["LOCKCHECK_CACHE_DIR"] = cache
        review, plain, hooked = review_and_hook()
        real = review_real(tree)

    print(f"tree: {tree} ({len(files)} files, {mb:.2f} MB); jobs N = {jobs}")
    print(f"raw tree-sitter parse     {parse_wall:7.2f} s wall {parse_cpu:7.2f} s CPU")

    def row(label: str, r: Run) -> None:
        print(
            f"{label:<25} {r.wall:7.2f} s wall {r.cpu:7.2f} s CPU"
            f"  {r.wall / parse_wall:5.1f}x parse (CPU {r.cpu / parse_cpu:5.1f}x)"
            f"  {len(files) / r.wall:6.0f} files/s {mb / r.wall:5.2f} MB/s"
            f"  peak RSS {r.rss_mb:4.0f} MB  exit {r.rc}"
        )

    row("lockcheck cold, jobs 1", cold1)
    row(f"lockcheck cold, jobs {jobs}", coldn)
    row(f"lockcheck warm, jobs {jobs}", warm)
    print(f"warm / cold (jobs {jobs}):    {warm.wall / coldn.wall:.2f}x wall")
    print(f"cold jobs 1 / jobs {jobs}:    {cold1.wall / coldn.wall:.2f}x wall")
    print(f"same report in all three: {'yes' if same else 'NO'}")
    print(
        f"each file on its own (no headers, no other files), jobs 1: {alone:.2f} s CPU,"
        f" {alone / parse_cpu:.1f}x parse; with {jobs} jobs sharing it perfectly"
        f" {alone / jobs / parse_wall:.1f}x the parse's wall"
    )
    print_review(review, real, plain, hooked)


def print_review(review: Run, real: RealReview | None, plain: float, hooked: float) -> None:
    print(
        f"review, {KHUGEPAGED_LINES}-line file, one function changed:"
        f" {review.wall * 1e3:.0f} ms wall, {review.cpu * 1e3:.0f} ms CPU"
        f" (process start included; best of 3)"
    )
    if real is not None:
        size = len(real.path.read_bytes().splitlines())
        print(f"review, {real.path} ({size} lines), one line added, process start included:")
        for label, r in (
            ("into an empty cache", real.cold),
            ("after another patch to it", real.first),
            ("the same review again", real.again),
        ):
            print(f"  {label:<26} {r.wall * 1e3:5.0f} ms wall {r.cpu * 1e3:5.0f} ms CPU")
    print(
        f"git commit through the hook: {hooked * 1e3:.0f} ms"
        f" (without a hook {plain * 1e3:.0f} ms; best of 3)"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
