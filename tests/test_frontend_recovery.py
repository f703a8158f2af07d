"""Function boundaries after the grammar's error recovery.

Raw kernel C has constructs tree-sitter cannot read (X-macro lists, a loop
macro without braces over a macro-made lvalue). Its error recovery can then
glue the text of several functions into one definition, or put a stray
statement in front of a real definition's head. These pin that the frontend
hands the analysis the real functions, with their own names and lines.
"""

from __future__ import annotations

from lockcheck.engine import Config, Engine
from lockcheck.frontend.parse import (
    definition_declarator,
    definition_start,
    function_params,
    iter_functions,
    mask_directive_comments,
    parse_source,
)
from tests.helpers import FIXTURES


def defined(path_or_src: str | bytes) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every function the frontend finds."""
    if isinstance(path_or_src, str):
        src = (FIXTURES / "locking" / path_or_src).read_bytes()
    else:
        src = path_or_src
    pf = parse_source("t.c", src)
    return [
        (name, definition_start(node).start_point[0] + 1, node.end_point[0] + 1)
        for name, node in iter_functions(pf)
    ]


def head_line(path: str, name: str) -> int:
    lines = (FIXTURES / "locking" / path).read_text().splitlines()
    return next(i for i, ln in enumerate(lines, 1) if ln.startswith("static int " + name + "("))


def test_an_x_macro_list_does_not_swallow_the_functions_after_it() -> None:
    found = defined("xmacro_flag_list.c")
    names = ["gadget_wait_stopped", "gadget_wait_all", "gadget_start"]
    assert [n for n, _, _ in found] == names
    for name, start, end in found:
        assert start == head_line("xmacro_flag_list.c", name)
        assert end - start < 25  # each one its own size, not the rest of the file


def test_comments_in_a_continued_directive_are_blanked_in_place() -> None:
    src = (
        b"#define LIST \\\n\tx(A)\t/* one */\t\\\n\tx(B)\t/* two\n   lines */ \\\n\tx(C)\n"
        b"int y; /* after */\n"
    )
    out = mask_directive_comments(src)
    assert len(out) == len(src) and out.count(b"\n") == src.count(b"\n")
    assert b"/* one */" not in out  # inside the directive, on one line
    assert b"/* two\n   lines */" in out  # spans lines: blanking it would end the directive
    assert b"/* after */" in out  # not in a directive
    assert mask_directive_comments(b"int y; /* c */\n") == b"int y; /* c */\n"


def test_functions_swallowed_by_the_one_before_are_found() -> None:
    src = b"""static void mark_skip(struct item *it)
{
\tfor_each_item(it)
\t\towner_of(it)->skip = it;
}

static int first_fn(int a)
{
\treturn a;
}

static int second_fn(int b)
{
\tif (b)
\t\treturn b + 1;
\treturn 0;
}
"""
    # the swallowing one is real (its head reads clean): kept, but its flow
    # ends where the next function begins
    assert defined(src) == [("mark_skip", 1, 17), ("first_fn", 7, 10), ("second_fn", 12, 17)]
    model = Engine(Config(headers=False)).analyse_source("t.c", src).model
    (outer,) = [f for f in model.functions if f.name == "mark_skip"]
    assert max(n.line for n in outer.cfg.nodes if n.kind != "exit") < 7
    assert all("return" not in n.text for n in outer.cfg.nodes)


def test_loop_macro_blocks_are_not_taken_for_nested_definitions() -> None:
    src = b"""static int count_all(void)
{
\tint cpu, n = 0;

\tfor_each_possible_cpu(cpu) {
\t\tn += per_cpu_count(cpu);
\t}
\treturn n;
}
"""
    assert defined(src) == [("count_all", 1, 9)]


def test_a_head_recovered_from_an_error_names_the_function() -> None:
    pf = parse_source("t.c", (FIXTURES / "locking" / "recovered_head.c").read_bytes())
    found = {name: node for name, node in iter_functions(pf)}
    assert "slot_of" not in found  # a macro used under a loop macro, not a definition
    node = found["slot_worker_enable"]
    start = definition_start(node).start_point[0] + 1
    assert start == head_line("recovered_head.c", "slot_worker_enable")
    assert function_params(definition_declarator(node)) == ("limit",)
    assert {"slot_worker_disable", "slot_init", "slot_update"} <= set(found)
