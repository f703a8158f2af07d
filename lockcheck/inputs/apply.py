"""Apply patches in memory onto a tree: a directory, or a git revision.

Nothing is ever written: a `Tree` only reads, and `Series` keeps every file
a patch touched as text. Hunks are placed like `patch` places them: at the
line the header names, or else at the nearest offset where the pre-image
lines match; a hunk that matches nowhere is an `InputError` naming the
patch, the file and the hunk — never a silent skip.

API: `DirTree(root)` / `GitTree(repo, rev)` read the base; `Series(tree)`
then `series.apply(patch)` returns one `FileChange` per file the patch
touches, with the pre- and post-image texts and the changed line numbers
on each side (what the review step analyses and diffs).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Protocol

from lockcheck.errors import InputError
from lockcheck.inputs.patch import FilePatch, Hunk, Patch


class Tree(Protocol):
    def read(self, path: str) -> str | None:
        """The file's text, or None when the tree has no such file."""

    def describe(self) -> str:
        """How error messages name the tree."""


def _safe_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise InputError(f"{path}: patch names a path outside the tree")
    return str(p)


@dataclass(frozen=True, slots=True)
class DirTree:
    root: Path

    def read(self, path: str) -> str | None:
        f = self.root / _safe_relpath(path)
        if not f.is_file():
            return None
        try:
            return f.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            raise InputError(f"{f}: cannot read: {exc.strerror or exc}") from None

    def describe(self) -> str:
        return str(self.root)


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run git in `repo` with output that does not depend on user settings."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "-c", "core.quotepath=off", *args],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise InputError("git is not installed (needed for --base, --git and --staged)") from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"git {args[0]} in {repo}: {err[0] if err else 'failed'}")
    return proc


# The id of git's empty tree: the base of a repository with no commits yet.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True, slots=True)
class GitTree:
    repo: Path
    rev: str

    @classmethod
    def at(cls, repo: Path, rev: str) -> GitTree:
        """The tree of `rev` in `repo`, after checking both exist."""
        if not repo.is_dir():
            raise InputError(f"{repo}: no such directory")
        if git(repo, "rev-parse", "--git-dir", check=False).returncode != 0:
            raise InputError(f"{repo}: not a git repository")
        if rev == EMPTY_TREE:
            return cls(repo, rev)
        proc = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise InputError(f"{repo}: unknown revision '{rev}'")
        return cls(repo, proc.stdout.decode().strip())

    def read(self, path: str) -> str | None:
        spec = f"{self.rev}:{_safe_relpath(path)}"
        if git(self.repo, "cat-file", "-e", spec, check=False).returncode != 0:
            return None
        return git(self.repo, "cat-file", "blob", spec).stdout.decode("utf-8", "replace")

    def describe(self) -> str:
        return f"{self.repo} at {self.rev[:12]}"


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file as one patch changes it."""

    patch: Patch
    file: FilePatch
    pre: str | None  # None: the patch creates the file
    post: str | None  # None: the patch deletes the file
    removed: frozenset[int]  # pre-image lines the patch removes or replaces
    added: frozenset[int]  # post-image lines the patch adds
    offsets: tuple[int, ...] = ()  # per hunk: lines it landed away from where it says

    @property
    def path(self) -> str:
        return self.file.path


def _squash(line: str) -> str:
    return "".join(line.split())


def _match(lines: list[str], old: list[str], at: int, loose: bool = False) -> bool:
    if at < 0 or at + len(old) > len(lines):
        return False
    if loose:
        return all(_squash(lines[at + i]) == _squash(o) for i, o in enumerate(old))
    return all(lines[at + i].rstrip("\r\n") == o for i, o in enumerate(old))


def _locate(
    lines: list[str], old: list[str], want: int, floor: int, loose: bool = False
) -> int | None:
    """The position nearest `want` (not before `floor`) where `old` matches.

    `loose` compares lines without their white space (`patch -l`): a patch
    quoted through a mail archive has lost its indentation and tabs.
    """
    want = max(floor, min(want, len(lines)))
    if not old:
        return want
    for delta in range(len(lines) + 1):
        for at in (want - delta, want + delta) if delta else (want,):
            if at >= floor and _match(lines, old, at, loose):
                return at
        if want - delta < floor and want + delta > len(lines):
            break
    return None


def _hunk_name(k: int, hunk: Hunk) -> str:
    section = f" {hunk.section}" if hunk.section else ""
    return f"hunk #{k} ({hunk.header}{section})"


def apply_file(
    text: str, fp: FilePatch, patch: Patch, offsets: list[int] | None = None
) -> tuple[str, set[int], set[int]]:
    """(post-image, removed pre-image lines, added post-image lines).

    A patch quoted in a reply may have lost its white space: its hunks are
    placed ignoring it when they match nowhere exactly. `offsets`, if
    given, receives where each hunk landed relative to its header.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    out: list[str] = []
    removed: set[int] = set()
    added: set[int] = set()
    pos = 0
    offset = 0
    for k, hunk in enumerate(fp.hunks, 1):
        old = [ln.text for ln in hunk.lines if ln.kind != "+"]
        start = hunk.old_start if hunk.old_len == 0 else hunk.old_start - 1
        at = _locate(lines, old, start + offset, pos)
        if at is None and patch.quoted:
            at = _locate(lines, old, start + offset, pos, loose=True)
        if at is None:
            raise InputError(
                f"{patch.label}: {fp.path}: {_hunk_name(k, hunk)} does not apply "
                "(its context or removed lines are not in the file)"
            )
        offset = at - start
        if offsets is not None:
            offsets.append(offset)
        out.extend(lines[pos:at])
        old_no = at + 1
        for ln in hunk.lines:
            if ln.kind == "-":
                removed.add(old_no)
                old_no += 1
            elif ln.kind == "+":
                out.append(ln.text + "\n")
                added.add(len(out))
            else:
                out.append(lines[old_no - 1])
                old_no += 1
        pos = at + len(old)
    out.extend(lines[pos:])
    return "".join(out), removed, added


