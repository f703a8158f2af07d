"""One registry of rule kinds and packs, filled through entry points.

Built-in rules register exactly as third-party plugins do (group
`lockcheck.rules`), so the plugin path runs every day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from lockcheck.errors import PackError, RuleError
from lockcheck.packs import Pack, RuleSpec, builtin_pack_names, load_pack, load_pack_file
from lockcheck.rules.base import Rule

ENTRY_POINT_GROUP = "lockcheck.rules"


@dataclass(slots=True)
class Registry:
    kinds: dict[str, type[Rule]] = field(default_factory=dict)
    pack_files: dict[str, Path] = field(default_factory=dict)  # packs shipped by plugins

    def add_kind(self, cls: type[Rule]) -> None:
        self.kinds[cls.kind] = cls

    def add_pack(self, name: str, path: Path) -> None:
        self.pack_files[name] = path

    def load(self, spec: str) -> Pack:
        """A pack by plugin or built-in name, or by path."""
        if spec in self.pack_files:
            return load_pack_file(self.pack_files[spec])
        if not spec.endswith(".toml") and not Path(spec).exists():
            names = sorted({*builtin_pack_names(), *self.pack_files})
            if spec not in names:
                raise PackError(f"unknown rule pack '{spec}' (known packs: {', '.join(names)})")
        return load_pack(spec)

    def instantiate(self, spec: RuleSpec) -> Rule:
        cls = self.kinds.get(spec.kind)
        if cls is None:
            known = ", ".join(sorted(self.kinds))
            raise PackError(f"{spec.where('kind')}: unknown kind '{spec.kind}' (known: {known})")
        cls.validate(spec)
        return cls(spec)


def load_registry() -> Registry:
    reg = Registry()
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name))
    if not any(e.name == "builtin" for e in eps):
        from lockcheck.rules.builtin import register

        register(reg)
    for ep in eps:
        try:
            hook: Callable[[Registry], None] = ep.load()
            hook(reg)
        except Exception as exc:  # a plugin is foreign code: report, never trace back
            raise RuleError(f"rule plugin '{ep.name}' ({ep.value}) failed to load: {exc}") from None
    return reg
