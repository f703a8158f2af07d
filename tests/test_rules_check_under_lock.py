"""check-under-lock in process: which held sets satisfy it, and what a report says.

`make mutate` runs these first for lockcheck/rules/check_under_lock.py; the
annotated fixtures check the reported lines, not the wording, the related
locations or the lock matching on its own.
"""

from __future__ import annotations

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding
from lockcheck.packs import RuleSpec
from lockcheck.rules.check_under_lock import CheckUnderLock, lock_phrase, satisfied


@pytest.mark.parametrize(
    ("keys", "wanted", "ok"),
    [
        ({"pte_lock:excl"}, ["pte_lock"], True),
        ({"mmap_lock:read"}, ["mmap_lock"], True),  # no mode: either
        ({"mmap_lock:read"}, ["mmap_lock:write"], False),
        ({"mmap_lock:write"}, ["mmap_lock:write"], True),
        ({"mmap_lock:excl"}, ["mmap_lock:write"], True),  # exclusive is at least write
        ({"mmap_lock:excl"}, ["mmap_lock:read"], False),
        ({"pmd_lock:excl"}, ["pte_lock", "pmd_lock"], True),  # any of them
        ({"pte_lock_x:excl"}, ["pte_lock"], False),  # the class exactly
        ({"other:excl", "pte_lock:excl"}, ["pte_lock"], True),
        (set(), ["pte_lock"], False),
        ({"pte_lock:excl"}, [], False),
    ],
)
def test_satisfied(keys: set[str], wanted: list[str], ok: bool) -> None:
    assert satisfied(frozenset(keys), wanted) is ok


def test_lock_phrase() -> None:
    assert lock_phrase("pte_lock") == "the pte lock"
    assert lock_phrase("pmd_lock") == "the pmd lock"
    assert lock_phrase("mmap_lock:read") == "the mmap lock"
    assert lock_phrase("mmap_lock:write") == "the mmap lock for write"
    assert lock_phrase("mmap_lock") == "the mmap lock (either mode)"
    assert lock_phrase("i_mmap_rwsem") == "`i_mmap_rwsem`"


DETACH = """
static void detach(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmd)
{
	struct mm_struct *mm = vma->vm_mm;
	spinlock_t *ptl;

	mmap_read_lock(mm);
	if (vma->anon_vma)
		goto out;
	ptl = pte_lockptr(mm, pmd);
	spin_lock(ptl);
	pmdp_collapse_flush(vma, haddr, pmd);
	spin_unlock(ptl);
out:
	mmap_read_unlock(mm);
}
"""

VIA = """
static void drop_table(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmd)
{
	pmdp_collapse_flush(vma, haddr, pmd);
}

static void detach_via(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmd)
{
	if (vma->anon_vma)
		return;
	if (vma->anon_vma)
		return;
	drop_table(vma, haddr, pmd);
}
"""

RECHECKED = """
static void detach_rechecked(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmd)
{
	struct mm_struct *mm = vma->vm_mm;
	spinlock_t *ptl;

	if (vma->anon_vma)
		return;
	ptl = pte_lockptr(mm, pmd);
	spin_lock(ptl);
	if (!vma->anon_vma)
		pmdp_collapse_flush(vma, haddr, pmd);
	spin_unlock(ptl);
}
"""

RULE = "anon-vma-under-ptl"
WANTED = "the pte lock or the mmap lock for write"


def findings(code: str, rule: str = RULE) -> list[Finding]:
    engine = Engine(Config(packs=["mm"], select={rule}, headers=False))
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def line(code: str, text: str, nth: int = 0) -> int:
    return [i for i, t in enumerate(code.splitlines(), 1) if text in t][nth]


def test_an_unlocked_check_deciding_a_removal() -> None:
    (f,) = findings(DETACH)
    assert (f.line, f.function) == (line(DETACH, "if (vma->anon_vma)"), "detach")
    assert f.message.startswith(
        "`vma->anon_vma` decides whether the page table is removed, "
        f"but is tested without {WANTED};"
    )
    assert f.message.endswith("(held: `mm->mmap_lock:read`)")
    assert f.held == ("mm->mmap_lock:read",) and f.expected == ("pte_lock", "mmap_lock:write")
    # where a wanted lock is taken later, and the act
    assert [(r.line, r.message) for r in f.related] == [
        (line(DETACH, "spin_lock(ptl)"), "`ptl` taken here"),
        (line(DETACH, "pmdp_collapse_flush"), "`pmdp_collapse_flush(vma, haddr, pmd)` here"),
    ]


