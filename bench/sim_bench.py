"""Simulator speed: states per second and wall time per scenario.

Each scenario is run with the partial-order reduction (only lock operations
and shared accesses interleave) and without it; the ratio of states shows
what the reduction saves. Wall times are the best of a few repeats, with the
function models built once beforehand (parsing is the pipeline bench's job).
Prints figures; never asserts on time.
Usage: python bench/sim_bench.py [REPEATS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lockcheck.engine import Engine
from lockcheck.sim.run import Request, SimResult, load_functions, simulate
from lockcheck.sim.scenarios import load_settings

ROOT = Path(__file__).resolve().parent.parent
KH = ROOT / "fixtures" / "khugepaged"
# (scenario, code, functions, VMAs, exhaustive: explore past the first violation)
CASES = [
    ("uffd-wp", KH / "v1.c", ["shrink_file_tables"], 1, False),
    ("uffd-wp", KH / "v1.c", ["shrink_file_tables"], 1, True),
    ("uffd-wp", KH / "v1.c", ["shrink_file_tables"], 2, True),
    ("uffd-wp", KH / "merged_fix.c", ["shrink_file_tables"], 1, False),
    ("uffd-wp", KH / "merged_fix.c", ["shrink_file_tables"], 2, False),
    ("uffd-wp", KH / "pre_series.c", ["shrink_file_tables"], 1, False),
    ("anon-fault", KH / "v1.c", ["shrink_file_tables"], 1, False),
    ("anon-fault", KH / "merged_fix.c", ["shrink_file_tables"], 2, False),
    ("munmap", KH / "merged_fix.c", ["shrink_file_tables"], 2, False),
    ("deadlock", ROOT / "fixtures" / "sim" / "abba.c", ["collapse_one", "unmap_one"], 1, False),
]


def _best(
    req: Request, engine: Engine, repeats: int, models: dict[str, object]
) -> tuple[float, SimResult]:
    settings = load_settings()
    best = float("inf")
    res: SimResult | None = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = simulate(req, engine, settings, models)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - t0)
    assert res is not None
    return best, res


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    engine = Engine()
    print(
        f"{'scenario':<11} {'code':<14} {'all':>3} {'vmas':>4} {'split':>5} {'result':<9} "
        f"{'states':>7} {'wall ms':>8} {'states/s':>9} {'no-POR states':>13} "
        f"{'no-POR ms':>9} {'ratio':>6}"
    )
    for scenario, code, fns, vmas, exhaustive in CASES:
        models = load_functions(engine, code)
        for split in (True, False):
            req = Request(scenario, code, fns, split, vmas, exhaustive=exhaustive)
            wall, res = _best(req, engine, repeats, models)  # type: ignore[arg-type]
            flat = Request(scenario, code, fns, split, vmas, reduce=False, exhaustive=exhaustive)
            wall_flat, res_flat = _best(flat, engine, repeats, models)  # type: ignore[arg-type]
            states, flat_states = res.outcome.states, res_flat.outcome.states
            every, on = "yes" if exhaustive else "no", "on" if split else "off"
            print(
                f"{scenario:<11} {code.name:<14} {every:>3} {vmas:>4} {on:>5} "
                f"{res.result:<9} {states:>7} {wall * 1000:>8.1f} {states / wall:>9.0f} "
                f"{flat_states:>13} {wall_flat * 1000:>9.1f} {flat_states / states:>6.1f}"
            )


if __name__ == "__main__":
    main()
