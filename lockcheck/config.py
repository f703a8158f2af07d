"""A checked repository's own settings: `.lockcheck.toml` or `[tool.lockcheck]`.

A kernel tree that adopts lockcheck wants the same rules, severities and
baseline for everyone who runs `check`, `review` or the pre-commit hook,
without repeating options. The file is found by walking up from where the
command looks (the checked path, the `--tree`, the repository of the hook),
stopping at the repository root; in one directory `.lockcheck.toml` wins over
`pyproject.toml`, and a pyproject without `[tool.lockcheck]` is passed over.

```toml
packs = ["mm", "tools/lockcheck/local.toml"]  # rule packs; paths relative to this file
disable = ["lock-order"]                      # rule ids not run
baseline = ".lockcheck-baseline.json"         # known findings, hidden
include = ["mm", "include/linux/*.h"]         # only these paths are checked
exclude = ["mm/legacy"]                       # never these

[severity]
uffd-wp-under-ptl = "warning"
```

Paths and patterns are relative to the file's directory. Patterns are
shell-style (`*` also matches `/`, `**/` may match no directory) and a
pattern that matches a directory covers everything below it. Explicit
command-line options win: `--rules` replaces `packs`, `--select` ignores
`disable`, `--baseline` replaces `baseline`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from lockcheck.engine import Config, Engine
from lockcheck.errors import InputError
from lockcheck.inputs.apply import DirTree, GitTree, Tree, git
from lockcheck.inputs.files import collect_sources, read_regular
from lockcheck.inputs.patch import Patch
from lockcheck.model.finding import SEVERITY_RANK
from lockcheck.rules.baseline import load_baseline

CONFIG_NAME = ".lockcheck.toml"
_KEYS = ("packs", "disable", "severity", "baseline", "include", "exclude")


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """Settings of one checked repository; the empty default changes nothing."""

    root: Path  # the directory paths and patterns are relative to
    source: Path | None = None  # the file read, for error messages
    packs: tuple[str, ...] = ()
    disable: frozenset[str] = frozenset()
    severity: Mapping[str, str] = field(default_factory=dict)
    baseline: Path | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return str(self.source) if self.source is not None else "configuration"

    def engine(
        self, rules: Sequence[str] | None, select: Sequence[str] | None, baseline: bool = True
    ) -> Engine:
        """The engine a command runs: its own options over this configuration."""
        config = Config(
            packs=list(rules or self.packs or ["mm"]),
            select=set(select) if select else None,
            disable=set() if select else set(self.disable),
            severity=dict(self.severity),
        )
        engine = Engine(config)
        known = {spec.id for pack in engine.packs for spec in pack.rules}
        for key, ids in (("disable", config.disable), ("severity", set(config.severity))):
            unknown = sorted(ids - known)
            if unknown:
                raise InputError(
                    f"{self.label}: {key}: unknown rule id '{unknown[0]}'"
                    " (see `lockcheck rules list`)"
                )
        if baseline and self.baseline is not None:
            engine.config.baseline = load_baseline(self.baseline)
        from lockcheck.cache import default_cache_dir

        engine.use_cache(default_cache_dir())  # header summaries; `check --no-cache` drops it
        return engine

    def wants(self, path: Path) -> bool:
        """Whether `include`/`exclude` let `path` be checked (outside `root`: yes)."""
        if not self.include and not self.exclude:
            return True
        try:
            rel = PurePosixPath(path.resolve().relative_to(self.root.resolve()).as_posix())
        except ValueError:
            return True
        if self.include and not any(_matches(rel, p) for p in self.include):
            return False
        return not any(_matches(rel, p) for p in self.exclude)

    def select_paths(self, paths: Iterable[Path]) -> list[Path]:
        """`check`'s operands with directories expanded and unwanted files dropped.

        Missing paths stay, so that the engine reports them as errors.
        """
        if not self.include and not self.exclude:
            return list(paths)
        out: list[Path] = []
        for p in paths:
            if p.is_dir():
                files, _ = collect_sources([p])
                out.extend(f for f in files if self.wants(f))
            elif not p.exists() or self.wants(p):
                out.append(p)
        return out

    def select_patches(self, patches: Iterable[Patch], tree: Path) -> list[Patch]:
        """Each patch without the files this configuration excludes.

        A series stays consistent: a path is dropped from every patch or from
        none, so no later hunk is left without the text it applies to.
        """
        if not self.include and not self.exclude:
            return list(patches)
        return [
            replace(p, files=tuple(fp for fp in p.files if self.wants(tree / fp.path)))
            for p in patches
        ]


def _matches(rel: PurePosixPath, pattern: str) -> bool:
    pattern = pattern.strip().strip("/")
    forms = {pattern, pattern.replace("**/", "")}
    candidates = [str(rel), *(str(parent) for parent in rel.parents if str(parent) != ".")]
    return any(fnmatchcase(c, form) for c in candidates for form in forms if form)


def _strings(label: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{label}: {key}: must be a list of strings")
    return tuple(value)


def parse_config(data: Mapping[str, Any], source: Path) -> ProjectConfig:
    """Validate one configuration table; every problem names the file and key."""
    label = str(source)
    root = source.parent
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise InputError(f"{label}: unknown key '{unknown[0]}' (known: {', '.join(sorted(_KEYS))})")
    packs = _strings(label, "packs", data.get("packs", []))
    # a pack named by path is relative to the configuration, not the cwd
    packs = tuple(
        str(root / p) if p.endswith(".toml") and not Path(p).is_absolute() else p for p in packs
    )
    severity = data.get("severity", {})
    if not isinstance(severity, dict):
        raise InputError(f"{label}: severity: must be a table of rule id = severity")
    for rule, level in severity.items():
        if level not in SEVERITY_RANK:
            levels = ", ".join(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__))
            raise InputError(f"{label}: severity.{rule}: must be one of {levels}")
    baseline = data.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise InputError(f"{label}: baseline: must be a path")
    return ProjectConfig(
        root=root,
        source=source,
        packs=packs,
        disable=frozenset(_strings(label, "disable", data.get("disable", []))),
        severity=dict(severity),
        baseline=root / baseline if baseline is not None else None,
        include=_strings(label, "include", data.get("include", [])),
        exclude=_strings(label, "exclude", data.get("exclude", [])),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_regular(path).decode("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def load_config_file(path: Path) -> ProjectConfig:
    """A `.lockcheck.toml`, or the `[tool.lockcheck]` table of a pyproject."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("lockcheck")
        if not isinstance(table, dict):
            raise InputError(f"{path}: no [tool.lockcheck] table")
        data = table
    return parse_config(data, path)


def find_config(start: Path) -> ProjectConfig:
    """The configuration that governs `start` (a file or a directory)."""
    here = start.resolve()
    if not here.is_dir():
        here = here.parent
    for d in (here, *here.parents):
        own = d / CONFIG_NAME
        if own.is_file():
            return load_config_file(own)
        pyproject = d / "pyproject.toml"
        if pyproject.is_file():
            tool = _read_toml(pyproject).get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("lockcheck"), dict):
                return load_config_file(pyproject)
        if (d / ".git").exists():
            break  # a repository's settings never come from outside it
    return ProjectConfig(root=here)


def config_for(paths: Sequence[Path]) -> ProjectConfig:
    """The configuration of a command's operands: found from the first of them."""
    return find_config(paths[0] if paths else Path("."))


def patch_root(tree: Tree | None, default: Path) -> Path:
    """The directory a patch's paths are relative to: the tree's top."""
    if isinstance(tree, GitTree):
        top = git(tree.repo, "rev-parse", "--show-toplevel", check=False).stdout.decode().strip()
        return Path(top) if top else tree.repo
    if isinstance(tree, DirTree):
        return tree.root
    return default
