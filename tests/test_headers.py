"""Header-inline summaries: a helper in include/linux/ counts at its call sites."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck import engine
from lockcheck.engine import Config, Engine, HeaderFacts
from lockcheck.inputs.files import read_c_source

HEADER = """\
#ifndef _LINUX_WIDGET_H
#define _LINUX_WIDGET_H
struct widget { spinlock_t lock; int n; };

static inline void widget_lock(struct widget *w)
{
	spin_lock(&w->lock);
}

static inline bool widget_trylock(struct widget *w)
{
	return spin_trylock(&w->lock);
}
#endif
"""

SOURCE = """\
#include <linux/widget.h>

static int bump(struct widget *w, int bad)
{
	widget_lock(w);
	if (bad)
		return -EINVAL;
	w->n++;
	spin_unlock(&w->lock);
	return 0;
}

static int try_bump(struct widget *w)
{
	if (!widget_trylock(w))
		return -EBUSY;
	w->n++;
	spin_unlock(&w->lock);
	return 0;
}
"""


def make_tree(root: Path) -> Path:
    (root / "include" / "linux").mkdir(parents=True)
    (root / "include" / "linux" / "widget.h").write_text(HEADER)
    (root / "mm").mkdir()
    src = root / "mm" / "widget.c"
    src.write_text(SOURCE)
    return src


def test_inline_helper_lock_is_seen_in_the_caller(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert [(f.function, f.line) for f in result.findings] == [("bump", 5)]


def test_without_headers_the_helper_is_unknown(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    result = Engine(Config(select={"lock-balance"}, headers=False)).check_paths([src])
    assert result.findings == []


def test_disagreeing_config_variants_give_no_summary(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    header = tmp_path / "include" / "linux" / "widget.h"
    header.write_text(
        HEADER.replace(
            "#endif\n",
            "#ifdef CONFIG_NO_WIDGET_LOCK\nstatic inline void widget_lock(struct widget *w)\n"
            "{\n}\n#endif\n#endif\n",
        )
    )
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert result.findings == []


def test_local_header_of_the_files_directory(tmp_path: Path) -> None:
    """`#include "internal.h"`: helpers beside the file count too, tree or not."""
    (tmp_path / "internal.h").write_text(HEADER)
    src = tmp_path / "widget.c"
    src.write_text(SOURCE.replace("#include <linux/widget.h>", '#include "internal.h"'))
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert [(f.function, f.line) for f in result.findings] == [("bump", 5)]


def test_local_header_a_local_header_includes(tmp_path: Path) -> None:
    """`"nic.h"` including `"nic_common.h"`: the accessors of the nested header
    count too (a pure one keeps a retested comparison apart)."""
    (tmp_path / "common.h").write_text(HEADER)
    (tmp_path / "internal.h").write_text('#include "common.h"\n')
    src = tmp_path / "widget.c"
    src.write_text(SOURCE.replace("#include <linux/widget.h>", '#include "internal.h"'))
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert [(f.function, f.line) for f in result.findings] == [("bump", 5)]
    (tmp_path / "internal.h").write_text("/* nothing */\n")
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert result.findings == []


SUBSYSTEM_HEADER = """\
struct gizmo_ops { int (*setup)(void); };
struct gizmo { const struct gizmo_ops *ops; unsigned int features; int opens; };

static inline bool gizmo_has(const struct gizmo *gz, unsigned int f)
{
	return (gz->features & f) == f;
}
"""

SUBSYSTEM_SOURCE = """\
#include <linux/mutex.h>
#include <gizmo/gizmo_core.h>

static DEFINE_MUTEX(gizmo_big_lock);

static bool gizmo_needs_big_lock(struct gizmo *gz)
{
	if (gizmo_has(gz, 4))
		return true;
	return gz->ops->setup != NULL;
}

