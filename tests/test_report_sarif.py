"""SARIF details, in-process: columns, locations, rules, code flows.

Fast on purpose: `make mutate` runs this module for every mutant of
lockcheck/report/sarif.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lockcheck.model.finding import Finding, Related
from lockcheck.packs import RuleSpec
from lockcheck.report import REVIEW_FORMATS, RunInfo, make_reporter, render_report
from lockcheck.report.sarif import artifact, artifact_location
from tests.helpers import V1, run_cli

SPEC = RuleSpec("uffd-wp-under-ptl", "check-under-lock", "error", "m", "a summary", "mm")
OTHER = RuleSpec("lock-balance", "lock-balance", "note", "m", "", "mm")


def finding(**kw: Any) -> Finding:
    base: dict[str, Any] = {
        "rule": "uffd-wp-under-ptl",
        "severity": "error",
        "path": "mm/a.c",
        "line": 2,
        "column": 5,
        "function": "f",
        "message": "tested without the pte lock",
        "anchor": "userfaultfd_wp(vma)",
    }
    base.update(kw)
    return Finding(**base)


def sarif(
    findings: list[Finding],
    sources: dict[str, list[str]] | None = None,
    rules: tuple[RuleSpec, ...] = (SPEC,),
) -> dict[str, Any]:
    out = render_report("sarif", findings, {"files": 1}, sources, run=RunInfo(rules=rules))
    assert out.endswith("}\n")
    doc: dict[str, Any] = json.loads(out)
    return doc


def region(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    r: dict[str, Any] = doc["runs"][0]["results"][i]["locations"][0]["physicalLocation"]["region"]
    return r


def test_start_column_counts_code_points_after_non_ascii_text() -> None:
    """The frontend counts bytes: `é` is two and `→` three, so the byte column
    is three past the code point one."""
    line = "/* é→ */ if (userfaultfd_wp(vma))"
    byte_col = len(line[: line.index("userfaultfd_wp")].encode()) + 1
    doc = sarif([finding(line=1, column=byte_col)], {"mm/a.c": [line]})
    r = region(doc)
    assert r["startColumn"] == line.index("userfaultfd_wp") + 1 == byte_col - 3
    assert r["snippet"]["text"] == line
    assert doc["runs"][0]["columnKind"] == "unicodeCodePoints"


def test_start_column_of_a_check_after_non_ascii_text_end_to_end(tmp_path: Path) -> None:
    """The CLI on C whose check line starts with a non-ASCII comment."""
    src = tmp_path / "collapse.c"
    check = "\t\tif (userfaultfd_wp(vma))\n"
    assert V1.count(check) == 1
    src.write_text(V1.replace(check, "\t\t/* ¿vérifié? */ if (userfaultfd_wp(vma))\n"))
    res = run_cli(
        "check", "--no-sim", "--format", "sarif", "--select", "uffd-wp-under-ptl", str(src)
    )
    assert res.returncode == 1, res.stderr
    [result] = json.loads(res.stdout)["runs"][0]["results"]
    reg = result["locations"][0]["physicalLocation"]["region"]
    text = src.read_text().splitlines()[reg["startLine"] - 1]
    assert text.startswith("\t\t/* ¿vérifié? */ if (")
    assert text[reg["startColumn"] - 1 :].startswith("userfaultfd_wp(vma)")


def test_locations_without_a_line_or_column_have_no_region_field_for_them() -> None:
    doc = sarif([finding(line=3, column=0)], {"mm/a.c": ["a", "b", "c"]})
    assert region(doc) == {"startLine": 3, "snippet": {"text": "c"}}
    doc = sarif([finding(line=1, column=1)], {})
    assert region(doc) == {"startLine": 1, "startColumn": 1}
    trace = ({"thread": "t", "event": "no line"},)
    doc = sarif([finding(trace=trace)], {})
    [step] = doc["runs"][0]["results"][0]["codeFlows"][0]["threadFlows"][0]["locations"]
    assert step["location"] == {"message": {"text": "no line"}}


def test_artifact_locations() -> None:
    assert artifact_location("mm/a b.c") == {"uri": "mm/a%20b.c", "uriBaseId": "%SRCROOT%"}
    assert artifact_location("/src/a b.c") == {"uri": "file:///src/a%20b.c"}
    assert artifact("mm/a.c")["sourceLanguage"] == "c"
    assert artifact("include/a.h")["sourceLanguage"] == "c"
    assert "sourceLanguage" not in artifact("reply.eml")


def test_artifacts_are_indexed_in_file_order() -> None:
    f1, f2 = finding(path="mm/a.c"), finding(path="mm/b.c", related=(Related(1, 2, "x"),))
    doc = sarif([f1, f2], {"mm/a.c": ["x", "y"], "mm/b.c": ["z"]})
    run = doc["runs"][0]
    assert [a["location"]["uri"] for a in run["artifacts"]] == ["mm/a.c", "mm/b.c"]
    locs = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert [loc["index"] for loc in locs] == [0, 1]
    [rel] = run["results"][1]["relatedLocations"]
    assert rel["id"] == 1 and rel["message"] == {"text": "x"}
    assert rel["physicalLocation"]["artifactLocation"]["index"] == 1
    assert rel["physicalLocation"]["region"] == {
        "startLine": 1,
        "startColumn": 2,
        "snippet": {"text": "z"},
    }


def test_rules_listed_sorted_with_their_metadata_and_indexed() -> None:
    unknown = finding(rule="not-loaded", severity="whatever")
    doc = sarif([finding(), unknown], {}, rules=(SPEC, OTHER))
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["lock-balance", "uffd-wp-under-ptl", "not-loaded"]
    assert rules[1] == {
        "id": "uffd-wp-under-ptl",
        "name": "UffdWpUnderPtl",
        "shortDescription": {"text": "a summary"},
        "fullDescription": {"text": "a summary"},
        "defaultConfiguration": {"level": "error"},
        "properties": {"kind": "check-under-lock", "pack": "mm"},
    }
    assert rules[0]["shortDescription"] == {"text": "lock-balance"}  # no summary: the id
    assert rules[0]["fullDescription"] == {"text": "lock-balance"}
    assert rules[0]["defaultConfiguration"] == {"level": "note"}
    assert rules[2] == {"id": "not-loaded"}
    # results come sorted by rule within a line: the unknown rule first
    assert [r["ruleIndex"] for r in run["results"]] == [2, 1]
    assert [r["level"] for r in run["results"]] == ["warning", "error"]


def test_result_properties_and_fingerprint() -> None:
    f = finding(held=("a", "b"), expected=("pte_lock",), evidence="seen in 3 states")
    [res] = sarif([f], {})["runs"][0]["results"]
    assert res["properties"] == {
        "function": "f",
        "held": ["a", "b"],
        "expected": ["pte_lock"],
        "evidence": "seen in 3 states",
    }
    assert res["partialFingerprints"] == {"lockcheck/v1": f.fingerprint}
    assert res["message"] == {"text": "tested without the pte lock"}
    assert res["locations"][0]["logicalLocations"] == [
        {"name": "f", "fullyQualifiedName": "f", "kind": "function"}
    ]
    [bare] = sarif([finding()], {})["runs"][0]["results"]
    assert bare["properties"] == {"function": "f", "held": []}
    assert "relatedLocations" not in bare and "codeFlows" not in bare


def test_code_flow_one_thread_flow_per_thread_in_global_order() -> None:
    trace = (
        {"thread": "a", "line": 2, "event": "test", "state_change": ""},
        {"thread": "b", "line": 1, "path": "rules/x.c", "event": "", "state_change": "set"},
        {"line": 1, "event": "free"},
    )
    doc = sarif([finding(trace=trace)], {"mm/a.c": ["l1", "l2"], "rules/x.c": ["x1"]})
    [flow] = doc["runs"][0]["results"][0]["codeFlows"]
    assert flow["message"] == {"text": "an interleaving that breaks the invariant"}
    threads = {t["id"]: t for t in flow["threadFlows"]}
    assert list(threads) == ["a", "b", "main"]
    assert threads["a"]["message"] == {"text": "thread a"}
    [a], [b], [m] = (threads[t]["locations"] for t in ("a", "b", "main"))
    assert [a["executionOrder"], b["executionOrder"], m["executionOrder"]] == [1, 2, 3]
    assert "state" not in a and b["state"] == {"change": {"text": "set"}}
    assert a["location"]["message"] == {"text": "test"}
    assert b["location"]["message"] == {"text": "step"}
    assert b["location"]["physicalLocation"]["artifactLocation"]["uri"] == "rules/x.c"
    # not a file of the run: no source, so no snippet
    assert b["location"]["physicalLocation"]["region"] == {"startLine": 1}
    assert m["location"]["physicalLocation"]["region"]["snippet"] == {"text": "l1"}
    evidence = sarif([finding(trace=trace, evidence="41 states")], {})
    assert evidence["runs"][0]["results"][0]["codeFlows"][0]["message"] == {"text": "41 states"}


def test_run_carries_version_schema_and_stats_and_is_sorted() -> None:
    out = render_report("sarif", [], {"files": 2}, {}, run=RunInfo(rules=(SPEC,)))
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    run = doc["runs"][0]
    assert run["properties"] == {"stats": {"files": 2}}
    assert run["results"] == [] and [r["id"] for r in run["tool"]["driver"]["rules"]] == [
        "uffd-wp-under-ptl"
    ]
    driver = run["tool"]["driver"]
    assert driver["name"] == "lockcheck" and driver["version"] == driver["semanticVersion"]
    assert out == json.dumps(doc, indent=2, sort_keys=True) + "\n"


def test_levels_follow_severities_with_warning_by_default() -> None:
    warn = RuleSpec("w", "lock-balance", "warning", "m", "s", "mm")
    odd = RuleSpec("x", "lock-balance", "fatal", "m", "s", "mm")
    fs = [finding(rule="w", severity="warning"), finding(rule="x", severity="fatal", line=3)]
    run = sarif(fs, {}, rules=(warn, odd))["runs"][0]
    levels = {r["id"]: r["defaultConfiguration"]["level"] for r in run["tool"]["driver"]["rules"]}
    assert levels == {"w": "warning", "x": "warning"}
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [
        ("w", "warning"),
        ("x", "warning"),
    ]


def test_line_zero_has_no_region_and_no_code_flow_location() -> None:
    trace = ({"thread": "t", "line": 0}, {"thread": "t", "line": "7"})
    [res] = sarif([finding(line=0, column=3, trace=trace)], {"mm/a.c": ["x"]})["runs"][0]["results"]
    assert "region" not in res["locations"][0]["physicalLocation"]
    steps = res["codeFlows"][0]["threadFlows"][0]["locations"]
    assert [s["location"] for s in steps] == [{"message": {"text": "step"}}] * 2


def test_every_reporter_is_named_by_its_format() -> None:
    assert [make_reporter(fmt).name for fmt in REVIEW_FORMATS] == list(REVIEW_FORMATS)
