"""The on-disk result cache: a file's part of a check, by what decides it.

An entry's key hashes the file's path and bytes, the bytes of every header
whose inline helpers its analysis reads, and a salt naming everything else
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
import tempfile
from pathlib import Path

import lockcheck
from lockcheck.engine import Engine, FileResult
from lockcheck.results import result_from_dict, result_to_dict

CACHE_ENV = "LOCKCHECK_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$LOCKCHECK_CACHE_DIR`, else `$XDG_CACHE_HOME/lockcheck`, else ~/.cache/lockcheck."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lockcheck"


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


class ResultCache:
    """Per-file results under `directory`, for one engine's settings."""

    def __init__(self, directory: Path, engine: Engine) -> None:
        self.directory = directory
        self.salt = engine_salt(engine)
        self._engine = engine
        self._digests: dict[Path, str] = {}
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
        for header in self._engine.headers_for(str(path), source):
            h.update(f"\0{header}\0{self._digest(header)}".encode())
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
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(result_to_dict(result), f, sort_keys=True)
            os.replace(tmp, target)
        except OSError:
            return
