"""`python -m lockcheck`: the same as the `lockcheck` console script."""

from lockcheck.cli import main

main()
