"""The evidence that excuses a held lock, and the review of two versions of a file."""

from __future__ import annotations

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import InputError
from lockcheck.review import review_versions
from lockcheck.rules.lock_balance import lock_named
from lockcheck.rules.lock_effect import return_kind


@pytest.mark.parametrize(
    "name",
    [
        "pmd_lock",
        "__pmd_trans_huge_lock",
        "lock_vma_under_rcu",
        "mm_take_all_locks",
        "anon_vma_lock_read",
        "folio_lock_anon_vma_read",
        "folio_trylock_flag",
        "mlx5_esw_try_lock",
    ],
)
def test_names_that_say_they_lock(name: str) -> None:
    assert lock_named(name)


@pytest.mark.parametrize(
    "name",
    [
        "uses_lock_helper_leaks",
        "unlock_page",
        "memblock_add",
        "do_mlock",
        "clock_tick",
        "zap_block",
    ],
)
def test_names_that_do_not(name: str) -> None:
    assert not lock_named(name)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("", "return"),
        ("-EINVAL", "error return"),
        ("NULL", "error return"),
        ("ERR_PTR(-ENOMEM)", "error return"),
        ("0", "return of zero"),
        ("ret:zero", "return of zero"),
        ("ret", "return of a value"),
        ("VM_FAULT_WRITE", "return of a value"),
    ],
)
def test_kinds_of_return(value: str, kind: str) -> None:
    assert return_kind(value) == kind


BEFORE = """
static int grab(struct w *w)
{
	spin_lock(&w->lock);
	if (w->bad) {
		spin_unlock(&w->lock);
		return -EINVAL;
	}
	w->n++;
	spin_unlock(&w->lock);
	return 0;
}
"""


def test_review_versions_reports_a_dropped_unlock_once() -> None:
    """The leak is lock-balance's; lock-effect-changed does not repeat it."""
    after = BEFORE.replace("\t\tspin_unlock(&w->lock);\n\t\treturn -EINVAL;", "\t\treturn -EINVAL;")
    engine = Engine(Config(select={"lock-balance", "lock-effect-changed"}))
    found = [rf.finding for rf in review_versions(engine, "w.c", BEFORE, after).findings]
    assert [(f.rule, f.function) for f in found] == [("lock-balance", "grab")]
    alone = Engine(Config(select={"lock-effect-changed"}))
    found = [rf.finding for rf in review_versions(alone, "w.c", BEFORE, after).findings]
    assert [(f.rule, f.line) for f in found] == [("lock-effect-changed", 6)]
    assert "error return" in found[0].message


def test_review_versions_of_the_same_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match="the two versions are the same"):
        review_versions(Engine(), "w.c", BEFORE, BEFORE)
