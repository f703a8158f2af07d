"""Kind `lock-pairing`: a lock released with a primitive that does not undo its acquisition.

`pairs` rows read `ACQUIRE... -> RELEASE...`: a lock taken by one of the
acquiring primitives may only be released by one of the releasing ones. A
release token `spin_unlock+pte_unmap` allows `spin_unlock()` when a call to
`pte_unmap()` can follow it (the two halves of `pte_unmap_unlock()`).
`flags` names releases whose last argument must be the acquisition's last
argument (the saved interrupt state of `spin_unlock_irqrestore()`).

Releases the rows do not name (same-file helpers, unknown callees) are not
judged; neither are locks the function did not take.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.state import base_inst, base_var
from lockcheck.analysis.values import Hold, downgraders, path_hold_sites, reaching_holds
from lockcheck.errors import PackError
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, Assign, Call, Claim, Release, Site
from lockcheck.packs import RuleSpec
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.queries import stored_for_caller


@dataclass(frozen=True, slots=True)
class _Pair:
    acquires: frozenset[str]
    releases: frozenset[str]
    completed: dict[str, str]  # release -> the call that must follow it

    def wanted(self) -> str:
        names = [f"`{r}()`" for r in sorted(self.releases)]
        names += [f"`{r}()` then `{c}()`" for r, c in sorted(self.completed.items())]
        return " or ".join(names)


def _parse(spec: RuleSpec, rows: list[str]) -> list[_Pair]:
    out = []
    for i, row in enumerate(rows):
        left, arrow, right = row.partition("->")
        if not arrow or not left.split() or not right.split():
            raise PackError(f"{spec.where('pairs')}[{i}]: must read 'ACQUIRE... -> RELEASE...'")
        releases: set[str] = set()
        completed: dict[str, str] = {}
        for tok in right.split():
            rel, plus, after = tok.partition("+")
            if plus:
                completed[rel] = after
            else:
                releases.add(rel)
        out.append(_Pair(frozenset(left.split()), frozenset(releases), completed))
    return out


class LockPairing(Rule):
    kind = "lock-pairing"
    params = {"pairs": list}
    optional = {"flags": list}

    def __init__(self, spec: RuleSpec) -> None:
        super().__init__(spec)
        self.pairs = _parse(spec, spec.params["pairs"])
        self.flags = frozenset(spec.params.get("flags", ()))
        self.by_acquire = {a: p for p in self.pairs for a in p.acquires}
        self.known = (
            frozenset(r for p in self.pairs for r in (*p.releases, *p.completed)) | self.flags
        )

    def run(self, ctx: RuleContext) -> None:
        lowering = downgraders(ctx.facts.functions)
        for fn in ctx.facts.functions:
            if not any(isinstance(ev, Release) for evs in fn.events for ev in evs):
                continue
            holds = reaching_holds(fn, lowering)
            paths: dict[tuple[int, int], frozenset[Site]] | None = None
            taken: set[Site] = set()
            for (nid, i), reaching in sorted(holds.items()):
                rel = fn.events[nid][i]
                assert isinstance(rel, Release)
                if rel.primitive not in self.known or fn.state_in[nid] is None:
                    continue
                for hold in reaching:
                    problem = self._problem(fn, rel, hold)
                    if problem is not None and self._irq_handed_over(fn, nid, rel, hold):
                        continue
                    if problem is None:
                        continue
                    if not hold.lowered:
                        # the mismatch must be on a path the analysis can take:
                        # refuted when the paths reaching the release show only
                        # other acquisitions (a claim merged in proves nothing)
                        if paths is None:
                            paths = path_hold_sites(fn)
                            taken = {
                                ev.site
                                for evs in fn.events
                                for ev in evs
                                if isinstance(ev, Acquire)
                            } | _caller_sites(fn)
                        seen = paths.get((nid, i), frozenset())
                        if hold.site not in seen and seen and seen <= taken:
                            continue
                    self._report(ctx, fn, rel, hold, problem)
                    break

    def _problem(self, fn: FunctionFacts, rel: Release, hold: Hold) -> str | None:
        pair = self.by_acquire.get(hold.primitive)
        if pair is None:
            return None
        if hold.downgraded:
            lowered = self.by_acquire.get(hold.downgraded)
            if lowered is not None and rel.primitive in lowered.releases:
                return None
        if rel.primitive in pair.releases:
            if (
                rel.primitive in self.flags
                and hold.args
                and rel.args
                # the flags follow the lock: `spin_lock_irqsave_nested(l, flags, subclass)`
                and rel.args[-1] not in hold.args[1:]
            ):
                return (
                    f"restores the interrupt state from `{rel.args[-1]}`, but "
                    f"`{hold.primitive}()` saved it in `{hold.args[1]}`"
                )
            return None
        follow = pair.completed.get(rel.primitive)
        if follow is not None and _call_follows(fn, hold.node, follow):
            return None
        return f"it was taken with `{hold.primitive}()`, which is undone by {pair.wanted()}"

    def _irq_handed_over(self, fn: FunctionFacts, nid: int, rel: Release, hold: Hold) -> bool:
        """The primitives differ only in what they do to interrupts or bottom
        halves, and another operation does that part: `raw_spin_lock_irq(&a);
        raw_spin_lock(&b); raw_spin_unlock(&a); ... raw_spin_unlock_irq(&b);`
        hands the disabled interrupts from one lock to the other, as
        `spin_lock_irqsave(); spin_unlock(); spin_lock();
        spin_unlock_irqrestore()` keeps them off across a dropped lock (or
        hands the saved flags to the caller with another lock held), and
        `spin_lock_bh(); ... spin_unlock(); ... local_bh_enable();` ends the
        bottom-half section later on purpose. The saved flags name the other
        half when a helper does it (`base = lock_timer_base(timer, &flags)`)."""
        pair = self.by_acquire.get(_without_part(hold.primitive))
        if pair is None or _without_part(rel.primitive) not in pair.releases:
            return False
        held, released = _part(hold.primitive), _part(rel.primitive)
        if held == released:
            return False
        if held is not None:
            # the hold's part stays off past this release: a later operation turns it on
            saved = hold.args[-1] if hold.primitive.endswith("irqsave") and hold.args else None
            later = fn.reachable_from(nid)
            if not any(
                ev is not rel and (_enables(_primitive(ev), held) or _names(ev, saved))
                for n in later
                for ev in fn.events[n]
            ) and not (saved is not None and later & stored_for_caller(fn, (saved,))):
                # nor are the saved flags handed to the caller to restore
                # (`*irqflags = flags;` returning with another lock held)
                return False
        if released is not None:
            # the release's part was turned off on the way here by another operation
            saved = rel.args[-1] if "irqrestore" in rel.primitive and rel.args else None
            if not any(
                ev is not rel
                and ev.site != hold.site
                and (_disables(_primitive(ev), released) or _names(ev, saved))
                and nid in fn.reachable_from(n)
                for n, evs in enumerate(fn.events)
                for ev in evs
            ):
                return False
        return True

    def _report(
        self, ctx: RuleContext, fn: FunctionFacts, rel: Release, hold: Hold, problem: str
    ) -> None:
        lock = base_inst(rel.lock.inst)
        message = self.spec.message.format(release=rel.primitive, lock=lock, problem=problem)
        taken = f"`{lock}` taken with `{hold.primitive}()` here"
        ctx.report(
            fn,
            rel.site,
            message,
            expected=(hold.primitive,),
            related=(Related(hold.site.line, hold.site.column, taken),),
        )


def _caller_sites(fn: FunctionFacts) -> set[Site]:
    """Where the holds the function starts with come from, when no claim in
    its body can stand for them: a claim met on a path may replace the site
    of an acquisition there, a lock held at entry replaces nothing."""
    init = fn.state_in[fn.fn.cfg.entry]
    if init is None:
        return set()
    claims = {ev.site for evs in fn.events for ev in evs if isinstance(ev, Claim)}
    return {h.site for h in init.must.values() if h.site not in claims}


def _call_follows(fn: FunctionFacts, nid: int, callee: str) -> bool:
    """Is there a call to `callee` after the acquisition at node `nid`
    (before the release, as in `pte_unmap(start_pte); out: spin_unlock(ptl);`, or after it)?

    When the acquisition's result is assigned (`old_pte = pte_offset_map_lock(...)`),
    the call must be given that variable: `pte_unmap(new_pte)` does not
    complete the release of `old_ptl`.
    """
    mapped = {ev.var for ev in fn.events[nid] if isinstance(ev, Assign)} if nid >= 0 else set()
    return any(
        isinstance(ev, Call)
        and ev.callee == callee
        and (not mapped or any(base_var(a) in mapped for a in ev.args))
        for n in fn.reachable_from(nid)
        for ev in fn.events[n]
    )


# what a primitive does besides the lock, by the suffix of its name: the
# interrupts (`_irq`, `_irqsave`, `_irqrestore`) or the bottom halves (`_bh`)
_PART_SUFFIXES = (("_irqsave", "irq"), ("_irqrestore", "irq"), ("_irq", "irq"), ("_bh", "bh"))
_OFF = {
    "irq": frozenset({"local_irq_disable", "local_irq_save"}),
    "bh": frozenset({"local_bh_disable"}),
}
_ON = {
    "irq": frozenset({"local_irq_enable", "local_irq_restore"}),
    "bh": frozenset({"local_bh_enable"}),
}


def _split(primitive: str) -> tuple[str, str | None]:
    """`raw_spin_lock_irq` -> (`raw_spin_lock`, irq), `spin_unlock_bh` ->
    (`spin_unlock`, bh), `spin_lock_irqsave_nested` -> (`spin_lock_nested`, irq)."""
    for suffix, part in _PART_SUFFIXES:
        if primitive.endswith(suffix):
            return primitive[: -len(suffix)], part
        if primitive.endswith(suffix + "_nested"):
            return primitive[: -len(suffix + "_nested")] + "_nested", part
    for part in ("irq", "bh"):
        if primitive in _OFF[part] or primitive in _ON[part]:
            return primitive, part
    return primitive, None


def _without_part(primitive: str) -> str:
    return _split(primitive)[0]


def _part(primitive: str) -> str | None:
    return _split(primitive)[1]


def _primitive(ev: object) -> str:
    if isinstance(ev, (Acquire, Release)):
        return ev.primitive
    return ev.callee if isinstance(ev, Call) else ""


def _names(ev: object, var: str | None) -> bool:
    """Does a call or lock operation take the saved interrupt flags `var`?"""
    if var is None:
        return False
    args = ev.args if isinstance(ev, (Acquire, Release, Call)) else ()
    return any(a.lstrip("&") == var for a in args)


def _disables(primitive: str, part: str) -> bool:
    return primitive in _OFF[part] or (
        "lock" in primitive and "unlock" not in primitive and _part(primitive) == part
    )


def _enables(primitive: str, part: str) -> bool:
    return primitive in _ON[part] or ("unlock" in primitive and _part(primitive) == part)
