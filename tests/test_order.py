"""Documented lock order and prose lock claims against the code (`lockcheck order`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.order.claims import ClaimStats, check_comment_claims, comments, prose_claims
from lockcheck.order.doc import Names, parse_order_comments
from lockcheck.order.edges import Closure
from lockcheck.packs import load_pack
from tests.helpers import FIXTURES, run_cli

ORDER = FIXTURES / "order"
NAMES = Names(load_pack("mm").names)


def doc_of(text: str):  # type: ignore[no-untyped-def]
    return parse_order_comments(text.encode(), "t.c", NAMES)


def pairs(text: str) -> set[tuple[str, str]]:
    return {(e.outer, e.inner) for e in doc_of(text).edges}


def test_rmap_hierarchy_of_the_real_kernel(kernel_tree: Path) -> None:
    doc = parse_order_comments((kernel_tree / "mm/rmap.c").read_bytes(), "mm/rmap.c", NAMES)
    below = Closure(doc)
    chain = [
        "mm->mmap_lock",
        "page->flags PG_locked",
        "mapping->i_mmap_rwsem",
        "anon_vma->rwsem",
        "pte_lock",
    ]
    for outer, inner in zip(chain, chain[1:], strict=False):
        assert below.outside(outer, inner), f"{outer} -> {inner}"
    assert below.outside("anon_vma->rwsem", "mm->page_table_lock")
    assert doc.keys["page->flags PG_locked"] == {"folio_lock"}
    assert doc.keys["mm->page_table_lock"] >= {"page_table_lock", "pmd_lock"}
    # the page-table lock is inside the mmap_lock, never outside it
    assert not below.outside("pte_lock", "mm->mmap_lock")


def test_indentation_alternatives_remarks_and_trees() -> None:
    text = """/*
 * Lock ordering:
 *
 *  a_lock			(one remark
 *				 spanning two lines)
 *    b->x_lock or c_lock
 *      d_lock,e_lock
 *    f_lock
 *
 *  g_lock
 *    a_lock
 * some title:
 *   h_lock
 *     i_lock
 */"""
    got = pairs(text)
    assert {("a_lock", "b->x_lock"), ("a_lock", "c_lock"), ("a_lock", "f_lock")} <= got
    assert {("b->x_lock", "d_lock"), ("c_lock", "e_lock"), ("g_lock", "a_lock")} <= got
    assert ("h_lock", "i_lock") in got
    # siblings are not ordered; trees after a blank line or a title start afresh
    assert ("b->x_lock", "f_lock") not in got and ("f_lock", "g_lock") not in got
    assert ("a_lock", "h_lock") not in got


def test_flat_list_is_a_chain_and_prose_is_not_a_name() -> None:
    text = "/*\n * lock ordering:\n *\tp_lock\n *\tpool->lock\n *\tzs->lock\n */"
    assert pairs(text) == {("p_lock", "pool->lock"), ("pool->lock", "zs->lock")}
    prose = "/*\n * Lock ordering: we always take the queue lock before the mutex\n */"
    assert pairs(prose) == set()
    assert doc_of(text).blocks == [("t.c", 2)]


def test_kernel_spellings_resolve_through_the_names_table() -> None:
    doc = doc_of("/*\n * Lock ordering:\n *  ->mmap_lock\n *    ->anon_vma.lock\n */")
    assert ("mm->mmap_lock", "anon_vma->rwsem") in {(e.outer, e.inner) for e in doc.edges}
    assert doc.keys["anon_vma->rwsem"] == {"anon_vma->rwsem"}


def order_json(*args: str) -> tuple[int, dict[str, list[dict[str, object]]]]:
    proc = run_cli("order", "--claims", "--format", "json", *args)
    assert proc.stderr == ""
    return proc.returncode, json.loads(proc.stdout)


def test_driver_block_confirmed_contradicted_unexercised() -> None:
    rc, data = order_json(str(ORDER / "foo_dev.c"))
    assert rc == 1
    own = [e for e in data["documented"] if "foo_dev.c" in str(e["source"])]
    assert {(e["outer"], e["inner"]) for e in own} == {
        ("foo_dev->config_mutex", "foo_dev->queue_lock"),
        ("foo_dev->queue_lock", "foo_request->lock"),
        ("foo_dev->queue_lock", "foo_dev->stats_lock"),
    }
    confirmed = {(e["outer"], e["inner"]) for e in data["confirmed"]}
    assert confirmed == {
        ("foo_dev->config_mutex", "foo_dev->queue_lock"),
        ("foo_dev->queue_lock", "foo_request->lock"),
    }
    # one contradiction: foo_complete(); the trylock and bar_dev's queue_lock are not
    [c] = data["contradicted"]
    assert (c["outer"], c["inner"]) == ("foo_dev->queue_lock", "foo_request->lock")
    sites = c["sites"]
    assert isinstance(sites, list)
    assert [(s["line"], s["lock"], s["what"]) for s in sites] == [
        (46, "rq->lock", "held"),
        (49, "dev->queue_lock", "taken"),
    ]
    assert all(s["function"] == "foo_complete" for s in sites)
    unexercised = {(e["outer"], e["inner"]) for e in data["unexercised"]}
    assert ("foo_dev->queue_lock", "foo_dev->stats_lock") in unexercised
    # outside a kernel tree the pack's own order is the tree-wide documentation
    assert any("pack mm order" in str(e["source"]) for e in data["documented"])


def test_text_output_is_deterministic_and_names_both_sites() -> None:
    first = run_cli("order", "--claims", str(ORDER / "foo_dev.c"))
    second = run_cli("order", "--claims", str(ORDER / "foo_dev.c"))
    assert first.returncode == 1 and first.stdout == second.stdout
    line = next(ln for ln in first.stdout.splitlines() if "contradicted:" in ln)
    assert "foo_dev.c:49:2" in line and "line 46" in line and "foo_complete()" in line
    assert first.stdout.splitlines()[-1].endswith("1 contradicted")


def test_order_on_the_tree_uses_its_hierarchy_comments(kernel_tree: Path) -> None:
    rc, data = order_json("--tree", str(kernel_tree), str(kernel_tree / "mm/rmap.c"))
    sources = {str(e["source"]).split(":")[0] for e in data["documented"]}
    assert sources == {"mm/rmap.c", "mm/filemap.c"}
    confirmed = {(e["outer"], e["inner"]) for e in data["confirmed"]}
    assert ("anon_vma->rwsem", "mm->page_table_lock") in confirmed
    assert rc == 0 and data["contradicted"] == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("no/such/file.c",), "no such file"),
        (("--claims", "no/such/file.c"), "no such file"),
        (("--claims", "--tree", "no/such/dir", str(ORDER)), "--tree"),
    ],
)
def test_bad_usage_is_one_error_line(args: tuple[str, ...], needle: str) -> None:
    proc = run_cli("order", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lockcheck: error: ") and needle in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_lock_order_findings_cite_the_files_comment() -> None:
    engine = Engine(Config(select={"lock-order"}))
    [f] = engine.check_paths([ORDER / "foo_dev.c"]).findings
    assert f.line == 49 and "lock ordering comment at line 6" in f.message
    assert any(r.line == 6 for r in f.related) and any(r.line == 46 for r in f.related)


def claim_findings(path: Path) -> tuple[dict[int, str], int]:
    engine = Engine(Config(select={"claim-mismatch"}))
    result = engine.check_paths([path])
    return {f.line: f.message for f in result.findings}, result.stats.unresolved_claims


def test_comment_claims_true_and_false() -> None:
    found, unresolved = claim_findings(ORDER / "claims.c")
    # false claims: released on every path, surely held, taken again despite the header
    assert sorted(found) == [20, 36, 59, 85]
    assert "was released on every path here" in found[20] and "`ptl`" in found[20]
    assert "is held here" in found[36] and "without holding the folio lock" in found[36]
    assert "taken again" in found[59] and "mm->mmap_lock" in found[59]
    # a trailing comment speaks about the state after its statement
    assert "was released on every path here" in found[85]
    # the frobnicator lock is counted, not judged
    assert unresolved == 1


def test_claim_phrasings_and_hedges() -> None:
    src = b"""/* caller holds the i_mmap_rwsem. */
