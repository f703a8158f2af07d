"""lock-effect-changed in process: exit effects, callers in the file and
beside it, and what the two kinds of report say.

`make mutate` runs these first for lockcheck/rules/lock_effect.py; the review
fixtures check reported lines, not the wording or the callers named.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from lockcheck.analysis.function import FunctionFacts
from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.model.ir import Release
from lockcheck.rules.lock_effect import (
    MAX_CALLERS,
    Effect,
    LockEffectChanged,
    _names,
    exit_effects,
    return_kind,
    tree_callers,
)


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-effect-changed"}, headers=False))


def functions(code: str) -> list[FunctionFacts]:
    return _engine().analyse_source("t.c", code.encode()).facts.functions


def compare(
    before: str, after: str, changed: set[str], elsewhere: Path | None = None
) -> list[Finding]:
    (rule,) = [r for r in _engine().rules if isinstance(r, LockEffectChanged)]
    return rule.compare("dir/t.c", functions(before), functions(after), changed, elsewhere)


def line_of(code: str, text: str) -> int:
    (n,) = [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]
    return n


EFFECTS = """
int kinds(struct w *w, int a, int b)
{
	spin_lock(&w->lock);
	if (a)
		return -EINVAL;
	if (b)
		return w->n;
	if (a + b)
		return 0;
	spin_unlock(&w->lock);
	if (b > 2)
		return -EBUSY;
	return 0;
}

void given(struct w *w, int a)
{
	if (a)
		return;
	spin_unlock(&w->lock);
}

void handed(struct w *w, int a)
{
	spin_lock(&w->lock);
	if (a) {
		spin_unlock(&w->lock);
		return;
	}
	some_unlock(w);
}
"""


def test_exit_effects_by_kind_of_return_first_line_each() -> None:
    got = {ff.fn.name: exit_effects(ff) for ff in functions(EFFECTS)}
    line = lambda t: line_of(EFFECTS, t)  # noqa: E731
    (zero, zero_late) = [
        i for i, t in enumerate(EFFECTS.splitlines(), 1) if t.strip() == "return 0;"
    ][:2]
    assert got["kinds"] == {
        "w->lock": Effect(
            held={
                "error return": line("return -EINVAL;"),
                "return of a value": line("return w->n;"),
                "return of zero": zero,
            },
            free={"error return": line("return -EBUSY;"), "return of zero": zero_late},
        )
    }
    # a lock the caller holds is one of the function's locks too
    given = got["given"]["w->lock"]
    assert given.held and given.free
    assert set(given.held) == set(given.free) == {"return"}


def test_a_lock_handed_to_code_we_cannot_see_says_nothing_there() -> None:
    (effect,) = exit_effects(functions(EFFECTS)[2]).values()
    # the way out after `some_unlock()` is unknown: only the released one counts
    assert effect.held == {} and list(effect.free) == ["return"]


LOOKUP = """
int lookup(struct w *w)
{
	spin_lock(&w->lock);
	if (w->bad) {
		spin_unlock(&w->lock);
		return -EINVAL;
	}
	return 0;
}

void one(struct w *w)
{
	if (lookup(w))
		return;
	w->n++;
	spin_unlock(&w->lock);
}

void two(struct w *w)
{
	lookup(w);
	lookup(w);
}

