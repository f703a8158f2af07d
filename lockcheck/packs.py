"""Rule packs: TOML files that hold the lock vocabulary and the rules.

A new kernel primitive is a table row here, not code. Packs are validated on
load and every problem names the file, the key and what is wrong, because a
silently ignored row is a lock the analysis cannot see.
"""

from __future__ import annotations

import re
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
        "may-release",
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
        "read",
        "callback",
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
    "atomic": bool,
    "until": str,
    "waits": bool,
}
# The fixed sections of a rule's documentation (docs/rules/*.md, `rules show`).
DOC_SECTIONS = ("what", "why", "bad", "good", "limits", "references")
DOC_TITLES = {
    "what": "What it finds",
    "why": "Why it is a bug",
    "bad": "Example (bad C)",
    "good": "Use instead (good C)",
    "limits": "Limits",
    "references": "References",
}
_RULE_KEYS = frozenset({"id", "kind", "message", "severity", "summary", "scenario", "doc"})


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
    atomic: bool = False  # the lock spins (or is rcu_read_lock): holding it is atomic context
    # held until a lock of this class is released (vma_start_write() until the
    # mmap write lock goes): not released by the taker, taking it again is a no-op
    until: str | None = None
    waits: bool = True  # taking it can wait for a holder (not the RCU read side): lock order


@dataclass(frozen=True, slots=True)
class GuardEntry:
    name: str
    lock: str = "{0}"
    cls: str | None = None
    mode: str = "excl"
    sleeps: bool = False
    atomic: bool = False
    waits: bool = True


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """The documentation sections of one rule; empty strings where absent."""

    what: str = ""
    why: str = ""
    bad: str = ""
    good: str = ""
    limits: str = ""
    references: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        return [s for s in DOC_SECTIONS if not getattr(self, s)]

    def merged(self, fallback: RuleDoc) -> RuleDoc:
        """This doc with its empty sections filled from `fallback` (a kind's default)."""
        return RuleDoc(**{s: getattr(self, s) or getattr(fallback, s) for s in DOC_SECTIONS})


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
    doc: RuleDoc = field(default_factory=RuleDoc, compare=False)
    path: str = ""  # the pack file, for error messages
    index: int = -1  # position among the pack's [[rule]] tables

    def where(self, key: str = "") -> str:
        """`rule pack FILE: rule[i] (id).key`: the prefix of every problem with it."""
        loc = f"rule pack {self.path or self.pack}: rule[{self.index}] ({self.id})"
        return f"{loc}.{key}" if key else loc


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
    # the kernel's spellings of locks in comments -> lock classes (`[names]`)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # iterator macros whose cursor is not the first argument (`[iterators]`)
    iterators: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # pointer names whose dereference reads a page-table entry -> covering lock class
    entries: dict[str, str] = field(default_factory=dict)
    # calls that only read what their arguments point at (`pure = [...]`):
    # asked twice with the same arguments they answer the same
    pure: frozenset[str] = frozenset()
    rules: list[RuleSpec] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)  # packs whose vocabulary this one borrows