/* Called with mmap_lock held; the lru_lock must not be held. */
/* if the page lock is held we bail out. */
/* stays valid under rcu. */
/* done under memory pressure. */
"""
    found = [(c.kind, c.lock) for cm in comments(src) for c in prose_claims(cm, header=False)]
    assert found == [
        ("held", "i_mmap_rwsem"),
        ("held", "mmap_lock"),
        ("not_held", "lru_lock"),
        ("held", "rcu"),
    ]


def test_negated_calls_turn_the_claim_around() -> None:
    src = b"""/* Must NOT be called with the hw_lock held. */
/* Not to be called from atomic context, or while the dev->lock is held. */
/* Must not be called without the list_lock held. */
/* Not called from irq context, but with the q_lock held. */
"""
    found = [(c.kind, c.lock) for cm in comments(src) for c in prose_claims(cm, header=True)]
    assert found == [
        ("not_held", "hw_lock"),
        ("not_held", "dev->lock"),
        ("held", "list_lock"),
        ("held", "q_lock"),
    ]


def test_lockless_readers_are_not_the_state_here() -> None:
    """Without the lock next to "concurrently" is what other threads do; a held
    claim next to it (what the lock keeps away) is still read."""
    src = b"""/* read concurrently without grp_lock held. */
/* written without grp_lock held. */
/* under the ptl, so concurrent faults see the new entry. */
"""
    found = [(c.kind, c.lock) for cm in comments(src) for c in prose_claims(cm, header=False)]
    assert found == [("not_held", "grp_lock"), ("held", "ptl")]


def test_claim_scope_fixture() -> None:
    """Quiet on the kernel's shapes, firing on each broken twin (claim_scope.c)."""
    path = ORDER / "claim_scope.c"
    found, unresolved = claim_findings(path)
    fns = {
        f.function: f.line
        for f in Engine(Config(select={"claim-mismatch"})).check_paths([path]).findings
    }
    assert sorted(fns) == [
        "widget_claim_other",
        "widget_finish",
        "widget_listen_held",
        "widget_relock",
        "widget_send_held",
    ]
    assert "is the caller's: released here" in found[fns["widget_finish"]]
    assert "taken again" in found[fns["widget_relock"]]
    assert "`w->ring_lock` is held here" in found[fns["widget_send_held"]]
    assert "was released on every path here" in found[fns["widget_claim_other"]]
    assert "`w->stats_lock` is held here" in found[fns["widget_listen_held"]]
    assert unresolved == 0


