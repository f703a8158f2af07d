"""Whose page tables a lock or an act names (lockcheck/rules/tables.py)."""

from __future__ import annotations

import pytest

from lockcheck.model.ir import Acquire, Act, LockRef, Site
from lockcheck.rules.tables import TableOwners, call_args, lock_mm


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("pud_lock(&init_mm, pud)", ["init_mm", "pud"]),
        ("f(a, g(b, c), d[1])", ["a", "g(b,c)", "d[1]"]),
        ("spin_lock(&(args.mm->page_table_lock))", ["args.mm->page_table_lock"]),
        ("f()", []),
        ("not a call", []),
    ],
)
def test_call_args_splits_at_the_top_level(text: str, want: list[str]) -> None:
    assert call_args(text) == want


def _acquire(inst: str, text: str, args: tuple[str, ...] = ()) -> Acquire:
    return Acquire(LockRef(inst, "pmd_lock"), "excl", Site(3, 2, text), "p", args=args)


def test_the_mm_of_a_lock_is_its_holder_or_the_first_argument() -> None:
    by_field = _acquire(
        "init_mm.page_table_lock",
        "spin_lock(&init_mm.page_table_lock)",
        ("init_mm.page_table_lock",),
    )
    assert lock_mm(by_field) == "init_mm"
    assert lock_mm(_acquire("ptl", "pmd_lock(vmf->vma->vm_mm, pmd)")) == "vmf->vma->vm_mm"
    assert lock_mm(_acquire("ptl", "spin_lock(ptl)", ("ptl",))) is None


def test_an_act_names_the_kernel_mm_only_among_its_own_arguments() -> None:
    owners = TableOwners((), ["init_mm"], [])
    assert owners.act_on_kernel_mm(
        Act("pte-clear", "pte", Site(1, 1, "pte_clear(&init_mm, a, pte)"))
    )
    assert not owners.act_on_kernel_mm(Act("pte-clear", "pte", Site(1, 1, "pte_clear(mm, a, pte)")))
    # a helper doing the act is judged by what it does, not by its call
    via = Act("pte-clear", "pte", Site(1, 1, "zap_it(&init_mm, pte)"), via="zap_it")
    assert not owners.act_on_kernel_mm(via)
    assert not TableOwners((), [], []).act_on_kernel_mm(
        Act("pte-clear", "pte", Site(1, 1, "pte_clear(&init_mm, a, pte)"))
    )
