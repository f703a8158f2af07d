"""Every output format on the khugepaged fixtures: golden files and format checks.

Golden files live in tests/golden/; after an intended change to the output,
regenerate them with `LOCKCHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py`
and review the diff. The CLI runs from the repository root with relative
paths, so no golden file holds a machine's absolute path.
"""

from __future__ import annotations

import json
import re

import pytest

from lockcheck.model.finding import Finding, Related
from lockcheck.packs import RuleSpec
from lockcheck.report import FORMATS, REVIEW_FORMATS, RunInfo, render_report
from lockcheck.report.github import escape_data, escape_property, workflow_command
from lockcheck.report.text import want_color
from tests.helpers import ROOT, annotations, assert_golden, assert_valid_sarif, run_cli

# The two rules of the story, so that new rules elsewhere do not churn the goldens;
# the simulator's evidence is tested on its own (test_sarif_code_flow_from_the_simulator).
SELECT = ("--select", "uffd-wp-under-ptl", "--select", "anon-vma-under-ptl", "--no-sim")
KH_REL = "fixtures/khugepaged"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_output(fmt: str, *extra: str, target: str = KH_REL) -> str:
    res = run_cli("check", "--format", fmt, *SELECT, *extra, target)
    assert res.returncode == 1, res.stderr
    assert res.stderr == ""
    return res.stdout


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    """Each non-email format on the fixture directory, rendered once by the CLI."""
    return {fmt: check_output(fmt) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_output_per_format(outputs: dict[str, str], fmt: str) -> None:
    ext = {
        "text": "txt",
        "json": "json",
        "sarif": "sarif",
        "github": "github",
        "b4": "b4.json",
        "checkpatch": "checkpatch",
    }
    assert_golden(f"khugepaged.{ext[fmt]}", outputs[fmt])


@pytest.mark.parametrize("fmt", REVIEW_FORMATS)
def test_every_format_is_byte_stable(
    outputs: dict[str, str], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another hash seed and the files named in reverse order: the same bytes."""
    if fmt == "email":  # needs a reviewed patch
        runs = []
        for seed in ("1", "2"):
            monkeypatch.setenv("PYTHONHASHSEED", seed)
            monkeypatch.setenv("GIT_AUTHOR_NAME", "Rob Reviewer")
            monkeypatch.setenv("GIT_AUTHOR_EMAIL", "rob@example.org")
            monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767690000")
            args = ("review", "fixtures/series/series.mbox", "--tree", "fixtures/series/tree")
            res = run_cli(*args, "--format", "email", *SELECT[:4])
            assert res.returncode == 1 and res.stdout, res.stderr
            runs.append(res.stdout)
        assert runs[0] == runs[1]
        return
    names = [str(p.relative_to(ROOT)) for p in sorted((ROOT / KH_REL).glob("*.c"), reverse=True)]
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    assert check_output(fmt) == outputs[fmt]
    monkeypatch.setenv("PYTHONHASHSEED", "2")
    named = check_output(fmt, *names[1:], target=names[0])
    # b4 quotes the command line, the one thing that may differ
    assert named.replace(" ".join([*names[1:], names[0]]), KH_REL) == outputs[fmt]


def test_json_schema_is_unchanged_by_the_reporter_interface(outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["json"])
    assert doc["version"] == 1
    assert sorted(doc) == ["findings", "stats", "version"]
    for f in doc["findings"]:
        assert sorted(f) == sorted(
            ["rule", "severity", "path", "line", "column", "function", "message", "held"]
            + ["expected", "related", "fingerprint"]
        )


def source_at(path: str, line: int) -> str:
    return (ROOT / path).read_text().splitlines()[line - 1]


def test_text_marks_the_line_and_puts_the_caret_under_the_check(outputs: dict[str, str]) -> None:
    [line] = annotations(ROOT / KH_REL / "v1.c")["uffd-wp-under-ptl"]["ruleid"]
    lines = outputs["text"].splitlines()
    head = f"{KH_REL}/v1.c:{line}:7: error:"
    header = next(i for i, s in enumerate(lines) if s.startswith(head))
    marked = next(s for s in lines[header:] if s.startswith("  >"))
    assert marked.endswith("| \t\tif (userfaultfd_wp(vma))")
    caret = lines[lines.index(marked) + 1]
    src = source_at(f"{KH_REL}/v1.c", line)
    # the caret line repeats the source line's indentation, then marks the check
    _, _, under = caret.partition("| ")
    assert under == "\t\t    " + "^" + "~" * (len("userfaultfd_wp(vma)") - 1)
    assert src[len(under) - len("userfaultfd_wp(vma)") :].startswith("userfaultfd_wp(vma)")
    assert "held here: {mapping->i_mmap_rwsem:read}" in outputs["text"]


def test_color_is_pygments_highlighting_over_the_plain_text(outputs: dict[str, str]) -> None:
    colored = check_output("text", "--color", "always")
    assert colored != outputs["text"]
    assert "\x1b[" in colored
    assert ANSI.sub("", colored) == outputs["text"]
    # `auto` is plain when piped, whatever NO_COLOR says (run_cli sets NO_COLOR=1 too)
    assert check_output("text", "--color", "auto") == outputs["text"]


@pytest.mark.parametrize(
    ("choice", "tty", "env", "want"),
    [
        ("auto", True, {}, True),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: empty means unset
        ("auto", False, {}, False),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_color_choice(choice: str, tty: bool, env: dict[str, str], want: bool) -> None:
    assert want_color(choice, tty, env) is want


def test_sarif_validates_and_carries_rules_locations_and_fingerprints(
    outputs: dict[str, str],
) -> None:
    doc = json.loads(outputs["sarif"])
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [
        "anon-vma-under-ptl",
        "uffd-wp-under-ptl",
    ]
    assert run["tool"]["driver"]["rules"][1]["defaultConfiguration"]["level"] == "error"
    by_key = {
        (
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        ): r
        for r in run["results"]
    }
    res = by_key[(f"{KH_REL}/v1.c", 32)]
    assert res["ruleId"] == "uffd-wp-under-ptl"
    region = res["locations"][0]["physicalLocation"]["region"]
    assert region["snippet"]["text"] == source_at(f"{KH_REL}/v1.c", 32)
    assert region["startColumn"] == 7
    assert res["locations"][0]["logicalLocations"][0]["name"] == "shrink_file_tables"
    related = {
        (loc["physicalLocation"]["region"]["startLine"], loc["message"]["text"])
        for loc in res["relatedLocations"]
    }
    assert (38, "`ptl` taken here") in related
    json_doc = json.loads(outputs["json"])
    fps = {(f["path"], f["line"]): f["fingerprint"] for f in json_doc["findings"]}
    assert res["partialFingerprints"]["lockcheck/v1"] == fps[(f"{KH_REL}/v1.c", 32)]
    assert len(run["results"]) == len(json_doc["findings"])
    assert_valid_sarif(doc)  # last: it skips without the schema


def finding_with_trace() -> Finding:
    return Finding(
        rule="uffd-wp-under-ptl",
        severity="error",
        path="mm/khugepaged.c",
        line=32,
        column=7,
        function="retract_page_tables",
        message="`userfaultfd_wp(vma)` is tested without the pte lock",
        held=("mapping->i_mmap_rwsem:read",),
        related=(Related(38, 4, "`ptl` taken here"),),
        anchor="userfaultfd_wp(vma)",
        evidence="reproduced in 41 states",
        trace=(
            {
                "thread": "khugepaged",
                "line": 32,
                "event": "test uffd-wp: clear",
                "state_change": "",
            },
            {
                "thread": "uffd",
                "line": 7,
                "path": "rules/actors/uffd.c",
                "event": "UFFDIO_WRITEPROTECT",
                "state_change": "pte marker installed",
            },
            {"thread": "khugepaged", "line": 39, "event": "page table freed", "state_change": ""},
        ),
    )


def test_sarif_code_flow_from_the_simulator_trace() -> None:
    spec = RuleSpec("uffd-wp-under-ptl", "check-under-lock", "error", "m", "summary", "mm")
    out = render_report("sarif", [finding_with_trace()], {}, run=RunInfo(rules=(spec,)))
    doc = json.loads(out)
    flow = doc["runs"][0]["results"][0]["codeFlows"][0]
    assert flow["message"]["text"] == "reproduced in 41 states"
    threads = {tf["id"]: tf["locations"] for tf in flow["threadFlows"]}
    assert sorted(threads) == ["khugepaged", "uffd"]
    orders = sorted((loc["executionOrder"], tid) for tid, locs in threads.items() for loc in locs)
    assert orders == [(1, "khugepaged"), (2, "uffd"), (3, "khugepaged")]
    step = threads["uffd"][0]
    assert step["state"]["change"]["text"] == "pte marker installed"
    assert step["location"]["physicalLocation"]["artifactLocation"]["uri"] == (
        "rules/actors/uffd.c"
    )
    assert step["location"]["physicalLocation"]["region"]["startLine"] == 7
    assert_valid_sarif(doc)  # last: it skips without the schema


def test_sarif_code_flow_from_the_simulator() -> None:
    res = run_cli("check", "--format", "sarif", "--select", "uffd-wp-under-ptl", f"{KH_REL}/v1.c")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    (result,) = doc["runs"][0]["results"]
    assert result["properties"]["evidence"].startswith("confirmed")
    (flow,) = result["codeFlows"]
    assert len(flow["threadFlows"]) >= 2  # the function under review and a racing actor
    steps = [loc for tf in flow["threadFlows"] for loc in tf["locations"]]
    assert sorted(s["executionOrder"] for s in steps) == list(range(1, len(steps) + 1))
    mine = flow["threadFlows"][0]["locations"]
    uris = {s["location"]["physicalLocation"]["artifactLocation"]["uri"] for s in mine}
    assert uris == {f"{KH_REL}/v1.c"}
    lines = [s["location"]["physicalLocation"]["region"]["startLine"] for s in mine]
    assert 32 in lines  # the unlocked userfaultfd_wp() test is on the path
    assert_valid_sarif(doc)  # last: it skips without the schema


def unescape(text: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    m = re.fullmatch(r"::(\w+) ([^:]*)::(.*)", line)
    assert m, line
    props = dict(p.split("=", 1) for p in m.group(2).split(","))
    return m.group(1), {k: unescape(v) for k, v in props.items()}, unescape(m.group(3))


def test_github_annotations_point_at_the_check_lines(outputs: dict[str, str]) -> None:
    json_doc = json.loads(outputs["json"])
    lines = outputs["github"].splitlines()
    assert len(lines) == len(json_doc["findings"])
    for line, f in zip(lines, json_doc["findings"], strict=True):
        command, props, message = parse_annotation(line)
        assert command == "error"
        assert (props["file"], int(props["line"])) == (f["path"], f["line"])
        assert props["title"] == f"lockcheck {f['rule']}"
        src = source_at(props["file"], int(props["line"]))
        flag = "userfaultfd_wp(" if f["rule"] == "uffd-wp-under-ptl" else "anon_vma"
        col = int(props["col"])
        assert flag in src[col - 1 :]
        # the annotation lines are exactly those the fixtures mark with `ruleid:`
        assert f"ruleid: {f['rule']}" in source_at(props["file"], int(props["line"]) - 1)
        assert message.splitlines()[0] == f["message"]


def test_github_escaping_round_trips() -> None:
    nasty = "100% sure,\r\nnext: line"
    assert escape_data(nasty) == "100%25 sure,%0D%0Anext: line"
    assert escape_property(nasty) == "100%25 sure%2C%0D%0Anext%3A line"
    line = workflow_command("warning", {"file": "a,b:c.c", "line": 3}, nasty)
    command, props, message = parse_annotation(line)
    assert (command, props["file"], props["line"], message) == ("warning", "a,b:c.c", "3", nasty)


def test_b4_one_result_for_a_check_run(outputs: dict[str, str]) -> None:
    entries = json.loads(outputs["b4"])
    assert isinstance(entries, list) and len(entries) == 1
    (entry,) = entries
    assert entry["tool"] == "lockcheck"
    assert entry["status"] == "fail"
    assert entry["summary"].startswith("6 errors")
    assert "reproduce: lockcheck check --select" in entry["details"]
    assert "fixtures/khugepaged" in entry["details"].splitlines()[-1]


def test_b4_passes_a_clean_file() -> None:
    res = run_cli("check", "--format", "b4", *SELECT, f"{KH_REL}/merged_fix.c")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        {"status": "pass", "summary": "no lock findings", "tool": "lockcheck"}
    ]


def test_email_format_needs_a_patch() -> None:
    res = run_cli("check", "--format", "email", f"{KH_REL}/v1.c")
    assert res.returncode == 2
    assert res.stderr.startswith("lockcheck: error: Invalid value for '--format': 'email' is not")


def b4_prep_check_verdict(stdout: str) -> str:
    """What `b4 prep --check` makes of a check command's output (LoreMessage.run_local_check)."""
    lines = [line for line in stdout.strip().split("\n") if line] if stdout.strip() else []
    if not lines:
        return "success"
    return "fail" if any("ERROR:" in line for line in lines) else "warning"


def test_checkpatch_lines_fail_b4_prep_check_at_the_check_lines(outputs: dict[str, str]) -> None:
    lines = outputs["checkpatch"].splitlines()
    assert b4_prep_check_verdict(outputs["checkpatch"]) == "fail"
    json_doc = json.loads(outputs["json"])
    assert [line.split(": ", 2)[0] for line in lines] == [
        f"{f['path']}:{f['line']}" for f in json_doc["findings"]
    ]
    assert all(re.fullmatch(r"\S+:\d+: ERROR: .+ \[[\w-]+\]", line) for line in lines)


def test_checkpatch_is_silent_on_a_clean_file() -> None:
    res = run_cli("check", "--format", "checkpatch", *SELECT, f"{KH_REL}/merged_fix.c")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert b4_prep_check_verdict(res.stdout) == "success"
