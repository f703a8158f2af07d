"""The in-memory mbox splitter agrees with the stdlib's `mailbox.mbox`, byte for byte.

lockcheck splits mboxes in memory so that no input ever touches the disk;
this pins it to the behaviour of the library it replaced.
"""

from __future__ import annotations

import mailbox
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lockcheck.inputs.patch import mbox_split, parse_patch_text
from tests.helpers import FIXTURES
from tests.strategies import examples

LINES = st.sampled_from(
    [
        b"From someone Mon Jan  5 11:00:00 2026",
        b"From: A <a@example.org>",
        b"Subject: [PATCH 1/2] mm: x",
        b">From the quoted",
        b"From",
        b"",
        b"\r",
        b"body text",
        b"@@ -1 +1 @@",
        b"\xff\xfe",
        b" From indented",
    ]
)


def stdlib_split(raw: bytes) -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "box"
        path.write_bytes(raw)
        box = mailbox.mbox(path, create=False)
        try:
            return [box.get_bytes(k) for k in list(box.iterkeys())]
        finally:
            box.close()


@settings(max_examples=examples(150), deadline=None, derandomize=True)
@given(st.lists(LINES, max_size=30), st.booleans())
def test_split_matches_mailbox(lines: list[bytes], final_newline: bool) -> None:
    raw = b"\n".join(lines) + (b"\n" if final_newline else b"")
    assert mbox_split(raw) == stdlib_split(raw)


def test_split_matches_mailbox_on_the_fixture_series() -> None:
    raw = (FIXTURES / "series" / "series.mbox").read_bytes()
    got = mbox_split(raw)
    assert len(got) == 4 and got == stdlib_split(raw)  # a cover letter and three patches


def test_mbox_on_stdin_with_bad_utf8_is_parsed(tmp_path: Path) -> None:
    """Regression: `annotate -` used to spool the text to a temp file and crash on it."""
    data = (
        b"From x Mon Jan  5 11:00:00 2026\nFrom: a\nSubject: Re: [PATCH] mm/x: y\n\n"
        b"\xff\xfe\n> @@ -1,2 +1,2 @@\n> -a\n> +b\n>  c\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lockcheck", "annotate", "-"], input=data, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert b"> +b" in proc.stdout
    patches = parse_patch_text(data.decode("utf-8", "surrogateescape"), "<stdin>")
    assert [len(p.files) for p in patches] == [1]
