"""lock-balance in process: the evidence that excuses a held lock, and what
each kind of report says.

`make mutate` runs these first for lockcheck/rules/lock_balance.py; the
annotated fixtures check reported lines, not every row of the name tables
nor the wording.
"""

from __future__ import annotations

from functools import cache

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from lockcheck.rules.lock_balance import lock_named


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-balance"}, headers=False))


def balance(code: str) -> list[Finding]:
    engine = _engine()
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def line_of(code: str, text: str) -> int:
    (n,) = [i for i, t in enumerate(code.splitlines(), 1) if t.strip() == text]
    return n


# -- names that say a function locks -----------------------------------------


@pytest.mark.parametrize("word", ["lock", "locks", "trylock", "locked", "relock", "spinlock"])
def test_a_lock_word_first_or_last_says_it_locks(word: str) -> None:
    assert lock_named(f"obj_{word}")
    assert lock_named(f"{word}_obj")
    assert lock_named(f"OBJ_{word.upper()}")  # words are read case-blind
    assert not lock_named(f"obj_{word}x_obj") or word == "trylock"


@pytest.mark.parametrize(
    "mode", ["read", "write", "irq", "irqsave", "bh", "nested", "killable", "interruptible"]
)
def test_a_lock_mode_last_after_a_lock_word_says_it_locks(mode: str) -> None:
    assert lock_named(f"obj_lock_vma_{mode}")
    assert not lock_named(f"obj_vma_{mode}")  # a mode word alone is not enough
    assert not lock_named(f"obj_lock_{mode}_vma")  # nor a mode that is not last


def test_try_then_lock_as_two_words_says_it_locks() -> None:
    assert lock_named("drv_try_lock_queue")
    assert not lock_named("try_drv_lock_queue")  # `try` must be right before `lock`
    assert not lock_named("drv_lock_try_queue")
    assert lock_named("drv_x_trylock_queue")  # `trylock` anywhere


@pytest.mark.parametrize("name", ["", "__", "_0_1"])
def test_a_name_without_words_does_not_lock(name: str) -> None:
    assert not lock_named(name)


# -- a void helper's undo speaks for it ----------------------------------------

VOID_HELPER = """
struct thing {
	spinlock_t lock;
	int busy;
};

void NAME(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		spin_unlock(&t->lock);
}

void UNDO(struct thing *t)
{
	spin_unlock(&t->lock);
}
"""

UNDO_PAIRS = [
    ("get", "put"),
    ("map", "unmap"),
    ("lock", "unlock"),
    ("trylock", "unlock"),
    ("start", "end"),
    ("start", "finish"),
    ("start", "stop"),
    ("start", "commit"),
    ("begin", "end"),
    ("begin", "commit"),
    ("can", "cancel"),
    ("enter", "exit"),
    ("enter", "leave"),
    ("acquire", "release"),
    ("grab", "release"),
    ("grab", "drop"),
    ("hold", "release"),
    ("hold", "drop"),
    ("pin", "unpin"),
]


def void_helper(name: str, undo: str) -> str:
    return VOID_HELPER.replace("NAME", name).replace("UNDO", undo)


@pytest.mark.parametrize(("word", "undo"), UNDO_PAIRS)
def test_an_undo_sharing_the_first_word_excuses_a_void_helper(word: str, undo: str) -> None:
    # a void function cannot say which paths hold: its name does not count,
    # only an undo that releases a lock
    assert balance(void_helper(f"thing_x_{word}", f"thing_{undo}_y")) == []
    [leak] = balance(void_helper(f"thing_x_{word}", "thing_zap_y"))
    assert leak.function == f"thing_x_{word}"


@pytest.mark.parametrize(("word", "undo"), UNDO_PAIRS)
def test_the_same_name_with_one_word_undone_excuses_a_void_helper(word: str, undo: str) -> None:
    assert balance(void_helper(f"{word}_thing", f"{undo}_thing")) == []
    # two words changed: not the same name undone
    assert len(balance(void_helper(f"{word}_thing", f"{undo}_other"))) == 1
    # one more word: not the same name either
    assert len(balance(void_helper(f"{word}_thing", f"{undo}_thing_now"))) == 1


