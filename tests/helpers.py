"""Test helpers in one place: paths, the CLI, git, tree hashes, fixture markers.

Test modules import from here (and from strategies.py), never from each other.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("LOCKCHECK_UPDATE_GOLDEN") == "1"
# The project's shared directory sits beside the checkout (CI lays it there);
# LOCKCHECK_SHARED points elsewhere (a git worktree has no sibling `shared/`).
SHARED = Path(os.environ.get("LOCKCHECK_SHARED", ROOT.parent / "shared"))
SEED_NAME = "000_fd0419e3beafc014.txt"


# --- things the suite needs from outside the repository


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(path: Path, what: str) -> Path:
    """`path`, or a skip saying what is missing; in CI (`CI=true`) a failure.

    CI lays the shared directory beside the checkout, so a missing file there
    is a broken run, not a reason to test less.
    """
    if path.is_file():
        return path
    msg = f"{what} is missing: {path} (set LOCKCHECK_SHARED to the shared project directory)"
    if in_ci():
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def seed_email() -> Path:
    """The seed review email (nested quotes, lost indentation)."""
    return require(SHARED / "seed" / SEED_NAME, "the seed email")


def sarif_schema() -> Path:
    return require(SHARED / "schemas" / "sarif-schema-2.1.0.json", "the SARIF 2.1.0 schema")


# --- the CLI


def run_cli(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m lockcheck ARGS` the way a user would."""
    env = dict(os.environ)
    env.pop("LOCKCHECK_DEBUG", None)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "lockcheck", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        input=stdin.decode() if stdin is not None else None,
        env=env,
        timeout=600,
    )