def test_an_act_in_a_callee_and_two_unlocked_checks() -> None:
    found = findings(VIA)
    assert [f.line for f in found] == [
        line(VIA, "if (vma->anon_vma)", 0),
        line(VIA, "if (vma->anon_vma)", 1),
    ]
    for f in found:
        assert f.message.endswith("(held: no lock)") and f.held == ()
        assert [(r.line, r.message) for r in f.related] == [
            (line(VIA, "drop_table(vma"), "`drop_table()` removes the page table here")
        ]


def test_a_recheck_under_the_lock_covers_the_act() -> None:
    assert findings(RECHECKED) == []
    unguarded = RECHECKED.replace("\tif (!vma->anon_vma)\n\t", "\t")
    (f,) = findings(unguarded)
    assert f.line == line(unguarded, "if (vma->anon_vma)")


def test_a_rule_missing_a_parameter_is_a_pack_error() -> None:
    spec = RuleSpec(
        "r", "check-under-lock", "error", "m", "s", "p", params={"flag": "x", "acts": []}
    )
    with pytest.raises(PackError) as err:
        CheckUnderLock(spec)  # type: ignore[no-untyped-call]
    assert str(err.value) == "rule pack p: rule r: missing 'locks'"


HEAD = (
    "static void {name}(struct vm_area_struct *vma, unsigned long haddr, pmd_t *pmd, int c)\n{{\n"
)
PTL = "\tspinlock_t *ptl = pte_lockptr(vma->vm_mm, pmd);\n\n"


def fn(name: str, body: str) -> str:
    return HEAD.format(name=name) + PTL + body + "}\n"


CALLEES = fn(
    "drop_if_no_wp",
    "\tspin_lock(ptl);\n\tif (!userfaultfd_wp(vma))\n"
    "\t\tpmdp_collapse_flush(vma, haddr, pmd);\n\tspin_unlock(ptl);\n",
) + fn(
    "drop_if_no_anon",
    "\tspin_lock(ptl);\n\tif (!vma->anon_vma)\n"
    "\t\tpmdp_collapse_flush(vma, haddr, pmd);\n\tspin_unlock(ptl);\n",
)


@pytest.mark.parametrize(
    ("body", "reported"),
    [
        # the callee re-tests anon_vma under the pte lock: covered
        ("\tif (vma->anon_vma)\n\t\treturn;\n\tdrop_if_no_anon(vma, haddr, pmd, c);\n", []),
        # it re-tests another flag under the lock: not this rule's
        ("\tif (vma->anon_vma)\n\t\treturn;\n\tdrop_if_no_wp(vma, haddr, pmd, c);\n", [0]),
        # the first act is covered by its callee, the second is not
        (
            "\tif (vma->anon_vma)\n\t\treturn;\n\tdrop_if_no_anon(vma, haddr, pmd, c);\n"
            "\tpmdp_collapse_flush(vma, haddr, pmd);\n",
            [0],
        ),
        # a test whose outcomes both reach the act decides nothing; the next one does
        (
            "\tif (vma->anon_vma)\n\t\tc++;\n\tif (vma->anon_vma)\n\t\treturn;\n"
            "\tpmdp_collapse_flush(vma, haddr, pmd);\n",
            [1],
        ),
        # a locked test on one path decides the act there, the unlocked one everywhere
        (
            "\tif (c) {\n\t\tspin_lock(ptl);\n\t\tif (vma->anon_vma) {\n"
            "\t\t\tspin_unlock(ptl);\n\t\t\treturn;\n\t\t}\n\t\tspin_unlock(ptl);\n\t}\n"
            "\tif (vma->anon_vma)\n\t\treturn;\n\tpmdp_collapse_flush(vma, haddr, pmd);\n",
            [1],
        ),
    ],
    ids=[
        "recheck-in-callee",
        "other-flag-in-callee",
        "second-act",
        "not-deciding",
        "locked-on-one-path",
    ],
)
def test_which_checks_are_reported(body: str, reported: list[int]) -> None:
    code = CALLEES + fn("caller", body)
    checks = [i for i, t in enumerate(code.splitlines(), 1) if "if (vma->anon_vma)" in t]
    assert [f.line for f in findings(code)] == [checks[i] for i in reported]


def test_every_held_lock_is_named() -> None:
    code = DETACH.replace(
        "\tmmap_read_lock(mm);\n", "\tmmap_read_lock(mm);\n\tspin_lock(&vma->other);\n"
    )
    code = code.replace(
        "\tmmap_read_unlock(mm);\n", "\tspin_unlock(&vma->other);\n\tmmap_read_unlock(mm);\n"
    )
    (f,) = findings(code)
    assert f.message.endswith("(held: `mm->mmap_lock:read`, `vma->other`)")
