"""A file's functions analysed callees first, so callers see their summaries."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from functools import partial

from lockcheck.analysis.flow import analyse
from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.summaries import (
    Summary,
    effective_events,
    never_positive,
    param_keyed,
    summarise,
)
from lockcheck.model.ir import (
    Call,
    Event,
    Function,
    Mode,
)
from lockcheck.model.lines import Shifter, identity_for, movable, named_lines, relative_repr


@dataclass(slots=True)
class FileFacts:
    functions: list[FunctionFacts] = field(default_factory=list)
    summaries: dict[str, Summary] = field(default_factory=dict)


def _call_graph_order(functions: list[Function]) -> list[int]:
    """Indices of `functions`, callees before callers.

    A name defined twice (#ifdef variants) counts as both definitions; cycles
    are broken deterministically, in source order.
    """
    by_name: dict[str, list[int]] = {}
    for i, f in enumerate(functions):
        by_name.setdefault(f.name, []).append(i)
    calls: list[list[int]] = []
    for f in functions:
        seen: list[int] = []
        for n in f.cfg.nodes:
            for ev in n.events:
                if isinstance(ev, Call):
                    names = (ev.callee, ev.callback) if ev.callback else (ev.callee,)
                    for j in (j for name in names for j in by_name.get(name, ())):
                        if j not in seen:
                            seen.append(j)
        calls.append(seen)
    order: list[int] = []
    state = [0] * len(functions)
    for root in range(len(functions)):
        if state[root]:
            continue
        stack = [(root, 0)]
        state[root] = 1
        while stack:
            cur, i = stack[-1]
            if i < len(calls[cur]):
                stack[-1] = (cur, i + 1)
                c = calls[cur][i]
                if not state[c]:
                    state[c] = 1
                    stack.append((c, 0))
            else:
                stack.pop()
                state[cur] = 2
                order.append(cur)
    return order


def library_summaries(functions: list[Function]) -> dict[str, Summary]:
    """Summaries of helpers defined elsewhere (header inlines), for callers here."""
    return analyse_file(functions).summaries


# A function's dataflow by what decides it, exactly: the function (its CFG,
# events and lines) and its effective events, as their reprs (a LockRef's
# class is left out of `==` but not of `repr`), lines counted from the
# function's start so that a function a patch only moves is found again
# (model/lines.py). A dict, or a store on disk (cache.FlowStore).
FlowMemo = MutableMapping[tuple[str, str], FunctionFacts]


def stable_tests(fn: Function, summaries: Mapping[str, Summary]) -> Function:
    """`fn` with its tests of pure functions remembered like tests of
    variables: `if (needs_global_mutex(dev)) lock; ... if (needs_global_mutex(dev))
    unlock;` goes the same way twice, and so does `if (dev_rev(dev) != REV_X)`.
    Only what the summaries show pure counts (the callees and all they call
    change nothing)."""
    nodes = fn.cfg.nodes
    flip = []
    for n in nodes:
        atom = n.atom
        if atom is None or not atom.stable_if or atom.factable or atom.sign:
            continue
        if all(_pure_callee(name, summaries) for name in atom.stable_if):
            flip.append(n.id)
    if not flip:
        return fn
    changed = list(nodes)
    for nid in flip:
        atom = nodes[nid].atom
        assert atom is not None
        changed[nid] = replace(nodes[nid], atom=replace(atom, factable=True))
    return replace(fn, cfg=replace(fn.cfg, nodes=changed))


def unknown_predicates(functions: list[Function], known: Mapping[str, Summary]) -> frozenset[str]:
    """The callees no summary knows that a test made twice in one function
    rests on, directly or through the file's own side-effect-free helpers:
    only their purity can let such a test be remembered, so only they are
    worth looking for further away (a subsystem header's inline)."""
    by_name: dict[str, list[Function]] = {}
    for f in functions:
        by_name.setdefault(f.name, []).append(f)
    todo: list[str] = []
    for fn in functions:
        counts: dict[str, int] = {}
        for n in fn.cfg.nodes:
            atom = n.atom
            if atom is not None and atom.stable_if and not atom.factable and not atom.sign:
                counts[atom.text] = counts.get(atom.text, 0) + 1
                if counts[atom.text] == 2:
                    todo.extend(atom.stable_if)
    wanted: set[str] = set()
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        defs = by_name.get(name)
        if defs:
            for d in defs:
                todo.extend(d.pure_calls or ())
        elif (summ := known.get(name)) is None or summ.sign_only():
            wanted.add(name)
    return frozenset(wanted)


def _pure_callee(name: str, summaries: Mapping[str, Summary]) -> bool:
    summ = summaries.get(name)
    return summ is not None and summ.pure


def _pure(fn: Function, summaries: Mapping[str, Summary]) -> bool:
    """No side effects of its own, and every callee pure (a recursive one is
    not: its summary is not there yet)."""
    if fn.pure_calls is None:
        return False
    for callee in fn.pure_calls:
        summ = summaries.get(callee)
        if summ is None or not summ.pure:
            return False
    return True


def _analyse(fn: Function, events: list[list[Event]], memo: FlowMemo | None) -> FunctionFacts:
    """`analyse`, or the facts of an identical function analysed before: the
    dataflow is a pure function of the two, so the facts are the same, moved
    by as many lines as the function moved."""
    if memo is None:
        return analyse(fn, events)
    start = fn.start_line
    rel_fn = relative_repr(fn, start)
    rel_events = relative_repr(events, start)
    if rel_fn is None or rel_events is None:  # names spell lines: keyed where it is
        rel_fn, rel_events = repr(fn), repr(events)
    key = (rel_fn, rel_events)
    facts = memo.get(key)
    if facts is not None:
        delta = start - facts.fn.start_line
        if delta == 0:
            return facts
        moved = _moved(facts, fn, events, delta)
        if moved is not None:
            return moved
    facts = memo[key] = analyse(fn, events)
    return facts


def _moved(
    facts: FunctionFacts, fn: Function, events: list[list[Event]], delta: int
) -> FunctionFacts | None:
    """`facts` of a function `delta` lines up, for `fn` (with `events`)
    here: its function and events are those given, the rest moved; None if
    the names it gave cannot move so far. The states before every event
    hold every name the dataflow kept: with none that spells a line, no
    order of such names decided anything."""
    pairs: list[tuple[object, object]] = [(facts.fn, fn), (facts.events, events)]
    for olds, news in zip(facts.events, events, strict=True):
        pairs.extend(zip(olds, news, strict=True))
    move = Shifter(delta, identity_for(pairs))
    out = FunctionFacts(
        fn,
        events,
        move(facts.before),
        move(facts.state_in),
        move(facts.state_out),
        facts.idom,
        facts.rpo_index,
        facts.budget_exceeded,
        move(facts.entry_locks),
        move(facts.exits),
        move(facts.unheld_releases),
    )
    if move.renamed:
        span = named_lines(facts.events)
        if span is None or not movable(span[0], span[1], delta):
            return None
    return out


def _same_locks(a: Summary, b: Summary) -> Summary | None:
    """Two #ifdef variants that take the same locks in other modes (a mutex
    in one configuration, a rwsem taken for write in the other): one summary
    with the weaker mode of each, so that a wrapper pair's acquire and
    release are read from the same choice and cancel in callers."""
    if [(r, s) for r, _, s in a.acquires] != [(r, s) for r, _, s in b.acquires]:
        return None
    if replace(b, acquires=a.acquires).effect_key() != a.effect_key():
        return None
    pairs = zip(a.acquires, b.acquires, strict=True)
    acquires = tuple((r, _weaker(ma, mb), s) for (r, ma, s), (_, mb, _) in pairs)
    return replace(a, acquires=acquires)


def _weaker(a: Mode, b: Mode) -> Mode:
    if a == b:
        return a
    return "read" if "read" in (a, b) else "excl"


def analyse_file(
    functions: list[Function],
    library: Mapping[str, Summary] | None = None,
    memo: FlowMemo | None = None,
) -> FileFacts:
    """Analyse callees first so that callers see their summaries.

    `library` holds summaries of functions defined outside the file (the
    tree's header inlines); the file's own definitions take precedence.
    `memo` carries dataflows over between images of one file (a review's
    before and after): only the functions a patch changes, and those whose
    callees' summaries it changes, are analysed again.
    """
    out = FileFacts()
    out.summaries.update(library or {})
    facts_by_index: dict[int, FunctionFacts] = {}
    # a function known only for the sign of its result stays an unknown call
    defined = frozenset(f.name for f in functions) | frozenset(
        n for n, s in (library or {}).items() if not s.sign_only()
    )
    variants: dict[str, Summary] = {}
    ambiguous: set[str] = set()  # #ifdef variants that disagree: effects unknown
    for i in _call_graph_order(functions):
        fn = stable_tests(functions[i], out.summaries)
        events = effective_events(fn, out.summaries, defined - ambiguous)
        facts = _analyse(fn, events, memo)
        facts_by_index[i] = facts
        summ = param_keyed(
            facts,
            summarise(facts),
            partial(effective_events, fn, out.summaries, defined - ambiguous),
            partial(_analyse, memo=memo),
        )
        if _pure(fn, out.summaries):
            summ = replace(summ, pure=True)
        if never_positive(fn, events, out.summaries):
            summ = replace(summ, nonpos=True)
        prev = variants.setdefault(fn.name, summ)
        if prev is not summ and prev.nonpos != summ.nonpos:
            # #ifdef variants: only what both say
            summ = replace(summ, nonpos=False)
            prev = variants[fn.name] = replace(prev, nonpos=False)
        if prev is not summ and prev.effect_key() != summ.effect_key():
            merged = _same_locks(prev, summ)
            if merged is None:
                ambiguous.add(fn.name)
            else:
                summ = variants[fn.name] = merged
        if fn.name in ambiguous:
            out.summaries.pop(fn.name, None)
        elif summ.has_effects() or summ.nonpos:
            out.summaries[fn.name] = summ
        else:
            out.summaries.pop(fn.name, None)  # a local definition hides a header's
    out.functions = [facts_by_index[i] for i in range(len(functions))]
    return out
