"""The on-disk result cache: a file's part of a check, by what decides it.

An entry's key hashes the file's path and bytes, the bytes of every header
whose inline helpers its analysis reads, the bytes of the other `.c` files
of its directory (cross-file summaries read callees there), and a salt naming everything else
that decides the answer: lockcheck's version and code, the rule packs'
contents, the rule kinds and the engine's settings. Any change to one gives
a new key, so an entry is never stale, only unused (`lockcheck` never
deletes; removing the directory is always safe). Entries are JSON written
to a temporary name and renamed, so concurrent runs and workers cannot see
a half-written one, and a damaged entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import lockcheck
from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.summaries import Summary
from lockcheck.engine import Engine, FileResult
from lockcheck.model.ir import Function
from lockcheck.results import result_from_dict, result_to_dict

K = TypeVar("K", bound=tuple[object, ...])
T = TypeVar("T")

CACHE_ENV = "LOCKCHECK_CACHE_DIR"


def default_cache_dir() -> Path | None:
    """`$LOCKCHECK_CACHE_DIR`, else `$XDG_CACHE_HOME/lockcheck`, else
    ~/.cache/lockcheck; None (no cache) when there is no home to put it in."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "lockcheck"
    try:
        return Path.home() / ".cache" / "lockcheck"
    except (RuntimeError, KeyError):
        return None


def code_fingerprint() -> str:
    """lockcheck's version and its modules' sizes and times: a development
    checkout changes its code without changing its version."""
    root = Path(lockcheck.__file__).resolve().parent
    h = hashlib.sha256(lockcheck.__version__.encode())
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def engine_salt(engine: Engine) -> str:
    """Everything besides the files that decides a file's result."""
    h = hashlib.sha256(code_fingerprint().encode())
    for pack in engine.packs:
        try:
            h.update(Path(pack.path).read_bytes())
        except OSError:
            h.update(pack.path.encode())
    for rule in engine.rules:
        h.update(f"{type(rule).__module__}.{type(rule).__qualname__}\0{rule.spec!r}\n".encode())
    c = engine.config
    settings = [
        sorted(c.packs),
        sorted(c.select) if c.select is not None else None,
        sorted(c.baseline) if c.baseline is not None else None,
        c.max_nodes,
        c.headers,
        sorted(c.disable),
        sorted(c.severity.items()),
    ]
    h.update(json.dumps(settings).encode())
    return h.hexdigest()


def sibling_digest(directory: Path, memo: dict[Path, str]) -> str:
    """The `.c` files directly in `directory`, names and bytes: what the
    tree-wide definition index (analysis/tree.py) may summarise callees from.

    Conservative: a change to any of them gives every file beside it a new key.
    """
    known = memo.get(directory)  # asked for by every header and file beside it: no syscall then
    if known is not None:
        return known
    key = directory.resolve()
    known = memo.get(key)
    if known is None:
        h = hashlib.sha256()
        try:
            files = sorted(p for p in key.iterdir() if p.suffix == ".c" and p.is_file())
        except OSError:
            files = []
        for f in files:
            try:
                h.update(f"{f.name}\0".encode() + hashlib.sha256(f.read_bytes()).digest())
            except OSError:
                h.update(f"{f.name}\0unreadable".encode())
        known = memo[key] = h.hexdigest()
    memo[directory] = known
    return known


class ResultCache:
    """Per-file results under `directory`, for one engine's settings."""

    def __init__(self, directory: Path, engine: Engine) -> None:
        self.directory = directory
        self.salt = engine_salt(engine)
        self._engine = engine
        self._digests: dict[Path, str] = {}
        self._siblings: dict[Path, str] = {}
        self.hits = 0
        self.misses = 0

    def _digest(self, path: Path) -> str:
        known = self._digests.get(path)
        if known is None:
            try:
                known = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                known = "unreadable"
            self._digests[path] = known
        return known

    def key(self, path: Path, source: bytes) -> str:
        h = hashlib.sha256(self.salt.encode())
        h.update(f"\0{path}\0".encode())
        h.update(hashlib.sha256(source).digest())
        engine = self._engine
        # the headers whose inlines or whose macros the analysis reads
        headers = engine.headers_for(str(path), source)
        headers += [m for m in engine.macro_headers(str(path), source) if m not in headers]
        # and those read for the pure helpers a retested test calls
        headers += [o for o in engine.other_headers(str(path), source) if o not in headers]
        for header in headers:
            h.update(f"\0{header}\0{self._digest(header)}".encode())
        if self._engine.config.headers:  # callees in the files beside it
            h.update(sibling_digest(path.parent, self._siblings).encode())
        return h.hexdigest()

    def _file(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key[2:]}.json"

    def get(self, key: str) -> FileResult | None:
        try:
            data = json.loads(self._file(key).read_bytes())
            result = result_from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, key: str, result: FileResult) -> None:
        """Store one result; a cache that cannot be written is only slower."""
        data = json.dumps(result_to_dict(result), sort_keys=True).encode()
        _write(self._file(key), data)


