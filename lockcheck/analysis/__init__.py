"""Lock analysis, one job per module, imports pointing down only.

state (the lattice) <- transfer (one event or edge) <- paths (per-path
facts) <- flow (one function's fixed point); function (what rules query);
summaries (what a call does to its caller); file (a file's functions,
callees first).
"""
