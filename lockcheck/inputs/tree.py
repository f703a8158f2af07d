"""Find a kernel tree around a source file, and the headers it includes.

Used for header-inline summaries: a `static inline` helper in
include/linux/ that takes or drops a lock changes its callers' lock state.
"""

from __future__ import annotations

import re
from pathlib import Path

_INCLUDE_RE = re.compile(rb'^\s*#\s*include\s*[<"]((?:linux|asm-generic)/[\w/.-]+\.h)[>"]', re.M)


def kernel_root(path: Path) -> Path | None:
    """The nearest ancestor that looks like a kernel tree (has include/linux/)."""
    for parent in path.resolve().parents:
        if (parent / "include" / "linux").is_dir():
            return parent
    return None


def included_headers(source: bytes, root: Path) -> list[Path]:
    """The tree's headers a file includes directly, in include order."""
    out: list[Path] = []
    for m in _INCLUDE_RE.finditer(source):
        header = root / "include" / m.group(1).decode("ascii", "replace")
        if header.is_file() and header not in out:
            out.append(header)
    return out
