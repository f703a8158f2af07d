"""A file's function-like macros read as the helpers they stand for (frontend/macros.py)."""

from __future__ import annotations

from pathlib import Path

from lockcheck.engine import Config, Engine
from lockcheck.frontend.macros import Macro, function_macros, helper_source, value_macros
from lockcheck.frontend.parse import MACRO_ESCAPE, NORETURN


def macros(text: str, skip: tuple[str, ...] = ()) -> dict[str, Macro]:
    return {m.name: m for m in function_macros(text.encode(), skip)}


def test_a_one_call_macro_returns_the_call_with_its_parameters_bare() -> None:
    got = macros("#define obj_unlock(o)\t\\\n\tobj_put_locked(&(o)->base, (o))\n")
    assert got["obj_unlock"] == Macro("obj_unlock", ("o",), "return obj_put_locked(&o->base, o);")


def test_a_statement_block_and_a_statement_expression_become_bodies() -> None:
    got = macros(
        "#define drop(a) do { spin_unlock(&(a)->l); note(a); } while (0)\n"
        "#define wait_ok(a) ({ int __r = 0; if (cond(a)) __r = relock(a); __r; })\n"
    )
    assert got["drop"].body == "do { spin_unlock(&a->l); note(a); } while (0);"
    assert got["wait_ok"].body.endswith("return __r;")
    assert "int __r = 0;" in got["wait_ok"].body


def test_a_return_or_goto_in_a_macro_leaves_the_caller_and_ends_the_path() -> None:
    got = macros(
        "#define take(o) do { if (!try_take(o)) return -EIO; } while (0)\n"
        "#define take_or(o, l) do { if (!try_take(o)) goto l; } while(0)\n"
        "#define got(o) ({ if (!try_take(o)) return; 1; })\n"
    )
    assert got["take"].body == f"do {{ if (!try_take(o)) {MACRO_ESCAPE}(); }} while (0);"
    assert f"if (!try_take(o)) {MACRO_ESCAPE}();" in got["take_or"].body
    assert "goto" not in got["take_or"].body
    assert got["got"].body.startswith(f"if (!try_take(o)) {MACRO_ESCAPE}();")
    assert MACRO_ESCAPE in NORETURN  # the helper's summary is the caller's way on


def test_macros_that_are_not_functions_of_their_arguments_are_left_alone() -> None:
    got = macros(
        "#define REG(x) ((x) << 2 | reg_base())\n"  # an expression that calls
        "#define NAME(x) show(#x)\n"  # stringified
        "#define FIELD_LOCK(p, f) spin_lock(&(p)->f)\n"  # a field name
        "#define OF(p, t) container_of(p, struct t, node)\n"  # a type
        "#define TWO(a) one(a); two(a)\n"  # two statements, no block
        "#define ITER(i) for (i = 0; i < 4; i++)\n"
        "#define CMT(a) go(a) // trailing\n"
    )
    assert got == {}


def test_an_expression_that_only_reads_is_a_function_unless_a_stub_or_redefined() -> None:
    got = macros(
        "#define RO(c) (SB(c)->s_flags & RDONLY)\n"  # reads through a capital macro
        "#define is_ro(c) (0)\n"  # a stub for a configuration without the feature
        "#define is_ro(c) ((c)->flags & RO_BIT)\n"
        "#define bump(c) ((c)->n += 1)\n"  # writes
        "#define busy(c) ((c)->users > 0)\n"
        "#define busy(c) busy_check(c, __LINE__) + 1\n"  # another shape elsewhere
    )
    assert got["RO"].body == "return SB(c)->s_flags & RDONLY;"
    assert got["is_ro"].body == "return c->flags & RO_BIT;"
    assert "bump" not in got and "busy" not in got


