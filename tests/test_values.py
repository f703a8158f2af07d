"""Value provenance (analysis/values.py): entry reads, the names that carry
them, which acquisition a release undoes, and per-path marks since a lock
was taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held, LockState
from lockcheck.analysis.values import (
    EntryValue,
    act_events,
    act_rereads,
    derived_names,
    downgraders,
    entry_pointer,
    entry_values,
    marked_since_taken,
    node_texts,
    path_hold_sites,
    reaching_holds,
    uses,
    uses_name,
)
from lockcheck.engine import Config, Engine
from lockcheck.model.ir import Acquire, Act, Call, Downgrade, LockRef, Read, Release, Site


def facts(tmp_path: Path, source: str, name: str) -> FunctionFacts:
    path = tmp_path / "t.c"
    path.write_text(source)
    analysis = Engine().analyse_source(str(path), path.read_bytes())
    return next(ff for ff in analysis.facts.functions if ff.fn.name == name)


def test_entry_reads_carry_their_lock_class_and_target(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct vm_fault *vmf, pmd_t *pmd, pte_t *src_pte)
{
	pte_t a = ptep_get(vmf->pte);
	pmd_t b = *pmd;
	pte_t c = *src_pte;
	pmd_t d = READ_ONCE(*pmd);
	int e = *count;
}
""",
        "f",
    )
    reads = [ev for evs in ff.events for ev in evs if isinstance(ev, Read)]
    got = {(r.ptr, r.cls, r.into) for r in reads}
    assert ("vmf->pte", "pte_lock", "a") in got
    assert ("pmd", "pmd_lock", "b") in got
    assert ("src_pte", "pte_lock", "c") in got
    assert ("pmd", "pmd_lock", None) in got  # read in place, fed to READ_ONCE()
    assert not any(r.ptr == "count" for r in reads)  # not a page-table pointer
    values = entry_values(ff, {"pmd_lock"})
    assert any("d" in v.names for v in values)  # READ_ONCE()'s result carries the read


def test_names_spread_through_calls_and_copies(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct vm_area_struct *vma, pte_t *pte, unsigned long addr)
{
	pte_t orig = ptep_get_lockless(pte);
	pte_t young = pte_mkyoung(orig);
	struct page *page = vm_normal_page(vma, addr, young);
	struct page *other = alloc_page(GFP_KERNEL);
}
""",
        "f",
    )
    (value,) = entry_values(ff, {"pte_lock"})
    assert {"orig", "young", "page"} <= value.names
    assert "other" not in value.names


def test_snapshot_fields_are_values_from_before(tmp_path: Path) -> None:
    source = """
void f(struct vm_fault *vmf)
{
	if (pte_present(vmf->orig_pte))
		g(vmf);
}
void h(struct vm_fault *vmf)
{
	vmf->orig_pte = ptep_get(vmf->pte);
	if (pte_present(vmf->orig_pte))
		g(vmf);
}
"""
    snapshots = {"orig_pte": "pte_lock"}
    (snap,) = entry_values(facts(tmp_path, source, "f"), {"pte_lock"}, snapshots)
    assert snap.read is None and snap.names == {"vmf->orig_pte"}
    # assigned here from a read: an ordinary value, not the caller's snapshot
    (own,) = entry_values(facts(tmp_path, source, "h"), {"pte_lock"}, snapshots)
    assert own.read is not None and own.read.into == "vmf->orig_pte"


def test_reaching_holds_name_the_acquisition_and_its_flags(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->lock, flags);
	d->n++;
	spin_unlock_irqrestore(&d->lock, flags);
}
""",
        "f",
    )
    holds = reaching_holds(ff)
    ((_, reaching),) = holds.items()
    (hold,) = reaching
    assert hold.primitive == "spin_lock_irqsave"
    assert hold.args == ("d->lock", "flags")


