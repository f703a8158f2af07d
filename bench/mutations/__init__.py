"""Bug-making (and benign) edits of real kernel functions, for bench/mutation_bench.py."""