def test_skipped_names_and_the_variadic_spellings() -> None:
    got = macros(
        "#define spin_lock(l) my_spin_lock(l)\n"
        "#define say(fmt, args...) printk(fmt, args)\n"
        "#define tell(...) printk(__VA_ARGS__)\n",
        skip=("spin_lock",),
    )
    assert set(got) == {"say", "tell"}
    assert got["say"].params == ("fmt", "...")
    assert got["say"].body == "return printk(fmt, __VA_ARGS__);"
    assert b"static long tell(...)" in helper_source([got["tell"]])


def _check(tmp_path: Path, source: str) -> list[tuple[int, str]]:
    path = tmp_path / "unit.c"
    path.write_text(source)
    result = Engine(Config(select={"lock-balance"})).check_paths([path])
    assert not result.errors
    return [(f.line, f.function) for f in result.findings]


def test_a_macro_over_an_unknown_call_stays_an_unknown_call(tmp_path: Path) -> None:
    """No lock effect seen: the call may still release what it is handed."""
    source = """\
#define obj_put(o) obj_release_all(o)

int obj_drop(struct obj *o)
{
	spin_lock(&o->lock);
	if (o->dead) {
		obj_put(o);
		return 0;
	}
	spin_unlock(&o->lock);
	return 0;
}
"""
    assert _check(tmp_path, source) == []


def test_the_pack_and_the_file_keep_their_names(tmp_path: Path) -> None:
    """A macro named like a pack primitive or a function of the file is not read."""
    source = """\
#define spin_unlock(l) trace_unlock(l)
#define obj_unlock(o) spin_unlock(&(o)->lock)

static void obj_unlock(struct obj *o)
{
	trace_obj(o);
}

int obj_poke(struct obj *o)
{
	spin_lock(&o->lock);
	if (o->dead) {
		obj_unlock(o);
		return 0;
	}
	spin_unlock(&o->lock);
	return 0;
}
"""
    assert _check(tmp_path, source) == [(11, "obj_poke")]
    # without the function, the macro releases: nothing is left held
    quiet = source.replace("static void obj_unlock(struct obj *o)\n{\n\ttrace_obj(o);\n}\n", "")
    assert _check(tmp_path, quiet) == []


def test_a_macro_that_runs_an_argument_as_a_statement_is_not_a_function() -> None:
    got = macros(
        "#define WAIT(q, c, lock_cmd, unlock_cmd) do { for (;;) { if (c) break; "
        "unlock_cmd; sleep_on(q); lock_cmd; } } while (0)\n"
    )
    assert got["WAIT"].statements == (2, 3)
    assert helper_source([got["WAIT"]]) == b""


def test_a_macro_whose_value_is_an_argument_passes_it_on() -> None:
    got = value_macros(
        b"#define again(x, what, ...) \\\n\t((x) ?: (load(what, __VA_ARGS__), (x)))\n"
        b"#define plain(a, b) (b)\n"
        b"#define bigger(a, b) ((a) > (b) ? (a) : (b))\n"
        b"#define other(x, y) ((x) ?: (y))\n"
        b"#define split(x) (x)\n"
        b"#define split(x) ((x) + 1)\n"
    )
    # `bigger` and `other` may yield another value; `split` differs by #ifdef
    assert got == {"again": 0, "plain": 1}


def test_a_call_inside_a_passing_macro_tells_the_caller_its_result() -> None:
    src = (
        b"#define again(x, why) ((x) ?: (load(why), (x)))\n"
        b"struct o { struct mutex m; };\n"
        b"static struct o *find(struct o *p)\n"
        b"{\n\tmutex_lock(&p->m);\n\tif (p->dead) {\n\t\tmutex_unlock(&p->m);\n"
        b"\t\treturn NULL;\n\t}\n\treturn p;\n}\n"
        b"static struct o *get(struct o *p)\n{\n\treturn again(find(p), 1);\n}\n"
    )
    facts = Engine(Config(headers=False)).analyse_source("t.c", src).facts
    (got,) = facts.summaries["get"].acquires
    assert got[2] == "nonzero"  # held exactly when the result is not NULL
