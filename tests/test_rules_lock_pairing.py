"""lock-pairing in process: the pack's rows, and what a mismatch report says.

`make mutate` runs these first for lockcheck/rules/lock_pairing.py; the
annotated fixture checks reported lines, not the rows' parsing or wording.
"""

from __future__ import annotations

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.rules.lock_pairing import _Pair, _parse

SPEC = RuleSpec("pairing", "lock-pairing", "error", "m", "s", "p", path="p.toml", index=3)


def test_rows_read_acquires_arrow_releases() -> None:
    (pair,) = _parse(SPEC, ["  a_lock  b_lock -> a_unlock spin_unlock+pte_unmap x+y "])
    assert pair == _Pair(
        frozenset({"a_lock", "b_lock"}),
        frozenset({"a_unlock"}),
        {"spin_unlock": "pte_unmap", "x": "y"},
    )
    assert pair.wanted() == "`a_unlock()` or `spin_unlock()` then `pte_unmap()` or `x()` then `y()`"
    two = _parse(SPEC, ["a -> b", "c -> d e"])
    assert [p.wanted() for p in two] == ["`b()`", "`d()` or `e()`"]


@pytest.mark.parametrize("row", ["a b", "-> b", "a ->", " -> "])
def test_a_row_without_both_sides_is_a_pack_error(row: str) -> None:
    with pytest.raises(PackError) as err:
        _parse(SPEC, ["ok -> fine", row])
    assert str(err.value) == (
        "rule pack p.toml: rule[3] (pairing).pairs[1]: must read 'ACQUIRE... -> RELEASE...'"
    )


CODE = """
static void irq_mismatch(spinlock_t *l)
{
	spin_lock_irq(l);
	work();
	spin_unlock(l);
}

static void flags_mismatch(spinlock_t *l)
{
	unsigned long flags, other;

	spin_lock_irqsave(l, flags);
	spin_unlock_irqrestore(l, other);
}

static void flags_match(spinlock_t *l)
{
	unsigned long flags;

	spin_lock_irqsave(l, flags);
	spin_unlock_irqrestore(l, flags);
}

static void split_unmap(struct mm_struct *mm, pmd_t *pmd, unsigned long addr)
{
	spinlock_t *ptl;
	pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);

	spin_unlock(ptl);
	pte_unmap(pte);
}

static void split_other_unmap(struct mm_struct *mm, pmd_t *pmd, unsigned long addr, pte_t *other)
{
	spinlock_t *ptl;
	pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);

	spin_unlock(ptl);
	pte_unmap(other);
}

static void downgraded(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	mmap_write_downgrade(mm);
	mmap_read_unlock(mm);
}

static void callers(spinlock_t *l)
{
	spin_unlock_irq(l);
}

static void my_unlock(spinlock_t *lk)
{
	spin_unlock(lk);
}

static void helper_then_mismatch(spinlock_t *a, spinlock_t *b)
{
	spin_lock(a);
	my_unlock(a);
	spin_lock_irq(b);
	spin_unlock(b);
}

static void downgraded_wrong(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	mmap_write_downgrade(mm);
	mmap_write_unlock(mm);
}

static void both_wrong(spinlock_t *w, int c)
{
	if (c)
		spin_lock_irq(w);
	else
		spin_lock_bh(w);
	spin_unlock(w);
}

static void two_ways(spinlock_t *m, int c)
{
	if (c)
		spin_lock(m);
	else
		spin_lock_irq(m);
	spin_unlock(m);
}
"""


def findings() -> list[Finding]:
    engine = Engine(Config(packs=["mm"], select={"lock-pairing"}, headers=False))
    return engine.findings_for(engine.analyse_source("t.c", CODE.encode()))


def line(text: str) -> int:
    (n,) = [i for i, t in enumerate(CODE.splitlines(), 1) if t.strip() == text]
    return n


