"""Pipeline speed against the raw tree-sitter parse of the same files.

Prints figures and ratios measured in the same run; never asserts on time.
Usage: python bench/run_bench.py [DIR]  (default: the 6.1 kernel mm/ if it
has been extracted by the tests into .cache/, else fixtures/).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.frontend.parse import parser

ROOT = Path(__file__).resolve().parent.parent


def _files(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*") if p.suffix in (".c", ".h") and p.is_file())


def main() -> None:
    default = ROOT / ".cache" / "linux-source-6.1" / "mm"
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    if not target.is_dir():
        target = ROOT / "fixtures"
    files = _files(target)
    sources = [p.read_bytes() for p in files]
    size = sum(len(s) for s in sources)

    t0 = time.perf_counter()
    for src in sources:
        parser().parse(src)
    parse_s = time.perf_counter() - t0

    engine = Engine()
    t0 = time.perf_counter()
    result = engine.check_paths(files)
    full_s = time.perf_counter() - t0

    print(f"target: {target} ({len(files)} files, {size / 1e6:.2f} MB)")
    print(f"raw tree-sitter parse: {parse_s:.2f} s ({size / 1e6 / parse_s:.1f} MB/s)")
    print(f"lockcheck check:       {full_s:.2f} s ({size / 1e6 / full_s:.1f} MB/s)")
    print(f"ratio check/parse:     {full_s / parse_s:.1f}x")
    st = result.stats
    print(f"functions: {st.functions} ({st.functions_analysed} analysed, {st.budget_outs} budget)")
    print(f"findings: {len(result.findings)}")


if __name__ == "__main__":
    main()
