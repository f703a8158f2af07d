"""Provenance: where a value came from, and which acquisition a held lock came from.

Two questions the lock state alone cannot answer:

- a page-table entry value (`orig_pte = ptep_get(pte)`, `pmde = *pmd`, the
  caller's snapshot `vmf->orig_pte`): under which hold of the covering lock
  was it read, which names carry it on (locals assigned from calls that read
  it, aliases), and where does it decide something (branch conditions, the
  arguments of an act);
- a release: which acquisitions reach it (`pte_offset_map_lock()` released
  with a bare `spin_unlock()`), and with which arguments (irqsave flags).

Both are computed on demand from one function's facts, after the lock
dataflow; rules ask them, the analysis never depends on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from lockcheck.analysis.flow import _fixpoint
from lockcheck.analysis.function import FunctionFacts, reverse_postorder
from lockcheck.analysis.paths import apply_event
from lockcheck.analysis.state import Held, LockState, base_inst, base_var, initial_state
from lockcheck.analysis.summaries import substitute
from lockcheck.analysis.transfer import Transfer
from lockcheck.frontend.macros import IDENT_RE
from lockcheck.model.ir import Acquire, Act, Assign, Call, Downgrade, Names, Read, Release, Site

_FIELD_RE_CACHE: dict[str, re.Pattern[str]] = {}



def uses_name(text: str, name: str) -> bool:
    """Does C text read `name` (a variable, or a field spelling like `vmf->orig_pte`)?

    A field name after `->`/`.` is not the variable of that name.
    """
    pat = _FIELD_RE_CACHE.get(name)
    if pat is None:
        pat = re.compile(r"(?<![\w>.])" + re.escape(name) + r"(?!\w)")
        _FIELD_RE_CACHE[name] = pat
    return pat.search(text) is not None


@dataclass(slots=True)
class EntryValue:
    """One page-table entry value and the names that carry it.

    `read` is None for a snapshot the caller took (`vmf->orig_pte` used in a
    function that never assigns it): read before anything this function held.
    """

    cls: str
    node: int
    site: Site
    read: Read | None
    state: LockState | None  # the lock state at the read
    names: set[str] = field(default_factory=set)
    label: str = ""  # how a report names it: the snapshot field, or the variable read into

    def read_under(self, held: Held) -> bool:
        """Was the value read while the hold `held` (by its acquisition site) was on?"""
        if self.state is None or self.read is None:
            return False
        return any(h.site == held.site for h in self.state.must.values())


def _events(fn: FunctionFacts) -> Iterable[tuple[int, int, object, LockState]]:
    for nid, evs in enumerate(fn.events):
        for i, (ev, st) in enumerate(zip(evs, fn.before[nid], strict=True)):
            if st is not None:
                yield nid, i, ev, st


def act_events(
    fn: FunctionFacts, params: Mapping[str, tuple[str, ...]] | None = None
) -> list[tuple[int, int, Act, LockState | None]]:
    """Every act with the lock state it happens in.

    An act a callee does (`Act.via`) happens inside the call, before the
    callee's own releases take effect: its state is the one at the call,
    and its target is put in the caller's terms when the callee's
    parameters (`params`) are known.
    """
    out: list[tuple[int, int, Act, LockState | None]] = []
    for nid, evs in enumerate(fn.events):
        calls: dict[tuple[str, Site], tuple[int, Call]] = {}
        for i, ev in enumerate(evs):
            st = fn.before[nid][i]
            if isinstance(ev, Call):
                calls[(ev.callee, ev.site)] = (i, ev)
            elif isinstance(ev, Act):
                if ev.via is not None and (ev.via, ev.site) in calls:
                    ci, call = calls[(ev.via, ev.site)]
                    names = (params or {}).get(ev.via)
                    if names is not None:
                        target = substitute(ev.target, names, call.args)
                        ev = replace(ev, target=target or ev.target)
                    out.append((nid, ci, ev, fn.before[nid][ci]))
                else:
                    out.append((nid, i, ev, st))
    return out


def node_texts(fn: FunctionFacts, nid: int) -> list[str]:
    """What a node reads, as text: its branch condition, call arguments, act sites."""
    node = fn.fn.cfg.nodes[nid]
    out: list[str] = []
    if node.kind == "branch" and node.atom is not None and node.atom.text:
        out.append(node.atom.text)
    for ev in fn.events[nid]:
        if isinstance(ev, Call):
            out.extend(ev.args)
        elif isinstance(ev, Act):
            out.append(ev.site.text)
    return out


def entry_values(
    fn: FunctionFacts, classes: set[str], snapshots: dict[str, str] | None = None
) -> list[EntryValue]:
    """Every entry read of the given lock classes in `fn`, with the names carrying it.

    Names spread flow-insensitively through calls (`entry = pte_mkyoung(orig)`,
    `page = vm_normal_page(vma, addr, pte)`) and plain copies (`p = q`): a
    value that reaches a name anywhere is taken to reach every use of it.
    """
    out: list[EntryValue] = []
    assigned: set[str] = set()
    for nid, i, ev, st in _events(fn):
        if isinstance(ev, Read):
            if ev.into is not None:
                assigned.add(ev.into)
            if ev.cls not in classes:
                continue
            val = EntryValue(ev.cls, nid, ev.site, ev, st, label=ev.into or ev.site.text)
            if ev.into is not None:
                val.names.add(ev.into)
            else:
                # read in place (`READ_ONCE(*pmd)`, `pte_same(*pte, orig)`):
                # the call it feeds carries it
                for later in fn.events[nid][i + 1 :]:
                    if (
                        isinstance(later, Call)
                        and later.result
                        and not later.result.startswith("#")
                        and any(ev.ptr in a for a in later.args)
                    ):
                        val.names.add(later.result)
                        break
            out.append(val)
        elif isinstance(ev, Assign) and IDENT_RE.fullmatch(ev.var):
            # a store into a field (`vmf->orig_pte = pte;`) names one object
            # twice for the lock state; a snapshot is still the caller's until
            # it is read back, which this flow-insensitive set cannot tell
            assigned.add(ev.var)
        elif isinstance(ev, Call) and ev.result and not ev.result.startswith("#"):
            assigned.add(ev.result)
    if snapshots:
        out.extend(_snapshot_values(fn, classes, snapshots, assigned))
    flows = _flows(fn)
    for val in out:
        _spread(val.names, flows)
    return out


def _snapshot_values(
    fn: FunctionFacts, classes: set[str], snapshots: dict[str, str], assigned: set[str]
) -> list[EntryValue]:
    """`vmf->orig_pte` read here but written only by a caller: a value from before."""
    found: dict[str, EntryValue] = {}
    entry = fn.fn.cfg.entry
    for nid in range(len(fn.events)):
        if fn.state_in[nid] is None:
            continue
        for txt in node_texts(fn, nid):
            for fld, cls in snapshots.items():
                if cls not in classes or fld not in txt:
                    continue
                for m in re.finditer(r"[A-Za-z_]\w*(?:(?:->|\.)\w+)*?(?:->|\.)" + fld + r"\b", txt):
                    name = m.group(0)
                    if name in assigned or name in found:
                        continue
                    site = Site(fn.fn.start_line, 1, f"{name} (set by the caller)")
                    found[name] = EntryValue(cls, entry, site, None, None, {name}, name)
    return [found[k] for k in sorted(found)]


def _flows(fn: FunctionFacts) -> list[tuple[tuple[str, ...], str]]:
    """(names read, name written) for calls with a result and plain copies."""
    out: list[tuple[tuple[str, ...], str]] = []
    for evs in fn.events:
        for ev in evs:
            if isinstance(ev, Call) and ev.result and not ev.result.startswith("#"):
                out.append((ev.args, ev.result))
            elif isinstance(ev, Assign) and ev.alias is not None and IDENT_RE.fullmatch(ev.var):
                out.append(((ev.alias,), ev.var))
    return out


def _spread(names: set[str], flows: list[tuple[tuple[str, ...], str]], limit: int = 6) -> None:
    for _ in range(limit):
        grew = False
        for args, result in flows:
            if result in names:
                continue
            if any(uses_name(a, n) for a in args for n in list(names)):
                names.add(result)
                grew = True
        if not grew:
            return


def derived_names(fn: FunctionFacts, names: Iterable[str]) -> set[str]:
    """`names` and every name computed from them (`pte = pte_offset_kernel(&__pmd, addr)`)."""
    out = set(names)
    if out:
        _spread(out, _flows(fn))
    return out


def uses(fn: FunctionFacts, val: EntryValue, nid: int) -> bool:
    """Does node `nid` read the value (through any of its names, or in place)?"""
    if val.read is not None and val.read.into is None and nid == val.node:
        return True
    return any(uses_name(t, n) for t in node_texts(fn, nid) for n in val.names)


def entry_pointer(ptr: str) -> str:
    """The table pointer an entry expression names: `&vmf->pte[i]` -> `vmf->pte`."""
    text = "".join(ptr.split()).lstrip("&*")
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].lstrip("&*")
    return re.sub(r"\[[^\]]*\]$", "", text)


Reread = tuple[str, str, frozenset[str]]


def act_rereads(fn: FunctionFacts) -> dict[tuple[int, Act], tuple[Reread, ...]]:
    """For each act: the entries tested again on the way to it, for summaries.

    A branch whose condition reads an entry (`if (!pte_none(ptep_get(vmf->pte)))
    return`, `if (pmd_present(*pmd) && pmd_devmap(*pmd))`) from which the act
    is reached: the function looked at the entry afresh before acting. It is
    a may-fact (a loop that counts the entries it tested, then installs them,
    reaches its act on paths that skip the test); the callers' rule decides
    whether it re-validates their value. Each test carries the lock keys held
    at it, plus "#caller" when nothing was released on any way to it: it is
    then under whatever the caller holds at the call. Re-tests a callee made
    are lifted the same way from the call's state.
    """
    nodes = fn.fn.cfg.nodes
    released: set[int] = set()
    for nid, evs in enumerate(fn.events):
        if fn.state_in[nid] is not None and any(isinstance(ev, Release) for ev in evs):
            released |= fn.reachable_from(nid)
    tests: list[tuple[int, Reread]] = []
    for nid, evs in enumerate(fn.events):
        if nodes[nid].kind != "branch" or fn.state_in[nid] is None:
            continue
        for ev, st in zip(evs, fn.before[nid], strict=True):
            if isinstance(ev, Read) and st is not None:
                keys = st.held_keys() | ({"#caller"} if nid not in released else set())
                tests.append((nid, (ev.cls, entry_pointer(ev.ptr), Names(keys))))
    out: dict[tuple[int, Act], tuple[Reread, ...]] = {}
    reach: dict[int, set[int]] = {}
    for nid, evs in enumerate(fn.events):
        for ev, st in zip(evs, fn.before[nid], strict=True):
            if not isinstance(ev, Act) or st is None:
                continue
            found: list[Reread] = []
            for tn, test in tests:
                if tn != nid and nid in reach.setdefault(tn, fn.reachable_from(tn)):
                    found.append(test)
            for cls, ptr, keys in ev.rereads:
                if "#caller" in keys:  # under the hold at this call
                    keys = st.held_keys() | ({"#caller"} if nid not in released else set())
                found.append((cls, ptr, Names(keys)))
            if found:
                out[(nid, ev)] = tuple(sorted(set(found), key=lambda r: (r[0], r[1], sorted(r[2]))))
    return out


# --- which acquisitions a release undoes -------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """An acquisition (or downgrade) that may still be in force."""

    primitive: str
    site: Site
    args: tuple[str, ...]
    node: int = -1
    # a same-file callee that may have downgraded it (`__do_munmap()` returning 1)
    downgraded: str = ""
    lowered: bool = False  # the hold is a downgrade, not an acquisition


def reaching_holds(
    fn: FunctionFacts, downgraders: Mapping[str, str] | None = None
) -> dict[tuple[int, int], tuple[Hold, ...]]:
    """For each release event (node, index): the acquisitions of its lock that reach it.

    A forward may-analysis keyed by the lock's spelling: an acquisition or
    downgrade generates, a release of the same spelling kills. A call to a
    function in `downgraders` (name -> the downgrade primitive it uses) that
    is given the lock's owner marks the hold as possibly downgraded.
    """
    downgraders = downgraders or {}
    nodes = fn.fn.cfg.nodes
    preds = fn.fn.cfg.preds()
    order = sorted(
        (n for n in range(len(nodes)) if fn.rpo_index[n] >= 0), key=lambda n: fn.rpo_index[n]
    )
    if not any(isinstance(ev, Release) for evs in fn.events for ev in evs):
        return {}
    out_sets: dict[int, frozenset[tuple[str, Hold]]] = {}
    result: dict[tuple[int, int], tuple[Hold, ...]] = {}
    changed = True
    rounds = 0
    while changed and rounds < 20:
        changed = False
        rounds += 1
        for nid in order:
            cur: set[tuple[str, Hold]] = set()
            for p in preds[nid]:
                cur |= out_sets.get(p, frozenset())
            for i, ev in enumerate(fn.events[nid]):
                if isinstance(ev, Release) and not ev.maybe:
                    key = base_inst(ev.lock.inst)
                    result[(nid, i)] = tuple(sorted((h for k, h in cur if k == key), key=str))
                    cur = {(k, h) for k, h in cur if k != key}
                elif isinstance(ev, Acquire):
                    key = base_inst(ev.lock.inst)
                    cur = {(k, h) for k, h in cur if k != key}
                    cur.add((key, Hold(ev.primitive, ev.site, ev.args, nid)))
                elif isinstance(ev, Downgrade):
                    key = base_inst(ev.lock.inst)
                    cur = {(k, h) for k, h in cur if k != key}
                    cur.add((key, Hold(ev.primitive, ev.site, (), nid, lowered=True)))
                elif isinstance(ev, Call) and ev.callee in downgraders:
                    owners = {base_var(a.lstrip("&")) for a in ev.args}
                    cur = {
                        (k, replace(h, downgraded=downgraders[ev.callee]))
                        if base_var(k) in owners
                        else (k, h)
                        for k, h in cur
                    }
            new = frozenset(cur)
            if out_sets.get(nid) != new:
                out_sets[nid] = new
                changed = True
    return result


def downgraders(functions: Iterable[FunctionFacts]) -> dict[str, str]:
    """Functions of a file that downgrade a lock, directly or through each other:
    name -> the downgrade primitive."""
    out: dict[str, str] = {}
    calls: dict[str, set[str]] = {}
    for ff in functions:
        for evs in ff.events:
            for ev in evs:
                if isinstance(ev, Downgrade):
                    out.setdefault(ff.fn.name, ev.primitive)
                elif isinstance(ev, Call):
                    calls.setdefault(ff.fn.name, set()).add(ev.callee)
    grew = True
    while grew:
        grew = False
        for name, callees in sorted(calls.items()):
            if name in out:
                continue
            hit = sorted(c for c in callees if c in out)
            if hit:
                out[name] = out[hit[0]]
                grew = True
    return out


# paths kept apart per node when the pairing of a release is in question
PAIRING_PATHS = 32


def path_hold_sites(fn: FunctionFacts) -> dict[tuple[int, int], frozenset[Site]]:
    """For each release event: where the released lock was taken, on each feasible path.

    The lock dataflow's own paths (branch outcomes remembered, so that
    `if (write) lock_w else lock_r; ... if (write) unlock_w else unlock_r`
    pairs each release with its own acquisition); run again here because
    the facts keep only the merged states, and with more paths kept apart:
    asked only about a suspected mismatch, it can afford to tell two
    independent flag-chosen locks apart (`if (f & A_EXCL) down_write(a) else
    if (f & A_SHARED) down_read(a)`, the same for `b`, undone by the same
    tests at the failure labels: nine lock states).
    """
    f = fn.fn
    tr = Transfer(f.lockvars)
    # from the state the analysis started with: locks the callers hold too
    init = fn.state_in[f.cfg.entry] if fn.state_in[f.cfg.entry] is not None else None
    rpo = reverse_postorder(f)
    states, _ = _fixpoint(f, fn.events, tr, rpo, init or initial_state(f), 50_000, PAIRING_PATHS)
    # a hold downgraded on its path is no longer the acquisition's mode: it
    # does not show that acquisition reaching the release as taken
    taken = {ev.site: ev.mode for evs in fn.events for ev in evs if isinstance(ev, Acquire)}
    out: dict[tuple[int, int], frozenset[Site]] = {}
    for nid, evs in enumerate(fn.events):
        if not any(isinstance(ev, Release) for ev in evs):
            continue
        paths = states[nid].ordered()
        for i, ev in enumerate(evs):
            if isinstance(ev, Release) and not ev.maybe:
                sites = {
                    h.site
                    for st, _ in paths
                    for ref, h in st.may.items()
                    if st.same_lock(base_inst(ref.inst), base_inst(ev.lock.inst))
                    and taken.get(h.site, h.mode) == h.mode
                }
                out[(nid, i)] = frozenset(sites)
            paths = [apply_event(tr, p, ev) for p in paths]
    return out


def marked_since_taken(
    fn: FunctionFacts,
    key: str,
    is_mark: Callable[[int, object, LockState], bool],
    node_mark: Callable[[int], bool] | None = None,
) -> dict[tuple[int, int], bool]:
    """Before each event: has a mark happened on every path since the lock `key`
    was last taken (and not released since)? `node_mark` marks whole nodes
    (a branch, once its condition is evaluated).

    A forward must-analysis: taking or releasing the lock clears the mark,
    an event `is_mark` accepts (a re-validation under the lock) sets it. It
    follows each path, so two acquisitions each followed by their own re-test
    that meet before the act are both re-validated.
    """
    nodes = fn.fn.cfg.nodes
    preds = fn.fn.cfg.preds()
    # nodes the lock dataflow never reaches (a branch a summary decides) are skipped
    order = sorted(
        (n for n in range(len(nodes)) if fn.rpo_index[n] >= 0 and fn.state_in[n] is not None),
        key=lambda n: fn.rpo_index[n],
    )
    out: dict[int, bool] = {}
    result: dict[tuple[int, int], bool] = {}
    caller_held = any(base_inst(r.inst) == key for r in fn.entry_locks)
    changed = True
    rounds = 0
    while changed and rounds < 30:
        changed = False
        rounds += 1
        for nid in order:
            if nid == fn.fn.cfg.entry:
                # a lock the caller holds on entry was taken where this
                # function cannot see: its paths are the caller's to judge
                cur = caller_held
            else:
                seen = [out[p] for p in preds[nid] if p in out]
                cur = all(seen) if seen else True
            for i, ev in enumerate(fn.events[nid]):
                result[(nid, i)] = cur
                st = fn.before[nid][i]
                if isinstance(ev, (Acquire, Release)) and base_inst(ev.lock.inst) == key:
                    # an acquisition may re-test by itself (pmd_trans_huge_lock())
                    cur = isinstance(ev, Acquire) and st is not None and is_mark(nid, ev, st)
                elif st is not None and is_mark(nid, ev, st):
                    cur = True
            if node_mark is not None and node_mark(nid):
                cur = True  # a branch whose condition has no event of its own
            if out.get(nid) != cur:
                out[nid] = cur
                changed = True
    return result
