"""Find a kernel tree around a source file, and the headers it includes.

Used for header-inline summaries: a `static inline` helper in
include/linux/ that takes or drops a lock changes its callers' lock state.
"""

from __future__ import annotations

import re
from pathlib import Path

_INCLUDE_RE = re.compile(rb'^\s*#\s*include\s*[<"]((?:linux|asm-generic)/[\w/.-]+\.h)[>"]', re.M)
LOCAL_INCLUDE_RE = re.compile(rb'^\s*#\s*include\s*"([\w.-]+\.h)"', re.M)
# the tree's other headers (`<drm/drm_drv.h>`, `<net/sock.h>`); trace event
# headers are macro tables with no helpers to read
_OTHER_INCLUDE_RE = re.compile(
    rb"^\s*#\s*include\s*<((?!linux/|asm-generic/|trace/|uapi/)[\w-]+/[\w/.-]+\.h)>", re.M
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
    if directory is not None:
        for m in LOCAL_INCLUDE_RE.finditer(source):
            header = directory / m.group(1).decode("ascii", "replace")
            if header.is_file() and header not in out:
                out.append(header)
        # and the local headers those include (`"nic.h"` pulls in
        # `"nic_common.h"`, where the accessors live): one level further
        for header in list(out):
            try:
                data = header.read_bytes()
            except OSError:
                continue
            for m in LOCAL_INCLUDE_RE.finditer(data):
                nested = header.parent / m.group(1).decode("ascii", "replace")
                if nested.is_file() and nested not in out:
                    out.append(nested)
    if root is not None:
        for m in _INCLUDE_RE.finditer(source):
            header = root / "include" / m.group(1).decode("ascii", "replace")
            if header.is_file() and header not in out:
                out.append(header)
    return out


def other_headers(source: bytes, root: Path | None) -> list[Path]:
    """The tree's headers a file includes outside `linux/` and `asm-generic/`
    (a subsystem's `<drm/...>` or `<net/...>`), in include order: read only
    for their pure helpers, which a test made twice may rest on."""
    if root is None:
        return []
    out: list[Path] = []
    for m in _OTHER_INCLUDE_RE.finditer(source):
        header = root / "include" / m.group(1).decode("ascii", "replace")
        if header not in out and header.is_file():
            out.append(header)
            if len(out) == MAX_OTHER_HEADERS:
                break
    return out
