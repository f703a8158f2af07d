"""The command line as a user meets it: exit codes, formats, error lines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import FIXTURES, run_cli

KH = FIXTURES / "khugepaged"


def test_v1_reports_both_rules_at_the_check_lines() -> None:
    res = run_cli("check", "--format", "json", str(KH / "v1.c"))
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["version"] == 1
    got = {(f["rule"], f["line"]) for f in doc["findings"]}
    assert got == {("anon-vma-under-ptl", 21), ("uffd-wp-under-ptl", 32)}
    for f in doc["findings"]:
        assert f["function"] == "shrink_file_tables"
        assert f["held"] == ["mapping->i_mmap_rwsem:read"]
        assert any("`ptl` taken here" in r["message"] for r in f["related"])
    assert doc["stats"]["functions_analysed"] == 1


def test_pre_series_and_merged_fix_are_clean() -> None:
    for name in ("pre_series.c", "merged_fix.c"):
        res = run_cli("check", str(KH / name))
        assert res.returncode == 0, (name, res.stdout, res.stderr)
        assert "0 findings" in res.stdout


def test_json_is_byte_identical_across_runs() -> None:
    a = run_cli("check", "--format", "json", str(KH))
    b = run_cli("check", "--format", "json", str(KH))
    assert a.returncode == b.returncode == 1
    assert a.stdout == b.stdout
    doc = json.loads(a.stdout)
    keys = [(f["path"], f["line"], f["column"], f["rule"]) for f in doc["findings"]]
    assert keys == sorted(keys)


def test_missing_file_is_one_clear_line_exit_2(tmp_path: Path) -> None:
    res = run_cli("check", str(tmp_path / "nope.c"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"lockcheck: error: {tmp_path / 'nope.c'}: no such file or directory"
    ]
    assert "Traceback" not in res.stderr


def test_binary_c_file_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "blob.c"
    p.write_bytes(b"\x7fELF\x00\x01\x02" * 50)
    res = run_cli("check", str(p))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "binary file" in res.stderr


def test_non_utf8_c_file_is_read_with_a_note(tmp_path: Path) -> None:
    p = tmp_path / "latin.c"
    p.write_bytes(b"/* caf\xe9 */ int x;\n")
    res = run_cli("check", str(p))
    assert res.returncode == 0
    assert (
        res.stderr == f"lockcheck: note: {p}: not UTF-8 text (byte 6); 1 byte read as"
        " replacement characters\n"
    )


def test_non_c_file_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    res = run_cli("check", str(p))
    assert res.returncode == 2
    assert res.stderr.strip() == f"lockcheck: error: {p}: not a C source file (expected .c or .h)"


def test_usage_errors_exit_2_without_traceback() -> None:
    for args in (("frobnicate",), ("check", "--format", "xml", "x.c"), ("check",)):
        res = run_cli(*args)
        assert res.returncode == 2, args
        assert res.stderr.startswith("lockcheck: error: "), args
        assert "Traceback" not in res.stderr


def test_unknown_rule_and_pack_exit_2() -> None:
    res = run_cli("check", "--select", "no-such-rule", str(KH / "v1.c"))
    assert res.returncode == 2
    assert "unknown rule id 'no-such-rule'" in res.stderr
    res = run_cli("check", "--rules", "nosuchpack", str(KH / "v1.c"))
    assert res.returncode == 2
    assert "unknown rule pack 'nosuchpack'" in res.stderr


def test_explain_shows_held_set_per_event() -> None:
    res = run_cli("explain", str(KH / "v1.c"), "shrink_file_tables")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if "check uffd-wp" in line)
    assert lines[i + 1].strip() == "held: {mapping->i_mmap_rwsem:read}"
    j = next(i for i, line in enumerate(lines) if "act pt-detach" in line)
    assert lines[j + 1].strip() == "held: {mapping->i_mmap_rwsem:read, pml, ptl}"


def test_explain_unknown_function_exit_2() -> None:
    res = run_cli("explain", str(KH / "v1.c"), "nope")
    assert res.returncode == 2
    assert "no function named 'nope'" in res.stderr


def test_demo_runs_end_to_end() -> None:
    res = run_cli("demo")
    assert res.returncode == 0, res.stderr
    assert "uffd-wp-under-ptl" in res.stdout and "anon-vma-under-ptl" in res.stdout
    assert res.stdout.count("0 findings") == 2


def test_suppression_needs_a_reason(tmp_path: Path) -> None:
    src = (KH / "v1.c").read_text().splitlines()
    idx = next(i for i, line in enumerate(src) if "if (userfaultfd_wp(vma))" in line)
    with_reason = [
        *src[:idx],
        "\t\t/* lockcheck: ignore uffd-wp-under-ptl known, fixed in 3/3 */",
        *src[idx:],
    ]
    p = tmp_path / "v1.c"
    p.write_text("\n".join(with_reason) + "\n")
    doc = json.loads(run_cli("check", "--format", "json", str(p)).stdout)
    assert {f["rule"] for f in doc["findings"]} == {"anon-vma-under-ptl"}
    no_reason = [*src[:idx], "\t\t/* lockcheck: ignore uffd-wp-under-ptl */", *src[idx:]]
    p.write_text("\n".join(no_reason) + "\n")
    doc = json.loads(run_cli("check", "--format", "json", str(p)).stdout)
    assert "uffd-wp-under-ptl" in {f["rule"] for f in doc["findings"]}
