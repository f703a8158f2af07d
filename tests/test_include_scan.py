"""The include and noreturn scans a review runs on every header: what they find."""

from __future__ import annotations

import re
from pathlib import Path

from lockcheck.frontend.parse import NORETURN, noreturn_names
from lockcheck.inputs.tree import included_headers, local_includes

SOURCE = b"""\
#include <linux/kept.h>
  \t#  include "local.h"
x = 1; #include <linux/after_code.h>
"#include <linux/in_a_string.h>"
#
include <linux/split.h>
\r#include <linux/after_cr.h>
#include <linux/kept.h>
\t#include "nested/not_a_local.h"
#include <asm-generic/generic.h>
#include <uapi/linux/not_searched.h>
"""


def test_local_includes_are_directives_at_the_start_of_a_line() -> None:
    assert local_includes(SOURCE) == [b"local.h"]
    # the same as a search anchored at each line's start
    anchored = re.compile(rb'^\s*#\s*include\s*"([\w.-]+\.h)"', re.M)
    assert local_includes(SOURCE) == anchored.findall(SOURCE)


def test_included_headers_keep_order_and_drop_repeats(tmp_path: Path) -> None:
    for rel in ("linux/kept.h", "linux/after_code.h", "linux/after_cr.h", "asm-generic/generic.h"):
        (tmp_path / "include" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "include" / rel).write_text("\n")
    here = tmp_path / "mm"
    here.mkdir()
    (here / "local.h").write_text('#include "deeper.h"\n#include "missing.h"\n')
    (here / "deeper.h").write_text("\n")
    got = included_headers(SOURCE, tmp_path, here)
    assert got == [
        here / "local.h",
        here / "deeper.h",
        tmp_path / "include/linux/kept.h",
        tmp_path / "include/linux/after_cr.h",
        tmp_path / "include/asm-generic/generic.h",
    ]


def test_noreturn_names_need_the_word() -> None:
    decl = b"void __noreturn my_die(const char *msg);\n#define my_oops(x) my_die(x)\n"
    assert noreturn_names(decl) == NORETURN | {"my_die", "my_oops"}
    attr = b"extern void my_halt(int) __attribute__((noreturn));\n"
    assert "my_halt" in noreturn_names(attr)
    # without the word only the macros that call a known one are added
    plain = b"void my_stop(void);\n#define my_bug() BUG()\n"
    assert noreturn_names(plain) == NORETURN | {"my_bug"}
