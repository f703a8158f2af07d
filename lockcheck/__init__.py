"""lockcheck: a patch-review assistant for Linux kernel locking."""

import gc

__version__ = "0.1.0"


def tune_collector() -> None:
    """Make the cyclic garbage collector run less often, for a process that
    runs the analysis (the command line and its workers; not on import).

    The analysis makes millions of short-lived objects and keeps a large,
    long-lived set (header and callee summaries, directory indexes): with
    the default thresholds the collector runs every 700 allocations and
    walks the long-lived set again and again, about a tenth of a run's CPU.
    """
    gc.set_threshold(50_000, 50, 100)
