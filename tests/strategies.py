"""Hypothesis strategies for hostile input: C-ish token soup, mutated fixtures, raw bytes.

Mutations start from the project's own fixtures so that the broken inputs
stay close to what the parsers were written for (the interesting failures
are near-misses, not noise).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from hypothesis import strategies as st


def examples(default: int) -> int:
    """Examples per property: small in CI; LOCKCHECK_FUZZ_EXAMPLES=5000 for a deep run."""
    return int(os.environ.get("LOCKCHECK_FUZZ_EXAMPLES", default))


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
C_FIXTURES = sorted(FIXTURES.rglob("*.c"))
PATCH_FIXTURES = sorted(
    [*FIXTURES.glob("series/*.patch"), FIXTURES / "series" / "series.mbox"]
    + [FIXTURES / "series" / "reply.eml"]
)

_KEYWORDS = (
    "if", "else", "while", "for", "do", "switch", "case 1:", "default:", "break;",
    "continue;", "return", "goto out;", "out:", "struct s", "int", "void", "static",
    "unsigned long", "const", "sizeof", "NULL", "true",
)  # fmt: skip
_PUNCT = (
    "{", "}", "(", ")", ";", ",", "=", "==", "!=", "&&", "||", "!", "&", "*", "->", ".",
    "+", "-", "?", ":", "[", "]", "++", "<<", "\\",
)  # fmt: skip
_LOCKISH = (
    "spin_lock(&l);", "spin_unlock(&l);", "spin_lock(ptl);", "spin_unlock(ptl);",
    "mmap_read_lock(mm);", "mmap_read_unlock(mm);", "mmap_write_trylock(mm)",
    "mutex_lock(&m);", "mutex_unlock(&m);", "spin_trylock(&l)", "i_mmap_lock_write(map);",
    "i_mmap_unlock_write(map);", "pte_offset_map_lock(mm, pmd, addr, &ptl)",
    "pte_unmap_unlock(pte, ptl);", "guard(spinlock)(&l);", "scoped_guard(mutex, &m)",
    "rcu_read_lock();", "rcu_read_unlock();", "might_sleep();", "kmalloc(n, GFP_KERNEL);",
    "userfaultfd_wp(vma)", "vma->anon_vma", "lockdep_assert_held(&l);",
    "list_for_each_entry(p, &h, node)",
)  # fmt: skip
_OTHER = (
    "x", "y", "vma", "mm", "pmd", "a->b", "f(x)", "0", "1", "0x1f", "'c'", '"s"', '"',
    "/* ok: check-under-lock */", "/* ruleid: x */", "/*", "*/", "// note", "#if X",
    "#ifdef CONFIG_Y", "#else", "#endif", "#define M(a) a", "#include <x.h>", "\n", "\t",
    "\u00e9", "\x00", "\r\n",
)  # fmt: skip

TOKENS = st.sampled_from(_KEYWORDS + _PUNCT + _LOCKISH + _OTHER)


@st.composite
def c_token_soup(draw: st.DrawFn) -> bytes:
    """Random C-ish tokens, half the time inside a function body."""
    toks = draw(st.lists(TOKENS, max_size=80))
    sep = draw(st.sampled_from([" ", "\n", ""]))
    body = sep.join(toks)
    if draw(st.booleans()):
        body = f"void f(struct mm_struct *mm)\n{{\n{body}\n}}\n"
    return body.encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after a few edits: spans cut, repeated or moved, bytes flipped, truncation."""
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        op = draw(st.sampled_from(["cut", "dup", "move", "flip", "insert", "truncate"]))
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 400)))
        if op == "cut":
            data = data[:i] + data[j:]
        elif op == "dup":
            data = data[:j] + data[i:j] + data[j:]
        elif op == "move":
            k = draw(st.integers(0, n))
            piece, rest = data[i:j], data[:i] + data[j:]
            k = min(k, len(rest))
            data = rest[:k] + piece + rest[k:]
        elif op == "flip" and i < n:
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        elif op == "insert":
            tok = draw(TOKENS).encode("utf-8", "surrogatepass")
            data = data[:i] + tok + data[i:]
        elif op == "truncate":
            data = data[:i]
    return data


@functools.cache
def _snapshot(paths: tuple[Path, ...]) -> dict[Path, bytes]:
    """Fixture bytes read once: a fixture edited mid-run must not make draws flaky."""
    return {p: p.read_bytes() for p in paths}


@st.composite
def mutated_fixture(draw: st.DrawFn, paths: list[Path]) -> tuple[Path, bytes]:
    """(which fixture, its mutated bytes)."""
    texts = _snapshot(tuple(paths))
    path = draw(st.sampled_from(sorted(texts)))
    return path, draw(mutated(texts[path]))


@st.composite
def mutated_lines(draw: st.DrawFn, paths: list[Path]) -> bytes:
    """A fixture with whole lines dropped, repeated or swapped: keeps diffs almost valid."""
    texts = _snapshot(tuple(paths))
    lines = texts[draw(st.sampled_from(sorted(texts)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "repeat", "swap", "edit"]))
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(j, lines[i])
        elif op == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines[i] = draw(st.sampled_from([b"+", b"-", b" ", b"@@ -1 +1 @@\n", b"\n", b">"]))
            lines[i] += draw(TOKENS).encode("utf-8", "surrogatepass") + b"\n"
    return b"".join(lines)