def test_header_comments_speak_about_entry_only() -> None:
    src = b"/*\n * Returns with @ptl locked.\n * Must be called with the ptl held.\n */"
    [claim] = [c for cm in comments(src) for c in prose_claims(cm, header=True)]
    assert (claim.kind, claim.lock) == ("held", "ptl")


def test_comment_claims_in_real_mm_are_quiet(kernel_tree: Path) -> None:
    engine = Engine()
    stats = ClaimStats()
    for name in ("rmap.c", "gup.c", "memory.c"):
        path = kernel_tree / "mm" / name
        source = path.read_bytes()
        analysis = engine.analyse_source(str(path), source, kernel_tree)
        assert check_comment_claims(analysis.facts, source, engine.vocab, stats) == []
    assert stats.checked >= 20 and stats.unresolved <= stats.checked // 4


def test_comment_claims_fire_on_a_real_claim_the_code_breaks(kernel_tree: Path) -> None:
    """finish_fault()'s "Re-check under ptl": drop the lock just before it."""
    engine = Engine()
    path = kernel_tree / "mm" / "memory.c"
    text = path.read_text()
    comment = "\t/* Re-check under ptl */\n"
    assert text.count(comment) == 1
    broken = text.replace(comment, "\tspin_unlock(vmf->ptl);\n" + comment).encode()
    analysis = engine.analyse_source(str(path), broken, kernel_tree)
    [m] = check_comment_claims(analysis.facts, broken, engine.vocab, ClaimStats())
    assert m.fn.fn.name == "finish_fault" and m.lock == "vmf->ptl"
    assert m.site.line == text[: text.index(comment)].count("\n") + 2
    assert m.state == "was released on every path here"


def test_inversions_against_the_trees_comments(kernel_tree: Path) -> None:
    rc, data = order_json("--tree", str(kernel_tree), str(ORDER / "inversions.c"))
    assert rc == 1
    got = {
        (c["outer"], c["inner"], c["sites"][1]["function"])  # type: ignore[index]
        for c in data["contradicted"]
    }
    assert got == {
        ("anon_vma->rwsem", "pte_lock", "anon_under_ptl"),
        ("mm->mmap_lock", "page->flags PG_locked", "mmap_under_folio"),
    }
    # i_mmap_rwsem before the folio lock is the documented hugetlbfs order: no contradiction
    confirmed = {(e["outer"], e["inner"]) for e in data["confirmed"]}
    assert ("mapping->i_mmap_rwsem", "page->flags PG_locked") in confirmed
    assert ("anon_vma->rwsem", "mm->page_table_lock") in confirmed


def test_names_table_is_validated(tmp_path: Path) -> None:
    pack = tmp_path / "p.toml"
    pack.write_text('[pack]\nname = "p"\n\n[names]\n"foo lock" = 3\n')
    proc = run_cli("order", "--claims", "--rules", str(pack), str(ORDER / "foo_dev.c"))
    assert proc.returncode == 2
    assert "names.foo lock" in proc.stderr and proc.stderr.count("\n") == 1
    pack.write_text('[pack]\nname = "p"\n\n[names]\n"foo lock" = ["foo_dev->queue_lock"]\n')
    assert load_pack(str(pack)).names == {"foo lock": ("foo_dev->queue_lock",)}
