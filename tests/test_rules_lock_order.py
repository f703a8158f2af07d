"""lock-order in process: the hierarchy (the pack's, a rule's own, a file's
"Lock ordering:" comment), what waits and what does not, and what a report
says.

`make mutate` runs these first for lockcheck/rules/lock_order.py; the
annotated fixtures check reported lines only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.rules.lock_order import acquisition_edges


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-order"}, headers=False))


def order(code: str, engine: Engine | None = None) -> list[Finding]:
    engine = engine or _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def _fn(params: str, *body: str) -> str:
    return f"void f({params})\n{{\n" + "".join(f"\t{line}\n" for line in body) + "}\n"


INVERTED = _fn(
    "struct address_space *m, struct mm_struct *mm",
    "i_mmap_lock_write(m);",
    "mmap_write_lock(mm);",
    "mmap_write_unlock(mm);",
    "i_mmap_unlock_write(m);",
)


def test_an_inversion_of_the_pack_hierarchy_says_both_locks_and_classes() -> None:
    (f,) = order(INVERTED)
    assert (f.line, f.column, f.function) == (4, 2, "f")
    assert f.message == (
        "`mm->mmap_lock` is taken while `m->i_mmap_rwsem` is held, but the mm lock hierarchy"
        " puts mmap_lock outside i_mmap_rwsem: this can deadlock against a path that follows"
        " the hierarchy"
    )
    assert f.held == ("m->i_mmap_rwsem",)
    assert f.expected == ("mmap_lock before i_mmap_rwsem",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (3, 2, "`m->i_mmap_rwsem` (the inner lock) taken here")
    ]


def test_along_the_hierarchy_a_trylock_and_unranked_locks_are_quiet() -> None:
    assert (
        order(
            INVERTED.replace("i_mmap_lock_write(m);\n\tmmap", "mmap").replace(
                "mmap_write_unlock(mm);\n\ti_mmap_unlock_write(m);",
                "i_mmap_lock_write(m);\n\ti_mmap_unlock_write(m);\n\tmmap_write_unlock(mm);",
            )
        )
        == []
    )
    trylock = _fn(
        "struct address_space *m, struct mm_struct *mm",
        "i_mmap_lock_write(m);",
        "if (mmap_write_trylock(mm))",
        "\tmmap_write_unlock(mm);",
    )
    assert order(trylock) == []
    unranked = _fn(
        "struct address_space *m, struct mutex *x", "i_mmap_lock_write(m);", "mutex_lock(x);"
    )
    assert order(unranked) == []
    unranked_outer = _fn(
        "struct mm_struct *mm, struct mutex *x", "mutex_lock(x);", "mmap_write_lock(mm);"
    )
    assert order(unranked_outer) == []
    same_level = _fn(
        "struct mm_struct *a, struct mm_struct *b", "mmap_write_lock(a);", "mmap_write_lock(b);"
    )
    assert order(same_level) == []


def test_each_held_outer_lock_is_reported_once_per_acquisition() -> None:
    code = _fn(
        "struct address_space *m, struct address_space *n, struct mm_struct *mm",
        "i_mmap_lock_write(m);",
        "i_mmap_lock_write(n);",
        "mmap_write_lock(mm);",
        "mmap_write_lock(mm);",
    )
    found = order(code)
    assert sorted((f.line, f.held) for f in found) == [
        (5, ("m->i_mmap_rwsem",)),
        (5, ("n->i_mmap_rwsem",)),
        (6, ("m->i_mmap_rwsem",)),
        (6, ("n->i_mmap_rwsem",)),
    ]


def test_acquisition_edges_pair_each_held_lock_with_the_acquisition_not_itself() -> None:
    engine = _engine()
    facts = engine.analyse_source(
        "t.c",
        _fn(
            "struct mm_struct *mm, pmd_t *pmd, spinlock_t *ptl",
            "mmap_read_lock(mm);",
            "spinlock_t *pml = pmd_lock(mm, pmd);",
            "if (ptl == pml)",
            "\tspin_lock(ptl);",
        ).encode(),
    )
    (fn,) = facts.facts.functions
    edges = [(ref.inst, held.mode, ev.site.line) for ref, held, ev in acquisition_edges(fn)]
    assert ("mm->mmap_lock", "read", 4) in edges
    assert ("mm->mmap_lock", "read", 6) in edges
    assert all(not (inst.startswith("pml") and line == 6) for inst, _, line in edges)


def test_a_rules_own_order_comes_before_the_packs(tmp_path: Path) -> None:
    pack = tmp_path / "pack.toml"
    pack.write_text(
        'order = ["mmap_lock", "i_mmap_rwsem"]\n'
        '[pack]\nname = "baz"\ndescription = "d"\nuses = ["mm"]\n\n'
        '[[rule]]\nid = "baz-order"\nkind = "lock-order"\nsummary = "s"\nseverity = "warning"\n'
        'order = ["i_mmap_rwsem", "mmap_lock"]\n'
        'message = "{inner} ({inner_class}) under {outer} ({outer_class})"\n\n'
        '[rule.doc]\nwhat = "w"\nwhy = "y"\nbad = "b"\ngood = "g"\n'
        'limits = "l"\nreferences = ["r"]\n'
    )
    engine = Engine(Config(packs=["mm", str(pack)], select={"baz-order"}, headers=False))
    assert order(INVERTED, engine) == []
    reverse = _fn(
        "struct address_space *m, struct mm_struct *mm",
        "mmap_write_lock(mm);",
        "i_mmap_lock_write(m);",
    )
    (f,) = order(reverse, engine)
    assert f.message == "m->i_mmap_rwsem (i_mmap_rwsem) under mm->mmap_lock (mmap_lock)"
    # without its own order the rule takes its pack's
    pack.write_text(pack.read_text().replace('order = ["i_mmap_rwsem", "mmap_lock"]\n', ""))
    engine = Engine(Config(packs=["mm", str(pack)], select={"baz-order"}, headers=False))
    assert [f.line for f in order(INVERTED, engine)] == [4]
    assert order(reverse, engine) == []


DOCUMENTED = """/*
 * Lock ordering:
 *
 *   dev->outer_mutex
 *     dev->inner_lock
 */

