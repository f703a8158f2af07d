"""Summaries of callees defined in other files of the checked directory or tree.

A call to a function another `.c` file defines (`__vm_munmap()` in mm/mmap.c
calling `do_vmi_munmap()` in mm/vma.c) changes its caller's lock state just
as a same-file helper does. A definition index (name -> file, non-static
definitions only, built once per directory and reused) finds the file; that
file is analysed on its own (with its header inlines, without looking further
afield, so the depth is bounded) and its summaries are cached by content.

In a kernel tree the callee may also live in an ancestor directory below the
tree's top: a subsystem's files call their core (fs/smb/server/vfs.c ->
fs/namei.c, kernel/sched/core.c -> kernel/workqueue.c is not an ancestor and
is not looked at). The nearest directory that defines the name decides.

Bounded: at most `max_files` files indexed per directory, `max_up` ancestor
directories and `max_callee_files` other files read for one checked file.
Deterministic: names defined in more than one file of the deciding directory
are not used (arch or config variants may disagree), files are visited in
sorted order.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from lockcheck.analysis.file import analyse_file
from lockcheck.analysis.state import base_var
from lockcheck.analysis.summaries import Summary
from lockcheck.model.ir import Call, Function

# A definition's head at column 0: optional return type, the name, `(`.
_HEAD_RE = re.compile(rb"^(?:[A-Za-z_][\w \t*]*?[ \t*])?([A-Za-z_]\w*)[ \t]*\(", re.M)
_ATTR_RE = re.compile(rb"\s*(?:__\w+\s*(?:\([^(){};]*\))?\s*)*")
_STATIC_RE = re.compile(rb"^\s*(?:static|extern)\b")

# a callee named as taking a lock (`refill_and_lock`, `lock_table`), not dropping one
# unlike rules' lock_named(): `lock`/`trylock` as any word, not `locked` (`*_is_locked` takes none)
_LOCKING_NAME_RE = re.compile(r"(?:^|_)(?:try)?lock(?:_|$)")

# a file's summaries; given names, those of the names only
SummariseFile = Callable[[Path, bytes, "frozenset[str] | None"], Mapping[str, Summary]]
_K = TypeVar("_K", bytes, tuple[bytes, frozenset[str]])


def _close_paren(data: bytes, start: int) -> int:
    """The index after the `)` matching the `(` at `start`, or -1."""
    depth = 0
    for i in range(start, min(len(data), start + 4000)):
        c = data[i]
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        elif c in (0x3B, 0x7B, 0x7D) and depth <= 1:  # ; { } inside a head: not one
            return -1
    return -1


def defined_functions(data: bytes) -> list[str]:
    """Names of the non-static functions a C file defines, in source order.

    Kernel style puts a definition's head at column 0 (the return type on
    the same line or the one above) and its `{` after the parameter list
    and any sparse annotations.
    """
    out: list[str] = []
    for m in _HEAD_RE.finditer(data):
        name = m.group(1)
        close = _close_paren(data, m.end() - 1)
        if close < 0:
            continue
        after = _ATTR_RE.match(data, close)
        pos = after.end() if after is not None else close
        if pos >= len(data) or data[pos] != 0x7B:
            continue
        line_start = m.start()
        head = data[line_start : m.end()]
        prev_start = data.rfind(b"\n", 0, max(0, line_start - 1)) + 1
        prev = data[prev_start:line_start] if line_start else b""
        type_above = m.group(0).lstrip().startswith(name)  # `static int\nname(...)`
        if _STATIC_RE.match(head) or (type_above and _STATIC_RE.match(prev)):
            continue
        if name in (b"if", b"for", b"while", b"switch", b"return", b"sizeof"):
            continue
        out.append(name.decode("ascii", "replace"))
    return out


def content_key(data: bytes) -> bytes:
    """What a file's summaries are kept by: its bytes' digest."""
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(slots=True)
class TreeSummaries:
    """The definition index and the per-file summary cache, shared by one engine."""

    summarise_file: SummariseFile
    max_files: int = 4000
    max_callee_files: int = 32
    max_up: int = 3
    max_cached: int = 512
    _index: dict[Path, dict[str, list[Path]]] = field(default_factory=dict)
    _cache: OrderedDict[bytes, dict[str, Summary]] = field(default_factory=OrderedDict)
    _dirs: dict[tuple[Path, Path | None, str], list[Path]] = field(default_factory=dict)
    # > 0 while the caller builds something the files' summaries depend on
    # (a header's inlines): what is computed then is incomplete, not cached
    partial: int = 0
    # summarise a callee file only for the names its callers ask for: a
    # review's one file calls a few of the dozens of functions each of its
    # callee files defines; a run over a directory has many callers per
    # file and summarises it whole once
    by_name: bool = False
    _named: OrderedDict[tuple[bytes, frozenset[str]], dict[str, Summary]] = field(
        default_factory=OrderedDict
    )

    def index(self, directory: Path) -> dict[str, list[Path]]:
        """name -> the files of `directory` (not below it) that define it."""
        cached = self._index.get(directory)  # asked for by every call name: no syscall then
        if cached is not None:
            return cached
        given = directory
        directory = directory.resolve()
        cached = self._index.get(directory)
        if cached is None:
            cached = self._index[directory] = self._build_index(directory)
        self._index[given] = cached
        return cached

    def _build_index(self, directory: Path) -> dict[str, list[Path]]:
        """`index()` of a resolved directory, read from its files."""
        out: dict[str, list[Path]] = {}
        try:
            files = sorted(p for p in directory.iterdir() if p.suffix == ".c" and p.is_file())
        except OSError:
            files = []
        for path in files[: self.max_files]:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for name in defined_functions(data):
                where = out.setdefault(name, [])
                if path not in where:
                    where.append(path)
        return out

    def search_dirs(self, path: Path, root: Path | None) -> list[Path]:
        """Where `path`'s callees are looked for, nearest first: its directory,
        then (in the kernel tree `root`) its ancestors strictly below the top.
        Once per directory (and working directory): every file asks."""
        key = (path.parent, root, "" if path.is_absolute() else os.getcwd())
        known = self._dirs.get(key)
        if known is None:
            known = self._dirs[key] = self._search_dirs(path.parent, root)
        return list(known)

    def _search_dirs(self, directory: Path, root: Path | None) -> list[Path]:
        here = directory.resolve()
        out = [here]
        if root is None:
            return out
        top = root.resolve()
        if top not in here.parents:
            return out
        for parent in here.parents:
            if parent == top or len(out) > self.max_up:
                break
            out.append(parent)
        return out

    def defining(self, name: str, dirs: list[Path]) -> list[Path]:
        """The files of the nearest directory of `dirs` that define `name`."""
        for directory in dirs:
            where = self.index(directory).get(name)
            if where:
                return where
        return []

    def library_for(
        self,
        path: Path,
        functions: list[Function],
        have: Mapping[str, Summary],
        root: Path | None = None,
    ) -> dict[str, Summary]:
        """Summaries of the functions `functions` call that another file of
        `path`'s directory (or of an ancestor, in the kernel tree `root`)
        defines (and neither the file nor `have` does)."""
        own = {f.name for f in functions}
        wanted: set[str] = set()
        for fn in functions:
            for node in fn.cfg.nodes:
                for ev in node.events:
                    if isinstance(ev, Call):
                        wanted.add(ev.callee)
                        if ev.callback:
                            wanted.add(ev.callback)
        wanted -= own
        wanted -= set(have)
        if not wanted:
            return {}
        dirs = self.search_dirs(path, root)
        me = path.resolve()
        by_file: dict[Path, list[str]] = {}
        for name in sorted(wanted):
            where = self.defining(name, dirs)
            if len(where) == 1 and where[0] != me:
                by_file.setdefault(where[0], []).append(name)
        out: dict[str, Summary] = {}
        for file in sorted(by_file)[: self.max_callee_files]:
            summaries = self._file(file, frozenset(by_file[file]))
            for name in by_file[file]:
                summ = summaries.get(name)
                if summ is not None:
                    out[name] = summ
        return out

    def _file(self, file: Path, names: frozenset[str] | None = None) -> dict[str, Summary]:
        """The file's summaries, cached by its bytes. While a header is in
        progress (`partial`) they are not kept, and only `names` are
        summarised: a subsystem header's inlines call a few of the dozens of
        functions its .c files define. With `by_name`, only `names` too,
        kept by the file's bytes and the names (the file whole, if it is
        known, answers for any names)."""
        try:
            data = file.read_bytes()
        except OSError:
            return {}
        return self._summaries(file, data, content_key(data), names)

    def _summaries(
        self, file: Path, data: bytes, key: bytes, names: frozenset[str] | None = None
    ) -> dict[str, Summary]:
        """`_file()` of bytes already read, and their `content_key()`."""
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if self.partial:  # a header it reads may be in progress
            return dict(self.summarise_file(file, data, names))
        if self.by_name and names is not None:
            return self._keep(self._named, (key, names), file, data, names)
        return self._keep(self._cache, key, file, data, None)

    def _keep(
        self,
        cache: OrderedDict[_K, dict[str, Summary]],
        key: _K,
        file: Path,
        data: bytes,
        names: frozenset[str] | None,
    ) -> dict[str, Summary]:
        """`file`'s summaries (of `names` only, when given) from `cache`, or
        made and kept there, the least recently used dropped past `max_cached`."""
        known = cache.get(key)
        if known is not None:
            cache.move_to_end(key)
            return known
        result = cache[key] = dict(self.summarise_file(file, data, names))
        if len(cache) > self.max_cached:
            cache.popitem(last=False)
        return result


def file_summaries(
    functions: list[Function],
    library: Mapping[str, Summary],
    hidden: Callable[[str], bool] | None = None,
) -> dict[str, Summary]:
    """What the functions of a file do to their callers' locks elsewhere.

    As for same-file helpers, only functions with lock effects get one; the
    rest stay unknown calls (a lock handed to one named like a releaser may
    be gone), and `#ifdef` variants that disagree get none.

    `hidden`: callees defined in other files that this file's analysis does
    not look into (the depth bound). A lock a function releases without
    taking it, after handing its owner to such a callee whose name says it
    locks, may have been taken there (`refill_and_lock(dev)` ...
    `up_write(&dev->sem)`): the callers are told it may be released, not
    that it surely is. Other hidden callees given the owner (a trigger, a
    stats update) say nothing about the lock.
    """
    facts = analyse_file(functions, library)
    names = {f.name for f in functions}
    out = {n: s for n, s in sorted(facts.summaries.items()) if n in names}
    if hidden is None:
        return out
    for ff in facts.functions:
        summ = out.get(ff.fn.name)
        if summ is None or not summ.releases:
            continue
        owners = {
            base_var(arg)
            for evs in ff.events
            for ev in evs
            if isinstance(ev, Call)
            and ev.external
            and _LOCKING_NAME_RE.search(ev.callee)
            and hidden(ev.callee)
            for arg in ev.args
        }
        unsure = tuple(r for r in summ.releases if base_var(r.inst) in owners)
        if unsure:
            out[ff.fn.name] = replace(
                summ,
                releases=tuple(r for r in summ.releases if r not in unsure),
                may_release=(*summ.may_release, *(r for r in unsure if r not in summ.may_release)),
            )
    return out
