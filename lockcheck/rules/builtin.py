"""Registration hook for the rule kinds and packs that ship with lockcheck."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockcheck.rules.act_requires_locks import ActRequiresLocks
from lockcheck.rules.check_under_lock import CheckUnderLock
from lockcheck.rules.claim import ClaimMismatch
from lockcheck.rules.forbidden_while_held import ForbiddenWhileHeld
from lockcheck.rules.lock_balance import LockBalance
from lockcheck.rules.lock_effect import LockEffectChanged
from lockcheck.rules.lock_order import LockOrder
from lockcheck.rules.lock_pairing import LockPairing
from lockcheck.rules.moved_out import MovedOutOfLock
from lockcheck.rules.nesting import NestedSameClass
from lockcheck.rules.order_reversed import OrderReversed
from lockcheck.rules.recheck_after_lock import RecheckAfterLock
from lockcheck.rules.recheck_after_relock import RecheckAfterRelock
from lockcheck.rules.sleep_in_atomic import SleepInAtomic
from lockcheck.rules.stale_value import StaleValue
from lockcheck.rules.suppression import SuppressionWithoutReason

if TYPE_CHECKING:
    from lockcheck.rules.registry import Registry


def register(registry: Registry) -> None:
    registry.add_kind(ActRequiresLocks)
    registry.add_kind(CheckUnderLock)
    registry.add_kind(ClaimMismatch)
    registry.add_kind(ForbiddenWhileHeld)
    registry.add_kind(LockBalance)
    registry.add_kind(LockEffectChanged)
    registry.add_kind(LockOrder)
    registry.add_kind(LockPairing)
    registry.add_kind(MovedOutOfLock)
    registry.add_kind(NestedSameClass)
    registry.add_kind(OrderReversed)
    registry.add_kind(RecheckAfterLock)
    registry.add_kind(RecheckAfterRelock)
    registry.add_kind(SleepInAtomic)
    registry.add_kind(StaleValue)
    registry.add_kind(SuppressionWithoutReason)
