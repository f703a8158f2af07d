"""The review-only comparisons (`moved-out-of-lock`, `order-reversed`,
`lock-effect-changed`) see only what a patch changes: a patch that adds a
comment inside every function changes no test, act, nesting or lock effect.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.review import review_versions
from tests.helpers import FIXTURES

REVIEW_ONLY = {"moved-out-of-lock", "order-reversed", "lock-effect-changed"}


def commented(text: str) -> str:
    """`text` with a comment line after every line that ends a statement
    inside a function (a `;` at the end of an indented line)."""
    out = []
    for line in text.splitlines():
        out.append(line)
        if re.match(r"\t+\S.*;$", line):
            out.append("\t/* reviewed */")
    return "\n".join(out) + "\n"


FILES = sorted(p for p in FIXTURES.rglob("*.c") if not p.name.endswith(".orig.c"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_comments_alone_change_nothing(path: Path) -> None:
    text = path.read_text(errors="replace")
    after = commented(text)
    assert after != text or ";" not in text
    engine = Engine(Config(select=REVIEW_ONLY))
    found = review_versions(engine, path.name, text, after).findings
    assert not found, [f.finding.message for f in found]


def test_comments_alone_change_nothing_on_real_mm(kernel_tree: Path) -> None:
    """A loop that keeps an old object's lock under a renamed name
    (z3fold_reclaim_page()) holds it surely but not possibly on one join:
    the comparison must not read that as a lock lost."""
    engine = Engine(Config(select=REVIEW_ONLY))
    for name in ("z3fold.c", "khugepaged.c", "mremap.c"):
        text = (kernel_tree / "mm" / name).read_text()
        found = review_versions(engine, f"mm/{name}", text, commented(text)).findings
        assert not found, [f.finding.message for f in found]


def test_the_comparison_fires_on_the_same_files_when_a_test_is_hoisted() -> None:
    """The quiet test above is not quiet because nothing is compared."""
    text = (FIXTURES / "effects" / "moved_tests.orig.c").read_text()
    hoisted = text.replace(
        "\tspin_lock(&r->lock);\n\tif (!r->nr) {\n\t\tspin_unlock(&r->lock);",
        "\tif (!r->nr) {",
    ).replace("\t\treturn NULL;\n\t}\n", "\t\treturn NULL;\n\t}\n\tspin_lock(&r->lock);\n", 1)
    assert hoisted != text
    engine = Engine(Config(select=REVIEW_ONLY))
    found = review_versions(engine, "moved_tests.c", text, commented(hoisted)).findings
    assert [f.finding.rule for f in found] == ["moved-out-of-lock"]
