"""The questions rules share, in process: single definitions, who acquires a
lock, what cannot wait, which held locks count and in what order, where a
lock was taken, which nodes release it, a snippet for a message.

`make mutate` runs these first for lockcheck/rules/queries.py; the rules
only show these answers through whole reports.
"""

from __future__ import annotations

from functools import cache

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import Held, LockState
from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, LockRef, Site
from lockcheck.rules.queries import (
    acquirers,
    cannot_wait,
    code,
    held_locks,
    release_nodes,
    single_definitions,
    taken_at,
    taken_here,
)


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-balance"}, headers=False))


def functions(code_text: str) -> list[FunctionFacts]:
    return list(_engine().analyse_source("t.c", code_text.encode()).facts.functions)


def test_single_definitions_leave_out_names_defined_twice() -> None:
    fns = functions(
        "#ifdef A\nint f(void) { return 1; }\n#else\nint f(void) { return 0; }\n#endif\n"
        "int g(void) { return 2; }\nint h(void) { return 3; }\n"
    )
    got = single_definitions(fns)
    assert sorted(got) == ["g", "h"]
    assert got["g"].fn.name == "g"


def test_acquirers_map_each_lock_to_every_primitive_taking_it() -> None:
    (fn,) = functions(
        "void f(struct mm_struct *mm, spinlock_t *l)\n{\n\tspin_lock(l);\n\tspin_unlock(l);\n"
        "\tspin_lock_irq(l);\n\tspin_unlock_irq(l);\n\tmmap_read_lock(mm);\n}\n"
    )
    assert acquirers(fn) == {
        "l": {"spin_lock", "spin_lock_irq"},
        "mm->mmap_lock": {"mmap_read_lock"},
    }


def _acquire(primitive: str, cond_var: str | None = None) -> Acquire:
    return Acquire(LockRef("l", "spinlock"), "write", Site(1, 1), primitive, cond_var=cond_var)


def test_trylocks_and_conditional_helpers_cannot_wait() -> None:
    vocab = _engine().vocab
    assert cannot_wait(vocab, _acquire("spin_trylock"))
    assert not cannot_wait(vocab, _acquire("spin_lock"))
    # a known primitive with a condition (pte_offset_map_lock() may fail) still waits
    assert not cannot_wait(vocab, _acquire("pte_offset_map_lock", "pte"))
    assert not cannot_wait(vocab, _acquire("guard(spinlock)", "#atom"))
    # a same-file helper that takes it only when it says so does not
    assert cannot_wait(vocab, _acquire("my_lock_if_free", "ok"))
    assert not cannot_wait(vocab, _acquire("my_lock_always"))


def test_held_locks_are_those_taken_here_in_site_then_name_order() -> None:
    a, b, c, d = (LockRef(n, "spinlock") for n in ("a", "b", "c", "d"))
    st = LockState(
        must={
            c: Held("write", Site(5, 2)),
            a: Held("write", Site(7, 2)),
            b: Held("write", Site(5, 2)),
            d: Held("write", Site(1, 1), assumed=True),
        },
        may={},
    )
    assert [ref.inst for ref, _ in held_locks(st)] == ["b", "c", "a"]
    assert taken_here(Held("read", Site(1, 1)))
    assert not taken_here(Held("read", Site(1, 1), assumed=True))


def test_taken_at_names_the_lock_without_its_version() -> None:
    held = Held("write", Site(4, 9, "spin_lock(l)"))
    assert taken_at(LockRef("l@2", "spinlock"), held) == Related(4, 9, "`l` taken here")
    assert taken_at(LockRef("l", "spinlock"), held, "first taken") == Related(
        4, 9, "`l` first taken"
    )


def test_release_nodes_are_the_nodes_releasing_that_lock() -> None:
    (fn,) = functions(
        "void f(spinlock_t *l, spinlock_t *m, int x)\n{\n\tspin_lock(l);\n\tspin_lock(m);\n"
        "\tif (x) {\n\t\tspin_unlock(l);\n\t\treturn;\n\t}\n"
        "\tspin_unlock(m);\n\tspin_unlock(l);\n}\n"
    )
    nodes = release_nodes(fn, "l@1")
    assert len(nodes) == 2
    texts = sorted(ev.site.line for n in nodes for ev in fn.events[n] if "unlock" in ev.site.text)
    assert 6 in texts and 10 in texts and 9 not in texts
    assert len(release_nodes(fn, "m")) == 1
    assert release_nodes(fn, "n") == set()


def test_code_puts_a_snippet_on_one_line_in_backticks() -> None:
    assert code("foo(a,\n\t    b)") == "`foo(a, b)`"
    assert code("x") == "`x`"
