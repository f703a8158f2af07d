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


def timeline(ff: FunctionFacts) -> list[tuple[int, int, str, list[str]]]:
    """(line, column, event, held) for the function's events, in source order."""
    rows: list[tuple[int, int, str, list[str]]] = []
    seen: set[tuple[int, int, str]] = set()
    for _nid, ev, st in ff.iter_events():
        desc = describe_event(ev)
        if desc is None:
            continue
        key = (ev.site.line, ev.site.column, desc)
        if key in seen:
            continue
        seen.add(key)
        rows.append((ev.site.line, ev.site.column, desc, st.describe()))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def render_explain(ff: FunctionFacts) -> str:
    fn = ff.fn
    out = [f"{fn.path}:{fn.start_line}: {fn.name}() lines {fn.start_line}-{fn.end_line}"]
    if ff.budget_exceeded:
        out.append("  not analysed: budget exceeded")
    for line, _col, desc, held in timeline(ff):
        held_txt = ", ".join(held) if held else "-"
        out.append(f"  {line:>5}  {desc}")
        out.append(f"         held: {{{held_txt}}}")
    return "\n".join(out) + "\n"
