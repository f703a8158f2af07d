"""The annotated C fixtures that show a rule firing and staying quiet.

`/* ruleid: RULE */` before a line: RULE is reported there; `/* ok: RULE */`:
it is not (`todoruleid`/`todook`: known misses and false alarms). The test
harness runs them; `lockcheck rules show` quotes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ANNOT_RE = re.compile(r"/\*\s*(ruleid|ok|todoruleid|todook):\s*([\w-]+)\s*\*/")


@dataclass(frozen=True, slots=True, order=True)
class Example:
    path: Path
    line: int  # the annotated line, 1-based
    kind: str  # ruleid, ok, todoruleid, todook
    rule: str
    text: str
    function: str = ""  # the enclosing function, for readers


_DEF_RE = re.compile(r"^[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\(")


def fixtures_root() -> Path | None:
    """Inside the wheel, or the source tree's fixtures/; None when neither is there."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_fixtures", here.parent / "fixtures"):
        if candidate.is_dir():
            return candidate
    return None


def examples(path: Path) -> list[Example]:
    """Every annotation of one fixture, aimed at the next line that is not a comment."""
    lines = path.read_text("utf-8", "replace").splitlines()
    out = []
    for i, line in enumerate(lines):
        for m in ANNOT_RE.finditer(line):
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(("/*", "*", "//")):
                j += 1
            text = lines[j].strip() if j < len(lines) else ""
            fn = next((d.group(1) for k in range(i, -1, -1) if (d := _DEF_RE.match(lines[k]))), "")
            out.append(Example(path, j + 1, m.group(1), m.group(2), text, fn))
    return out


def rule_examples(rule_id: str, root: Path | None = None) -> list[Example]:
    root = root or fixtures_root()
    if root is None:
        return []
    return sorted(
        ex for path in sorted(root.rglob("*.c")) for ex in examples(path) if ex.rule == rule_id
    )
