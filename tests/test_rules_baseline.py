"""Baselines in process: the three forms, every error, what is written.

`make mutate` runs these first for lockcheck/rules/baseline.py (the CLI
tests of baselines are not in the rules runner).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockcheck.errors import InputError
from lockcheck.model.finding import Finding
from lockcheck.rules.baseline import baseline_json, load_baseline


def write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "b.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "doc",
    [
        ["a", "b"],
        {"fingerprints": ["a", "b"]},
        {"findings": [{"fingerprint": "a"}, {"fingerprint": "b"}, {"fingerprint": "a"}]},
    ],
)
def test_the_three_forms(tmp_path: Path, doc: object) -> None:
    assert load_baseline(write(tmp_path, doc)) == {"a", "b"}


EXPECTED = (
    "expected `lockcheck check --format json` output,"
    ' {"fingerprints": [...]} or a list of fingerprints'
)


@pytest.mark.parametrize(
    ("doc", "tail"),
    [
        (
            {"other": 1},
            EXPECTED,
        ),
        (
            "text",
            EXPECTED,
        ),
        (
            {"fingerprints": "a"},
            EXPECTED,
        ),
        (["a", ""], "entry 1: fingerprint must be a string"),
        (["a", 3], "entry 1: fingerprint must be a string"),
        ({"findings": [{"fingerprint": "a"}, "x"]}, "entry 1: fingerprint must be a string"),
        ({"findings": [{"rule": "r"}]}, "entry 0: fingerprint must be a string"),
    ],
)
def test_what_is_not_a_baseline(tmp_path: Path, doc: object, tail: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(InputError) as err:
        load_baseline(path)
    assert str(err.value) == f"baseline {path}: {tail}"


def test_unreadable_and_not_json(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(InputError) as err:
        load_baseline(missing)
    assert str(err.value) == f"baseline {missing}: cannot read: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{")
    with pytest.raises(InputError) as err:
        load_baseline(bad)
    assert str(err.value).startswith(f"baseline {bad}: not valid JSON: ")
    bad.write_bytes(b"\xff")
    with pytest.raises(InputError) as err:
        load_baseline(bad)
    assert str(err.value).startswith(f"baseline {bad}: not valid JSON: ")


def test_what_is_written() -> None:
    f = Finding(
        rule="r", severity="warning", path="t.c", line=3, column=1, function="f", message="m"
    )
    g = Finding(
        rule="s", severity="warning", path="t.c", line=4, column=1, function="f", message="m"
    )
    text = baseline_json([g, f, f])
    assert text.endswith("}\n") and text.startswith('{\n  "version": 1,\n  "fingerprints": [\n')
    assert json.loads(text) == {
        "version": 1,
        "fingerprints": sorted({f.fingerprint, g.fingerprint}),
    }