@dataclass(slots=True)
class Vocabulary:
    """The merged tables of every loaded pack: what the model consults."""

    api: dict[str, ApiEntry] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)
    guards: dict[str, GuardEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    orders: dict[str, list[str]] = field(default_factory=dict)  # each pack's own, by name
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # comment spelling -> classes
    iterators: dict[str, tuple[int, ...]] = field(default_factory=dict)  # macro -> cursor args
    entries: dict[str, str] = field(default_factory=dict)  # entry pointer name -> lock class
    pure: frozenset[str] = frozenset()  # calls that only read (`pure = [...]`)
    # a file's own macros that run an argument as a statement (`unlock_cmd;`
    # in a wait loop): macro -> those arguments, not run where it is called
    statement_args: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # the numbers of a file's named constants (enumerators, `#define N 5`),
    # its own and its directory's headers' (frontend/constants.py)
    constants: dict[str, int] = field(default_factory=dict)
    # macros whose value is one of their arguments (`WRAP(x, ..)` is `x`,
    # frontend/macros.py value_macros): macro -> that argument's position
    passes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def merge(cls, packs: list[Pack]) -> Vocabulary:
        voc = cls()
        for p in packs:
            voc.api.update(p.api)
            voc.fields.update(p.fields)
            voc.identifiers.update(p.identifiers)
            voc.guards.update(p.guards)
            voc.iterators.update(p.iterators)
            voc.entries.update(p.entries)
            voc.pure |= p.pure
            for spelling, classes in p.names.items():
                voc.names.setdefault(spelling, classes)
            if p.order and not voc.order:
                voc.order = list(p.order)
            if p.order:
                voc.orders.setdefault(p.name, list(p.order))
        return voc

    def is_atomic(self, primitive: str) -> bool | None:
        """Does holding what `primitive` acquired make the context atomic? None: unknown."""
        if primitive.startswith("guard(") and primitive.endswith(")"):
            guard = self.guards.get(primitive[6:-1])
            return guard.atomic if guard is not None else None
        entry = self.api.get(primitive)
        return entry.atomic if entry is not None else None

    def entry_class(self, pointer: str) -> str | None:
        """The lock class covering the entry `*pointer` reads, by the pointer's last name.

        `pte`, `vmf->pte` and `src_pte` all name a pte pointer when the
        `[entries]` table lists `pte`; None for pointers it does not name.
        """
        if not self.entries:
            return None
        last = re.split(r"->|\.", pointer)[-1]
        for name, cls in self.entries.items():
            if last == name or last.endswith("_" + name):
                return cls
        return None

    def never_waits(self, primitive: str) -> bool:
        """Is taking what `primitive` acquires never a wait for another holder
        (`waits = false`: the RCU read side), so it orders no lock after another?"""
        if primitive.startswith("guard(") and primitive.endswith(")"):
            guard = self.guards.get(primitive[6:-1])
            return guard is not None and not guard.waits
        entry = self.api.get(primitive)
        return entry is not None and not entry.waits

    def is_try(self, primitive: str) -> bool:
        entry = self.api.get(primitive)
        return entry is not None and entry.effect == "try"

    def named_lock(self, token: str) -> str | None:
        """The one lock a bare word names (`__acquires(RCU)`): a `[names]`
        spelling (case ignored) of a single class whose api rows all take
        the same fixed lock (`rcu_read_lock` takes `rcu`); None otherwise."""
        want = token.lower()
        classes = {c for s, cs in self.names.items() if s.lower() == want for c in cs}
        if len(classes) != 1:
            return None
        (cls,) = classes
        locks = {e.lock for e in self.api.values() if e.cls == cls and e.effect != "claim"}
        locks.update(g.lock for g in self.guards.values() if g.cls == cls)
        if len(locks) != 1:
            return None
        (lock,) = locks
        return None if "{" in lock else lock

    def declared_classes(self) -> frozenset[str]:
        """Lock classes named by the tables, not guessed from a spelling."""
        out = {e.cls for e in self.api.values() if e.cls}
        out.update(g.cls for g in self.guards.values() if g.cls)
        return frozenset(c for c in out if c)


def packs_dir() -> Path:
    """Where the built-in packs live: inside the wheel, or the source tree."""
    installed = resources.files("lockcheck") / "_packs"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parent.parent / "rules"


def builtin_pack_names() -> list[str]:
    """The shipped packs: TOML files in the packs directory with a `[pack]` table.

    Other data shares the directory (the simulator's scenarios.toml).
    """
    return sorted(p.stem for p in packs_dir().glob("*.toml") if _PACK_RE.search(p.read_text()))


_PACK_RE = re.compile(r"^\[pack\]\s*$", re.M)


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
    if effect == "read" and not row.get("class"):
        raise _fail(path, f"{key}.class", "an entry read needs the class of the lock covering it")
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
        atomic=row.get("atomic", False),
        until=row.get("until"),
        waits=row.get("waits", True),
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
    if not isinstance(row.get("summary", ""), str):
        raise _fail(path, f"{key}.summary", "must be a string")
    params = {k: v for k, v in row.items() if k not in _RULE_KEYS}
    return RuleSpec(
        id=row["id"],
        kind=row["kind"],
        severity=sev,
        message=row["message"],
        summary=row.get("summary", ""),
        pack=pack,
        params=params,
        scenario=scenario,
        doc=_rule_doc(path, f"{key}.doc", row.get("doc", {})),
        path=path,
        index=i,
    )


def _rule_doc(path: str, key: str, data: Any) -> RuleDoc:
    if not isinstance(data, dict):
        raise _fail(path, key, "must be a table ([rule.doc])")
    for k, v in data.items():
        if k not in DOC_SECTIONS:
            raise _fail(
                path, f"{key}.{k}", f"unknown section (sections: {', '.join(DOC_SECTIONS)})"
            )
        if k == "references":
            if not isinstance(v, list) or not all(isinstance(r, str) for r in v):
                raise _fail(path, f"{key}.{k}", "must be a list of strings")
        elif not isinstance(v, str):
            raise _fail(path, f"{key}.{k}", "must be a string")
    refs = tuple(data.get("references", ()))
    return RuleDoc(**{k: v for k, v in data.items() if k != "references"}, references=refs)


_GUARD_KEYS: dict[str, type] = {
    "lock": str,
    "class": str,
    "mode": str,
    "sleeps": bool,
    "atomic": bool,
    "waits": bool,
}
_TOP_KEYS = frozenset(
    {
        "pack",
        "api",
        "fields",
        "identifiers",
        "guards",
        "order",
        "pure",
        "names",
        "iterators",
        "entries",
        "rule",
    }
)
_PACK_KEYS = frozenset({"name", "description", "uses"})


def order_levels(order: list[str]) -> dict[str, int]:
    """Lock class -> rank, outer first; `a | b` puts classes on one level."""
    out: dict[str, int] = {}
    for rank, level in enumerate(order):
        for cls in level.split("|"):
            if cls.strip():
                out.setdefault(cls.strip(), rank)
    return out


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
    for top in data:
        if top not in _TOP_KEYS:
            raise _fail(label, top, f"unknown table (known: {', '.join(sorted(_TOP_KEYS))})")
    meta = data.get("pack", {})
    if not isinstance(meta, dict):
        raise _fail(label, "pack", "must be a table")
    for k in meta:
        if k not in _PACK_KEYS:
            raise _fail(label, f"pack.{k}", "unknown key")
    name = meta.get("name", path.stem)
    if not isinstance(name, str):
        raise _fail(label, "pack.name", "must be a string")
    uses = meta.get("uses", [])
    if not isinstance(uses, list) or not all(isinstance(u, str) for u in uses):
        raise _fail(label, "pack.uses", "must be a list of pack names")
    pack = Pack(name=name, path=label, description=str(meta.get("description", "")))
    pack.uses = list(uses)
    api = data.get("api", {})
    if not isinstance(api, dict):
        raise _fail(label, "api", "must be a table")
    pack.api = {n: _api_entry(label, n, row) for n, row in api.items()}
    pack.fields = _str_table(label, "fields", data.get("fields", {}))
    pack.identifiers = _str_table(label, "identifiers", data.get("identifiers", {}))
    pack.entries = _str_table(label, "entries", data.get("entries", {}))
    guards = data.get("guards", {})
    if not isinstance(guards, dict):
        raise _fail(label, "guards", "must be a table")
    for gname, row in guards.items():
        if not isinstance(row, dict):
            raise _fail(label, f"guards.{gname}", "must be a table")
        mode = row.get("mode", "excl")
        if mode not in MODES:
            raise _fail(label, f"guards.{gname}.mode", "must be excl, read or write")
        for k, v in row.items():
            want = _GUARD_KEYS.get(k)
            if want is None:
                raise _fail(label, f"guards.{gname}.{k}", "unknown key")
            if not isinstance(v, want):
                raise _fail(label, f"guards.{gname}.{k}", f"must be {want.__name__}")
        pack.guards[gname] = GuardEntry(
            gname,
            row.get("lock", "{0}"),
            row.get("class"),
            mode,
            bool(row.get("sleeps")),
            bool(row.get("atomic")),
            bool(row.get("waits", True)),
        )
    order = data.get("order", [])
    if not isinstance(order, list) or not all(isinstance(o, str) and o.strip() for o in order):
        raise _fail(label, "order", "must be a list of lock class names, outer first")
    pack.order = list(order)
    pure = data.get("pure", [])
    if not isinstance(pure, list) or not all(
        isinstance(n, str) and re.fullmatch(r"[A-Za-z_]\w*", n) for n in pure
    ):
        raise _fail(label, "pure", "must be a list of function names")
    pack.pure = frozenset(pure)
    pack.names = _names_table(label, data.get("names", {}))
    pack.iterators = _iterators_table(label, data.get("iterators", {}))
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise _fail(label, "rule", "must be an array of tables ([[rule]])")
    pack.rules = [_rule(label, name, i, r) for i, r in enumerate(rules)]
    seen: set[str] = set()
    for r in pack.rules:
        if r.id in seen:
            raise _fail(label, f"rule[{r.index}].id", f"duplicate rule id '{r.id}'")
        seen.add(r.id)
    if pack.uses:
        _borrow(pack)
    return pack


def _names_table(label: str, raw: object) -> dict[str, tuple[str, ...]]:
    """`[names]`: a spelling maps to one lock class or a list of them."""
    if not isinstance(raw, dict):
        raise _fail(label, "names", "must be a table")
    out: dict[str, tuple[str, ...]] = {}
    for spelling, value in raw.items():
        classes = [value] if isinstance(value, str) else value
        if not isinstance(classes, list) or not classes:
            raise _fail(label, f"names.{spelling}", "must be a lock class or a list of them")
        if not all(isinstance(c, str) and c.strip() for c in classes):
            raise _fail(label, f"names.{spelling}", "must be a lock class or a list of them")
        out[spelling] = tuple(c.strip() for c in classes)
    return out


def _iterators_table(label: str, raw: object) -> dict[str, tuple[int, ...]]:
    """`[iterators]`: a loop macro -> the argument positions it assigns."""
    if not isinstance(raw, dict):
        raise _fail(label, "iterators", "must be a table")
    out: dict[str, tuple[int, ...]] = {}
    for macro, value in raw.items():
        args = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(args, list)
            or not args
            or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in args)
        ):
            raise _fail(label, f"iterators.{macro}", "must be an argument index or a list of them")
        out[macro] = tuple(args)
    return out


