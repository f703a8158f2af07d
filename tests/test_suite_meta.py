"""The suite's own contract: what it needs from outside fails loudly in CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def pytest_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "LOCKCHECK_SHARED")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=base | env,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("test", "what"),
    [
        ("tests/test_patch.py::test_seed_reply_with_nested_quotes_and_lost_indentation",
         "the seed email"),
        ("tests/test_report.py::test_sarif_code_flow_from_the_simulator_trace",
         "the SARIF 2.1.0 schema"),
    ],
)  # fmt: skip
def test_missing_shared_files_skip_with_a_reason_and_fail_in_ci(test: str, what: str) -> None:
    missing = str(ROOT / "no-such-shared-dir")
    skipped = pytest_run(test, LOCKCHECK_SHARED=missing)
    assert skipped.returncode == 0, skipped.stdout
    assert "SKIPPED [1] tests/helpers.py" in skipped.stdout, skipped.stdout
    assert f"{what} is missing: {missing}/" in skipped.stdout, skipped.stdout
    failed = pytest_run(test, LOCKCHECK_SHARED=missing, CI="true")
    assert failed.returncode == 1, failed.stdout
    assert f"CI=true: {what} is missing" in failed.stdout, failed.stdout
