"""The model lists the file's functions that one initializer registers together."""

from __future__ import annotations

from lockcheck.engine import Engine
from lockcheck.model.ir import OpsTable

SOURCE = b"""
static int a_begin(struct chip *c) { return 0; }
static void a_end(struct chip *c) { }
static int b_show(struct chip *c) { return 1; }
static int only(struct chip *c) { return 2; }

static const struct chip_ops a_ops = {
	.begin = a_begin,
	.end = a_end,
	.count = 3,
	.name = "a",
};

static struct chip_ops many[] = {
	{ .begin = a_begin, .show = b_show },
	[1] = { .end = a_end, .show = extern_show, .begin = a_begin },
};

static const struct chip_ops lonely = { .begin = only, .show = extern_show };

static void setup(struct chip *c)
{
	struct chip_ops local = { .begin = a_begin, .end = a_end };

	register_ops(c, &local);
}
"""


def test_initializers_register_the_files_functions_together() -> None:
    model = Engine().analyse_source("chip.c", SOURCE).model
    assert model.ops == (
        OpsTable(7, (("begin", "a_begin"), ("end", "a_end"))),
        OpsTable(15, (("begin", "a_begin"), ("show", "b_show"))),
        OpsTable(16, (("end", "a_end"), ("begin", "a_begin"))),
    )
    assert model.ops[0].functions() == frozenset({"a_begin", "a_end"})