def test_mismatched_releases_and_what_the_report_says() -> None:
    found = findings()
    got = {f.function: f for f in found}
    assert len(found) == len(got)  # one report per release, however many takes mismatch
    # a same-file helper's release is not judged; a mismatch after it is
    assert sorted(got) == [
        "both_wrong",
        "downgraded_wrong",
        "flags_mismatch",
        "helper_then_mismatch",
        "irq_mismatch",
        "split_other_unmap",
        "two_ways",
    ]
    assert got["helper_then_mismatch"].line == line("spin_unlock(b);")
    # one of the two acquisitions reaching the release does not pair with it
    assert got["two_ways"].line == line("spin_unlock(m);")
    # downgraded to read: the write unlock no longer pairs
    assert got["downgraded_wrong"].line == line("mmap_write_unlock(mm);")
    assert [r.line for r in got["two_ways"].related] == [line("spin_lock_irq(m);")]
    irq = got["irq_mismatch"]
    assert irq.line == line("spin_unlock(l);") and irq.expected == ("spin_lock_irq",)
    assert irq.message == (
        "`spin_unlock()` releases `l`, but it was taken with `spin_lock_irq()`, "
        "which is undone by `spin_unlock_irq()`"
    )
    assert [(r.line, r.message) for r in irq.related] == [
        (line("spin_lock_irq(l);"), "`l` taken with `spin_lock_irq()` here")
    ]
    flags = got["flags_mismatch"]
    assert flags.line == line("spin_unlock_irqrestore(l, other);")
    assert flags.message == (
        "`spin_unlock_irqrestore()` releases `l`, but restores the interrupt state from "
        "`other`, but `spin_lock_irqsave()` saved it in `flags`"
    )
    unmap = got["split_other_unmap"]
    assert unmap.message.endswith(
        "taken with `pte_offset_map_lock()`, which is undone by `pte_unmap_unlock()` "
        "or `spin_unlock()` then `pte_unmap()`"
    )


HELPERS = """
static void my_downgrade(struct mm_struct *mm)
{
	mmap_write_downgrade(mm);
}

static void helper_downgraded_wrong(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	my_downgrade(mm);
	up_read(&mm->mmap_lock);
}

static void helper_downgraded_right(struct mm_struct *mm)
{
	mmap_write_lock(mm);
	my_downgrade(mm);
	mmap_read_unlock(mm);
}

static void refuted_then_real(spinlock_t *l, int c)
{
	if (c)
		spin_lock_bh(l);
	else
		spin_lock_irq(l);
	if (c)
		spin_unlock_bh(l);
	else
		spin_unlock(l);
}
static void bh_handed_irq_not(spinlock_t *l, int c)
{
	if (c)
		spin_lock_bh(l);
	else
		spin_lock_irq(l);
	spin_unlock(l);
	local_bh_enable();
}

static void raw_taken_plain_released(raw_spinlock_t *a)
{
	raw_spin_lock_irq(a);
	spin_unlock(a);
	local_irq_enable();
}

static void flags_restored_by_a_helper(spinlock_t *a)
{
	unsigned long flags;

	spin_lock_irqsave(a, flags);
	spin_unlock(a);
	my_restore(flags);
}

static void lock_passed_on_irqs_off(spinlock_t *a)
{
	spin_lock_irq(a);
	spin_unlock(a);
	wait_for(a);
}

static void nested_wrong_flags(spinlock_t *a, int depth)
{
	unsigned long flags, old = 0;

	spin_lock_irqsave_nested(a, flags, depth);
	spin_unlock_irqrestore(a, old);
}
static void irqs_off_around_a_plain_lock(spinlock_t *l)
{
	unsigned long flags;

	local_irq_save(flags);
	spin_lock(l);
	spin_unlock_irqrestore(l, flags);
}

static void irqs_disabled_then_plain_lock(spinlock_t *l)
{
	local_irq_disable();
	spin_lock(l);
	spin_unlock_irq(l);
}

static void irqs_saved_then_plain_lock(spinlock_t *l)
{
	unsigned long flags;

	local_irq_save(flags);
	spin_lock(l);
	spin_unlock_irq(l);
}

static void bh_disabled_then_plain_lock(spinlock_t *l)
{
	local_bh_disable();
	spin_lock(l);
	spin_unlock_bh(l);
}

static void irqs_enabled_after_plain_unlock(spinlock_t *l)
{
	spin_lock_irq(l);
	spin_unlock(l);
	local_irq_enable();
}

static void irqs_restored_after_plain_unlock(spinlock_t *l)
{
	unsigned long flags;

	local_irq_save(flags);
	spin_lock_irq(l);
	spin_unlock(l);
	local_irq_restore(flags);
}

static void nested_irqsave_restored_later(spinlock_t *l, int depth)
{
	unsigned long flags;

	spin_lock_irqsave_nested(l, flags, depth);
	spin_unlock(l);
	local_irq_restore(flags);
}

static void flags_saved_lock_passed_on(spinlock_t *a)
{
	unsigned long flags;

	spin_lock_irqsave(a, flags);
	spin_unlock(a);
	wait_for(a);
}

static void callers_lock_dropped_first(spinlock_t *a, spinlock_t *b)
{
	spin_unlock_irq(a);
	spin_lock(b);
	spin_unlock_irq(b);
}

static void flags_saved_by_a_helper(spinlock_t *l)
{
	unsigned long flags;

	save_irqs(&flags);
	spin_lock(l);
	spin_unlock_irqrestore(l, flags);
}

static void lock_used_then_irq_unlock(spinlock_t *l)
{
	spin_lock(l);
	use(l);
	spin_unlock_irq(l);
}
"""