def _write(target: Path, data: bytes) -> None:
    """Write under a temporary name and rename: readers see all or nothing."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except OSError:
            os.unlink(tmp)
            raise
    except OSError:
        return


def _private(directory: Path) -> bool:
    """Only a directory of ours that nobody else may write holds entries we unpickle."""
    try:
        st = directory.stat()
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return mine and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class HeaderStore:
    """Header summaries by header path and bytes, under the same salt as results.

    Summaries are the analysis's own objects, kept with pickle (the salt
    names lockcheck's code, so a changed class never meets an old entry);
    they are read only from a directory this user owns that nobody else may
    write.
    """

    def __init__(self, directory: Path, engine: Engine) -> None:
        self.directory = directory / "headers"
        self._engine = engine
        self._salt: str | None = None
        self._readable: bool | None = None
        self._siblings: dict[Path, str] = {}
        self._digests: dict[Path, str] = {}

    def salt(self) -> str:
        if self._salt is None:
            self._salt = engine_salt(self._engine)
        return self._salt

    def _key(self, header: Path, data: bytes) -> Path:
        h = hashlib.sha256(self.salt().encode())
        h.update(f"\0{header}\0".encode())
        digest = hashlib.sha256(data)
        h.update(digest.digest())
        self._digests.setdefault(header, digest.hexdigest())  # for `_file_key`
        # an inline may wrap a function of a .c file beside the header
        h.update(sibling_digest(header.parent, self._siblings).encode())
        key = h.hexdigest()
        return self.directory / key[:2] / f"{key[2:]}.pickle"

    def _index_key(self, directory: Path) -> Path:
        h = hashlib.sha256(b"index\0" + self.salt().encode())
        h.update(f"\0{directory}\0".encode())
        h.update(sibling_digest(directory, self._siblings).encode())
        key = h.hexdigest()
        return self.directory / key[:2] / f"{key[2:]}.pickle"

    def get_index(self, directory: Path) -> dict[str, list[Path]] | None:
        """The definition index of a directory's `.c` files (analysis/tree.py),
        by their names and bytes: built again only when one of them changes."""
        if self._readable is None:
            self._readable = all(_private(d) for d in (self.directory.parent, self.directory))
        if not self._readable:
            return None
        try:
            loaded: Any = pickle.loads(self._index_key(directory).read_bytes())
        except Exception:
            return None
        ok = isinstance(loaded, dict) and all(
            isinstance(v, list) and all(isinstance(p, Path) for p in v) for v in loaded.values()
        )
        return loaded if ok else None

    def put_index(self, directory: Path, index: dict[str, list[Path]]) -> None:
        _write(self._index_key(directory), pickle.dumps(index, pickle.HIGHEST_PROTOCOL))
        self._readable = None

    def get(self, header: Path, data: bytes) -> dict[str, Summary] | None:
        return self._load(self._key(header, data))

    def _load(self, target: Path) -> dict[str, Summary] | None:
        if self._readable is None:
            self._readable = all(_private(d) for d in (self.directory.parent, self.directory))
        if not self._readable:
            return None
        try:
            loaded: Any = pickle.loads(target.read_bytes())
        except Exception:  # missing, damaged or from an incompatible build: a miss
            return None
        if not isinstance(loaded, dict) or not all(isinstance(v, Summary) for v in loaded.values()):
            return None
        return loaded

    def put(self, header: Path, data: bytes, summaries: dict[str, Summary]) -> None:
        _write(self._key(header, data), pickle.dumps(summaries, pickle.HIGHEST_PROTOCOL))
        self._readable = None  # the directory may have just been made

    def _file_key(
        self, file: Path, data: bytes, headers: list[Path], names: frozenset[str] | None
    ) -> Path:
        """A `.c` file's summaries depend on its bytes and on its headers' summaries,
        which depend on the headers' bytes and the `.c` files beside them; and
        on the names they are of, when not the whole file's."""
        h = hashlib.sha256(b"file\0")
        h.update(self._key(file, data).name.encode())
        if names is not None:
            h.update(("\0names\0" + ",".join(sorted(names))).encode())
        for header in headers:
            digest = self._digests.get(header)
            if digest is None:
                try:
                    digest = hashlib.sha256(header.read_bytes()).hexdigest()
                except OSError:
                    digest = "unreadable"
                self._digests[header] = digest
            h.update(f"\0{header}\0{digest}\0".encode())
            h.update(sibling_digest(header.parent, self._siblings).encode())
        key = h.hexdigest()
        return self.directory / key[:2] / f"{key[2:]}.pickle"

    def get_file(
        self, file: Path, data: bytes, headers: list[Path], names: frozenset[str] | None = None
    ) -> dict[str, Summary] | None:
        """Summaries of another `.c` file's functions (analysis/tree.py), of
        `names` only when given, kept across runs: a review in a kernel tree
        would otherwise summarise the dozen files its callees live in every
        time. The whole file's, when kept, answer for any names."""
        if names is not None:
            whole = self._load(self._file_key(file, data, headers, None))
            if whole is not None:
                return whole
        return self._load(self._file_key(file, data, headers, names))

    def put_file(
        self,
        file: Path,
        data: bytes,
        headers: list[Path],
        summaries: dict[str, Summary],
        names: frozenset[str] | None = None,
    ) -> None:
        blob = pickle.dumps(summaries, pickle.HIGHEST_PROTOCOL)
        _write(self._file_key(file, data, headers, names), blob)
        self._readable = None


