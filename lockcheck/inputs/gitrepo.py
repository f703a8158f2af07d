"""Patches straight from a git repository: a commit range, or the index.

`commit_range(repo, "A..B")` turns each non-merge commit of the range into a
`Patch` (via `git format-patch`, so it is the same text a mailing list would
see) and returns the tree at A to apply them to. `staged(repo)` does the same
for `git diff --cached` against HEAD (or the empty tree before the first
commit). Both only read the repository.
"""

from __future__ import annotations

from pathlib import Path

from lockcheck.errors import InputError
from lockcheck.inputs.apply import EMPTY_TREE, GitTree, git
from lockcheck.inputs.patch import Patch, parse_patch_text

DIFF_OPTS = ("--no-color", "--no-ext-diff", "--no-renames", "--no-textconv")


def commit_range(repo: Path, spec: str) -> tuple[GitTree, list[Patch]]:
    """(tree at the range's start, one patch per commit, oldest first)."""
    if ".." not in spec or "..." in spec:
        raise InputError(f"--git {spec}: expected a range A..B")
    start, _, end = spec.partition("..")
    base = GitTree.at(repo, start or "HEAD")
    GitTree.at(repo, end or "HEAD")
    shas = (
        git(repo, "rev-list", "--reverse", "--no-merges", f"{base.rev}..{end or 'HEAD'}")
        .stdout.decode()
        .split()
    )
    if not shas:
        raise InputError(f"--git {spec}: the range holds no commits")
    text = git(
        repo,
        "format-patch",
        "--stdout",
        "--no-signature",
        "--numbered" if len(shas) > 1 else "--no-numbered",
        *DIFF_OPTS,
        f"{base.rev}..{end or 'HEAD'}",
    ).stdout.decode("utf-8", "replace")
    patches = parse_patch_text(text, f"--git {spec}")
    if len(patches) != len(shas):
        raise InputError(
            f"--git {spec}: git format-patch gave {len(patches)} of {len(shas)} commits"
        )
    return base, patches


def staged(repo: Path) -> tuple[GitTree, list[Patch]]:
    """(tree at HEAD, the staged change as one patch; none if nothing is staged)."""
    has_head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0
    base = GitTree.at(repo, "HEAD" if has_head else EMPTY_TREE)
    text = git(repo, "diff", "--cached", *DIFF_OPTS, base.rev).stdout.decode("utf-8", "replace")
    if not text.strip():
        return base, []
    return base, parse_patch_text(text, "staged changes")