class Series:
    """The tree as each patch of a series leaves it, in memory."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.files: dict[str, str | None] = {}

    def current(self, path: str) -> str | None:
        if path in self.files:
            return self.files[path]
        return self.tree.read(path)

    def apply(self, patch: Patch) -> list[FileChange]:
        """Apply every file of `patch`; all or nothing if one file fails."""
        staged: dict[str, str | None] = {}
        changes: list[FileChange] = []
        for fp in patch.files:
            src = fp.old_path
            if src is None:
                pre = None
                if fp.new_path is not None and self.current(fp.new_path) is not None:
                    raise InputError(
                        f"{patch.label}: {fp.new_path}: the patch creates it, "
                        f"but it already exists in {self.tree.describe()}"
                    )
            else:
                pre = staged[src] if src in staged else self.current(src)
                if pre is None:
                    raise InputError(
                        f"{patch.label}: {src}: no such file in {self.tree.describe()}"
                    )
            offsets: list[int] = []
            post, removed, added = apply_file(pre or "", fp, patch, offsets)
            post_or_none = None if fp.new_path is None else post
            if src is not None and fp.new_path != src:
                staged[src] = None
            if fp.new_path is not None:
                staged[fp.new_path] = post_or_none
            changes.append(
                FileChange(
                    patch,
                    fp,
                    pre,
                    post_or_none,
                    frozenset(removed),
                    frozenset(added),
                    tuple(offsets),
                )
            )
        self.files.update(staged)
        return changes


def _components(name: str) -> list[str]:
    return [c for c in PurePosixPath(name).parts if c not in ("/", ".")]


def _preferred(names: list[str]) -> str:
    """patch(1)'s choice among candidate names: fewest components, shortest basename, name."""
    return min(names, key=lambda n: (len(_components(n)), len(PurePosixPath(n).name), len(n), n))


def _exists(tree: Tree, name: str) -> bool:
    if ".." in PurePosixPath(name).parts:
        return False
    try:
        return tree.read(name) is not None
    except InputError:
        return False


def _resolve_file(fp: FilePatch, tree: Tree | None, strip: int | None) -> FilePatch:
    assert fp.written is not None
    old_w, new_w = (None if w in ("", "/dev/null") else _components(w) for w in fp.written)
    depth = max(len(old_w or []), len(new_w or []))
    levels = [strip] if strip is not None else list(range(depth))
    chosen: str | None = None
    for n in levels:
        names = [("/".join(w[n:])) for w in (old_w, new_w) if w is not None and len(w) > n]
        there = [name for name in names if tree is not None and _exists(tree, name)]
        if there:
            chosen = _preferred(there)
            break
        if strip is not None:
            if not names:
                shown = next((w for w in fp.written if w not in ("", "/dev/null")), "")
                raise InputError(f"-p {strip}: {shown} has not that many leading components")
            chosen = _preferred(names)  # told how many to strip: a new file, or no tree
    if chosen is None:  # nothing in the tree: the names as parsed (a/ and b/ dropped)
        chosen = _preferred([n for n in (fp.old_path, fp.new_path) if n is not None] or ["?"])
    return replace(
        fp,
        old_path=chosen if old_w is not None else None,
        new_path=chosen if new_w is not None else None,
    )


def resolve_paths(patches: list[Patch], tree: Tree | None, strip: int | None) -> list[Patch]:
    """Patches whose plain-diff files are named as the tree names them.

    A git diff names its files exactly. A plain `diff -u` names them as they
    were on its author's disk (`linux.orig/mm/x.c`, `mm/x.c.orig`): as patch(1)
    does, `strip` (-p N) drops N leading components; without it the names are
    tried as written, then with one, two ... components dropped, until one is
    a file of the tree. The old and the new name are one file, not a rename:
    the one the tree has, else the shorter.
    """
    if strip is not None and strip < 0:
        raise InputError(f"-p {strip}: the number of components to strip must be 0 or more")
    out: list[Patch] = []
    for p in patches:
        if all(fp.written is None for fp in p.files):
            out.append(p)
            continue
        files = tuple(
            fp if fp.written is None else _resolve_file(fp, tree, strip) for fp in p.files
        )
        out.append(replace(p, files=files))
    return out
