"""Read C sources from disk, refusing what is not C text with a clear reason."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import BinaryIO

from lockcheck.errors import InputError

C_SUFFIXES = (".c", ".h")
# Far above any kernel source file or mail thread; stops `/dev/zero` and friends.
MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_bounded(stream: BinaryIO, origin: str) -> bytes:
    """All of `stream`, unless it is larger than any real input."""
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{origin}: larger than {MAX_INPUT_BYTES >> 20} MiB, not read")
    return data


def read_regular(path: Path) -> bytes:
    """A settings file, baseline or model a repository may name: never a FIFO or device.

    A missing file raises the usual OSError, for the caller's message.
    """
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file")
    with path.open("rb") as f:
        return read_bounded(f, str(path))


def read_c_source(path: Path) -> bytes:
    """The bytes of a readable C source file, as UTF-8 (see `as_utf8`)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    if path.suffix not in C_SUFFIXES:
        raise InputError(f"{path}: not a C source file (expected .c or .h)")
    if not path.is_file():  # a FIFO or device would block or never end
        raise InputError(f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            data = read_bounded(f, str(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data[:8192]:
        raise InputError(f"{path}: binary file, not C source")
    return as_utf8(data, str(path))


class DecodeNote(UserWarning):
    """A source that is not UTF-8 was read with replacements: the CLI prints it as a note."""


_UNDECODED = re.compile("[\udc80-\udcff]")


def as_utf8(data: bytes, origin: str) -> bytes:
    """`data`, with each byte that is not UTF-8 (Latin-1 in older drivers) replaced by `?`.

    One byte for one byte, so that every line and column the parser reports
    is the original file's; excerpts, read from the file itself, show a
    replacement character there.
    """
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError as exc:
        first = exc.start
    text = data.decode("utf-8", "surrogateescape")  # one surrogate per undecodable byte
    fixed, n = _UNDECODED.subn("?", text)
    warnings.warn(
        DecodeNote(
            f"{origin}: not UTF-8 text (byte {first}); {n} byte{'s' * (n != 1)} read as"
            " replacement characters"
        ),
        stacklevel=3,
    )
    return fixed.encode("utf-8")


def collect_sources(paths: list[Path]) -> tuple[list[Path], list[InputError]]:
    """Expand directories to their C files (sorted); bad explicit paths are errors."""
    out: list[Path] = []
    errors: list[InputError] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in C_SUFFIXES and q.is_file()))
        elif not p.exists():
            errors.append(InputError(f"{p}: no such file or directory"))
        else:
            out.append(p)
    return out, errors
