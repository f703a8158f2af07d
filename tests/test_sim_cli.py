"""`lockcheck simulate` and the evidence on `lockcheck check` findings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.helpers import FIXTURES, run_cli

KH = FIXTURES / "khugepaged"
SIM = FIXTURES / "sim"


def test_simulate_json_v1_uffd_wp_is_a_violation_with_a_trace() -> None:
    res = run_cli(
        "simulate",
        "uffd-wp",
        "--code",
        str(KH / "v1.c"),
        "--function",
        "shrink_file_tables",
        "--format",
        "json",
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["scenario"] == "uffd-wp"
    assert doc["result"] == "violation"
    assert [r["split_ptl"] for r in doc["runs"]] == ["on", "off"]
    assert doc["states"] == sum(r["states"] for r in doc["runs"])
    for step in doc["trace"]:
        assert {"thread", "line", "event", "state_change"} <= set(step)
    last = doc["trace"][-1]
    assert last["thread"] == "CPU0" and last["violation"] is True
    assert "pte_free_defer" in last["event"]


def test_simulate_merged_fix_holds_and_says_how_many_states() -> None:
    res = run_cli(
        "simulate",
        "anon-fault",
        "--code",
        str(KH / "merged_fix.c"),
        "--function",
        "shrink_file_tables",
        "--split-ptl",
        "off",
    )
    assert res.returncode == 0, res.stderr
    assert "split pte locks off: holds: no violation in" in res.stdout
    assert "split pte locks on" not in res.stdout


def test_simulate_deadlock_svg_draws_a_lane_per_thread() -> None:
    res = run_cli(
        "simulate",
        "deadlock",
        "--code",
        str(SIM / "abba.c"),
        "--function",
        "collapse_one",
        "--function",
        "unmap_one",
        "--format",
        "svg",
        "--split-ptl",
        "on",
    )
    assert res.returncode == 1, res.stderr
    root = ET.fromstring(res.stdout)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "CPU0: collapse_one()" in texts and "CPU1: unmap_one()" in texts
    assert any(t.startswith("deadlock:") for t in texts)


def test_malformed_actor_is_exit_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken_actor.c"
    bad.write_text("void f(struct mm_struct *mm)\n{\n\tmmap_read_lock(mm)\n}\n")
    res = run_cli("simulate", "uffd-wp", "--example", "--actor", str(bad))
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"lockcheck: error: {bad}:4: malformed actor model")


STRICT_PACK = """\
[pack]
name = "strict"

[[rule]]
id = "uffd-wp-under-ptl-or-exclusive-mmap"
kind = "check-under-lock"
summary = "uffd-wp tested under the pte lock or the exclusive mmap lock only"
severity = "warning"
flag = "uffd-wp"
acts = ["pt-detach"]
locks = ["pte_lock", "mmap_lock:write"]
scenario = "uffd-wp"
message = "`{expr}` tested without {wanted}"
"""


def test_check_findings_carry_evidence_unless_no_sim(tmp_path: Path) -> None:
    # read_locked.c tests uffd-wp under the mmap lock for read: the built-in
    # rule accepts that, a stricter pack does not, and the simulator shows
    # the stricter rule's finding cannot be reproduced.
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT_PACK)
    paths = [str(KH / "v1.c"), str(SIM / "read_locked.c")]
    res = run_cli("check", "--rules", "mm", "--rules", str(strict), "--format", "json", *paths)
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["findings"]
    evidence = {(Path(f["path"]).name, f["rule"]): f.get("evidence") for f in findings}
    assert evidence[("v1.c", "uffd-wp-under-ptl")].startswith("confirmed: trace of ")
    assert evidence[("v1.c", "anon-vma-under-ptl")].startswith("confirmed: trace of ")
    assert ("read_locked.c", "uffd-wp-under-ptl") not in evidence
    strict_key = ("read_locked.c", "uffd-wp-under-ptl-or-exclusive-mmap")
    assert evidence[strict_key].startswith("not reproduced: ")
    assert evidence[strict_key].endswith(" states explored")
    again = run_cli("check", "--rules", "mm", "--rules", str(strict), "--format", "json", *paths)
    assert again.stdout == res.stdout
    off = run_cli("check", "--no-sim", "--format", "json", *paths)
    assert all("evidence" not in f for f in json.loads(off.stdout)["findings"])
