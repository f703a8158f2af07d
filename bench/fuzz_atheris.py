"""Coverage-guided fuzzing of the two input parsers with atheris (optional, not in CI).

    pip install atheris
    mkdir -p /tmp/corpus && cp fixtures/series/*.patch fixtures/series/*.eml /tmp/corpus/
    python bench/fuzz_atheris.py patch -max_total_time=300 /tmp/corpus   # patches, mails
    python bench/fuzz_atheris.py c -max_total_time=300 /tmp/corpus-c      # C source

The directory seeds the corpus; libFuzzer adds the inputs it finds to it, so
give it a copy, never fixtures/ itself.
Expected failures (`LockcheckError`) are fine; any other exception is a crash
that libFuzzer reports with the input that caused it (saved as crash-*).
The Hypothesis tests in tests/test_fuzz_*.py cover the same entry points
with bounded examples; this is the long-running, coverage-guided variant.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from lockcheck.engine import Engine
    from lockcheck.errors import LockcheckError
    from lockcheck.inputs.patch import order_series, parse_patch_text
    from lockcheck.review import review

ENGINE = Engine()


def fuzz_patch(data: bytes) -> None:
    """What `lockcheck review FILE` does with a file of these bytes, minus the CLI."""
    if b"\0" in data[:8192]:
        return  # refused as binary before parsing
    try:
        patches = order_series(parse_patch_text(data.decode("utf-8", "replace"), "fuzz"))
        review(ENGINE, patches, None)
    except LockcheckError:
        pass


def fuzz_c(data: bytes) -> None:
    """Parse, lower, analyse and run every rule on arbitrary bytes as C."""
    analysis = ENGINE.analyse_source("fuzz.c", data)
    ENGINE.findings_for(analysis)


def main() -> None:
    targets = {"patch": fuzz_patch, "c": fuzz_c}
    if len(sys.argv) < 2 or sys.argv[1] not in targets:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(targets)}}} [libFuzzer options] [corpus]")
    target = targets[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
