"""The real pre-commit framework runs this checkout's `.pre-commit-hooks.yaml`.

pre-commit installs a hook repository from git, so the checkout as it is
(committed or not, less what .gitignore names) is copied into a temporary
repository with one commit;
a kernel-like repository names it in its `.pre-commit-config.yaml`, and real
`git commit`s go through the hook the framework installs. The framework
builds its own virtualenv and pip-installs lockcheck into it (PyPI is
needed for the build backend and the dependencies): slow, so one test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FIXED, ROOT, SOURCE, V1, V1_RULES, git, git_env, head, new_repo, stage

pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install -e '.[test]')")

# pip's words when an index cannot be reached: the only reason to skip. "No
# matching distribution found" is not among them: a broken pin says it too.
NETWORK_ERRORS = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "Read timed out",
)


def network_error(log: str) -> str | None:
    """The network error that stopped pip, or None when it failed for another reason."""
    return next((w for w in NETWORK_ERRORS if w in log), None)


def test_only_a_network_error_is_a_reason_to_skip() -> None:
    pin = "ERROR: No matching distribution found for typer>=99\n"
    assert network_error(pin) is None
    assert network_error("ERROR: Could not find a version that satisfies typer>=99") is None
    offline = "WARNING: Retrying ... NewConnectionError: Failed to establish a new connection"
    assert network_error(offline + "\n" + pin) == "Failed to establish a new connection"


def hook_repository(dest: Path) -> str:
    """This checkout's working tree (tracked and new files) as a git repository."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    for rel in sorted(set(listed.split("\0")) - {""}):
        src = ROOT / rel
        if src.is_file():  # not a file deleted but still in the index
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    new_repo(dest, files={})
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "lockcheck as it is")
    return head(dest)


def pre_commit(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=git_env() | {"PRE_COMMIT_HOME": str(home)},
        timeout=900,
    )


def commit(repo: Path, home: Path, message: str) -> subprocess.CompletedProcess[str]:
    """A real `git commit`; the framework's hook finds its cache through the env."""
    return subprocess.run(
        ["git", "-C", str(repo), "commit", "-m", message],
        capture_output=True,
        text=True,
        env=git_env() | {"PRE_COMMIT_HOME": str(home)},
        timeout=900,
    )


def test_pre_commit_framework_blocks_v1_and_allows_the_fix(tmp_path: Path) -> None:
    hooks = tmp_path / "lockcheck-hooks"
    hooks.mkdir()
    rev = hook_repository(hooks)
    home = tmp_path / "pre-commit-home"
    repo = new_repo(tmp_path / "linux")
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: lockcheck\n"
    )
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "use lockcheck")

    built = pre_commit(repo, home, "install-hooks")
    if built.returncode != 0:
        log = home / "pre-commit.log"
        text = built.stdout + built.stderr + (log.read_text() if log.exists() else "")
        reason = network_error(text)
        if reason is not None:
            pytest.skip(f"pre-commit could not build the hook's environment offline: {reason}")
        raise AssertionError(f"pre-commit install-hooks failed:\n{text}")
    installed = pre_commit(repo, home, "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "pre-commit" in (repo / ".git" / "hooks" / "pre-commit").read_text()

    base = head(repo)
    stage(repo, {SOURCE: V1})
    blocked = commit(repo, home, "mm: drop tables under the pte lock")
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    assert "lockcheck (kernel locking)" in out and "Failed" in out, out
    assert all(r in out for r in V1_RULES), out
    assert head(repo) == base

    stage(repo, {SOURCE: FIXED})
    allowed = commit(repo, home, "mm: recheck under the pte lock")
    out = allowed.stdout + allowed.stderr
    assert allowed.returncode == 0, out
    assert "lockcheck (kernel locking)" in out and "Passed" in out, out
    assert head(repo) != base

    # a commit with no C file in it: the framework skips the hook
    (repo / "README").write_text("notes\n")
    git(repo, "add", "README")
    skipped = commit(repo, home, "docs")
    assert skipped.returncode == 0 and "Skipped" in skipped.stdout + skipped.stderr