class _ObjectStore(MutableMapping[K, T]):
    """Objects of one class on disk, in memory too, by a key of strings,
    bytes and plain values, under the same salt as results; same rules as
    `HeaderStore` for what is unpickled. A miss is a KeyError."""

    kind: type[T]
    folder: str

    def __init__(self, headers: HeaderStore) -> None:
        self._headers = headers
        self.directory = headers.directory.parent / self.folder
        self._known: dict[K, T] = {}
        self._readable: bool | None = None

    def _path(self, key: K) -> Path:
        h = hashlib.sha256(self._headers.salt().encode())
        for part in key:
            if isinstance(part, bytes):
                raw = part
            else:
                raw = (part if isinstance(part, str) else repr(part)).encode(
                    "utf-8", "surrogatepass"
                )
            h.update(b"\0" + hashlib.sha256(raw).digest())
        name = h.hexdigest()
        return self.directory / name[:2] / f"{name[2:]}.pickle"

    def __getitem__(self, key: K) -> T:
        known = self._known.get(key)
        if known is not None:
            return known
        if self._readable is None:
            self._readable = all(_private(d) for d in (self.directory.parent, self.directory))
        if not self._readable:
            raise KeyError(key)
        try:
            loaded: Any = pickle.loads(self._path(key).read_bytes())
        except Exception:  # missing, damaged or from an incompatible build: a miss
            raise KeyError(key) from None
        if not isinstance(loaded, self.kind):
            raise KeyError(key)
        self._known[key] = loaded
        return loaded

    def __setitem__(self, key: K, value: T) -> None:
        self._known[key] = value
        try:
            blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except (RecursionError, pickle.PicklingError, TypeError):
            return  # kept in memory only: a store that cannot hold it is only slower
        _write(self._path(key), blob)
        self._readable = None  # the directory may have just been made

    def __delitem__(self, key: K) -> None:
        del self._known[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)


class FlowStore(_ObjectStore[tuple[str, str], FunctionFacts]):
    """Function dataflows, by the reprs of the function and its effective
    events (analysis/file.py).

    A review analyses the tree's version of a file again for every patch to
    it; the functions a patch leaves alone (at the same lines) are read back
    instead.
    """

    kind = FunctionFacts
    folder = "flows"


class LowerStore(_ObjectStore[tuple[object, ...], Function]):
    """Lowered functions, by what decides them (model/extract.py): the next
    review of a file reads back the functions its patch leaves alone instead
    of lowering them again."""

    kind = Function
    folder = "lowered"