def test_path_hold_sites_keep_correlated_branches_apart(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
int f(struct mm_struct *mm, bool write)
{
	if (write)
		mmap_write_lock(mm);
	else
		mmap_read_lock(mm);
	work(mm);
	if (write)
		mmap_write_unlock(mm);
	else
		mmap_read_unlock(mm);
	return 0;
}
""",
        "f",
    )
    sites = path_hold_sites(ff)
    by_release = {}
    for (nid, i), found in sites.items():
        rel = ff.events[nid][i]
        assert isinstance(rel, Release)
        by_release[rel.primitive] = {s.text.split("(")[0] for s in found}
    # the path-insensitive view would let either acquisition reach either release
    assert by_release == {
        "mmap_write_unlock": {"mmap_write_lock"},
        "mmap_read_unlock": {"mmap_read_lock"},
    }


def test_marks_must_hold_on_every_path_since_the_lock_was_taken(tmp_path: Path) -> None:
    ff = facts(
        tmp_path,
        """
void f(struct mm_struct *mm, pmd_t *pmd, pte_t *pte, pte_t orig, bool again)
{
	spinlock_t *ptl = pte_lockptr(mm, pmd);

	spin_lock(ptl);
	if (!pte_same(ptep_get(pte), orig)) {
		spin_unlock(ptl);
		return;
	}
	if (again) {
		spin_unlock(ptl);
		wait_a_bit();
		spin_lock(ptl);
	}
	set_pte_at(mm, 0, pte, orig);
	spin_unlock(ptl);
}
""",
        "f",
    )

    def is_same(_nid: int, ev: object, _st: object) -> bool:
        return isinstance(ev, Call) and ev.callee == "pte_same"

    marks = marked_since_taken(ff, "ptl", is_same)
    ((nid, i),) = [
        (n, i) for n, evs in enumerate(ff.events) for i, ev in enumerate(evs) if isinstance(ev, Act)
    ]
    assert marks[(nid, i)] is False  # the re-taken path has no pte_same() since
    # before the relock, every path has passed the pte_same() under this hold
    ((unlock_nid, unlock_i),) = [
        (n, i)
        for n, evs in enumerate(ff.events)
        for i, ev in enumerate(evs)
        if isinstance(ev, Call) and ev.callee == "wait_a_bit"
    ]
    assert marks[(unlock_nid, unlock_i)] is False  # released just before: cleared


# -- one piece at a time, in process (analysis/values.py's own mutation runner)


def facts_of(source: str, name: str) -> FunctionFacts:
    analysis = Engine(Config(headers=False)).analyse_source("t.c", source.encode())
    return next(ff for ff in analysis.facts.functions if ff.fn.name == name)


def where(ff: FunctionFacts, kind: type, text: str = "") -> tuple[int, int]:
    """(node, index) of the one event of `kind` whose site text starts with `text`."""
    (found,) = [
        (n, i)
        for n, evs in enumerate(ff.events)
        for i, ev in enumerate(evs)
        if isinstance(ev, kind) and ev.site.text.startswith(text)
    ]
    return found


@pytest.mark.parametrize(
    ("text", "name", "found"),
    [
        ("pte_same(orig, x)", "orig", True),
        ("orig", "orig", True),
        ("vmf->orig", "orig", False),  # a field of that name
        ("s.orig", "orig", False),
        ("orig_pte", "orig", False),
        ("xorig", "orig", False),
        ("f(vmf->orig_pte)", "vmf->orig_pte", True),
        ("f(vmf->orig_ptex)", "vmf->orig_pte", False),
        ("f(a.b)", "a.b", True),
        ("f(axb)", "a.b", False),  # the name is not a pattern
    ],
)
def test_uses_name_reads_names_not_fields(text: str, name: str, found: bool) -> None:
    assert uses_name(text, name) is found
    assert uses_name(text, name) is found  # and again, from its cached pattern


def test_a_value_is_read_under_a_hold_only_if_read_at_all() -> None:
    site = Site(3, 1, "spin_lock(l)")
    held = Held("excl", site)
    st = LockState(must={LockRef("l", "l"): held}, may={LockRef("l", "l"): held})
    read = Read("pte", "pte_lock", Site(4, 1, "ptep_get(pte)"), "v")
    assert EntryValue("pte_lock", 1, read.site, read, st).read_under(held)
    assert not EntryValue("pte_lock", 1, read.site, read, st).read_under(
        Held("excl", Site(9, 1, "x"))
    )
    assert not EntryValue("pte_lock", 1, read.site, None, st).read_under(held)
    assert not EntryValue("pte_lock", 1, read.site, read, None).read_under(held)


CALLEE_ACT = """
static void set_it(struct vm_fault *vmf, pte_t e)
{
	set_pte_at(vmf->vma->vm_mm, vmf->address, vmf->pte, e);
}

void f(struct vm_fault *w, pte_t orig)
{
	spin_lock(w->ptl);
	if (pte_none(ptep_get(w->pte)))
		set_it(w, orig);
	spin_unlock(w->ptl);
	set_pte_at(w->vma->vm_mm, 0, w->pte, orig);
}
"""


def test_a_callees_act_happens_at_the_call_in_the_callers_terms() -> None:
    ff = facts_of(CALLEE_ACT, "f")
    call_at = where(ff, Call, "set_it(")
    direct_at = where(ff, Act, "set_pte_at(")
    plain = act_events(ff)
    named = act_events(ff, {"set_it": ("vmf", "e")})
    assert [(n, i, a.target, a.via) for n, i, a, _ in plain] == [
        (*call_at, "vmf->pte", "set_it"),  # the callee's own spelling without its parameters
        (*direct_at, "w->pte", None),
    ]
    assert [(n, i, a.target) for n, i, a, _ in named] == [
        (*call_at, "w->pte"),
        (*direct_at, "w->pte"),
    ]
    # the state at the call: the caller's lock held; after the unlock: not
    [(_, _, _, at_call), (_, _, _, after)] = named
    assert at_call is ff.before[call_at[0]][call_at[1]] and at_call is not None
    assert [r.inst for r in at_call.must] == ["w->ptl"]
    assert after is not None and not after.must
    # a callee whose parameters are not known keeps its spelling
    assert [a.target for _, _, a, _ in act_events(ff, {"other": ("x",)})][0] == "vmf->pte"


def test_node_texts_are_the_condition_the_arguments_and_the_acts() -> None:
    ff = facts_of(CALLEE_ACT, "f")
    branch = where(ff, Read)[0]
    assert node_texts(ff, branch) == ["pte_none(ptep_get(w->pte))", "ptep_get(w->pte)"]
    assert node_texts(ff, where(ff, Call, "set_it(")[0]) == ["w", "orig", "set_it(w, orig)"]
    assert node_texts(ff, ff.fn.cfg.entry) == []


def test_an_in_place_read_is_carried_by_the_first_call_result_it_feeds() -> None:
    ff = facts_of(
        """
void f(pte_t *pte, pte_t *other)
{
	pte_t y = pte_mkyoung(ptep_get(pte));

	if (pte_none(ptep_get(other)))
		return;
}
""",
        "f",
    )
    young, tested = sorted(entry_values(ff, {"pte_lock"}), key=lambda v: v.site.line)
    assert young.names == {"y"} and young.label == "ptep_get(pte)" and young.read is not None
    # fed only to a condition (`#atom`): no name, but its own node reads it
    assert tested.names == set() and tested.label == "ptep_get(other)"
    assert uses(ff, tested, tested.node)
    assert not uses(ff, tested, young.node)
    assert entry_values(ff, {"pmd_lock"}) == []


def test_names_spread_at_most_six_steps() -> None:
    # written backwards, each round of the spread learns one more name
    body = "\n".join(f"\ta{i} = g(a{i - 1});" for i in range(8, 0, -1))
    ff = facts_of(f"void f(pte_t *pte)\n{{\n\tpte_t a0 = ptep_get(pte);\n{body}\n}}\n", "f")
    (value,) = entry_values(ff, {"pte_lock"})
    assert value.names == {f"a{i}" for i in range(7)}
    assert derived_names(ff, ["a0"]) == value.names
    assert derived_names(ff, ["a5"]) == {"a5", "a6", "a7", "a8"}
    assert derived_names(ff, []) == set()


SNAPSHOTS = """
void f(struct vm_fault *vmf, struct walk *w)
{
	if (pte_present(w->f.orig_pte) && pmd_none(vmf->orig_pmd))
		g(vmf->orig_pte, w->orig_ptex);
	return;
	g(vmf->dead.orig_pte);
}
"""


def test_snapshot_fields_found_in_reachable_code_in_name_order() -> None:
    ff = facts_of(SNAPSHOTS, "f")
    snaps = {"orig_pte": "pte_lock", "orig_pmd": "pmd_lock"}
    values = entry_values(ff, {"pte_lock"}, snaps)
    assert [v.label for v in values] == ["vmf->orig_pte", "w->f.orig_pte"]
    (first, _) = values
    assert (first.cls, first.node, first.read, first.state) == (
        "pte_lock",
        ff.fn.cfg.entry,
        None,
        None,
    )
    assert first.site == Site(ff.fn.start_line, 1, "vmf->orig_pte (set by the caller)")
    assert [v.label for v in entry_values(ff, {"pte_lock", "pmd_lock"}, snaps)] == [
        "vmf->orig_pmd",
        "vmf->orig_pte",
        "w->f.orig_pte",
    ]
    assert entry_values(ff, {"pmd_lock"}, {"orig_pte": "pte_lock"}) == []


@pytest.mark.parametrize(
    ("ptr", "table"),
    [
        ("&vmf->pte[i]", "vmf->pte"),
        ("( & ( pte ) )", "pte"),
        ("*(*(pmd))", "pmd"),
        ("pte[0][1]", "pte[0]"),
        ("pmd", "pmd"),
        ("(pte)+1", "(pte)+1"),  # parentheses around part of it stay
    ],
)
def test_entry_pointer_names_the_table(ptr: str, table: str) -> None:
    assert entry_pointer(ptr) == table


def test_rereads_carry_the_locks_held_at_the_test() -> None:
    ff = facts_of(CALLEE_ACT, "f")
    rereads = act_rereads(ff)
    under = ff.before[where(ff, Read)[0]][0]
    assert under is not None
    keys = under.held_keys()
    assert keys  # the pte lock, by its key
    [(via_at, via), (direct_at, direct)] = sorted(rereads, key=lambda k: k[1].site.line)
    assert via.via == "set_it" and direct.via is None
    # nothing released before the test: under whatever the caller holds too
    assert rereads[(via_at, via)] == (("pte_lock", "w->pte", frozenset(keys | {"#caller"})),)
    # the act after the unlock is reached from the test too
    assert rereads[(direct_at, direct)] == rereads[(via_at, via)]


def test_rereads_after_a_release_are_not_under_the_callers_hold() -> None:
    ff = facts_of(
        """
void f(struct vm_fault *w, pte_t orig)
{
	spin_unlock(w->ptl);
	if (pte_none(ptep_get(w->pte)))
		set_pte_at(w->vma->vm_mm, 0, w->pte, orig);
}
""",
        "f",
    )
    ((_, got),) = act_rereads(ff).items()
    assert got == (("pte_lock", "w->pte", frozenset()),)


def test_an_acts_own_rereads_are_lifted_to_the_call() -> None:
    source = """
static void fill(struct vm_fault *vmf, pte_t e)
{
	if (!pte_none(ptep_get(vmf->pte)))
		return;
	set_pte_at(vmf->vma->vm_mm, vmf->address, vmf->pte, e);
}

void f(struct vm_fault *w, pte_t orig)
{
	spin_lock(w->ptl);
	fill(w, orig);
	spin_unlock(w->ptl);
}
"""
    ff = facts_of(source, "f")
    ((_, got),) = act_rereads(ff).items()
    (cls, ptr, keys) = got[0]
    assert (cls, "#caller" in keys, len(got)) == ("pte_lock", True, 1)
    assert keys - {"#caller"} == ff.before[where(ff, Call, "fill(")[0]][0].held_keys()
    assert ptr.endswith("pte")


REACHING = """
void two(spinlock_t *l, int c)
{
	if (c)
		spin_lock(l);
	else
		spin_lock_bh(l);
	spin_unlock(l);
	spin_unlock(l);
}

void downgrade(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	mmap_write_downgrade(mm);
	mmap_read_unlock(mm);
}

void via_helper(struct mm_struct *mm, struct mm_struct *other)
{
	mmap_write_lock(mm);
	mmap_write_lock(other);
	lower(mm);
	mmap_read_unlock(mm);
	mmap_write_unlock(other);
}

void none(spinlock_t *l)
{
	spin_lock(l);
}
"""


def test_every_acquisition_reaching_a_release_and_none_after_it() -> None:
    ff = facts_of(REACHING, "two")
    holds = reaching_holds(ff)
    first, second = sorted(holds, key=lambda k: ff.events[k[0]][k[1]].site.line)
    assert [h.primitive for h in holds[first]] == ["spin_lock", "spin_lock_bh"]
    assert all(h.node >= 0 and h.downgraded == "" and not h.lowered for h in holds[first])
    assert holds[second] == ()
    assert reaching_holds(facts_of(REACHING, "none")) == {}


def test_a_downgrade_is_the_hold_a_later_release_undoes() -> None:
    ff = facts_of(REACHING, "downgrade")
    ((_, (hold,)),) = reaching_holds(ff).items()
    assert (hold.primitive, hold.args, hold.lowered) == ("mmap_write_downgrade", (), True)
    assert hold.node == where(ff, Downgrade)[0]


def test_a_call_to_a_downgrader_marks_the_holds_of_its_argument() -> None:
    ff = facts_of(REACHING, "via_helper")
    got = {
        ff.events[n][i].site.text: hs
        for (n, i), hs in reaching_holds(ff, {"lower": "mmap_write_downgrade"}).items()
    }
    ((mine,), (other,)) = got["mmap_read_unlock(mm)"], got["mmap_write_unlock(other)"]
    assert mine.downgraded == "mmap_write_downgrade" and not mine.lowered
    assert other.downgraded == ""
    plain = reaching_holds(ff)
    assert all(h.downgraded == "" for hs in plain.values() for h in hs)


def test_downgraders_are_found_through_each_other() -> None:
    analysis = Engine(Config(headers=False)).analyse_source(
        "t.c",
        b"""
void top(struct mm_struct *mm) { middle(mm); }
void middle(struct mm_struct *mm) { low(mm); }
void low(struct mm_struct *mm) { mmap_write_downgrade(mm); }
void other(struct mm_struct *mm) { work(mm); }
void both(struct mm_struct *mm) { low(mm); top(mm); }
""",
    )
    got = downgraders(analysis.facts.functions)
    assert got == {n: "mmap_write_downgrade" for n in ("both", "low", "middle", "top")}


def test_marks_start_set_under_a_lock_the_caller_holds() -> None:
    ff = facts_of(
        "void callers(spinlock_t *l)\n{\n\twork();\n\tspin_unlock(l);\n\twork();\n}\n", "callers"
    )
    assert [r.inst for r in ff.entry_locks] == ["l"]
    never = marked_since_taken(ff, "l", lambda _n, _e, _s: False)
    first, release, after = sorted(never, key=lambda k: ff.events[k[0]][k[1]].site.line)
    assert never[first] is True  # the caller's hold: its paths are the caller's to judge
    assert never[release] is True
    assert never[after] is False  # released: cleared
    assert marked_since_taken(ff, "m", lambda _n, _e, _s: False)[first] is False


def test_a_node_mark_sets_the_mark_after_the_node() -> None:
    ff = facts_of(
        """
void f(spinlock_t *l, int c)
{
	spin_lock(l);
	if (c)
		work();
	spin_unlock(l);
}
""",
        "f",
    )
    branch = next(n for n, node in enumerate(ff.fn.cfg.nodes) if node.kind == "branch")
    unlock = where(ff, Release)
    never = marked_since_taken(ff, "l", lambda _n, _e, _s: False)
    assert never[unlock] is False
    marks = marked_since_taken(ff, "l", lambda _n, _e, _s: False, lambda n: n == branch)
    assert marks[unlock] is True
    # the acquisition itself can be the mark (a primitive that re-tests)
    took = marked_since_taken(ff, "l", lambda _n, e, _s: isinstance(e, Acquire))
    assert took[unlock] is True


def test_holds_reach_a_release_round_a_loop() -> None:
    ff = facts_of(
        """
void f(spinlock_t *l, int n)
{
	spin_lock(l);
	while (n--) {
		spin_unlock(l);
		work();
		spin_lock_bh(l);
	}
	spin_unlock(l);
}
""",
        "f",
    )
    got = {ff.events[n][i].site.line: hs for (n, i), hs in reaching_holds(ff).items()}
    # the loop's release is reached by the first acquisition and, round the
    # back edge, by the one in the loop
    assert [h.primitive for h in got[6]] == ["spin_lock", "spin_lock_bh"]
    assert [h.primitive for h in got[10]] == ["spin_lock", "spin_lock_bh"]


def test_marks_round_a_loop_and_marks_that_hold() -> None:
    ff = facts_of(
        """
void f(spinlock_t *l, pte_t *pte, pte_t orig, int n)
{
	spin_lock(l);
	if (!pte_same(ptep_get(pte), orig)) {
		spin_unlock(l);
		return;
	}
	while (n--) {
		work();
		spin_unlock(l);
		spin_lock(l);
	}
	done();
	spin_unlock(l);
}
""",
        "f",
    )

    def is_same(_nid: int, ev: object, _st: object) -> bool:
        return isinstance(ev, Call) and ev.callee == "pte_same"

    marks = marked_since_taken(ff, "l", is_same)
    # before the loop every path passed pte_same() under this hold
    assert marks[where(ff, Call, "work(")] is False  # round the loop: re-taken
    assert marks[where(ff, Call, "done(")] is False
    straight = facts_of(
        "void g(spinlock_t *l, pte_t *pte, pte_t orig)\n{\n\tspin_lock(l);\n"
        "\tif (!pte_same(ptep_get(pte), orig)) {\n\t\tspin_unlock(l);\n\t\treturn;\n\t}\n"
        "\tdone();\n\tspin_unlock(l);\n}\n",
        "g",
    )
    assert marked_since_taken(straight, "l", is_same)[where(straight, Call, "done(")] is True


def test_downgraders_are_found_whatever_the_order_of_names() -> None:
    analysis = Engine(Config(headers=False)).analyse_source(
        "t.c",
        b"""
void a_low(struct mm_struct *mm) { work(mm); mmap_write_downgrade(mm); }
void b_top(struct mm_struct *mm) { c_mid(mm); }
void c_mid(struct mm_struct *mm) { d_low(mm); }
void d_low(struct mm_struct *mm) { mmap_write_downgrade(mm); }
""",
    )
    got = downgraders(analysis.facts.functions)
    assert sorted(got) == ["a_low", "b_top", "c_mid", "d_low"]


def test_a_name_already_carrying_the_value_is_skipped_not_the_rest() -> None:
    body = "\n".join(f"\ta{i} = g(a{i - 1});" for i in range(3, 0, -1))
    ff = facts_of(
        f"void f(pte_t *pte)\n{{\n\tpte_t a0 = ptep_get(pte);\n\ta0 = h(a0);\n{body}\n}}\n", "f"
    )
    (value,) = entry_values(ff, {"pte_lock"})
    assert value.names == {"a0", "a1", "a2", "a3"}


def test_snapshots_assigned_by_a_call_or_seen_after_dead_code() -> None:
    ff = facts_of(
        """
void f(struct vm_fault *vmf, struct walk *w)
{
	vmf->orig_pte = pte_mkyoung(x);
	goto out;
	g(vmf->dead.orig_pte);
out:
	g(vmf->orig_pte, w->orig_pte);
}
""",
        "f",
    )
    values = entry_values(ff, {"pte_lock"}, {"orig_pte": "pte_lock"})
    assert [v.label for v in values] == ["w->orig_pte"]


def test_rereads_skip_statements_tests_after_the_act_and_see_every_release() -> None:
    ff = facts_of(
        """
void f(struct vm_fault *w, pte_t orig)
{
	pte_t v = ptep_get(w->pte);

	spin_unlock(w->ptl);
	if (pte_none(ptep_get(w->pte)))
		set_pte_at(w->vma->vm_mm, 0, w->pte, orig);
	if (pte_none(ptep_get(w->other)))
		g(v);
	spin_unlock(w->lock);
}
""",
        "f",
    )
    ((_, got),) = act_rereads(ff).items()
    # only the test before the act, after the first release: not under the caller's hold
    assert [(cls, ptr, "#caller" in keys) for cls, ptr, keys in got] == [
        ("pte_lock", "w->pte", False)
    ]


def test_path_hold_sites_after_each_event_of_a_node() -> None:
    ff = facts_of(
        "void f(spinlock_t *a, spinlock_t *b)\n{\n\tspin_lock(a);\n\tspin_lock(b);\n"
        "\tspin_unlock(a), work(), spin_unlock(b);\n}\n",
        "f",
    )
    got = {
        ff.events[n][i].site.text: {s.line for s in sites}
        for (n, i), sites in path_hold_sites(ff).items()
    }
    assert got == {"spin_unlock(a)": {3}, "spin_unlock(b)": {4}}


def test_an_in_place_read_is_carried_by_the_next_call_it_feeds_only() -> None:
    # a call before the read in the statement, and one after the first it feeds
    ff = facts_of(
        "void f(pte_t *pte)\n{\n\tpte_t a, y, z;\n\n"
        "\ta = g(pte), y = pte_mkyoung(ptep_get(pte)), z = h(pte);\n}\n",
        "f",
    )
    (value,) = entry_values(ff, {"pte_lock"})
    assert value.names == {"y"}
    # fed to a call without a result, right after one with a result: no name
    ff = facts_of("void f(pte_t *pte)\n{\n\tpte_t a;\n\n\ta = g(pte), h(ptep_get(pte));\n}\n", "f")
    (value,) = entry_values(ff, {"pte_lock"})
    assert value.names == set()


def test_a_snapshot_after_an_assigned_one_in_the_same_text() -> None:
    ff = facts_of(
        """
void f(struct vm_fault *vmf, struct walk *w)
{
	vmf->orig_pte = pte_mkyoung(x);
	if (vmf->orig_pte.pte == w->orig_pte.pte)
		return;
}
""",
        "f",
    )
    values = entry_values(ff, {"pte_lock"}, {"orig_pte": "pte_lock"})
    assert [v.label for v in values] == ["w->orig_pte"]


def test_rereads_sorted_by_class_then_table() -> None:
    # the classes' order is not the tables', and the held keys' subset order
    # is not the tables' either
    ff = facts_of(
        """
void f(struct w *a, struct w *y, struct w *z, pte_t orig)
{
	if (pte_none(ptep_get(a->pte)))
		return;
	spin_unlock(a->ptl);
	if (pmd_none(*y->pmd))
		return;
	if (pte_none(ptep_get(z->pte)))
		return;
	set_pte_at(mm, 0, a->pte, orig);
}
""",
        "f",
    )
    ((_, got),) = act_rereads(ff).items()
    assert [(cls, ptr, "#caller" in keys) for cls, ptr, keys in got] == [
        ("pmd_lock", "y->pmd", False),
        ("pte_lock", "a->pte", True),
        ("pte_lock", "z->pte", False),
    ]


def _is_mark_call(_nid: int, ev: object, _st: LockState) -> bool:
    return isinstance(ev, Call) and ev.callee == "mark"


def test_marks_ignore_code_the_lock_dataflow_never_reaches() -> None:
    # the second `if (c)` is decided by the first: its release never runs, so
    # the mark made before still holds at work()
    ff = facts_of(
        """
void f(spinlock_t *l, int c)
{
	spin_lock(l);
	mark();
	if (c) {
		spin_unlock(l);
		return;
	}
	if (c)
		spin_unlock(l);
	work();
	spin_unlock(l);
}
""",
        "f",
    )
    dead = [n for n, evs in enumerate(ff.events) if evs and ff.state_in[n] is None]
    assert len(dead) == 1 and ff.rpo_index[dead[0]] >= 0  # in the CFG, not in the dataflow
    marks = marked_since_taken(ff, "l", _is_mark_call)
    assert marks[where(ff, Call, "work(")] is True


def test_a_mark_holds_for_the_rest_of_its_statement() -> None:
    ff = facts_of(
        "void f(spinlock_t *l)\n{\n\tspin_lock(l);\n\twork(mark());\n\tspin_unlock(l);\n}\n", "f"
    )
    marks = marked_since_taken(ff, "l", _is_mark_call)
    assert marks[where(ff, Call, "mark(")] is False
    assert marks[where(ff, Call, "work(")] is True
    assert marks[where(ff, Release)] is True
