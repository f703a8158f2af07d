"""`lockcheck explain`: the held-lock set at every lock, check and act, by line."""

from __future__ import annotations

from lockcheck.analysis.function import FunctionFacts
from lockcheck.model.ir import Acquire, Act, Check, Claim, Downgrade, Event, Release


def describe_event(ev: Event) -> str | None:
    if isinstance(ev, Acquire):
        how = "try-acquire" if ev.cond_var else "acquire"
        mode = f" ({ev.mode})" if ev.mode != "excl" else ""
        nested = " nested" if ev.nested else ""
        return f"{how}{nested} `{ev.lock.inst}`{mode} [{ev.lock.cls}] via {ev.primitive}"
    if isinstance(ev, Release):
        return f"release `{ev.lock.inst}` via {ev.primitive}"
    if isinstance(ev, Downgrade):
        return f"downgrade `{ev.lock.inst}` to read via {ev.primitive}"
    if isinstance(ev, Check):
        via = " (via a variable)" if ev.origin_node is not None else ""
        return f"check {ev.flag}: `{ev.expr}`{via}"
    if isinstance(ev, Act):
        via = f" inside `{ev.via}()`" if ev.via else ""
        return f"act {ev.kind}{via}: `{ev.site.text.strip()}`"
    if isinstance(ev, Claim):
        mode = f" ({ev.mode})" if ev.mode else ""
        return f"claim {ev.kind.replace('_', ' ')} `{ev.lock.inst}`{mode}: {ev.source}"
    return None  # calls, assignments, sleeps: not lock events


def transitions(ff: FunctionFacts) -> list[tuple[int, int, str, list[str], list[str]]]:
    """(line, column, event, held before, held after) for the function's events, in source order."""
    rows: list[tuple[int, int, str, list[str], list[str]]] = []
    seen: set[tuple[int, int, str]] = set()
    for nid, evs in enumerate(ff.events):
        for i, ev in enumerate(evs):
            st = ff.before[nid][i]
            desc = describe_event(ev) if st is not None else None
            if st is None or desc is None:
                continue
            key = (ev.site.line, ev.site.column, desc)
            if key in seen:
                continue
            seen.add(key)
            # the state the next event of the node sees, or the node's way out
            nxt = ff.before[nid][i + 1] if i + 1 < len(evs) else ff.state_out[nid]
            after = nxt.describe() if nxt is not None else st.describe()
            rows.append((ev.site.line, ev.site.column, desc, st.describe(), after))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def timeline(ff: FunctionFacts) -> list[tuple[int, int, str, list[str]]]:
    """(line, column, event, held before it) for the function's events, in source order."""
    return [(line, col, desc, before) for line, col, desc, before, _ in transitions(ff)]


def _held(locks: list[str]) -> str:
    return "{" + (", ".join(locks) if locks else "-") + "}"


def render_explain(ff: FunctionFacts) -> str:
    fn = ff.fn
    out = [f"{fn.path}:{fn.start_line}: {fn.name}() lines {fn.start_line}-{fn.end_line}"]
    if ff.budget_exceeded:
        out.append("  not analysed: budget exceeded")
    rows = transitions(ff)
    if rows:
        # a release must not read as if the lock were still held after it
        out.append("  held: the locks surely held before each event (-> after it, if changed)")
    for line, _col, desc, before, after in rows:
        change = f" -> {_held(after)}" if after != before else ""
        out.append(f"  {line:>5}  {desc}")
        out.append(f"         held: {_held(before)}{change}")
    return "\n".join(out) + "\n"
