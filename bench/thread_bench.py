"""What reading a reply against its thread costs, next to reading the quote alone.

Times, best of N, in this one run:

- the reply in fixtures/thread/thread.mbox annotated from its quote alone
  (fragment mode: the baseline);
- the same reply with the thread and the tree (the answered patch found,
  applied, analysed whole, its findings matched back to the quote);
- token matching alone on a large patch: a generated diff of LINES changed
  lines and a reply quoting three pieces of it, next to parsing that diff
  (what any review of it pays first).

Prints figures and ratios; never asserts on time.
Usage: python bench/thread_bench.py [LINES] [REPEATS]  (default 3000, 5)
"""

from __future__ import annotations

import difflib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.inputs.apply import DirTree
from lockcheck.inputs.patch import Patch, parse_patch_text, read_patches
from lockcheck.inputs.quote import align, headerless_quote
from lockcheck.reply import Thread, review_reply
from lockcheck.review import review

ROOT = Path(__file__).resolve().parent.parent
THREAD = ROOT / "fixtures" / "thread" / "thread.mbox"
TREE = ROOT / "fixtures" / "thread" / "tree"


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def pat_reply() -> Patch:
    raw = THREAD.read_text()
    text = raw[raw.rindex("\nFrom pat@example.org") + 1 :].split("\n", 1)[1]
    return headerless_quote(parse_patch_text(text, "pat.eml")[0])


def big_diff(lines: int) -> str:
    """A diff touching `lines` lines: each function's lock taken for read, not write."""
    body = []
    for n in range(lines // 4):
        body += [
            f"static void tables_{n}(struct address_space *mapping)\n",
            "{\n",
            "\ti_mmap_lock_write(mapping);\n",
            f"\tdrop_tables_{n}(mapping, {n});\n",
            "\ti_mmap_unlock_write(mapping);\n",
            "}\n",
        ]
    after = [ln.replace("_write(", "_read(") for ln in body]
    return "".join(difflib.unified_diff(body, after, "a/mm/big.c", "b/mm/big.c"))


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    reply = pat_reply()
    thread = Thread(str(THREAD), read_patches(THREAD))
    tree = DirTree(TREE)
    alone = best(lambda: review(Engine(), [reply], None), repeats)
    whole = best(lambda: review_reply(Engine(), reply, tree, thread, "pat.eml"), repeats)
    print(f"reply, quote alone (fragment mode): {alone * 1000:8.1f} ms")
    print(f"reply, thread + tree:               {whole * 1000:8.1f} ms  ({whole / alone:.1f}x)")
    diff = big_diff(lines)
    dlines = diff.splitlines()
    pieces: list[str] = []
    for frac in (0.2, 0.5, 0.8):
        k = int(len(dlines) * frac)
        pieces += ["> " + " ".join(ln.split()) for ln in dlines[k : k + 20]] + ["..."]
    quoted_text = "Subject: Re: [PATCH] mm/big: x\n\n" + "\n".join(pieces) + "\n"
    quoted = headerless_quote(parse_patch_text(quoted_text, "r")[0]).files[0]
    parse = best(lambda: parse_patch_text(diff, "p"), repeats)
    full = parse_patch_text(diff, "p")[0].files[0]
    match = best(lambda: align(quoted, full), repeats)
    n = sum(len(h.lines) for h in full.hunks)
    print(f"parse a {n}-line diff:               {parse * 1000:8.1f} ms")
    print(f"match 60 quoted lines against it:   {match * 1000:8.1f} ms  ({match / parse:.1f}x)")


if __name__ == "__main__":
    main()
