"""lockcheck only reads: the user's tree and repository, and the input, stay as they were.

Nothing from the input is written to disk or executed: attachments are never
saved, Python files in the tree or the mail are never imported, and the only
rule code that runs is an installed entry point.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, ROOT, git, tree_hash

SERIES = FIXTURES / "series"
PATCHES = sorted(SERIES.glob("0*.patch"))


def lockcheck(
    *args: str | Path, cwd: Path, tmpdir: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI as the console script runs it: isolated, so the cwd is not on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCKCHECK_DEBUG", "PYTHONPATH")}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    code = "import sys; from lockcheck.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-I", "-c", code, *map(str, args)],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=600,
    )


def repo_state(repo: Path) -> tuple[object, ...]:
    """What a user would notice changing: status, stashes, refs, HEAD, and every byte."""
    # first: the queries below must not disturb what they check
    files = tree_hash(repo, stat=True)
    return (
        git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all").stdout,
        git(repo, "stash", "list").stdout,
        git(repo, "for-each-ref").stdout,
        git(repo, "rev-parse", "HEAD").stdout,
        files,
    )


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """The series' base tree, committed, with the three patches applied as commits."""
    r = tmp_path / "repo"
    shutil.copytree(SERIES / "tree", r)
    git(r, "init", "-q", "-b", "main")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    git(r, "tag", "base")
    git(r, "am", "-q", *map(str, PATCHES))
    return r


def test_review_tree_leaves_the_directory_alone(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(SERIES / "tree", tree)
    before = tree_hash(tree, stat=True)
    proc = lockcheck("review", "--tree", tree, SERIES / "series.mbox", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the series has findings
    assert tree_hash(tree, stat=True) == before


def test_review_git_and_base_leave_the_repository_alone(repo: Path) -> None:
    before = repo_state(repo)
    proc = lockcheck("review", "--git", "base..HEAD", cwd=repo)
    assert proc.returncode == 1, proc.stderr
    proc = lockcheck("review", "--base", "base", "--tree", repo, PATCHES[0], cwd=repo.parent)
    assert proc.returncode in (0, 1), proc.stderr
    assert repo_state(repo) == before


def test_review_staged_and_hook_leave_index_and_worktree_alone(repo: Path) -> None:
    git(repo, "reset", "-q", "--hard", "base")
    git(repo, "apply", "--index", str(PATCHES[0]))  # staged
    path = repo / "mm" / "khugepaged.c"
    path.write_text(path.read_text() + "\n/* an unstaged edit */\n")
    (repo / "untracked.c").write_text("int u;\n")
    git(repo, "stash", "push", "-q", "--keep-index", "-m", "kept")
    git(repo, "stash", "apply", "-q")
    before = repo_state(repo)
    proc = lockcheck("review", "--staged", cwd=repo)
    assert proc.returncode in (0, 1), proc.stderr
    proc = lockcheck("hook", "run", cwd=repo)  # what the pre-commit hook runs
    assert proc.returncode in (0, 1), proc.stderr
    assert repo_state(repo) == before
    assert "kept" in before[1]  # the stash list was compared, and it was not empty


def test_nothing_is_written_to_cwd_or_tmp(tmp_path: Path) -> None:
    """Every input kind, with TMPDIR and the cwd both empty directories that must stay so."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    runs = [
        ("check", "--no-sim", FIXTURES / "khugepaged" / "v1.c"),
        ("check", FIXTURES / "khugepaged" / "v1.c"),  # with the simulator's evidence
        ("review", SERIES / "series.mbox"),
        ("review", "--tree", SERIES / "tree", *PATCHES),
        ("review", "--format", "email", SERIES / "series.mbox"),
        ("annotate", SERIES / "reply.eml"),
        ("simulate", "fault-fill", "--example"),
    ]
    for args in runs:
        proc = lockcheck(*args, cwd=work, tmpdir=tmp)
        assert proc.returncode in (0, 1), (args, proc.stderr)
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []


def _mail_with_attachments(marker: Path) -> bytes:
    """A patch mail carrying a .py, a .c and a .patch attachment; the .py would leave a mark."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Mallory <m@example.org>"
    msg["Subject"] = "[PATCH] mm/khugepaged: attachments"
    msg["Message-ID"] = "<att@example.org>"
    msg.set_content("See attached.\n")
    evil = f"open({str(marker)!r}, 'w').write('ran')\n"
    msg.add_attachment(evil.encode(), maintype="text", subtype="x-python", filename="setup.py")
    msg.add_attachment(b"int evil;\n", maintype="text", subtype="x-csrc", filename="evil.c")
    patch = PATCHES[0].read_bytes().split(b"\n---\n", 1)[1]
    msg.add_attachment(patch, maintype="text", subtype="x-patch", filename="fix.patch")
    return bytes(msg)


def test_attachments_are_never_written_or_run(tmp_path: Path) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    marker = tmp_path / "PWNED"
    mail = tmp_path / "att.eml"
    mail.write_bytes(_mail_with_attachments(marker))
    for args in (("review", mail), ("review", "--tree", SERIES / "tree", mail), ("annotate", mail)):
        proc = lockcheck(*args, cwd=work, tmpdir=tmp)
        assert proc.returncode in (0, 1, 2), proc.stderr
        assert b"Traceback" not in proc.stderr
    proc = lockcheck("review", "-", cwd=work, tmpdir=tmp, stdin=mail.read_bytes())
    assert proc.returncode in (0, 1), proc.stderr
    assert b"review of 1 patch" in proc.stdout  # the attached patch was reviewed, in memory
    assert not marker.exists()
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []


def test_python_in_the_tree_is_never_imported(tmp_path: Path) -> None:
    """Module names lockcheck and Python look for, planted in the cwd, the tree and a pack."""
    marker = tmp_path / "PWNED"
    tree = tmp_path / "tree"
    shutil.copytree(SERIES / "tree", tree)
    evil = f"open({str(marker)!r}, 'w').write(__name__)\n"
    for name in ("sitecustomize", "usercustomize", "typer", "lockcheck_rules", "conftest", "mm"):
        (tree / f"{name}.py").write_text(evil)
    (tree / "rules.py").write_text(evil)
    (tree / ".lockcheck.toml").write_text('packs = ["rules.py"]\n')
    proc = lockcheck("review", "--tree", tree, SERIES / "series.mbox", cwd=tree)
    assert proc.returncode == 2 and b"not valid TOML" in proc.stderr  # read as TOML, refused
    proc = lockcheck("check", "--rules", tree / "rules.py", tree / "mm", cwd=tree)
    assert proc.returncode == 2 and b"not valid TOML" in proc.stderr
    (tree / ".lockcheck.toml").unlink()
    proc = lockcheck("check", "--no-sim", "mm", cwd=tree)
    assert proc.returncode in (0, 1), proc.stderr
    assert not marker.exists()


def test_ctrl_c_exits_130_quietly_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT mid-review (a big series on stdin): exit 130, no traceback, no files left."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    base = PATCHES[1].read_text()
    n = 200
    series = "\n".join(
        base.replace("retract_file_tables", f"retract_{i}").replace("2/3]", f"{i + 1}/{n}]")
        for i in range(n)
    ).encode()
    env = {k: v for k, v in os.environ.items() if k != "LOCKCHECK_DEBUG"}
    env["TMPDIR"] = str(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockcheck", "review", "-"],
        cwd=work,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # a runner may start us with SIGINT ignored; the child must see it as a user would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None
    proc.stdin.write(series)  # returns once the child is reading: it is inside main()
    proc.stdin.close()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=600)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert b"Traceback" not in err
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []
