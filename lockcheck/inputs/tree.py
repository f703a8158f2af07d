"""Find a kernel tree around a source file, and the headers it includes.

Used for header-inline summaries: a `static inline` helper in
include/linux/ that takes or drops a lock changes its callers' lock state.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# `#include` directives; `_directives` keeps those at the start of a line.
# Searched from the `#` (a regex starting `^` in MULTILINE mode tries every
# position, twenty times slower on a kernel file: a review reads dozens).
_INCLUDE_RE = re.compile(rb'#\s*include\s*[<"]((?:linux|asm-generic)/[\w/.-]+\.h)[>"]')
_LOCAL_INCLUDE_RE = re.compile(rb'#\s*include\s*"([\w.-]+\.h)"')


# `#include "../common.h"`: a subsystem's header, beside or above the file
_RELATIVE_INCLUDE_RE = re.compile(rb'#\s*include\s*"([\w./-]+\.h)"')


def subsystem_headers(source: bytes, directory: Path, depth: int = 2) -> list[Path]:
    """The headers a file includes by a relative name (`"internal.h"`,
    `"../common.h"`), and those they include so, `depth` levels deep."""
    out: list[Path] = []
    names = relative_includes(source)
    todo = [(directory / n.decode("ascii", "replace"), 1) for n in names]
    while todo:
        header, level = todo.pop(0)
        header = Path(os.path.normpath(header))
        if header in out or not header.is_file():
            continue
        out.append(header)
        if level < depth:
            try:
                data = header.read_bytes()
            except OSError:
                continue
            todo += [
                (header.parent / n.decode("ascii", "replace"), level + 1)
                for n in relative_includes(data)
            ]
    return out


def relative_includes(data: bytes) -> list[bytes]:
    """The names `data` includes by a relative name, in order."""
    return _directives(_RELATIVE_INCLUDE_RE, data)


def _directives(pattern: re.Pattern[bytes], data: bytes) -> list[bytes]:
    """The first group of every match of `pattern` with only white space before it on its line."""
    out = []
    for m in pattern.finditer(data):
        start = m.start()
        if not data[data.rfind(b"\n", 0, start) + 1 : start].strip():
            out.append(m.group(1))
    return out


def local_includes(data: bytes) -> list[bytes]:
    """The names of the `#include "name.h"` directives of `data`, in order."""
    return _directives(_LOCAL_INCLUDE_RE, data)
# the tree's other headers (`<drm/drm_drv.h>`, `<net/sock.h>`); trace event
# headers are macro tables with no helpers to read
_OTHER_INCLUDE_RE = re.compile(
    rb"#\s*include\s*<((?!linux/|asm-generic/|trace/|uapi/)[\w-]+/[\w/.-]+\.h)>"
)
# at most this many of them are read for one file
MAX_OTHER_HEADERS = 32


def kernel_root(path: Path) -> Path | None:
    """The nearest ancestor that looks like a kernel tree (has include/linux/)."""
    for parent in path.resolve().parents:
        if (parent / "include" / "linux").is_dir():
            return parent
    return None


def included_headers(source: bytes, root: Path | None, directory: Path | None) -> list[Path]:
    """The headers a file includes: its own directory's (`"internal.h"`,
    `"sched.h"`, and the local headers those include) first, then the tree's
    `linux/` and `asm-generic/` ones it includes directly."""
    out: list[Path] = []
    seen: set[Path] = set()  # `out` as a set: a file includes hundreds of headers

    def add(header: Path) -> None:
        if header not in seen and header.is_file():
            seen.add(header)
            out.append(header)

    if directory is not None:
        for name in local_includes(source):
            add(directory / name.decode("ascii", "replace"))
        # and the local headers those include (`"nic.h"` pulls in
        # `"nic_common.h"`, where the accessors live): one level further
        for header in list(out):
            try:
                data = header.read_bytes()
            except OSError:
                continue
            for name in local_includes(data):
                add(header.parent / name.decode("ascii", "replace"))
    if root is not None:
        for name in _directives(_INCLUDE_RE, source):
            add(root / "include" / name.decode("ascii", "replace"))
    return out


def other_headers(source: bytes, root: Path | None) -> list[Path]:
    """The tree's headers a file includes outside `linux/` and `asm-generic/`
    (a subsystem's `<drm/...>` or `<net/...>`), in include order: read only
    for their pure helpers, which a test made twice may rest on."""
    if root is None:
        return []
    out: list[Path] = []
    for name in _directives(_OTHER_INCLUDE_RE, source):
        header = root / "include" / name.decode("ascii", "replace")
        if header not in out and header.is_file():
            out.append(header)
            if len(out) == MAX_OTHER_HEADERS:
                break
    return out