def test_an_undo_that_releases_nothing_is_no_evidence() -> None:
    code = void_helper("thing_get", "thing_put").replace(
        "void thing_put(struct thing *t)\n{\n\tspin_unlock(&t->lock);",
        "void thing_put(struct thing *t)\n{\n\tt->busy = 0;",
    )
    assert "spin_unlock(&t->lock);\n}\n" not in code.split("thing_put")[1]
    assert len(balance(code)) == 1


def test_a_helper_is_not_its_own_undo() -> None:
    # `thing_get_put` has the first word and the undo word of `thing_get_put`
    code = VOID_HELPER.split("void UNDO")[0].replace("NAME", "thing_get_put")
    assert len(balance(code)) == 1
    # and it does not stop the search for the real undo after it
    code = void_helper("thing_get_put", "thing_put")
    assert balance(code) == []


# -- what the reports say ------------------------------------------------------

LEAK = """
struct thing {
	spinlock_t lock;
	int busy;
};

int thing_work(struct thing *t)
{
	spin_lock(&t->lock);
	if (t->busy)
		return -EBUSY;
	spin_unlock(&t->lock);
	return 0;
}
"""


def test_a_leak_names_the_lock_the_function_and_the_way_out() -> None:
    [f] = balance(LEAK)
    ret = line_of(LEAK, "return -EBUSY;")
    assert f.rule == "lock-balance" and f.function == "thing_work"
    assert f.line == line_of(LEAK, "spin_lock(&t->lock);")
    assert f.message == (
        f"`t->lock` is still held when `thing_work()` returns at line {ret}, "
        "but released on other paths"
    )
    assert f.held == ("t->lock",)
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (ret, 1, "returns here with the lock held")
    ]


DOUBLE = """
void twice(spinlock_t *l)
{
	spin_lock(l);
	spin_unlock(l);
	spin_unlock(l);
}
"""


def test_a_double_unlock_points_at_the_first_release() -> None:
    [f] = balance(DOUBLE)
    lines = [i for i, t in enumerate(DOUBLE.splitlines(), 1) if t.strip() == "spin_unlock(l);"]
    assert f.line == lines[1]
    assert f.message == (
        "`l` is released here but not held on any path that reaches this point: "
        f"already released at line {lines[0]}"
    )
    assert [(r.line, r.column, r.message) for r in f.related] == [
        (lines[0], 2, "released here before")
    ]


EARLY = """
void early(spinlock_t *l, int c)
{
	if (c) {
		spin_unlock(l);
		return;
	}
	spin_lock(l);
	spin_unlock(l);
}
"""


def test_an_unlock_before_the_lock_says_where_it_is_taken() -> None:
    [f] = balance(EARLY)
    take = line_of(EARLY, "spin_lock(l);")
    assert f.line == EARLY.splitlines().index("\t\tspin_unlock(l);") + 1
    assert f.message.endswith(f"it is taken only at line {take}")
    assert [(r.line, r.column, r.message) for r in f.related] == [(take, 2, "taken here")]


LOOP = """
struct thing {
	spinlock_t lock;
	struct mutex outer;
	int busy;
};

void each(struct thing *t, int n)
{
	int i;

	mutex_lock(&t->outer);
	for (i = 0; i < n; i++) {
		spin_lock(&t->lock);
		if (t->busy)
			continue;
		spin_unlock(&t->lock);
	}
	mutex_unlock(&t->outer);
}
"""


def test_a_lock_taken_again_round_a_loop_says_where_it_was_taken() -> None:
    found = balance(LOOP)
    take = line_of(LOOP, "spin_lock(&t->lock);")
    [f] = [f for f in found if "may still be held" in f.message]
    assert f.line == take
    assert f.message == (
        f"`t->lock` may still be held here: taken at line {take} "
        "and not released on every path back to this point"
    )
    assert f.held == ("t->outer",)  # what every path back holds
    assert [(r.line, r.column, r.message) for r in f.related] == [(take, 3, "taken here before")]
