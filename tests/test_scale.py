"""Whole-tree runs: the same report with any job count, shards, the cache or Dask;
the tree-wide lock-order graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lockcheck.cache import ResultCache
from lockcheck.engine import Engine
from lockcheck.order.graph import LockGraph, OrderEdge
from lockcheck.parallel import Shard, plan, run_check
from tests.helpers import FIXTURES, run_cli

TREE = FIXTURES / "tree"


def _check(*args: str) -> tuple[int, str, str]:
    r = run_cli("check", "--no-sim", *args)
    return r.returncode, r.stdout, r.stderr


def _merged(tmp_path: Path, target: str, fmt: str, n: int = 2) -> str:
    shards = []
    for k in range(1, n + 1):
        rc, out, err = _check("--no-cache", "--shard", f"{k}/{n}", "--format", "json", target)
        assert rc in (0, 1), err
        path = tmp_path / f"shard{k}.json"
        path.write_text(out)
        shards.append(str(path))
    r = run_cli("merge", "--format", fmt, *shards)
    assert r.returncode in (0, 1), r.stderr
    return r.stdout


@pytest.mark.parametrize("fmt", ["json", "sarif", "text"])
def test_jobs_and_shards_give_the_same_report(tmp_path: Path, fmt: str) -> None:
    target = str(FIXTURES)
    rc1, one, _ = _check("--no-cache", "--jobs", "1", "--format", fmt, target)
    rc2, two, _ = _check("--no-cache", "--jobs", "2", "--format", fmt, target)
    assert rc1 == rc2 == 1  # the fixtures hold findings, so the comparison means something
    assert one == two
    assert _merged(tmp_path, target, fmt) == one


def test_shards_split_the_files_between_them() -> None:
    files, _ = plan([FIXTURES])
    parts = [plan([FIXTURES], Shard(k, 3))[0] for k in (1, 2, 3)]
    assert all(parts)
    assert sorted(f for p in parts for f in p) == files
    assert len({f for p in parts for f in p}) == len(files)


def test_kernel_files_same_with_a_pool(kernel_tree: Path, tmp_path: Path) -> None:
    """Kernel files read the tree's headers: the pool's first phase must give
    each worker the same summaries a single process computes."""
    names = ("khugepaged.c", "rmap.c", "mremap.c", "mprotect.c", "madvise.c", "mlock.c")
    files = [str(kernel_tree / "mm" / n) for n in names]
    rc1, one, _ = _check("--no-cache", "--jobs", "1", "--format", "json", *files)
    rc2, two, _ = _check("--no-cache", "--jobs", "2", "--format", "json", *files)
    assert rc1 == rc2
    assert one == two
    assert json.loads(one)["stats"]["files"] == len(names)


def test_dask_local_cluster_gives_the_same_report(tmp_path: Path) -> None:
    distributed = pytest.importorskip(
        "distributed",
        reason="dask.distributed not installed (pip install 'lockcheck[distributed]')",
    )
    target = str(FIXTURES)
    _, one, _ = _check("--no-cache", "--jobs", "1", "--format", "json", target)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        rc, out, err = _check(
            "--no-cache", "--scheduler", cluster.scheduler_address, "--format", "json", target
        )
        assert len(cluster.workers) == 2
    assert rc == 1, err
    assert out == one


def test_scheduler_that_does_not_answer_is_one_error_line() -> None:
    pytest.importorskip("distributed", reason="dask.distributed not installed")
    rc, out, err = _check("--no-cache", "--scheduler", "tcp://127.0.0.1:9", str(TREE))
    assert rc == 2
    assert err.startswith("lockcheck: error: --scheduler tcp://127.0.0.1:9:")
    assert len(err.splitlines()) == 1


def test_cache_serves_a_second_run_and_misses_what_changed(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "khugepaged", tree)
    cache_dir = tmp_path / "cache"
    engine = Engine()
    cold = run_check(engine, [tree], cache=ResultCache(cache_dir, engine))
    warm_cache = ResultCache(cache_dir, engine)
    warm = run_check(engine, [tree], cache=warm_cache)
    n = len(list(tree.glob("*.c")))
    assert warm_cache.hits == n and warm_cache.misses == 0
    assert warm.findings == cold.findings and warm.findings
    assert warm.stats == cold.stats
    # one file changed into a clean one: it and the files beside it (whose
    # callees it may define) are analysed again, files elsewhere are not
    other = tmp_path / "elsewhere"
    shutil.copytree(FIXTURES / "locking", other)
    m = len(list(other.rglob("*.[ch]")))  # headers and subdirectories too
    run_check(engine, [tree, other], cache=ResultCache(cache_dir, engine))
    (tree / "v1.c").write_bytes((FIXTURES / "khugepaged" / "merged_fix.c").read_bytes())
    after = ResultCache(cache_dir, engine)
    result = run_check(engine, [tree, other], cache=after)
    assert after.misses == n and after.hits == m
    assert not [f for f in result.findings if f.path.endswith("/v1.c")]
    assert [f for f in cold.findings if f.path.endswith("/v1.c")]


def test_cache_misses_a_file_whose_callee_in_a_sibling_file_changed(tmp_path: Path) -> None:
    """A cross-file summary reads the callee's file: editing only that file
    must not serve the caller's old result."""
    tree = tmp_path / "mm"
    tree.mkdir()
    (tree / "caller.c").write_text(
        "int poke(struct gadget *g)\n{\n\tgadget_grab(g);\n\tg->n++;\n"
        "\tspin_unlock(&g->lock);\n\treturn 0;\n}\n"
    )
    callee = tree / "callee.c"
    callee.write_text("void gadget_grab(struct gadget *g)\n{\n\tspin_lock(&g->lock);\n}\n")
    cache_dir = tmp_path / "cache"
    engine = Engine()
    first = run_check(engine, [tree / "caller.c"], cache=ResultCache(cache_dir, engine))
    # the callee no longer takes the lock: the caller's unlock is now of a lock not held
    callee.write_text("void gadget_grab(struct gadget *g)\n{\n\tg->n = 0;\n}\n")
    fresh = run_check(Engine(), [tree / "caller.c"], cache=None)
    again_cache = ResultCache(cache_dir, engine)
    again = run_check(engine, [tree / "caller.c"], cache=again_cache)
    assert again_cache.misses == 1
    assert again.findings == fresh.findings
    assert first.stats == again.stats


