"""Rule packs: TOML files that hold the lock vocabulary and the rules.

A new kernel primitive is a table row here, not code. Packs are validated on
load and every problem names the file, the key and what is wrong, because a
silently ignored row is a lock the analysis cannot see.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lockcheck.errors import PackError

EFFECTS = frozenset(
    {
        "acquire",
        "release",
        "try",
        "downgrade",
        "returns-lock",
        "lockptr",
        "out-lock",
        "out-lockptr",
        "claim",
        "check",
        "act",
        "sleeps",
    }
)
MODES = frozenset({"excl", "read", "write"})
SEVERITIES = ("note", "warning", "error")

_API_KEYS: dict[str, type | tuple[type, ...]] = {
    "effect": str,
    "lock": str,
    "class": str,
    "mode": str,
    "nested": bool,
    "sleeps": bool,
    "success": str,
    "null_on_fail": bool,
    "out_arg": int,
    "claim": str,
    "flag": str,
    "act": str,
    "target": int,
}


@dataclass(frozen=True, slots=True)
class ApiEntry:
    name: str
    effect: str
    lock: str = "{0}"
    cls: str | None = None
    mode: str = "excl"
    nested: bool = False
    sleeps: bool = False
    success: str = "nonzero"
    null_on_fail: bool = False
    out_arg: int = 0
    claim: str = "held"
    flag: str = ""
    act: str = ""
    target: int = 0


@dataclass(frozen=True, slots=True)
class GuardEntry:
    name: str
    lock: str = "{0}"
    cls: str | None = None
    mode: str = "excl"
    sleeps: bool = False


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A `[[rule]]` table: the id, kind and the kind's parameters."""

    id: str
    kind: str
    severity: str
    message: str
    summary: str
    pack: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    scenario: str | None = None


@dataclass(slots=True)
class Pack:
    name: str
    path: str
    description: str = ""
    api: dict[str, ApiEntry] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)
    guards: dict[str, GuardEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)