int gizmo_open(struct gizmo *gz)
{
	int ret;

	if (gizmo_needs_big_lock(gz))
		mutex_lock(&gizmo_big_lock);
	ret = gizmo_prepare(gz);
	if (ret)
		goto out;
	ret = gizmo_start(gz);
out:
	if (gizmo_needs_big_lock(gz))
		mutex_unlock(&gizmo_big_lock);
	return ret;
}
"""


def make_subsystem_tree(root: Path, header: str) -> Path:
    (root / "include" / "linux").mkdir(parents=True)
    (root / "include" / "gizmo").mkdir()
    (root / "include" / "gizmo" / "gizmo_core.h").write_text(header)
    (root / "drivers" / "gizmo").mkdir(parents=True)
    src = root / "drivers" / "gizmo" / "core.c"
    src.write_text(SUBSYSTEM_SOURCE)
    return src


def test_subsystem_header_predicate_keeps_a_retested_call_stable(tmp_path: Path) -> None:
    """A lock taken and dropped under two tests of a file's predicate that
    reads flags through a `<gizmo/...>` header inline: the inline only reads,
    so both tests go the same way. Outside `linux/` headers are read for
    such pure helpers only."""
    src = make_subsystem_tree(tmp_path, SUBSYSTEM_HEADER)
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert result.findings == []


def test_subsystem_header_predicate_that_writes_is_not_pure(tmp_path: Path) -> None:
    """The same inline counting its calls: asked twice it may answer
    differently, so the lock may be kept on the way out."""
    writes = SUBSYSTEM_HEADER.replace("\treturn (gz", "\tgz->opens++;\n\treturn (gz")
    src = make_subsystem_tree(tmp_path, writes)
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert [(f.function, f.rule) for f in result.findings] == [("gizmo_open", "lock-balance")]


def test_subsystem_header_is_not_read_without_headers(tmp_path: Path) -> None:
    src = make_subsystem_tree(tmp_path, SUBSYSTEM_HEADER)
    engine = Engine(Config(select={"lock-balance"}, headers=False))
    assert engine.other_headers(str(src), src.read_bytes()) == []
    result = engine.check_paths([src])
    assert [(f.function, f.rule) for f in result.findings] == [("gizmo_open", "lock-balance")]


def split_subsystem_tree(root: Path, header: str) -> Path:
    """The predicate defined in another file of the directory, which the
    subsystem header's inline is read for."""
    src = make_subsystem_tree(root, header)
    text = SUBSYSTEM_SOURCE
    start = text.index("static bool gizmo_needs_big_lock")
    end = text.index("int gizmo_open")
    predicate = text[start:end].replace("static bool", "bool")
    (src.parent / "policy.c").write_text("#include <gizmo/gizmo_core.h>\n\n" + predicate)
    src.write_text(text[:start] + "bool gizmo_needs_big_lock(struct gizmo *gz);\n\n" + text[end:])
    return src


def test_predicate_of_another_file_reading_a_subsystem_inline_is_stable(tmp_path: Path) -> None:
    """The predicate lives in policy.c beside the caller and reads flags
    through the `<gizmo/...>` inline: pure there too, so both tests agree."""
    src = split_subsystem_tree(tmp_path, SUBSYSTEM_HEADER)
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert result.findings == []


def test_predicate_of_another_file_over_a_writing_inline_is_not(tmp_path: Path) -> None:
    writes = SUBSYSTEM_HEADER.replace("\treturn (gz", "\tgz->opens++;\n\treturn (gz")
    src = split_subsystem_tree(tmp_path, writes)
    result = Engine(Config(select={"lock-balance"})).check_paths([src])
    assert [(f.function, f.rule) for f in result.findings] == [("gizmo_open", "lock-balance")]


def test_header_facts_come_from_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fact the engine reads in a header (noreturn names, value and
    function-like macros, constants, nested includes) comes from one read."""
    (tmp_path / "common.h").write_text("\n")
    header = tmp_path / "internal.h"
    header.write_text(
        '#include "common.h"\n#include "absent.h"\n'
        "void gadget_die(void) __attribute__((noreturn));\n"
        "#define GADGET_PASS(x) (x)\n"
        "#define gadget_lock(g) spin_lock(&(g)->lock)\n"
        "#define GADGET_SLOTS 16\n"
    )
    reads: list[Path] = []

    def counted(path: Path) -> bytes:
        reads.append(path)
        return read_c_source(path)

    monkeypatch.setattr(engine, "read_c_source", counted)
    facts = HeaderFacts.read(header)
    assert "gadget_die" in facts.noreturn
    assert facts.passes == {"GADGET_PASS": 0}
    assert [m.name for m in facts.macros] == ["GADGET_PASS", "gadget_lock"]
    assert facts.constants == {"GADGET_SLOTS": 16}
    assert facts.nested == (tmp_path / "common.h",)
    assert reads == [header]


def test_an_unreadable_header_reads_as_empty(tmp_path: Path) -> None:
    """Whatever stops the read (not a file, an OS error), every fact is empty."""
    (tmp_path / "empty.h").write_text("")
    empty = HeaderFacts.read(tmp_path / "empty.h")
    (tmp_path / "dir.h").mkdir()
    too_long = tmp_path / ("x" * 300 + ".h")  # stat fails: the name is too long
    for header in (tmp_path / "dir.h", too_long, tmp_path / "absent.h"):
        facts = HeaderFacts.read(header)
        got = (facts.noreturn, facts.passes, facts.macros, facts.constants, facts.nested)
        assert got == (empty.noreturn, {}, [], {}, ())