def test_cache_key_names_included_headers_and_settings(tmp_path: Path) -> None:
    (tmp_path / "internal.h").write_text("static inline void h(void) { }\n")
    src = b'#include "internal.h"\nvoid f(void) { h(); }\n'
    (tmp_path / "a.c").write_bytes(src)
    engine = Engine()
    key = ResultCache(tmp_path / "c", engine).key(tmp_path / "a.c", src)
    (tmp_path / "internal.h").write_text("static inline void h(void) { spin_lock(&x); }\n")
    assert ResultCache(tmp_path / "c", engine).key(tmp_path / "a.c", src) != key
    other = Engine()
    other.config.disable = {"lock-order"}
    assert ResultCache(tmp_path / "c", other).salt != ResultCache(tmp_path / "c", engine).salt


def test_damaged_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    rc, first, _ = _check("--cache-dir", str(cache_dir), "--format", "json", str(TREE))
    entries = list(cache_dir.rglob("*.json"))
    assert len(entries) == len(list(TREE.rglob("*.c")))
    for e in entries:
        e.write_text("{not json")
    rc2, second, err = _check("--cache-dir", str(cache_dir), "--format", "json", str(TREE))
    assert (rc, first) == (rc2, second), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2"], "--shard 3/2: expected K/N with 1 <= K <= N"),
        (["--shard", "x"], "--shard x: expected K/N"),
        (["--jobs", "0"], "Invalid value for '--jobs'"),
    ],
)
def test_bad_run_options_are_one_error_line(args: list[str], message: str) -> None:
    rc, _, err = _check(*args, str(TREE))
    assert rc == 2
    assert err.startswith("lockcheck: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_merge_refuses_what_is_not_a_whole_set_of_shards(tmp_path: Path) -> None:
    _, out, _ = _check("--no-cache", "--shard", "1/2", "--format", "json", str(TREE))
    one = tmp_path / "one.json"
    one.write_text(out)
    r = run_cli("merge", str(one))
    assert r.returncode == 2 and "shard 2/2 is missing" in r.stderr
    r = run_cli("merge", str(one), str(one))
    assert r.returncode == 2 and "given twice" in r.stderr
    _, plain, _ = _check("--no-cache", "--format", "json", str(TREE))
    (tmp_path / "plain.json").write_text(plain)
    r = run_cli("merge", str(tmp_path / "plain.json"))
    assert r.returncode == 2 and "not a shard result" in r.stderr
    (tmp_path / "bad.json").write_text("[1,")
    r = run_cli("merge", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "not JSON" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_order_graph_reports_a_cycle_across_files_with_witnesses() -> None:
    r = run_cli("order", "--graph", "--no-cache", "--format", "json", str(TREE))
    assert r.returncode == 1, r.stderr
    graph = json.loads(r.stdout)
    [cycle] = graph["cycles"]
    assert {(e["outer"], e["inner"]) for e in cycle} == {
        ("demo_entry->elock", "demo_pool->lock"),
        ("demo_pool->lock", "demo_entry->elock"),
    }
    sites = {(Path(e["path"]).name, e["function"], e["outer_line"], e["inner_line"]) for e in cycle}
    assert sites == {
        ("queue.c", "demo_queue_add", 15, 16),
        ("reclaim.c", "demo_reclaim_one", 15, 17),
    }
    edges = {(e["outer"], e["inner"]) for e in graph["edges"]}
    # the same field names in other structures are other classes: no false cycle
    assert ("other_entry->elock", "other_dev->lock") in edges
    # a trylock cannot wait, so it makes no edge (queue.c's demo_queue_try)
    witnesses = {(e["outer"], e["inner"]): e["witnesses"] for e in graph["edges"]}
    assert witnesses[("demo_pool->lock", "demo_entry->elock")] == 1
    # rcu_read_lock() waits for nobody (`waits = false` in the pack): a lock taken
    # under it is an edge, taking it under a lock is none, so no cycle (lookup.c)
    assert ("rcu", "demo_pool->lock") in edges
    assert ("demo_pool->lock", "rcu") not in edges


def test_order_graph_dot_marks_the_cycle(tmp_path: Path) -> None:
    r = run_cli("order", "--graph", "--no-cache", "--format", "dot", str(TREE))
    assert r.returncode == 1
    assert r.stdout.startswith("digraph lock_order {")
    red = [ln for ln in r.stdout.splitlines() if "color=red" in ln]
    assert len(red) == 2
    assert any('"demo_pool->lock" -> "demo_entry->elock"' in ln for ln in red)
    clean = run_cli("order", "--graph", "--no-cache", "--format", "dot", str(TREE / "drv/other.c"))
    assert clean.returncode == 0 and "color=red" not in clean.stdout


def test_merged_shards_carry_the_graph(tmp_path: Path) -> None:
    paths = []
    for k in (1, 2):
        _, out, _ = _check("--no-cache", "--shard", f"{k}/2", "--format", "json", str(TREE))
        (tmp_path / f"{k}.json").write_text(out)
        paths.append(str(tmp_path / f"{k}.json"))
    merged = run_cli("merge", "--graph", "json", *paths)
    single = run_cli("order", "--graph", "--no-cache", "--format", "json", str(TREE))
    assert merged.returncode == single.returncode == 1
    assert merged.stdout == single.stdout


def _header_tree(tmp_path: Path) -> tuple[Path, bytes]:
    (tmp_path / "internal.h").write_text(
        "static inline void take(struct s *s) { spin_lock(&s->lock); }\n"
    )
    src = b'#include "internal.h"\nvoid f(struct s *s) { take(s); }\n'
    (tmp_path / "a.c").write_bytes(src)
    return tmp_path / "a.c", src


def test_header_summaries_are_kept_across_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, src = _header_tree(tmp_path)
    first = Engine()
    first.use_cache(tmp_path / "cache")
    want = first.analyse_source(str(path), src)
    import lockcheck.engine as engine_module

    real = engine_module.build_file_model
    built: list[str] = []

    def counting(pf, *args):  # type: ignore[no-untyped-def]
        built.append(pf.path)
        return real(pf, *args)

    monkeypatch.setattr(engine_module, "build_file_model", counting)
    second = Engine()
    second.use_cache(tmp_path / "cache")
    got = second.analyse_source(str(path), src)
    assert built == [str(path)]  # the header's summaries came from the store
    assert got.facts.summaries == want.facts.summaries
    assert got.facts.summaries["f"].acquires  # the header's lock reached the caller
    # a directory others may write is never unpickled from
    (tmp_path / "cache").chmod(0o777)
    third = Engine()
    third.use_cache(tmp_path / "cache")
    third.analyse_source(str(path), src)
    assert built.count(str(tmp_path / "internal.h")) == 1


def test_summaries_of_files_beside_are_kept_across_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callee's file is summarised once; a change to a header it reads is a miss."""
    (tmp_path / "lock.h").write_text(
        "static inline void take(struct s *s) { spin_lock(&s->lock); }\n"
    )
    (tmp_path / "b.c").write_text('#include "lock.h"\nvoid grab(struct s *s) { take(s); }\n')
    src = b"void f(struct s *s) { grab(s); }\n"
    (tmp_path / "a.c").write_bytes(src)
    import lockcheck.engine as engine_module

    real = engine_module.build_file_model
    built: list[str] = []

    def counting(pf, *args):  # type: ignore[no-untyped-def]
        built.append(Path(pf.path).name)
        return real(pf, *args)

    monkeypatch.setattr(engine_module, "build_file_model", counting)

    def summaries() -> object:
        engine = Engine()
        engine.use_cache(tmp_path / "cache")
        return engine.analyse_source(str(tmp_path / "a.c"), src).facts.summaries

    first = summaries()
    assert built.count("b.c") == 1
    assert first["f"].acquires  # type: ignore[index]  # through grab() in b.c
    assert summaries() == first
    assert built.count("b.c") == 1  # read back, not built again
    (tmp_path / "lock.h").write_text("static inline void take(struct s *s) { }\n")
    after = summaries()
    # f takes no lock any more: its summary only says it is pure
    assert after["f"].pure and not after["f"].acquires  # type: ignore[index]
    assert built.count("b.c") == 2


def test_summaries_by_name_are_kept_by_name_and_the_whole_files_serve_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review keeps what it summarised of a file beside by the names asked;
    what a run over the directory kept of the whole file serves any names."""
    (tmp_path / "b.c").write_text(
        "void grab(struct s *s) { spin_lock(&s->lock); }\n"
        "void drop(struct s *s) { spin_unlock(&s->lock); }\n"
    )
    uses = {
        "a.c": b"void f(struct s *s) { grab(s); }\n",
        "c.c": b"void g(struct s *s) { drop(s); }\n",
        "d.c": b"void h1(struct s *s) { grab(s); }\nvoid h2(struct s *s) { drop(s); }\n",
    }
    for name, src in uses.items():
        (tmp_path / name).write_bytes(src)
    import lockcheck.engine as engine_module

    real = engine_module.build_file_model
    built: list[tuple[str, int]] = []

    def counting(pf, *args):  # type: ignore[no-untyped-def]
        model = real(pf, *args)
        built.append((Path(pf.path).name, len(model.functions)))
        return model

    monkeypatch.setattr(engine_module, "build_file_model", counting)

    def summaries(name: str, by_name: bool = True) -> Any:
        engine = Engine()
        engine.use_cache(tmp_path / "cache")
        if not by_name:
            return engine.analyse_source(str(tmp_path / name), uses[name]).facts.summaries
        with engine.callees_by_name():
            return engine.analyse_source(str(tmp_path / name), uses[name]).facts.summaries

    first = summaries("a.c")
    assert first["f"].acquires
    assert ("b.c", 1) in built  # grab() only
    assert summaries("a.c") == first and built.count(("b.c", 1)) == 1  # read back
    assert summaries("c.c")["g"].releases  # other names: summarised again, drop() only
    assert built.count(("b.c", 1)) == 2 and ("b.c", 2) not in built
    assert summaries("c.c", by_name=False)["g"].releases
    assert built.count(("b.c", 2)) == 1  # the whole file, for a run over many
    # the whole file's entry answers for names never asked before
    both = summaries("d.c")
    assert both["h1"].acquires and both["h2"].releases
    assert built.count(("b.c", 2)) == 1 and built.count(("b.c", 1)) == 2


def _edge(outer: str, inner: str, line: int) -> OrderEdge:
    return OrderEdge(outer, inner, "x.c", "f", line, line + 1, outer, inner)


def test_graph_reads_a_bare_field_as_its_only_structure() -> None:
    # parent then child of one structure, once reached through a field whose
    # type the function does not declare: one class nested in itself, no cycle
    nested = LockGraph.build(
        [_edge("d_lock", "dentry->d_lock", 1), _edge("dentry->d_lock", "d_lock", 5)]
    )
    assert nested.witness == {} and nested.cycles() == []
    # a field name two structures use stays apart from both
    apart = LockGraph.build(
        [
            _edge("lock", "a->lock", 1),
            _edge("a->lock", "lock", 5),
            _edge("b->lock", "a->lock", 9),
        ]
    )
    assert ("lock", "a->lock") in apart.witness
    assert [[e.outer for e in ring] for ring in apart.cycles()] == [["a->lock", "lock"]]


def test_no_cache_pool_shares_summaries_through_a_store_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--no-cache` with a pool: the workers share what they summarise through
    a temporary store, which is gone afterwards; the user's cache is not
    touched and the report is the single process's."""
    from lockcheck.cli.check import run_files

    home = tmp_path / "cache"
    monkeypatch.setenv("LOCKCHECK_CACHE_DIR", str(home))
    stores: list[Path] = []
    engine = Engine()
    real = engine.use_cache

    def spy(directory: Path | None) -> None:
        if directory is not None:
            stores.append(directory)
        real(directory)

    monkeypatch.setattr(engine, "use_cache", spy)
    files = [FIXTURES / "khugepaged"]
    pooled = run_files(engine, files, 2, None, True)
    alone = run_files(Engine(), files, 1, None, True)
    assert pooled.findings and pooled.findings == alone.findings
    assert len(stores) == 1 and not stores[0].exists()
    assert engine._store is None
    assert not home.exists()