struct dev {
	struct mutex outer_mutex;
	spinlock_t inner_lock;
};

static void inverts(struct dev *dev)
{
	spin_lock(&dev->inner_lock);
	mutex_lock(&dev->outer_mutex);
	mutex_lock(&dev->outer_mutex);
	mutex_unlock(&dev->outer_mutex);
	spin_unlock(&dev->inner_lock);
}

static void follows(struct dev *dev, struct address_space *m, struct mm_struct *mm)
{
	mutex_lock(&dev->outer_mutex);
	spin_lock(&dev->inner_lock);
	i_mmap_lock_write(m);
	mmap_write_lock(mm);
}
"""


def test_a_files_own_order_comment_replaces_the_hierarchy_and_is_cited() -> None:
    found = order(DOCUMENTED)
    assert [(f.line, f.function) for f in found] == [(16, "inverts"), (17, "inverts")]
    f = found[0]
    assert f.message == (
        "`dev->outer_mutex` is taken while `dev->inner_lock` is held, but the lock ordering"
        " comment at line 2 puts dev->outer_mutex outside dev->inner_lock: this can deadlock"
        " against a path that follows it"
    )
    assert f.held == ("dev->inner_lock",)
    assert f.expected == ("dev->outer_mutex before dev->inner_lock",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (15, 2, "`dev->inner_lock` (the inner lock) taken here"),
        (2, 1, "the file's lock ordering comment"),
    ]


def test_one_lock_held_under_two_names_is_reported_once_and_later_ones_still_are() -> None:
    code = _fn(
        "struct address_space *m, struct address_space *n, struct mm_struct *a,"
        " struct mm_struct *b",
        "i_mmap_lock_write(m);",
        "m = n;",
        "i_mmap_lock_write(m);",
        "mmap_write_lock(a);",
        "mmap_write_lock(b);",
    )
    found = order(code)
    assert [(f.line, f.held) for f in found] == [
        (6, ("m->i_mmap_rwsem",)),
        (7, ("m->i_mmap_rwsem",)),
    ]
    again = DOCUMENTED.replace(
        "\tspin_lock(&dev->inner_lock);\n\tmutex_lock",
        "\tspin_lock(&dev->inner_lock);\n\tdev = dev->next;\n"
        "\tspin_lock(&dev->inner_lock);\n\tmutex_lock",
    )
    assert [f.line for f in order(again)] == [18, 19]


def test_a_documented_file_that_is_not_utf8_is_still_read() -> None:
    latin1 = DOCUMENTED.encode() + b"/* caf\xe9 */\n"
    engine = _engine()
    found = engine.findings_for(engine.analyse_source("t.c", latin1))
    assert [f.line for f in found] == [16, 17]