def reported_lines(code: str) -> dict[tuple[str, str], Finding]:
    """(function, the reported line's text) -> its finding."""
    engine = Engine(Config(packs=["mm"], select={"lock-pairing"}, headers=False))
    lines = code.splitlines()
    found = engine.findings_for(engine.analyse_source("t.c", code.encode()))
    return {(f.function, lines[f.line - 1].strip()): f for f in found}


def test_a_helpers_downgrade_allows_only_the_read_release() -> None:
    """A lock a same-file helper may have downgraded is released by its
    write row or by the read row it was lowered to; a release of neither
    (here the plain rwsem's `up_read()`) is still a mismatch."""
    got = reported_lines(HELPERS)
    assert ("helper_downgraded_wrong", "up_read(&mm->mmap_lock);") in got
    assert not [k for k in got if k[0] == "helper_downgraded_right"]


def test_an_acquisition_refuted_on_the_paths_does_not_hide_the_next() -> None:
    """With `c` set only the _bh lock reaches `spin_unlock(l)` (refuted);
    the _irq acquisition listed after it reaches it with `c` clear."""
    got = reported_lines(HELPERS)
    assert [k for k in got if k[0] == "refuted_then_real"] == [
        ("refuted_then_real", "spin_unlock(l);")
    ]
    assert got[("refuted_then_real", "spin_unlock(l);")].expected == ("spin_lock_irq",)


def test_an_irq_part_is_handed_over_only_where_another_operation_does_it() -> None:
    """`_bh` handed over to a later `local_bh_enable()` does not excuse the
    `_irq` acquisition reaching the same release; a raw lock released with
    the plain unlock is a mismatch whatever turns interrupts back on; flags
    saved by `_irqsave` and handed to a helper are restored there; the lock
    itself handed to a call restores nothing."""
    got = reported_lines(HELPERS)
    assert got[("bh_handed_irq_not", "spin_unlock(l);")].expected == ("spin_lock_irq",)
    assert got[("raw_taken_plain_released", "spin_unlock(a);")].expected == ("raw_spin_lock_irq",)
    assert not [k for k in got if k[0] == "flags_restored_by_a_helper"]
    assert ("lock_passed_on_irqs_off", "spin_unlock(a);") in got


def test_flags_of_a_nested_irqsave_are_the_argument_after_the_lock() -> None:
    (nested,) = [f for k, f in reported_lines(HELPERS).items() if k[0] == "nested_wrong_flags"]
    assert nested.message == (
        "`spin_unlock_irqrestore()` releases `a`, but restores the interrupt state from "
        "`old`, but `spin_lock_irqsave_nested()` saved it in `flags`"
    )


def test_another_operation_doing_the_interrupt_part() -> None:
    """The kernel's own shapes: interrupts or bottom halves turned off before
    a plain lock and back on by the release's `_irq`/`_bh`/`_irqrestore`
    (or on after a plain unlock), a nested irqsave ended by
    `local_irq_restore()`, flags saved through a helper given `&flags`. Not
    a hand-over: an earlier `_irq` unlock (it turned interrupts on), a later
    call given the lock rather than the flags, a call given the lock before
    an `_irq` unlock."""
    got = reported_lines(HELPERS)
    for quiet in (
        "irqs_off_around_a_plain_lock",
        "irqs_disabled_then_plain_lock",
        "irqs_saved_then_plain_lock",
        "bh_disabled_then_plain_lock",
        "irqs_enabled_after_plain_unlock",
        "irqs_restored_after_plain_unlock",
        "nested_irqsave_restored_later",
        "flags_saved_by_a_helper",
    ):
        assert not [k for k in got if k[0] == quiet], quiet
    assert got[("flags_saved_lock_passed_on", "spin_unlock(a);")].expected == ("spin_lock_irqsave",)
    assert got[("callers_lock_dropped_first", "spin_unlock_irq(b);")].expected == ("spin_lock",)
    assert got[("lock_used_then_irq_unlock", "spin_unlock_irq(l);")].expected == ("spin_lock",)
