"""Property tests: broken patches and emails through the real CLI give 0, 1 or 2, never a crash.

`lockcheck.cli.main` runs in-process (SystemExit captured) for speed; a few
subprocess runs check the same contract end to end. An "internal error"
line is the CLI's last-resort guard, so it counts as a crash here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import FIXTURES, ROOT, assert_contract, run_cli, run_main
from tests.strategies import C_FIXTURES, PATCH_FIXTURES, examples, mutated_fixture, mutated_lines

TREE = FIXTURES / "series" / "tree"
FUZZ = settings(
    max_examples=examples(20),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")


def _write(workdir: Path, name: str, data: bytes) -> Path:
    path = workdir / name
    path.write_bytes(data)
    return path


@FUZZ
@given(st.binary(max_size=3000), st.sampled_from(["x.patch", "x.eml", "x.mbox"]))
def test_random_bytes_as_patch(workdir: Path, data: bytes, name: str) -> None:
    path = _write(workdir, name, data)
    code, _, err = run_main("review", "--quiet", str(path))
    assert_contract(code, err)


@FUZZ
@given(st.text(max_size=2000))
def test_random_text_as_email(workdir: Path, text: str) -> None:
    """Text (not bytes) gets further into the mail and diff parsers."""
    path = _write(workdir, "t.eml", ("From: a\nSubject: [PATCH] x\n\n" + text).encode())
    code, _, err = run_main("review", str(path))
    assert_contract(code, err)
    code, _, err = run_main("annotate", str(path))
    assert_contract(code, err)


@FUZZ
@given(mutated_fixture(PATCH_FIXTURES), st.booleans())
def test_mutated_series_review(workdir: Path, case: tuple[Path, bytes], with_tree: bool) -> None:
    src, data = case
    path = _write(workdir, src.name, data)
    tree = ["--tree", str(TREE)] if with_tree else []
    code, _, err = run_main("review", *tree, str(path))
    assert_contract(code, err)


@FUZZ
@given(mutated_lines(PATCH_FIXTURES), st.sampled_from(["review", "annotate"]))
def test_mutated_lines_review_and_annotate(workdir: Path, data: bytes, command: str) -> None:
    path = _write(workdir, "m.patch", data)
    code, _, err = run_main(command, "--tree", str(TREE), str(path))
    assert_contract(code, err)


@FUZZ
@given(mutated_fixture(PATCH_FIXTURES))
def test_mutated_patches_as_json_are_deterministic(workdir: Path, case: tuple[Path, bytes]) -> None:
    path = _write(workdir, "d.patch", case[1])
    first = run_main("review", "--format", "json", "--tree", str(TREE), str(path))
    assert_contract(first[0], first[2])
    assert run_main("review", "--format", "json", "--tree", str(TREE), str(path)) == first


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00\x01" * 50,
        b"From x\nFrom: a\nSubject: s\n\n@@ -1 +1 @@\n-a\n+b\n",
        b"diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -99999999999999999999 +1 @@\n-a\n+b\n",
    ],
)
def test_subprocess_never_tracebacks(tmp_path: Path, data: bytes) -> None:
    """The same contract through a real process: what a CI job sees."""
    path = tmp_path / "in.patch"
    path.write_bytes(data)
    for args in (["review", str(path)], ["annotate", str(path)]):
        proc = run_cli(*args)
        assert_contract(proc.returncode, proc.stderr)
    proc = run_cli("review", "-", stdin=data.decode("utf-8", "replace").encode())
    assert_contract(proc.returncode, proc.stderr)


def test_run_main_sees_exit_codes(tmp_path: Path) -> None:
    """The in-process runner itself: a clean file gives 0, a finding 1, a bad file 2."""
    (tmp_path / "clean.c").write_text("int f(void)\n{\n\treturn 0;\n}\n")
    assert run_main("check", "--no-sim", str(tmp_path / "clean.c"))[0] == 0
    assert run_main("check", "--no-sim", str(FIXTURES / "khugepaged" / "v1.c"))[0] == 1
    code, _, err = run_main("review", str(FIXTURES / "nonexistent.patch"))
    assert (code, err.count("\n")) == (2, 1)


SMALL = settings(FUZZ, max_examples=examples(12))
PACK = ROOT / "rules" / "mm.toml"
ACTORS = sorted((ROOT / "rules" / "actors").glob("*.c"))


@SMALL
@given(
    mutated_fixture(C_FIXTURES),
    st.sampled_from(["text", "json", "sarif", "github", "b4"]),
    st.booleans(),
)
def test_mutated_c_through_every_format(
    workdir: Path, case: tuple[Path, bytes], fmt: str, color: bool
) -> None:
    path = _write(workdir, "x.c", case[1])
    colour = ["--color", "always"] if color else []
    code, _, err = run_main("check", "--no-sim", "--format", fmt, *colour, str(path))
    assert_contract(code, err)
    code, _, err = run_main("explain", str(path), "retract_page_tables")
    assert_contract(code, err)


@SMALL
@given(mutated_lines([PACK]))
def test_mutated_rule_pack(workdir: Path, data: bytes) -> None:
    """A pack is the user's, but a broken one must still be one error line."""
    path = _write(workdir, "p.toml", data)
    v1 = str(FIXTURES / "khugepaged" / "v1.c")
    code, _, err = run_main("check", "--no-sim", "--rules", str(path), v1)
    assert_contract(code, err)


@SMALL
@given(mutated_lines(ACTORS))
def test_mutated_actor_model(workdir: Path, data: bytes) -> None:
    path = _write(workdir, "actor.c", data)
    args = ["simulate", "fault-fill", "--example", "--split-ptl", "on", "--max-states", "2000"]
    code, _, err = run_main(*args, "--actor", str(path))
    assert_contract(code, err)
