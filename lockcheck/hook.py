"""The pre-commit hook: stop a commit that introduces a lock finding.

Two ways in, one behaviour. The pre-commit framework runs `lockcheck hook
run FILE...` (see `.pre-commit-hooks.yaml`); a plain `.git/hooks/pre-commit`
written by `install` runs the same command. Either way the staged change is
reviewed with `lockcheck.review` against HEAD, so only findings the change
introduces count: an old finding in a file the commit touches elsewhere does
not block it. FILES, when given, narrow the review to those paths (the
framework passes the staged files its `files:` pattern selects).

Run by `pre-commit run --from-ref A --to-ref B` (CI, or the pre-push stage)
the framework sets PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF and the commits
A..B are reviewed instead, as `lockcheck review --git A..B` does.

A hook file is ours when it carries `MARKER`; anything else is a foreign hook
that `install` refuses to replace without `force` and `uninstall` never
removes.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lockcheck.config import ProjectConfig, find_config
from lockcheck.engine import Engine
from lockcheck.errors import InputError
from lockcheck.inputs.apply import GitTree, git
from lockcheck.inputs.gitrepo import commit_range, staged
from lockcheck.inputs.patch import Patch
from lockcheck.review import ReviewResult, review

MARKER = "# lockcheck-hook: written by `lockcheck hook install`"


def toplevel(where: Path) -> Path:
    """The work tree root of the repository containing `where`."""
    if not where.is_dir():
        raise InputError(f"{where}: no such directory")
    proc = git(where, "rev-parse", "--show-toplevel", check=False)
    top = proc.stdout.decode().strip()
    if proc.returncode != 0 or not top:
        raise InputError(f"{where}: not inside a git work tree")
    return Path(top)


def hook_path(repo: Path) -> Path:
    """Where git looks for the pre-commit hook (honours core.hooksPath)."""
    top = toplevel(repo)
    rel = git(top, "rev-parse", "--git-path", "hooks/pre-commit").stdout.decode().strip()
    return top / rel


def hook_script(fail_on: str, python: str) -> str:
    """A POSIX shell hook running this installation's lockcheck."""
    cmd = shlex.join([python, "-m", "lockcheck", "hook", "run", "--fail-on", fail_on])
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        "# Blocks a commit whose staged change introduces a lock finding.\n"
        "# Skip once with `git commit --no-verify`; remove with `lockcheck hook uninstall`.\n"
        f"exec {cmd}\n"
    )


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text("utf-8", "replace")
    except OSError:
        return False


def install(repo: Path, fail_on: str = "warning", force: bool = False, python: str = "") -> Path:
    """Write the plain git hook; a foreign hook is replaced only with `force`."""
    path = hook_path(repo)
    if (path.exists() or path.is_symlink()) and not is_ours(path) and not force:
        raise InputError(
            f"{path}: a pre-commit hook not written by lockcheck is there;"
            " use --force to replace it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(hook_script(fail_on, python or sys.executable), "utf-8")
        path.chmod(0o755)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def uninstall(repo: Path) -> Path | None:
    """Remove our hook; None when there is none. A foreign hook is an error."""
    path = hook_path(repo)
    if not path.exists() and not path.is_symlink():
        return None
    if not is_ours(path):
        raise InputError(f"{path}: not written by lockcheck; left as it is")
    try:
        path.unlink()
    except OSError as exc:
        raise InputError(f"{path}: cannot remove: {exc.strerror or exc}") from None
    return path


@dataclass(slots=True)
class HookRun:
    engine: Engine
    result: ReviewResult
    config: ProjectConfig
    what: str  # "staged changes" or "commits A..B": what was reviewed


def _repo_paths(top: Path, files: Sequence[Path]) -> set[str]:
    """FILES (relative to the cwd, as the framework passes them) as repo paths."""
    out: set[str] = set()
    root = top.resolve()
    for f in files:
        try:
            out.add(f.resolve().relative_to(root).as_posix())
        except ValueError:
            raise InputError(f"{f}: outside the repository {top}") from None
    return out


def _only(patches: list[Patch], paths: set[str]) -> list[Patch]:
    return [replace(p, files=tuple(fp for fp in p.files if fp.path in paths)) for p in patches]


def run_hook(
    repo: Path,
    files: Sequence[Path] = (),
    rules: Sequence[str] | None = None,
    select: Sequence[str] | None = None,
    from_ref: str | None = None,
    to_ref: str | None = None,
) -> HookRun:
    """Review what is about to be committed (or pushed), restricted to `files`."""
    top = toplevel(repo)
    config = find_config(top)
    engine = config.engine(rules, select)
    tree: GitTree
    if from_ref and to_ref:
        what = f"commits {from_ref}..{to_ref}"
        tree, patches = commit_range(top, f"{from_ref}..{to_ref}")
    elif from_ref or to_ref:
        raise InputError("--from-ref and --to-ref go together")
    else:
        what = "staged changes"
        tree, patches = staged(top)
    if files:
        patches = _only(patches, _repo_paths(top, files))
    patches = config.select_patches(patches, top)
    return HookRun(engine, review(engine, patches, tree), config, what)
