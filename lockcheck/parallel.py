"""Running a check over many files: in this process, a process pool or a Dask cluster.

Every backend runs the same unit, `Engine.check_file`, and hands back one
`FileResult` per file; `engine.combine` sorts them into the run's result, so
the report is byte-identical whatever the job count, the shard or the
backend. A pool works in three phases: first the inline summaries of every
header the files include (each header once, spread over the workers), then
the summaries of the other files of their directories their calls may reach,
then the files with all of them known; a Dask cluster's workers summarise the
headers and files they need themselves. Cached results are taken before any work is
handed out, and new ones stored as they come back.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockcheck import tune_collector
from lockcheck.analysis.summaries import Summary
from lockcheck.engine import CheckResult, Config, Engine, FileResult, combine, real_path
from lockcheck.errors import InputError, LockcheckError
from lockcheck.inputs.files import collect_sources, read_c_source

if TYPE_CHECKING:
    from lockcheck.cache import ResultCache

# below this many files to analyse a pool costs more than it saves
MIN_POOL_FILES = 4


@dataclass(frozen=True, slots=True)
class Shard:
    """Part `index` (1-based) of `count`: a file's part is fixed by its path alone,
    so adding a file never moves another to a different shard."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        k, sep, n = text.partition("/")
        if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
            raise InputError(f"--shard {text}: expected K/N with 1 <= K <= N")
        return cls(int(k), int(n))

    def owns(self, path: Path) -> bool:
        digest = hashlib.sha256(str(path).encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan(paths: list[Path], shard: Shard | None = None) -> tuple[list[Path], list[str]]:
    """The files a run (or one shard of it) checks, and the bad operands.

    Bad operands belong to shard 1 only, so merged shards report each once.
    """
    files, bad = collect_sources(paths)
    errors = [str(e) for e in bad]
    if shard is not None:
        files = [f for f in files if shard.owns(f)]
        if shard.index != 1:
            errors = []
    return files, errors


Progress = Callable[[FileResult], None]


def run_check(
    engine: Engine,
    paths: list[Path],
    *,
    jobs: int = 1,
    shard: Shard | None = None,
    cache: ResultCache | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> CheckResult:
    """Check `paths` (files or directories) with the chosen backend."""
    files, bad = plan(paths, shard)
    if on_total is not None:
        on_total(len(files))
    done: list[FileResult] = []
    todo: list[Path] = []
    keys: dict[Path, str] = {}
    for path in files:
        if cache is None:
            todo.append(path)
            continue
        try:
            source = read_c_source(path)
        except LockcheckError as exc:
            done.append(FileResult(str(path), errors=[str(exc)]))
            continue
        keys[path] = key = cache.key(path, source)
        hit = cache.get(key)
        if hit is None:
            todo.append(path)
        else:
            done.append(hit)
    for r in done:
        if progress is not None:
            progress(r)

    def finished(r: FileResult) -> None:
        key = keys.get(Path(r.path))
        if cache is not None and key is not None and not r.errors:
            cache.put(key, r)
        done.append(r)
        if progress is not None:
            progress(r)

    if scheduler is not None:
        for r in _dask(engine.config, todo, scheduler):
            finished(r)
    elif jobs > 1 and len(todo) >= MIN_POOL_FILES:
        for r in _pool(engine, todo, jobs):
            finished(r)
    else:
        # one file calls a few functions of each file beside it: only those
        # are summarised (more files share whole-file summaries instead)
        scope = engine.callees_by_name() if len(todo) == 1 else nullcontext()
        with scope:
            for path in todo:
                finished(engine.check_file(path))
    return combine(done, bad)


# -- the process pool ---------------------------------------------------------

_ENGINE: Engine | None = None  # the worker's engine (inherited when forked)


FileSummaries = list[tuple[bytes, dict[str, Summary]]]


def _init_worker(
    config: Config, headers: dict[Path, dict[str, Summary]], files: FileSummaries | None = None
) -> None:
    global _ENGINE
    if _ENGINE is None or _ENGINE.config != config:  # spawned, not forked
        tune_collector()
        _ENGINE = Engine(config)
    _ENGINE.add_header_summaries(headers)
    _ENGINE.add_file_summaries(files or [])


def _callee_job(file: Path) -> tuple[bytes, dict[str, Summary]] | None:
    assert _ENGINE is not None
    return _ENGINE.summaries_of(file)


def _header_job(header: Path) -> tuple[Path, dict[str, Summary]]:
    assert _ENGINE is not None
    return header, _ENGINE.header_summaries(header)


def _file_job(path: Path) -> FileResult:
    assert _ENGINE is not None
    return _ENGINE.check_file(path)


def _context() -> Any:
    """fork where there is one: workers inherit the engine instead of rebuilding it."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _pool(engine: Engine, files: list[Path], jobs: int) -> Iterator[FileResult]:
    global _ENGINE
    _ENGINE = engine
    ctx = _context()
    # the other files their calls reach (analysis/tree.py), summarised in the
    # second phase; their headers join the first, so no worker of the second
    # summarises a header another has done too. Found while the first phase
    # runs: the workers start on the headers of the first files at once
    # instead of waiting for a whole tree's planning in this process.
    todo: list[Path] = []

    def headers() -> Iterator[Path]:
        seen: set[Path] = set()

        def of(paths: list[Path]) -> Iterator[Path]:
            for path in paths:
                try:
                    source = read_c_source(path)
                except LockcheckError:
                    continue
                for h in engine.headers_for(str(path), source):
                    real = real_path(h)  # a callee file names by absolute path what callers include
                    if real not in seen:
                        seen.add(real)
                        yield real

        yield from of(files)
        todo.extend(sorted(engine.callee_files(files), key=_size, reverse=True))
        yield from of(todo)

    with ctx.Pool(jobs, _init_worker, (engine.config, {})) as pool:
        known = dict(pool.imap_unordered(_header_job, headers(), chunksize=4))
    engine.add_header_summaries(known)
    forked = ctx.get_start_method() == "fork"
    shipped = {} if forked else known
    # then the summaries of the files their calls reach, which every worker
    # would otherwise make for itself
    callees: FileSummaries = []
    if todo:
        with ctx.Pool(jobs, _init_worker, (engine.config, shipped)) as pool:
            callees = [r for r in pool.imap_unordered(_callee_job, todo) if r is not None]
        engine.add_file_summaries(callees)
    # the biggest files first, so no worker is left with a long one at the end
    order = sorted(files, key=_size, reverse=True)
    # what the workers inherit is moved out of the collector's sight, so that
    # its passes do not copy every inherited page into each worker
    gc.freeze()
    try:
        initargs = (engine.config, shipped, [] if forked else callees)
        with ctx.Pool(jobs, _init_worker, initargs) as pool:
            yield from pool.imap_unordered(_file_job, order)
    finally:
        gc.unfreeze()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- Dask ---------------------------------------------------------------------

_DASK_ENGINES: dict[str, Engine] = {}


def _dask_job(config: Config, paths: list[str]) -> list[FileResult]:
    """Runs on a Dask worker: one engine per worker process and settings."""
    key = repr(config)
    engine = _DASK_ENGINES.get(key)
    if engine is None:
        engine = _DASK_ENGINES[key] = Engine(config)
    return [engine.check_file(Path(p)) for p in paths]


def _dask(config: Config, files: list[Path], scheduler: str) -> Iterator[FileResult]:
    """The files in batches on the cluster at `scheduler`; its workers must see
    the files (and the tree's headers) at the same paths."""
    try:
        import distributed
    except ImportError:
        raise InputError("--scheduler needs Dask: pip install 'lockcheck[distributed]'") from None
    if not files:
        return
    dask: Any = distributed  # untyped: used through Any, typed or not where it is installed
    try:
        client = dask.Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        order = sorted(files, key=_size, reverse=True)
        batches = [order[i :: workers * 4] for i in range(min(len(order), workers * 4))]
        futures = [
            client.submit(_dask_job, config, [str(p) for p in batch], pure=False)
            for batch in batches
        ]
        for fut in dask.as_completed(futures):
            yield from fut.result()
    finally:
        client.close()


# -- the progress bar ------------------------------------------------------------


@contextmanager
def progress_bar(enabled: bool) -> Iterator[tuple[Progress | None, Callable[[int], None] | None]]:
    """Files done, findings so far and the time left, on stderr; nothing when off."""
    if not enabled:
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[findings]} finding(s)"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task("check", total=None, findings=0)
    count = [0]

    def advance(r: FileResult) -> None:
        count[0] += len(r.findings)
        bar.update(task, advance=1, findings=count[0])

    def total(n: int) -> None:
        bar.update(task, total=n)

    with bar:
        yield advance, total