void three(struct w *w)
{
	int r;

	r = lookup(w);
}
"""

LOOKUP_AFTER = LOOKUP.replace(
    "\t\treturn -EINVAL;\n\t}\n\treturn 0;",
    "\t\treturn -EINVAL;\n\t}\n\tspin_unlock(&w->lock);\n\treturn 0;",
)


def test_a_lock_now_released_where_callers_release_it_again() -> None:
    [f] = compare(LOOKUP, LOOKUP_AFTER, {"lookup"})
    ret = [i for i, t in enumerate(LOOKUP_AFTER.splitlines(), 1) if t.strip() == "return 0;"][0]
    call = line_of(LOOKUP_AFTER, "if (lookup(w))")
    assert (f.rule, f.function, f.line, f.column, f.path) == (
        "lock-effect-changed",
        "lookup",
        ret,
        1,
        "dir/t.c",
    )
    assert f.message == (
        f"`lookup()` now releases `w->lock` before its return of zero at line {ret}, "
        "where it returned with it held before; these callers release it again: "
        f"one() at line {call}"
    )
    assert f.held == ("w->lock",)
    assert f.anchor == "lookup:w->lock:free:return of zero"
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (call, 1, "one() releases it after the call")
    ]
    # and the other way round: held now where it was released
    [back] = compare(LOOKUP_AFTER, LOOKUP, {"lookup"})
    ret = [i for i, t in enumerate(LOOKUP.splitlines(), 1) if t.strip() == "return 0;"][0]
    assert back.message == (
        f"`lookup()` now returns with `w->lock` held (return of zero at line {ret}); "
        "before the patch every return of zero released it; callers that expect it "
        f"released: one() at line {line_of(LOOKUP, 'if (lookup(w))')}, "
        f"two() at line {LOOKUP.splitlines().index(chr(9) + 'lookup(w);') + 1}, "
        f"three() at line {line_of(LOOKUP, 'r = lookup(w);')}"
    )
    assert back.anchor == "lookup:w->lock:held:return of zero" and back.column == 1
    assert [(r.line, r.column, r.message) for r in back.related] == [
        (ret, 1, "returns here with the lock held")
    ]


def test_only_changed_functions_defined_once_before_and_after() -> None:
    # `lookup()` changed, but only `one()` is named as changed: one's own effect
    assert [f.function for f in compare(LOOKUP, LOOKUP_AFTER, {"one"})] == ["one"]
    assert compare(LOOKUP.replace("lookup", "old_name"), LOOKUP_AFTER, {"lookup"}) == []
    variants = LOOKUP_AFTER + LOOKUP_AFTER.split("void one")[0]
    assert compare(LOOKUP, variants, {"lookup"}) == []


def test_no_callers_releasing_it_no_report_of_a_release() -> None:
    quiet = LOOKUP.replace("\tw->n++;\n\tspin_unlock(&w->lock);\n", "\tw->n++;\n")
    after = LOOKUP_AFTER.replace("\tw->n++;\n\tspin_unlock(&w->lock);\n", "\tw->n++;\n")
    assert compare(quiet, after, {"lookup"}) == []
    # held now where released, without any caller: reported, naming none
    alone = LOOKUP.split("void one")[0]
    [f] = compare(LOOKUP_AFTER.split("void one")[0], alone, {"lookup"})
    assert f.message.endswith("before the patch every return of zero released it")


def test_callers_beside_the_file_are_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.c").write_text("\tlookup(w);\n")  # the patched file itself: skipped
    (tmp_path / "a.c").write_text(
        "int lookup(struct w *w)\n{\n}\nvoid x(void)\n{\n\tlookup(w);\n\tlookup(v);\n}\n"
    )
    (tmp_path / "b.c").write_text(
        "void y(void)\n{\n\tz = s.lookup(w) + p->lookup(w) + xlookup(w);\n}\n"
    )
    (tmp_path / "c.c").write_text("void y(void)\n{\n        r = lookup (w);\n}\n")
    (tmp_path / "d.h").write_text("\tlookup(w);\n")
    (tmp_path / "aa.c").write_text("void none(void)\n{\n}\n")  # no call: the next file is read
    (tmp_path / "e.c").write_bytes(b"\xff\n\tlookup(w);\n")  # not UTF-8: read anyway
    assert tree_callers(tmp_path, "lookup", "t.c") == ["a.c:6", "c.c:3", "e.c:2"]
    # the patched file is skipped, not the files after it
    assert tree_callers(tmp_path, "lookup", "a.c") == ["c.c:3", "e.c:2", "t.c:1"]
    assert tree_callers(tmp_path / "a.c", "lookup", "t.c") == []
    assert tree_callers(None, "lookup", "t.c") == []
    only = LOOKUP.replace("void one", "void one_x").split("void two")[0]
    [f] = compare(LOOKUP_AFTER.split("void two")[0], only, {"lookup"}, tmp_path)
    assert f.message.endswith(
        f"released: one_x() at line {line_of(only, 'if (lookup(w))')}, a.c:6, c.c:3, e.c:2"
    )


def test_at_most_six_callers_are_named() -> None:
    assert MAX_CALLERS == 6
    assert _names([]) == ""
    assert _names(f"f{i}" for i in range(6)) == "f0, f1, f2, f3, f4, f5"
    assert _names(f"f{i}" for i in range(7)) == "f0, f1, f2, f3, f4, f5 and 1 more"
    assert _names(f"f{i}" for i in range(9)) == "f0, f1, f2, f3, f4, f5 and 3 more"


def test_kinds_of_return() -> None:
    assert return_kind(" ") == "return"
    assert return_kind("-EINVAL") == "error return"
    assert return_kind("0") == return_kind("ret:zero") == "return of zero"
    assert return_kind("ret:zerox") == return_kind("n") == "return of a value"


def ways(*outs: tuple[str, bool]) -> str:
    """`f()` with three ways out: each returns its value, released or not."""
    body = []
    for i, (value, released) in enumerate(outs):
        unlock = "\t\tspin_unlock(&w->lock);\n" if released else ""
        if i < 2:
            body.append(f"\tif (w->c{i}) {{\n{unlock}\t\treturn {value};\n\t}}\n")
        else:
            body.append(unlock.replace("\t\t", "\t") + f"\treturn {value};\n")
    return "int f(struct w *w)\n{\n\tspin_lock(&w->lock);\n" + "".join(body) + "}\n"


HELD, FREE = False, True


@pytest.mark.parametrize(
    ("before", "after", "kinds"),
    [
        # held now on a kind it was released on: reported, past a kind held before
        (
            (("-EINVAL", HELD), ("0", FREE), ("0", FREE)),
            (("-EINVAL", HELD), ("0", HELD), ("0", FREE)),
            ["held:return of zero"],
        ),
        # a new kind held, the lock never held before: released on every kind
        (
            (("-EINVAL", FREE), ("0", FREE), ("0", FREE)),
            (("-EINVAL", FREE), ("1", HELD), ("0", FREE)),
            ["held:return of a value"],
        ),
        # a new kind held where another was held before: no telling
        (
            (("-EINVAL", HELD), ("0", FREE), ("0", FREE)),
            (("-EINVAL", HELD), ("1", HELD), ("0", FREE)),
            [],
        ),
        # held and released on the same kind before and after: no change
        (
            (("0", HELD), ("0", FREE), ("-EINVAL", FREE)),
            (("0", HELD), ("0", FREE), ("-EINVAL", FREE)),
            [],
        ),
    ],
)
def test_which_kinds_of_return_changed(
    before: tuple[tuple[str, bool], ...], after: tuple[tuple[str, bool], ...], kinds: list[str]
) -> None:
    got = compare(ways(*before), ways(*after), {"f"})
    assert [f.anchor.split(":", 2)[2] for f in got] == kinds
    assert all(f.column == 1 for f in got)


def test_a_lock_taken_only_after_the_patch_is_no_change_of_effect() -> None:
    after = LOOKUP_AFTER.replace(
        "\tspin_lock(&w->lock);\n\tif (w->bad)",
        "\tspin_lock(&w->other);\n\tspin_unlock(&w->other);\n\tspin_lock(&w->lock);\n\tif (w->bad)",
    )
    assert "w->other" in after
    [f] = compare(LOOKUP, after, {"lookup"})
    assert f.held == ("w->lock",)


def test_variants_are_skipped_not_the_functions_after_them() -> None:
    variants = LOOKUP_AFTER.split("void one")[0] * 2
    before = LOOKUP.split("void one")[0] + ways(("-EINVAL", FREE), ("0", FREE), ("0", FREE))
    after = variants + ways(("-EINVAL", FREE), ("1", HELD), ("0", FREE))
    assert [f.function for f in compare(before, after, {"lookup", "f"})] == ["f"]


def test_an_unreadable_file_beside_the_patched_one_is_skipped(tmp_path: Path) -> None:
    # a dangling symlink and a directory named like C files: reading them
    # fails (even as root); the files after them are still read
    (tmp_path / "a.c").symlink_to(tmp_path / "gone.c")
    (tmp_path / "b.c").mkdir()
    (tmp_path / "c.c").write_text("void y(void)\n{\n\tlookup(w);\n}\n")
    assert tree_callers(tmp_path, "lookup", "t.c") == ["c.c:3"]


NAMED = """
void drop_own(struct w *w)
{
	spinlock_t *l = pick(w);

	spin_unlock(l);
}

int class_wide(struct w *w)
{
	spin_lock(&w->lock);
	drop_own(w);
	spin_unlock(&w->lock);
	return 0;
}

int renamed(struct w *w, spinlock_t *l)
{
	spin_lock(l);
	l = w->next;
	return 0;
}
"""


def test_effects_are_of_locks_the_function_can_name() -> None:
    got = {ff.fn.name: ff for ff in functions(NAMED)}
    wide = got["class_wide"]
    # drop_own()'s lock has no name here: a release of any lock of its class
    assert any(isinstance(ev, Release) and ev.lock.inst == "*" for evs in wide.events for ev in evs)
    assert sorted(exit_effects(wide)) == ["w->lock"]
    # a held lock whose variable is set again is renamed (`l@N`): still `l`
    held = got["renamed"]
    assert any("@" in r.inst for _, st, _, _ in held.exits for r in st.may)
    last = [i for i, t in enumerate(NAMED.splitlines(), 1) if t.strip() == "return 0;"][-1]
    assert exit_effects(held) == {"l": Effect(held={"return of zero": last}, free={})}