def _borrow(pack: Pack) -> None:
    """`[pack] uses = ["mm"]`: the named packs' tables first, this pack's rows over them.

    A subsystem pack thereby adds a flag and an act without restating the
    lock vocabulary; it borrows tables only, never the other pack's rules.
    """
    api: dict[str, ApiEntry] = {}
    fields: dict[str, str] = {}
    identifiers: dict[str, str] = {}
    guards: dict[str, GuardEntry] = {}
    for i, base_name in enumerate(pack.uses):
        candidate = packs_dir() / f"{base_name}.toml"
        if base_name == pack.name or base_name not in builtin_pack_names():
            names = ", ".join(builtin_pack_names()) or "none"
            raise _fail(pack.path, f"pack.uses[{i}]", f"no built-in pack '{base_name}' ({names})")
        base = load_pack_file(candidate)
        api.update(base.api)
        fields.update(base.fields)
        identifiers.update(base.identifiers)
        guards.update(base.guards)
        pack.iterators = {**base.iterators, **pack.iterators}
        pack.entries = {**base.entries, **pack.entries}
        pack.pure = base.pure | pack.pure
        if not pack.order:
            pack.order = list(base.order)
        pack.names = {**base.names, **pack.names}
    pack.api = {**api, **pack.api}
    pack.fields = {**fields, **pack.fields}
    pack.identifiers = {**identifiers, **pack.identifiers}
    pack.guards = {**guards, **pack.guards}


def load_pack(spec: str) -> Pack:
    """A pack by built-in name (`mm`) or by path to a TOML file."""
    path = Path(spec)
    # a bare name is a built-in pack even where a directory of that name
    # exists (`mm` at the top of a kernel tree)
    if spec.endswith(".toml") or (path.is_file() and "/" not in spec) or "/" in spec:
        if not path.is_file():
            raise PackError(f"rule pack {spec}: no such file")
        return load_pack_file(path)
    candidate = packs_dir() / f"{spec}.toml"
    if spec not in builtin_pack_names():
        names = ", ".join(builtin_pack_names()) or "none"
        raise PackError(f"unknown rule pack '{spec}' (built-in packs: {names})")
    return load_pack_file(candidate)
