"""Kind `act-requires-locks`: an act done without any of the lock sets it needs.

`requires` lists alternatives, each a set of locks joined by `+`
(`"mmap_lock:write + i_mmap_rwsem:write"`, `"pmd_lock + pte_lock"`); the
act is safe when the locks surely held at it include one whole set. A
helper that does the act is judged at each call in the file, with what its
caller holds there added to what the helper holds itself.

Evidence, not absence, makes a finding: the act is reported only where the
function doing it, or the caller it is judged in, takes some lock of the
required classes itself (it manages these locks and the act is outside
them). An act in a function that takes none of them, and has no caller in
the file, relies on callers the rule cannot see and is not judged.

`kernel_mms` / `new_mms` (optional) name the kernel's mm and the calls that
make a new mm: a lock taken on their tables is no evidence about user
tables, and an act that names the kernel's mm is not judged
(rules/tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.values import act_events, derived_names
from lockcheck.errors import PackError
from lockcheck.model.finding import Related
from lockcheck.model.ir import Acquire, Act, Call, Site
from lockcheck.packs import RuleSpec
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.check_under_lock import lock_phrase, satisfied
from lockcheck.rules.queries import code
from lockcheck.rules.tables import TableOwners

_MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class _Unmet:
    """Where a requirement is not met: the act, or the call that leads to it."""

    fn: FunctionFacts
    site: Site
    held: frozenset[str]


class ActRequiresLocks(Rule):
    kind = "act-requires-locks"
    params = {"acts": list, "requires": list}
    optional = {"kernel_mms": list, "new_mms": list}

    def __init__(self, spec: RuleSpec) -> None:
        super().__init__(spec)
        self.acts = frozenset(spec.params["acts"])
        self.alternatives: list[list[str]] = []
        for i, row in enumerate(spec.params["requires"]):
            locks = [w.strip() for w in row.split("+")]
            if not all(locks):
                raise PackError(f"{spec.where('requires')}[{i}]: must read 'LOCK + LOCK ...'")
            self.alternatives.append(locks)
        self.classes = frozenset(w.partition(":")[0] for alt in self.alternatives for w in alt)
        self.kernel_mms = tuple(spec.params.get("kernel_mms", ()))
        self.new_mms = tuple(spec.params.get("new_mms", ()))
        self.owners = TableOwners((), (), ())

    def _met(self, keys: frozenset[str]) -> bool:
        return any(all(satisfied(keys, [w]) for w in alt) for alt in self.alternatives)

    def _evidence(self, fn: FunctionFacts, site: Site) -> bool:
        """Does the function take a lock of a required class on a way to `site`
        (not one of the kernel's or a new mm's tables)?

        An acquisition that `site` comes before on every path (a retry loop
        calling a lookup, then locking, then `goto again`) reaches it only
        through the next round, after that hold ended: not a lock the act
        was meant to be under.
        """
        goal = {n for n, evs in enumerate(fn.events) for ev in evs if ev.site == site}
        return any(
            isinstance(ev, Acquire)
            and ev.lock.cls in self.classes
            and not self.owners.private_lock(fn, ev)
            and any(g == nid or not fn.dominates(g, nid) for g in goal & fn.reachable_from(nid))
            for nid, evs in enumerate(fn.events)
            for ev in evs
        )

    def run(self, ctx: RuleContext) -> None:
        self.owners = TableOwners(ctx.facts.functions, self.kernel_mms, self.new_mms)
        callers: dict[str, list[tuple[FunctionFacts, Call, frozenset[str]]]] = {}
        for ff in ctx.facts.functions:
            for nid, evs in enumerate(ff.events):
                for ev, st in zip(evs, ff.before[nid], strict=True):
                    if isinstance(ev, Call) and st is not None:
                        callers.setdefault(ev.callee, []).append((ff, ev, st.held_keys()))
        reported: set[tuple[int, int]] = set()
        for ff in ctx.facts.functions:
            acts = act_events(ff)
            private = _private_tables(ff, [a for _, _, a, _ in acts])
            for _nid, _i, act, st in acts:
                if act.via is not None or act.kind not in self.acts or st is None:
                    continue
                if _local_object(act) or act.target in private:
                    continue
                if self.owners.act_on_kernel_mm(act):
                    continue
                keys = st.held_keys()
                if self._met(keys):
                    continue
                own = self._evidence(ff, act.site)
                found = self._judge(ff, act.site, keys, callers, own, 0)
                partial = any(k.rpartition(":")[0] in self.classes for k in keys)
                if own and found and not partial:
                    # the act is outside every lock the function takes for it
                    # (moved below the unlock): the finding belongs at the act,
                    # not at a caller's call; a function that holds part of a
                    # set relies on its callers for the rest
                    found = [_Unmet(ff, act.site, keys)]
                for unmet in found:
                    key = (unmet.site.line, unmet.site.column)
                    if key not in reported:
                        reported.add(key)
                        self._report(ctx, unmet, act, ff)

    def _judge(
        self,
        fn: FunctionFacts,
        site: Site,
        keys: frozenset[str],
        callers: dict[str, list[tuple[FunctionFacts, Call, frozenset[str]]]],
        evidence: bool,
        depth: int,
    ) -> list[_Unmet]:
        """Where the requirement fails: at `site` in `fn`, or up the calls of `fn`.

        `keys` holds what is held at the act along this chain of calls.
        """
        # a function calling itself is one of its callers too: a recursive
        # call made without the lock runs the act without it (the depth bounds it)
        sites = callers.get(fn.fn.name, [])
        if not sites or depth >= _MAX_DEPTH:
            return [_Unmet(fn, site, keys)] if evidence else []
        out: list[_Unmet] = []
        for caller, call, ckeys in sites:
            both = keys | ckeys
            if self._met(both):
                continue
            ev_here = evidence or self._evidence(caller, call.site)
            out.extend(self._judge(caller, call.site, both, callers, ev_here, depth + 1))
        return out

    def _report(self, ctx: RuleContext, unmet: _Unmet, act: Act, doer: FunctionFacts) -> None:
        needs = " or ".join(" and ".join(lock_phrase(w) for w in alt) for alt in self.alternatives)
        held = sorted(unmet.held)
        held_txt = ", ".join(f"`{h}`" for h in held) if held else "no lock"
        what = code(act.site.text)
        related: list[Related] = []
        if unmet.fn is not doer:
            where = f"{what} in `{doer.fn.name}()`"
            related.append(Related(act.site.line, act.site.column, where))
            what = f"{what} (in `{doer.fn.name}()`, called here)"
        message = self.spec.message.format(act=what, needs=needs, held=held_txt)
        ctx.report(
            unmet.fn,
            unmet.site,
            message,
            held=tuple(held),
            expected=tuple(" + ".join(alt) for alt in self.alternatives),
            related=tuple(related),
        )


def _local_object(act: Act) -> bool:
    """`pmd_populate_kernel(&init_mm, &__pmd, pgtable)`: an entry in a local
    variable (a table being built), not one a walker can reach."""
    return (
        bool(act.target)
        and act.target.isidentifier()
        and f"&{act.target}" in act.site.text.replace(" ", "")
    )


def _private_tables(fn: FunctionFacts, acts: list[Act]) -> set[str]:
    """Entry pointers into a table hung off a local entry the function filled
    itself (`pmd_populate_kernel(&init_mm, &__pmd, pgtable)`, then
    `pte = pte_offset_kernel(&__pmd, addr)`): a table no walker can reach
    until it is installed, so its entries need no lock yet."""
    local = {a.target for a in acts if a.via is None and _local_object(a)}
    return derived_names(fn, local) - local if local else set()
