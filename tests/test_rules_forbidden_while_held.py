"""forbidden-while-held in process: what is forbidden (acts, calls,
primitives), under which locks and modes, and what a report says.

`make mutate` runs these first for lockcheck/rules/forbidden_while_held.py:
only the foo example pack configures this kind, and its fixture checks lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding

PACK = """
[pack]
name = "bar"
description = "forbidden-while-held test pack"
uses = ["mm"]

[api]
bar_free = { effect = "act", act = "bar-free", target = 1 }
bar_zap = { effect = "act", act = "bar-zap", target = 1 }

[[rule]]
id = "bar-forbidden"
kind = "forbidden-while-held"
summary = "s"
severity = "error"
%s
message = "{what} runs while {locks} is held"

[rule.doc]
what = "w"
why = "y"
bad = "b"
good = "g"
limits = "l"
references = ["r"]
"""

RULE = """acts = ["bar-free"]
calls = ["bar_sync", "msleep"]
locks = ["page_table_lock", "mmap_lock:write"]"""


def forbidden(tmp_path: Path, code: str, rule: str = RULE) -> list[Finding]:
    pack = tmp_path / "pack.toml"
    pack.write_text(PACK % rule)
    engine = Engine(Config(packs=["mm", str(pack)], select={"bar-forbidden"}, headers=False))
    return engine.findings_for(engine.analyse_source("t.c", code.encode()))


def _fn(*body: str) -> str:
    return (
        "void f(struct mm_struct *mm, struct slot *s)\n{\n"
        + "".join(f"\t{line}\n" for line in body)
        + "}\n"
    )


def test_a_forbidden_act_under_a_listed_lock_is_reported_with_its_text(tmp_path: Path) -> None:
    (f,) = forbidden(
        tmp_path,
        _fn(
            "spin_lock(&mm->page_table_lock);",
            "bar_free(mm,   s);",
            "spin_unlock(&mm->page_table_lock);",
            "bar_free(mm, s);",
        ),
    )
    assert (f.line, f.column, f.function) == (4, 2, "f")
    assert f.message == "`bar_free(mm, s)` runs while `mm->page_table_lock` is held"
    assert f.held == ("mm->page_table_lock",)
    assert f.expected == ("not page_table_lock", "not mmap_lock:write")
    assert [(r.line, r.message) for r in f.related] == [(3, "`mm->page_table_lock` taken here")]


def test_an_act_not_listed_is_not_judged(tmp_path: Path) -> None:
    code = _fn(
        "spin_lock(&mm->page_table_lock);", "bar_zap(mm, s);", "spin_unlock(&mm->page_table_lock);"
    )
    assert forbidden(tmp_path, code) == []


def test_a_listed_call_and_a_listed_primitive_are_named_as_calls(tmp_path: Path) -> None:
    found = forbidden(
        tmp_path,
        _fn(
            "spin_lock(&mm->page_table_lock);",
            "bar_sync(s);",
            "msleep(1);",
            "other(s);",
            "spin_unlock(&mm->page_table_lock);",
        ),
    )
    assert [(f.line, f.message) for f in found] == [
        (4, "`bar_sync()` runs while `mm->page_table_lock` is held"),
        (5, "`msleep()` runs while `mm->page_table_lock` is held"),
    ]


def test_a_lock_mode_must_match(tmp_path: Path) -> None:
    read = _fn("mmap_read_lock(mm);", "bar_sync(s);", "mmap_read_unlock(mm);")
    assert forbidden(tmp_path, read) == []
    (f,) = forbidden(tmp_path, read.replace("read", "write"))
    assert f.held == ("mm->mmap_lock",)


def test_two_held_locks_are_named_sorted_with_both_places(tmp_path: Path) -> None:
    (f,) = forbidden(
        tmp_path,
        _fn(
            "mmap_write_lock(mm);",
            "spin_lock(&s->mm->page_table_lock);",
            "bar_sync(s);",
            "spin_unlock(&s->mm->page_table_lock);",
            "mmap_write_unlock(mm);",
        ),
    )
    assert f.held == ("mm->mmap_lock", "s->mm->page_table_lock")
    assert "`mm->mmap_lock`, `s->mm->page_table_lock` is held" in f.message
    assert [r.line for r in f.related] == [3, 4]


def test_a_helpers_act_is_judged_in_the_helper_not_at_the_call(tmp_path: Path) -> None:
    code = (
        "static void helper(struct mm_struct *mm, struct slot *s)\n{\n\tbar_free(mm, s);\n}\n"
        + _fn(
            "spin_lock(&mm->page_table_lock);",
            "helper(mm, s);",
            "spin_unlock(&mm->page_table_lock);",
        )
    )
    assert forbidden(tmp_path, code) == []


def test_calls_alone_or_acts_alone_are_enough_but_one_is_needed(tmp_path: Path) -> None:
    code = _fn(
        "spin_lock(&mm->page_table_lock);",
        "bar_sync(s);",
        "bar_free(mm, s);",
        "spin_unlock(&mm->page_table_lock);",
    )
    only_calls = 'calls = ["bar_sync"]\nlocks = ["page_table_lock"]'
    assert [f.line for f in forbidden(tmp_path, code, only_calls)] == [4]
    only_acts = 'acts = ["bar-free"]\nlocks = ["page_table_lock"]'
    assert [f.line for f in forbidden(tmp_path, code, only_acts)] == [5]
    with pytest.raises(PackError) as err:
        forbidden(tmp_path, code, 'locks = ["page_table_lock"]\nacts = []')
    assert str(err.value).startswith("rule pack ")
    assert str(err.value).endswith(
        ": rule[0] (bar-forbidden).acts: give `acts` or `calls` (or both)"
    )


def test_an_unlocked_call_does_not_end_the_function(tmp_path: Path) -> None:
    found = forbidden(
        tmp_path,
        _fn(
            "bar_sync(s);",
            "spin_lock(&mm->page_table_lock);",
            "bar_sync(s);",
            "spin_unlock(&mm->page_table_lock);",
        ),
    )
    assert [f.line for f in found] == [5]
