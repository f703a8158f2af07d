"""The rule interface in process: what `ctx.report` puts in a finding, how a
kind's parameters are checked (unknown, missing, mistyped), a kind's default
documentation, and a review rule that reports nothing on one image.

`make mutate` runs these first for lockcheck/rules/base.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lockcheck.analysis.file import FileFacts
from lockcheck.analysis.function import FunctionFacts
from lockcheck.errors import PackError
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Site
from lockcheck.packs import RuleDoc, RuleSpec, Vocabulary
from lockcheck.rules.base import ReviewRule, Rule, RuleContext


def spec(**params: Any) -> RuleSpec:
    return RuleSpec(
        "my-rule",
        "k",
        "error",
        "m",
        "s",
        "p",
        params=params,
        path="p.toml",
        index=2,
        doc=RuleDoc(what="own what"),
    )


class Kind(Rule):
    kind = "k"
    params = {"locks": list, "limit": int}
    optional = {"note": str, "either": (int, str)}
    default_doc = RuleDoc(what="kind what", why="kind why")

    def run(self, ctx: RuleContext) -> None:
        ctx.report(None, Site(3, 4, "x()"), "no function")


def test_a_report_fills_a_finding_from_the_spec_the_site_and_the_function() -> None:
    ctx = RuleContext(spec(), "a.c", FileFacts())
    assert ctx.vocab == Vocabulary() and ctx.source == b"" and ctx.findings == []
    Kind(spec()).run(ctx)
    rel = (Related(1, 2, "r"),)
    ctx.report(None, Site(5, 6, "y(z)"), "msg", held=("a",), expected=("b",), related=rel)
    assert ctx.findings == [
        Finding(
            rule="my-rule",
            severity="error",
            path="a.c",
            line=3,
            column=4,
            function="",
            message="no function",
            held=(),
            expected=(),
            related=(),
            anchor="x()",
        ),
        Finding(
            rule="my-rule",
            severity="error",
            path="a.c",
            line=5,
            column=6,
            function="",
            message="msg",
            held=("a",),
            expected=("b",),
            related=rel,
            anchor="y(z)",
        ),
    ]


def test_a_report_names_its_function() -> None:
    from lockcheck.engine import Config, Engine

    engine = Engine(Config(packs=["mm"], headers=False))
    (fn,) = engine.analyse_source("t.c", b"void g(void)\n{\n}\n").facts.functions
    ctx = RuleContext(spec(), "a.c", FileFacts())
    ctx.report(fn, Site(1, 1), "m")
    assert ctx.findings[0].function == "g"


def test_the_rules_doc_is_its_own_filled_from_the_kinds() -> None:
    doc = Kind(spec()).doc
    assert (doc.what, doc.why, doc.bad) == ("own what", "kind why", "")


def test_valid_parameters_pass() -> None:
    Kind.validate(spec(locks=["a"], limit=3))
    Kind.validate(spec(locks=["a"], limit=3, note="n", either="s"))
    Kind.validate(spec(locks=["a"], limit=3, either=2))


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"locks": ["a"], "limit": 3, "bogus": 1},
            "rule[2] (my-rule).bogus: unknown key for kind 'k' (either, limit, locks, note)",
        ),
        ({"locks": ["a"]}, "rule[2] (my-rule).limit: required by kind 'k'"),
        ({"limit": 3}, "rule[2] (my-rule).locks: required by kind 'k'"),
        ({"locks": "a", "limit": 3}, "rule[2] (my-rule).locks: must be list"),
        ({"locks": ["a"], "limit": True}, "rule[2] (my-rule).limit: must be int"),
        ({"locks": ["a"], "limit": "3"}, "rule[2] (my-rule).limit: must be int"),
        (
            {"locks": ["a"], "limit": 3, "either": 1.5},
            "rule[2] (my-rule).either: must be int or str",
        ),
        (
            {"locks": ["a", ""], "limit": 3},
            "rule[2] (my-rule).locks: must be a list of non-empty strings",
        ),
        (
            {"locks": ["a", 1], "limit": 3},
            "rule[2] (my-rule).locks: must be a list of non-empty strings",
        ),
    ],
)
def test_bad_parameters_are_pack_errors_naming_file_rule_and_key(
    params: dict[str, Any], error: str
) -> None:
    with pytest.raises(PackError) as err:
        Kind.validate(spec(**params))
    assert str(err.value) == "rule pack p.toml: " + error


def test_a_kind_without_parameters_says_none_are_known() -> None:
    class Bare(Rule):
        kind = "bare"

        def run(self, ctx: RuleContext) -> None:
            pass

    with pytest.raises(PackError) as err:
        Bare.validate(spec(x=1))
    assert (
        str(err.value)
        == "rule pack p.toml: rule[2] (my-rule).x: unknown key for kind 'bare' (none)"
    )
    assert Bare(spec()).doc == RuleDoc(what="own what")


def test_a_review_rule_reports_nothing_on_one_image() -> None:
    class Review(ReviewRule):
        kind = "r"

        def compare(
            self,
            path: str,
            pre: Sequence[FunctionFacts],
            post: Sequence[FunctionFacts],
            changed: set[str],
            elsewhere: Path | None = None,
        ) -> list[Finding]:
            return []

    ctx = RuleContext(spec(), "a.c", FileFacts())
    Review(spec()).run(ctx)
    assert ctx.findings == [] and Review.review_only


def test_a_kind_must_say_how_it_runs_and_a_review_kind_how_it_compares() -> None:
    class NoRun(Rule):
        kind = "no-run"

    class NoCompare(ReviewRule):
        kind = "no-compare"

    with pytest.raises(TypeError, match="abstract"):
        NoRun(spec())  # type: ignore[abstract]
    with pytest.raises(TypeError, match="abstract"):
        NoCompare(spec())  # type: ignore[abstract]