def run_main(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `lockcheck ARGV`, in this process."""
    from lockcheck.cli import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # has .buffer, like sys.stdout
    err = io.StringIO()
    code: int | str | None = 0
    os.environ.pop("LOCKCHECK_DEBUG", None)
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code
    out.flush()
    assert isinstance(code, int), code
    return code, out.buffer.getvalue().decode("utf-8", "replace"), err.getvalue()  # type: ignore[attr-defined]


# --- git and trees


def assert_contract(code: int, err: str) -> None:
    """Exit 0/1/2; stderr holds only `lockcheck: error:` lines (and `annotate`'s
    `lockcheck: note:` lines on how it read the email), one error at least on 2."""
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err
    assert "internal error" not in err, err
    lines = err.splitlines()
    assert all(ln.startswith(("lockcheck: error: ", "lockcheck: note: ")) for ln in lines), err
    if code == 2:
        assert any(ln.startswith("lockcheck: error: ") for ln in lines), "exit 2 without why"


def git_env() -> dict[str, str]:
    """The environment minus anything that would point git at another repository,
    with a fixed identity and no user or system configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(
        NO_COLOR="1",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="T",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="T",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    return env


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`git -C repo ARGS`; a failure is an assertion error quoting git's words."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env=git_env(),
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def tree_hash(root: Path, *, stat: bool = False) -> str:
    """One hash of every path and file below `root`; with `stat`, modes and
    mtimes too (what a user would notice changing even with equal bytes)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha256(p.read_bytes()).digest())
        if stat:
            st = p.lstat()
            h.update(f"{st.st_mode}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


# --- golden files and SARIF


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    assert str(ROOT) not in text, "golden output must not hold absolute paths"
    if UPDATE_GOLDEN:
        path.write_text(text)
        return
    assert path.is_file(), f"{path} missing: run with LOCKCHECK_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed: review, then LOCKCHECK_UPDATE_GOLDEN=1"


def assert_valid_sarif(doc: dict[str, Any]) -> None:
    """The structure code scanning needs, then the SARIF 2.1.0 schema (a skip
    without it, outside CI: so call this last in a test)."""
    import jsonschema

    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "lockcheck"
    rules = run["tool"]["driver"]["rules"]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["message"]["text"]
        assert res["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    schema = json.loads(sarif_schema().read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


# --- fixture markers: `/* ruleid: R */`, `/* ok: R */` and `/* held: {...} */`

ANNOT_RE = re.compile(r"/\*\s*(ruleid|ok|todoruleid|todook):\s*([\w-]+)\s*\*/")
HELD_RE = re.compile(r"/\*\s*held:\s*\{([^}]*)\}\s*\*/")


def _target(lines: list[str], i: int) -> int:
    """The 1-based line a marker on line index `i` is aimed at: the next non-comment line."""
    j = i + 1
    while j < len(lines) and lines[j].strip().startswith(("/*", "*", "//")):
        j += 1
    return j + 1


def annotations(path: Path) -> dict[str, dict[str, set[int]]]:
    """rule -> kind -> set of target lines."""
    lines = path.read_text().splitlines()
    out: dict[str, dict[str, set[int]]] = {}
    for i, line in enumerate(lines):
        for m in ANNOT_RE.finditer(line):
            out.setdefault(m.group(2), {}).setdefault(m.group(1), set()).add(_target(lines, i))
    return out


def held_markers(path: Path) -> dict[int, list[str]]:
    """target line -> the locks surely held when it starts, sorted (`{}`: none)."""
    lines = path.read_text().splitlines()
    out: dict[int, list[str]] = {}
    for i, line in enumerate(lines):
        for m in HELD_RE.finditer(line):
            out[_target(lines, i)] = sorted(x.strip() for x in m.group(1).split(",") if x.strip())
    return out


ANNOTATED = sorted(p for p in FIXTURES.rglob("*.c") if ANNOT_RE.search(p.read_text()))
HELD_MARKED = sorted(p for p in FIXTURES.rglob("*.c") if HELD_RE.search(p.read_text()))


def held_by_line(path: Path) -> dict[int, list[list[str]]]:
    """line -> the must-held set entering each reachable statement or branch
    that starts there, as `explain` spells locks; one entry per distinct set."""
    from lockcheck.engine import Engine

    analysis = Engine().analyse_source(str(path), path.read_bytes())
    out: dict[int, list[list[str]]] = {}
    for ff in analysis.facts.functions:
        for node, st in zip(ff.fn.cfg.nodes, ff.state_in, strict=True):
            if node.kind not in ("stmt", "branch") or st is None:
                continue
            seen = out.setdefault(node.line, [])
            if st.describe() not in seen:
                seen.append(st.describe())
    return out


# --- the C shapes of the hook tests: the retract_page_tables() story in our own words

PRE_SERIES = """\
// SPDX-License-Identifier: GPL-2.0
/* hook test: page tables are only dropped under the exclusive mmap lock */

static void drop_table(struct mm_struct *mm, struct vm_area_struct *vma,
\t\t       unsigned long addr, pmd_t *pmd)
{
\tpmd_t old;

\tmmap_assert_write_locked(mm);
\told = pmdp_collapse_flush(vma, addr, pmd);
\tmm_dec_nr_ptes(mm);
\tpte_free(mm, pmd_pgtable(old));
}

static void collapse_file_tables(struct address_space *mapping, pgoff_t pgoff)
{
\tstruct vm_area_struct *vma;

\ti_mmap_lock_write(mapping);
\tvma_interval_tree_foreach(vma, &mapping->i_mmap, pgoff, pgoff) {
\t\tstruct mm_struct *mm = vma->vm_mm;
\t\tunsigned long addr = vma->vm_start;
\t\tpmd_t *pmd;

\t\tif (find_pmd_or_thp_or_none(mm, addr, &pmd) != SCAN_SUCCEED)
\t\t\tcontinue;
\t\tif (!mmap_write_trylock(mm))
\t\t\tcontinue;
\t\tif (!vma->anon_vma && !userfaultfd_wp(vma))
\t\t\tdrop_table(mm, vma, addr, pmd);
\t\tmmap_write_unlock(mm);
\t}
\ti_mmap_unlock_write(mapping);
}
"""

_HEAD = """\
// SPDX-License-Identifier: GPL-2.0
/* hook test: page tables dropped under the pmd and pte locks */

static void collapse_file_tables(struct address_space *mapping, pgoff_t pgoff)
{
\tstruct vm_area_struct *vma;

\ti_mmap_lock_read(mapping);
\tvma_interval_tree_foreach(vma, &mapping->i_mmap, pgoff, pgoff) {
\t\tstruct mm_struct *mm = vma->vm_mm;
\t\tunsigned long addr = vma->vm_start;
\t\tspinlock_t *pml, *ptl;
"""
_EARLY_TESTS = """\
\t\tif (READ_ONCE(vma->anon_vma))
\t\t\tcontinue;
\t\tif (find_pmd_or_thp_or_none(mm, addr, &pmd) != SCAN_SUCCEED)
\t\t\tcontinue;
\t\tif (userfaultfd_wp(vma))
\t\t\tcontinue;
\t\tpml = pmd_lock(mm, pmd);
\t\tptl = pte_lockptr(mm, pmd);
\t\tif (ptl != pml)
\t\t\tspin_lock_nested(ptl, SINGLE_DEPTH_NESTING);
"""

# the posted v1: the tests above decide the removal, made before pml and ptl
V1 = (
    _HEAD
    + "\t\tpmd_t *pmd, old;\n\n"
    + _EARLY_TESTS
    + """\
\t\told = pmdp_collapse_flush(vma, addr, pmd);
\t\tif (ptl != pml)
\t\t\tspin_unlock(ptl);
\t\tspin_unlock(pml);
\t\tmm_dec_nr_ptes(mm);
\t\tpte_free_defer(mm, pmd_pgtable(old));
\t}
\ti_mmap_unlock_read(mapping);
}
"""
)

# the fix: both flags tested again once pml and ptl are held
FIXED = (
    _HEAD
    + "\t\tbool dropped = false;\n\t\tpmd_t *pmd, old;\n\n"
    + _EARLY_TESTS
    + """\
\t\t/* both tests again, now that a fault or uffd-wp must wait for us */
\t\tif (!vma->anon_vma && !userfaultfd_wp(vma)) {
\t\t\told = pmdp_collapse_flush(vma, addr, pmd);
\t\t\tdropped = true;
\t\t}
\t\tif (ptl != pml)
\t\t\tspin_unlock(ptl);
\t\tspin_unlock(pml);
\t\tif (dropped) {
\t\t\tmm_dec_nr_ptes(mm);
\t\t\tpte_free_defer(mm, pmd_pgtable(old));
\t\t}
\t}
\ti_mmap_unlock_read(mapping);
}
"""
)

V1_RULES = ("[anon-vma-under-ptl]", "[uffd-wp-under-ptl]")
SOURCE = "mm/collapse.c"


def new_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository with `files` committed (the pre-series shape by default)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Hook Test")
    git(path, "config", "user.email", "hook@example.org")
    git(path, "config", "commit.gpgsign", "false")
    if files is None:
        files = {SOURCE: PRE_SERIES}
    if files:
        write(path, files)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "base")
    return path


def write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def stage(repo: Path, files: dict[str, str]) -> None:
    write(repo, files)
    git(repo, "add", *files)
