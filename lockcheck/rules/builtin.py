"""Registration hook for the rule kinds and packs that ship with lockcheck."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockcheck.rules.check_under_lock import CheckUnderLock

if TYPE_CHECKING:
    from lockcheck.rules.registry import Registry


def register(registry: Registry) -> None:
    registry.add_kind(CheckUnderLock)
