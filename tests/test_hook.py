"""`lockcheck hook`: a plain git pre-commit hook, on real repositories and real commits.

The C is our own, in the shapes of the retract_page_tables() story: the
tables dropped under the exclusive mmap lock (before the series), the flags
tested before the pmd and pte locks are taken (the posted v1), and the flags
tested again under them (the fix).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockcheck.hook import MARKER
from tests.helpers import (
    FIXED,
    PRE_SERIES,
    SOURCE,
    V1,
    V1_RULES,
    git,
    git_env,
    head,
    new_repo,
    run_cli,
    stage,
    write,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path / "linux")


def test_shapes_are_what_the_hook_tests_rely_on(tmp_path: Path) -> None:
    """The v1 shape has both findings; the base and the fix have none."""
    for name, text, code in (("pre.c", PRE_SERIES, 0), ("v1.c", V1, 1), ("fixed.c", FIXED, 0)):
        (tmp_path / name).write_text(text)
        proc = run_cli("check", "--no-sim", str(tmp_path / name))
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert all((r in proc.stdout) == bool(code) for r in V1_RULES)


@pytest.fixture
def hooked(repo: Path) -> Path:
    """The pre-series repository with lockcheck's hook installed."""
    assert run_cli("hook", "install", "--repo", str(repo)).returncode == 0
    return repo


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of `text` containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_install_writes_an_executable_hook_of_ours(repo: Path) -> None:
    proc = run_cli("hook", "install", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert proc.stdout == f"installed {hook}\n"
    assert os.access(hook, os.X_OK) and MARKER in hook.read_text()


def test_installed_hook_blocks_v1(hooked: Path) -> None:
    base = head(hooked)
    stage(hooked, {SOURCE: V1})
    blocked = git(hooked, "commit", "-m", "mm: drop tables under the pte lock", check=False)
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    assert all(r in out for r in V1_RULES), out
    first = line_of(V1, "READ_ONCE(vma->anon_vma)")
    assert f"{SOURCE}:{first}:" in out and "staged changes introduce 2 findings" in out
    assert head(hooked) == base


def test_installed_hook_blocks_v1_committed_with_all(hooked: Path) -> None:
    """`commit -a` reviews git's temporary index: the change is still seen."""
    base = head(hooked)
    write(hooked, {SOURCE: V1})
    blocked = git(hooked, "commit", "-a", "-m", "mm: drop tables under the pte lock", check=False)
    assert blocked.returncode != 0 and "[uffd-wp-under-ptl]" in blocked.stderr + blocked.stdout
    assert head(hooked) == base


def test_installed_hook_allows_the_fix(hooked: Path) -> None:
    base = head(hooked)
    stage(hooked, {SOURCE: FIXED})
    allowed = git(hooked, "commit", "-m", "mm: recheck under the pte lock", check=False)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "lockcheck" not in allowed.stdout + allowed.stderr  # silent when clean
    assert head(hooked) != base
    assert (
        git(hooked, "log", "-1", "--format=%s").stdout.strip() == "mm: recheck under the pte lock"
    )


def test_commit_of_unrelated_lines_next_to_an_old_finding_passes(repo: Path) -> None:
    stage(repo, {SOURCE: V1})
    git(repo, "commit", "-q", "--no-verify", "-m", "v1 (committed before the hook)")
    assert run_cli("hook", "install", "--repo", str(repo)).returncode == 0
    assert run_cli("check", "--no-sim", str(repo / SOURCE)).returncode == 1  # the finding is old

    edited = V1.replace("pmd and pte locks */", "pmd and pte locks (see below) */")
    edited += (
        "\nstatic int nr_tables(struct mm_struct *mm)\n{\n\treturn mm_pgtables_bytes(mm);\n}\n"
    )
    stage(repo, {SOURCE: edited})
    before = head(repo)
    proc = git(repo, "commit", "-m", "mm: a comment and a helper", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert head(repo) != before

    # the same file, touched where the old finding is: still only new findings count
    moved = edited.replace(
        "\t\tif (READ_ONCE(vma->anon_vma))\n", "\n\t\tif (READ_ONCE(vma->anon_vma))\n"
    )
    stage(repo, {SOURCE: moved})
    proc = git(repo, "commit", "-m", "mm: whitespace", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


UFFD_TEST = "\t\tif (userfaultfd_wp(vma))\n\t\t\tcontinue;\n"


def test_a_second_identical_unlocked_check_is_a_new_finding(repo: Path) -> None:
    """Two identical sites have one fingerprint; the copy is still new, and blocked."""
    stage(repo, {SOURCE: V1})
    git(repo, "commit", "-q", "--no-verify", "-m", "v1 (committed before the hook)")
    assert run_cli("hook", "install", "--repo", str(repo)).returncode == 0
    assert V1.count(UFFD_TEST) == 1
    twice = V1.replace(UFFD_TEST, UFFD_TEST + UFFD_TEST)
    stage(repo, {SOURCE: twice})
    before = head(repo)
    proc = git(repo, "commit", "-m", "mm: test uffd-wp twice", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    second = line_of(V1, "userfaultfd_wp(vma)") + 2  # the copy, right after the original
    assert "staged changes introduce 1 finding" in out, out
    assert f"{SOURCE}:{second}:" in out and "[uffd-wp-under-ptl]" in out, out
    assert head(repo) == before


def test_foreign_hook_needs_force_and_is_never_uninstalled(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    foreign = "#!/bin/sh\n# someone else's checks\nexit 0\n"
    hook.write_text(foreign)
    proc = run_cli("hook", "install", "--repo", str(repo))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("lockcheck: error: ")
    assert "--force" in proc.stderr and hook.read_text() == foreign
    proc = run_cli("hook", "uninstall", "--repo", str(repo))
    assert proc.returncode == 2 and "not written by lockcheck" in proc.stderr
    assert hook.read_text() == foreign

    assert run_cli("hook", "install", "--force", "--repo", str(repo)).returncode == 0
    assert MARKER in hook.read_text()
    assert run_cli("hook", "install", "--repo", str(repo)).returncode == 0  # ours: rewritten
    proc = run_cli("hook", "uninstall", "--repo", str(repo))
    assert proc.returncode == 0 and proc.stdout == f"removed {hook}\n" and not hook.exists()
    proc = run_cli("hook", "uninstall", "--repo", str(repo))
    assert proc.returncode == 0 and proc.stdout == "no pre-commit hook installed\n"


def test_install_honours_core_hooks_path_and_fail_on(repo: Path) -> None:
    git(repo, "config", "core.hooksPath", "githooks")
    proc = run_cli("hook", "install", "--fail-on", "warning", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    hook = repo / "githooks" / "pre-commit"
    assert "--fail-on warning" in hook.read_text()
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_run_narrows_to_the_files_passed(repo: Path) -> None:
    stage(repo, {SOURCE: V1, "mm/other.c": FIXED, "mm/notes.txt": "not C\n"})
    proc = run_cli("hook", "run", "mm/other.c", "mm/notes.txt", cwd=repo)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = run_cli("hook", "run", cwd=repo)
    assert proc.returncode == 1 and all(r in proc.stdout for r in V1_RULES)
    # paths are relative to the cwd, as the framework passes them
    proc = run_cli("hook", "run", "collapse.c", cwd=repo / "mm")
    uffd = line_of(V1, "userfaultfd_wp(vma)")
    assert proc.returncode == 1 and f"{SOURCE}:{uffd}:" in proc.stdout
    # only the index counts: a fix left unstaged does not pass the commit
    write(repo, {SOURCE: FIXED})
    assert run_cli("hook", "run", SOURCE, cwd=repo).returncode == 1


def test_run_reviews_a_range_for_ci_and_pre_push(repo: Path) -> None:
    stage(repo, {SOURCE: V1})
    git(repo, "commit", "-q", "--no-verify", "-m", "v1")
    stage(repo, {SOURCE: FIXED})
    git(repo, "commit", "-q", "--no-verify", "-m", "fix")
    proc = run_cli("hook", "run", "--from-ref", "HEAD~2", "--to-ref", "HEAD~1", cwd=repo)
    assert proc.returncode == 1 and "commits HEAD~2..HEAD~1 introduce 2 findings" in proc.stdout
    # the series as a whole: v1's findings are still blamed (they break bisection)
    proc = hook_run_env(repo, {"PRE_COMMIT_FROM_REF": "HEAD~2", "PRE_COMMIT_TO_REF": "HEAD"})
    assert proc.returncode == 1 and "[uffd-wp-under-ptl]" in proc.stdout
    proc = hook_run_env(repo, {"PRE_COMMIT_FROM_REF": "HEAD~1", "PRE_COMMIT_TO_REF": "HEAD"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def hook_run_env(repo: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`lockcheck hook run` as the framework starts it, refs in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "lockcheck", "hook", "run"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=git_env() | extra,
        timeout=600,
    )


def test_first_commit_of_a_new_repository(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "fresh", files={})
    stage(repo, {SOURCE: V1})
    proc = run_cli("hook", "run", cwd=repo)
    assert proc.returncode == 1 and all(r in proc.stdout for r in V1_RULES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--from-ref", "HEAD"), "--from-ref and --to-ref go together"),
        (("run", "/elsewhere/x.c"), "outside the repository"),
        (("run", "--to-ref", "HEAD", "--from-ref", "nope"), "unknown revision 'nope'"),
    ],
)
def test_run_errors_are_one_line(repo: Path, args: tuple[str, ...], message: str) -> None:
    proc = run_cli("hook", *args, cwd=repo)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_outside_a_repository_is_an_error(tmp_path: Path) -> None:
    for args in (("run",), ("install", "--repo", str(tmp_path))):
        proc = run_cli("hook", *args, cwd=tmp_path)
        assert proc.returncode == 2 and "not inside a git work tree" in proc.stderr
