"""Property tests: no C text, however broken, crashes parse + analysis + rules.

The engine is called directly (no subprocess) so each example costs only the
analysis; examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockcheck.engine import Engine
from lockcheck.model.finding import Finding
from tests.strategies import C_FIXTURES, c_token_soup, examples, mutated_fixture

ENGINE = Engine()
FUZZ = settings(
    max_examples=examples(60),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(source: bytes) -> tuple[list[Finding], dict[str, int]]:
    """Findings and per-file counts, the way `check` computes them."""
    analysis = ENGINE.analyse_source("fuzz.c", source)
    findings = ENGINE.findings_for(analysis)
    counts = {
        "functions": len(analysis.model.functions),
        "budget": sum(ff.budget_exceeded for ff in analysis.facts.functions),
    }
    return findings, counts


def assert_sane(findings: list[Finding], source: bytes) -> None:
    n_lines = source.count(b"\n") + 1
    for f in findings:
        assert f.path == "fuzz.c"
        assert 1 <= f.line <= n_lines, f
        assert f.rule and f.message


@FUZZ
@given(c_token_soup())
def test_token_soup_never_crashes_and_is_deterministic(source: bytes) -> None:
    first = run(source)
    assert_sane(first[0], source)
    assert run(source) == first


@FUZZ
@given(mutated_fixture(C_FIXTURES))
def test_mutated_fixtures_never_crash_and_are_deterministic(
    case: tuple[object, bytes],
) -> None:
    _, source = case
    first = run(source)
    assert_sane(first[0], source)
    assert run(source) == first


@settings(max_examples=examples(40), deadline=None, derandomize=True)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(source: bytes) -> None:
    findings, _ = run(source)
    assert_sane(findings, source)


def test_fresh_engine_agrees() -> None:
    """Determinism across engines, not only across calls: no state leaks between runs."""
    for path in C_FIXTURES:
        source = path.read_bytes()
        assert Engine().findings_for(Engine().analyse_source("fuzz.c", source)) == run(source)[0]
