"""Scenarios: which actors a function is run against and what must hold.

They are data (`rules/scenarios.toml`, shipped with the packs), validated on
load with the file and key named, like the rule packs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockcheck.errors import PackError
from lockcheck.packs import packs_dir

INVARIANTS = ("table-loss", "deadlock", "held-at-exit", "bad-release")


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    description: str
    actors: tuple[Path, ...]
    invariants: frozenset[str]
    caller_holds: tuple[str, ...] = ()
    min_threads: int = 1


@dataclass(slots=True)
class SimSettings:
    """The `[sim]` table: what the compilers need to know about kernel C."""

    vma_iterators: frozenset[str] = frozenset()
    acts: dict[str, str] = field(default_factory=dict)
    entries: frozenset[str] = frozenset()
    marker_values: frozenset[str] = frozenset()
    locks: dict[str, str] = field(default_factory=dict)
    unsplit: dict[str, str] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)

    def lock_templates(self, split_ptl: bool) -> dict[str, str]:
        return dict(self.locks) if split_ptl else {**self.locks, **self.unsplit}


def scenarios_path() -> Path:
    return packs_dir() / "scenarios.toml"


def _fail(path: Path, key: str, problem: str) -> PackError:
    return PackError(f"scenarios {path}: {key}: {problem}")


def _strs(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, "must be a list of strings")
    return list(value)


def _table(path: Path, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(path, key, "must map names to strings")
    return dict(value)


def load_settings(path: Path | None = None) -> SimSettings:
    path = path or scenarios_path()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise PackError(f"scenarios {path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"scenarios {path}: not valid TOML: {exc}") from None
    sim = data.get("sim", {})
    if not isinstance(sim, dict):
        raise _fail(path, "sim", "must be a table")
    out = SimSettings(
        vma_iterators=frozenset(_strs(path, "sim.vma_iterators", sim.get("vma_iterators", []))),
        acts=_table(path, "sim.acts", sim.get("acts", {})),
        entries=frozenset(_strs(path, "sim.entries", sim.get("entries", []))),
        marker_values=frozenset(_strs(path, "sim.marker_values", sim.get("marker_values", []))),
        locks=_table(path, "sim.locks", sim.get("locks", {})),
        unsplit=_table(path, "sim.unsplit", sim.get("unsplit", {})),
    )
    scenarios = data.get("scenario", {})
    if not isinstance(scenarios, dict):
        raise _fail(path, "scenario", "must be a table of scenarios")
    actor_dir = path.parent / "actors"
    for sid, row in sorted(scenarios.items()):
        key = f"scenario.{sid}"
        if not isinstance(row, dict):
            raise _fail(path, key, "must be a table")
        invariants = _strs(path, f"{key}.invariants", row.get("invariants", list(INVARIANTS)))
        for inv in invariants:
            if inv not in INVARIANTS:
                raise _fail(path, f"{key}.invariants", f"unknown invariant '{inv}'")
        min_threads = row.get("min_threads", 1)
        if not isinstance(min_threads, int) or min_threads < 1:
            raise _fail(path, f"{key}.min_threads", "must be a positive integer")
        out.scenarios[sid] = Scenario(
            id=sid,
            description=str(row.get("description", "")),
            actors=tuple(
                actor_dir / a for a in _strs(path, f"{key}.actors", row.get("actors", []))
            ),
            invariants=frozenset(invariants),
            caller_holds=tuple(_strs(path, f"{key}.caller_holds", row.get("caller_holds", []))),
            min_threads=min_threads,
        )
    return out
