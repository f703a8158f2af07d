"""The registry in process: packs by plugin name, built-in name or path, the
error for an unknown pack or kind, parameters validated before a rule is
built, the built-in kinds registered.

`make mutate` runs these first for lockcheck/rules/registry.py.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from lockcheck.errors import PackError, RuleError
from lockcheck.packs import RuleSpec, builtin_pack_names
from lockcheck.rules import registry
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.builtin import register
from lockcheck.rules.lock_order import LockOrder
from lockcheck.rules.registry import ENTRY_POINT_GROUP, Registry, load_registry

FOO = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "packs" / "foo" / "pack.toml"


class Kind(Rule):
    kind = "k"
    params = {"n": int}

    def run(self, ctx: RuleContext) -> None:
        pass


def test_the_builtin_kinds_are_registered_by_kind() -> None:
    reg = load_registry()
    assert reg.kinds["lock-order"] is LockOrder
    assert "sleep-in-atomic" in reg.kinds and "nesting-annotation" in reg.kinds
    assert ENTRY_POINT_GROUP == "lockcheck.rules"


def test_packs_load_by_plugin_name_builtin_name_and_path() -> None:
    reg = Registry()
    reg.add_pack("foo-plugin", FOO)
    assert reg.pack_files == {"foo-plugin": FOO}
    assert reg.load("foo-plugin").name == "foo"
    assert reg.load("mm").name == "mm"
    assert reg.load(str(FOO)).name == "foo"


def test_an_unknown_pack_lists_the_known_ones(tmp_path: Path) -> None:
    reg = Registry()
    reg.add_pack("zz-plugin", FOO)
    with pytest.raises(PackError) as err:
        reg.load("nosuch")
    known = ", ".join(sorted({*builtin_pack_names(), "zz-plugin"}))
    assert str(err.value) == f"unknown rule pack 'nosuch' (known packs: {known})"
    # a missing path is the pack reader's error, not an unknown name
    with pytest.raises(PackError) as err:
        reg.load(str(tmp_path / "missing.toml"))
    assert "unknown rule pack" not in str(err.value)


def spec(kind: str, **params: int) -> RuleSpec:
    return RuleSpec("r", kind, "error", "m", "s", "p", params=params, path="p.toml", index=0)


def test_instantiate_builds_a_validated_rule_of_the_spec_kind() -> None:
    reg = Registry()
    reg.add_kind(Kind)
    reg.add_kind(LockOrder)
    rule = reg.instantiate(spec("k", n=1))
    assert isinstance(rule, Kind) and rule.spec.params == {"n": 1}
    with pytest.raises(PackError) as err:
        reg.instantiate(spec("k"))
    assert str(err.value) == "rule pack p.toml: rule[0] (r).n: required by kind 'k'"
    with pytest.raises(PackError) as err:
        reg.instantiate(spec("other"))
    assert str(err.value) == (
        "rule pack p.toml: rule[0] (r).kind: unknown kind 'other' (known: k, lock-order)"
    )


# -- plugins: entry points given as the metadata would list them ---------------

_SEEN: list[tuple[str, bool]] = []


def _fake_builtin(reg: Registry) -> None:
    _SEEN.append(("builtin", "k" in reg.kinds))
    reg.add_kind(Kind)


def _plugin(reg: Registry) -> None:
    _SEEN.append(("plugin", "k" in reg.kinds))


def _broken(reg: Registry) -> None:
    raise ValueError("no such table")


def _eps(monkeypatch: pytest.MonkeyPatch, *eps: tuple[str, str]) -> None:
    listed = [EntryPoint(name, f"{__name__}:{fn}", ENTRY_POINT_GROUP) for name, fn in eps]
    monkeypatch.setattr(registry, "entry_points", lambda group: listed)


def test_the_builtin_entry_point_runs_before_the_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    _SEEN.clear()
    _eps(monkeypatch, ("aa", "_plugin"), ("builtin", "_fake_builtin"), ("zz", "_plugin"))
    reg = load_registry()
    assert _SEEN == [("builtin", False), ("plugin", True), ("plugin", True)]
    # with its own entry point listed, the builtin rules are not registered a second way
    assert set(reg.kinds) == {"k"}


def test_without_a_builtin_entry_point_the_builtin_rules_are_registered_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _SEEN.clear()
    _eps(monkeypatch, ("zz", "_plugin"))
    reg = load_registry()
    assert reg.kinds["lock-order"] is LockOrder
    assert _SEEN == [("plugin", False)]


def test_a_plugin_that_fails_to_load_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _eps(monkeypatch, ("bad", "_broken"))
    with pytest.raises(RuleError) as err:
        load_registry()
    assert str(err.value) == (
        f"rule plugin 'bad' ({__name__}:_broken) failed to load: no such table"
    )


def test_register_adds_every_builtin_kind_under_its_own_name() -> None:
    reg = Registry()
    register(reg)
    assert len(reg.kinds) == 16
    assert all(name == cls.kind for name, cls in reg.kinds.items())
    assert {"lock-balance", "forbidden-while-held", "suppression"} <= set(reg.kinds)
