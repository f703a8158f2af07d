"""Header-inline summaries: a helper in include/linux/ counts at its call sites."""

from __future__ import annotations

from pathlib import Path

from lockcheck.engine import Config, Engine

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