@dataclass(slots=True)
class Vocabulary:
    """The merged tables of every loaded pack: what the model consults."""

    api: dict[str, ApiEntry] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)
    guards: dict[str, GuardEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @classmethod
    def merge(cls, packs: list[Pack]) -> Vocabulary:
        voc = cls()
        for p in packs:
            voc.api.update(p.api)
            voc.fields.update(p.fields)
            voc.identifiers.update(p.identifiers)
            voc.guards.update(p.guards)
            if p.order and not voc.order:
                voc.order = list(p.order)
        return voc


def packs_dir() -> Path:
    """Where the built-in packs live: inside the wheel, or the source tree."""
    installed = resources.files("lockcheck") / "_packs"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parent.parent / "rules"


def builtin_pack_names() -> list[str]:
    return sorted(p.stem for p in packs_dir().glob("*.toml"))


def _fail(path: str, key: str, problem: str) -> PackError:
    return PackError(f"rule pack {path}: {key}: {problem}")


def _api_entry(path: str, name: str, row: Any) -> ApiEntry:
    key = f"api.{name}"
    if not isinstance(row, dict):
        raise _fail(path, key, "must be a table")
    for k, v in row.items():
        want = _API_KEYS.get(k)
        if want is None:
            raise _fail(path, f"{key}.{k}", "unknown key")
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise _fail(path, f"{key}.{k}", f"must be {getattr(want, '__name__', want)}")
    effect = row.get("effect")
    if effect not in EFFECTS:
        raise _fail(path, f"{key}.effect", f"must be one of {', '.join(sorted(EFFECTS))}")
    mode = row.get("mode", "excl")
    if mode not in MODES:
        raise _fail(path, f"{key}.mode", "must be excl, read or write")
    if row.get("success", "nonzero") not in ("zero", "nonzero"):
        raise _fail(path, f"{key}.success", "must be zero or nonzero")
    if row.get("claim", "held") not in ("held", "not_held"):
        raise _fail(path, f"{key}.claim", "must be held or not_held")
    if effect == "check" and not row.get("flag"):
        raise _fail(path, f"{key}.flag", "a check needs a flag")
    if effect == "act" and not row.get("act"):
        raise _fail(path, f"{key}.act", "an act needs an act kind")
    return ApiEntry(
        name=name,
        effect=effect,
        lock=row.get("lock", "{0}"),
        cls=row.get("class"),
        mode=mode,
        nested=row.get("nested", False),
        sleeps=row.get("sleeps", False) or effect == "sleeps",
        success=row.get("success", "nonzero"),
        null_on_fail=row.get("null_on_fail", False),
        out_arg=row.get("out_arg", 0),
        claim=row.get("claim", "held"),
        flag=row.get("flag", ""),
        act=row.get("act", ""),
        target=row.get("target", 0),
    )


def _str_table(path: str, key: str, data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise _fail(path, key, "must map names to strings")
    return dict(data)


def _rule(path: str, pack: str, i: int, row: Any) -> RuleSpec:
    key = f"rule[{i}]"
    if not isinstance(row, dict):
        raise _fail(path, key, "must be a table")
    for req in ("id", "kind", "message"):
        if not isinstance(row.get(req), str) or not row[req]:
            raise _fail(path, f"{key}.{req}", "is required and must be a string")
    sev = row.get("severity", "warning")
    if sev not in SEVERITIES:
        raise _fail(path, f"{key}.severity", "must be error, warning or note")
    scenario = row.get("scenario")
    if scenario is not None and not isinstance(scenario, str):
        raise _fail(path, f"{key}.scenario", "must be a string")
    known = {"id", "kind", "message", "severity", "summary", "scenario"}
    params = {k: v for k, v in row.items() if k not in known}
    return RuleSpec(
        id=row["id"],
        kind=row["kind"],
        severity=sev,
        message=row["message"],
        summary=str(row.get("summary", "")),
        pack=pack,
        params=params,
        scenario=scenario,
    )


def load_pack_file(path: Path) -> Pack:
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackError(f"rule pack {label}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"rule pack {label}: not valid TOML: {exc}") from None
    meta = data.get("pack", {})
    if not isinstance(meta, dict):
        raise _fail(label, "pack", "must be a table")
    name = meta.get("name", path.stem)
    if not isinstance(name, str):
        raise _fail(label, "pack.name", "must be a string")
    pack = Pack(name=name, path=label, description=str(meta.get("description", "")))
    api = data.get("api", {})
    if not isinstance(api, dict):
        raise _fail(label, "api", "must be a table")
    pack.api = {n: _api_entry(label, n, row) for n, row in api.items()}
    pack.fields = _str_table(label, "fields", data.get("fields", {}))
    pack.identifiers = _str_table(label, "identifiers", data.get("identifiers", {}))
    guards = data.get("guards", {})
    if not isinstance(guards, dict):
        raise _fail(label, "guards", "must be a table")
    for gname, row in guards.items():
        if not isinstance(row, dict):
            raise _fail(label, f"guards.{gname}", "must be a table")
        mode = row.get("mode", "excl")
        if mode not in MODES:
            raise _fail(label, f"guards.{gname}.mode", "must be excl, read or write")
        pack.guards[gname] = GuardEntry(
            gname, row.get("lock", "{0}"), row.get("class"), mode, bool(row.get("sleeps"))
        )
    order = data.get("order", [])
    if not isinstance(order, list) or not all(isinstance(o, str) for o in order):
        raise _fail(label, "order", "must be a list of lock class names, outer first")
    pack.order = list(order)
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise _fail(label, "rule", "must be an array of tables ([[rule]])")
    pack.rules = [_rule(label, name, i, r) for i, r in enumerate(rules)]
    seen: set[str] = set()
    for r in pack.rules:
        if r.id in seen:
            raise _fail(label, f"rule {r.id}", "duplicate rule id")
        seen.add(r.id)
    return pack


def load_pack(spec: str) -> Pack:
    """A pack by built-in name (`mm`) or by path to a TOML file."""
    path = Path(spec)
    if spec.endswith(".toml") or path.exists():
        if not path.is_file():
            raise PackError(f"rule pack {spec}: no such file")
        return load_pack_file(path)
    candidate = packs_dir() / f"{spec}.toml"
    if not candidate.is_file():
        names = ", ".join(builtin_pack_names()) or "none"
        raise PackError(f"unknown rule pack '{spec}' (built-in packs: {names})")
    return load_pack_file(candidate)
