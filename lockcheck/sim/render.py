"""Simulation results as text timelines, JSON and SVG swimlanes.

The text timeline has one column per thread, CPU0, CPU1, ..., as kernel
developers know from lockdep's "possible unsafe locking scenario"; the
step that breaks an invariant is marked with `***`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lockcheck.sim.explore import Step
from lockcheck.sim.run import SimResult

COLUMN = 50


def combined(results: list[SimResult]) -> tuple[str, SimResult]:
    """The overall result, and the run whose trace is shown."""
    for r in results:
        if r.result == "violation":
            return "violation", r
    if any(r.result == "bounded" for r in results):
        return "bounded", next(r for r in results if r.result == "bounded")
    return "holds", results[0]


def _split(r: SimResult) -> str:
    return "on" if r.split_ptl else "off"


def step_dict(r: SimResult, s: Step) -> dict[str, Any]:
    prog = r.threads[s.thread]
    return {
        "thread": f"CPU{s.thread}",
        "function": prog.name,
        "path": prog.path,
        "line": s.op.line,
        "event": s.op.text,
        "state_change": s.change,
        "violation": s.violation,
    }


def to_dict(results: list[SimResult]) -> dict[str, Any]:
    result, shown = combined(results)
    v = shown.outcome.violation
    return {
        "scenario": shown.scenario,
        "result": result,
        "states": sum(r.outcome.states for r in results),
        "split_ptl": _split(shown),
        "violation": {"kind": v.kind, "message": v.message} if v is not None else None,
        "threads": [
            {"thread": f"CPU{i}", "function": p.name, "path": p.path}
            for i, p in enumerate(shown.threads)
        ],
        "runs": [
            {"split_ptl": _split(r), "result": r.result, "states": r.outcome.states}
            for r in results
        ],
        "trace": [step_dict(shown, s) for s in shown.trace],
    }


def render_json(results: list[SimResult]) -> str:
    return json.dumps(to_dict(results), indent=2, sort_keys=True) + "\n"


def _summary(r: SimResult) -> str:
    o = r.outcome
    head = f"split pte locks {_split(r)}: "
    if o.result == "violation" and o.violation is not None:
        return head + f"violation in {o.states} states: {o.violation.message}"
    if o.result == "bounded":
        return head + f"no violation in {o.states} states, but the search was bounded"
    return head + f"holds: no violation in {o.states} states explored"


def render_text(results: list[SimResult], description: str = "") -> str:
    result, shown = combined(results)
    out = [f"scenario {shown.scenario}" + (f": {description}" if description else "")]
    for i, p in enumerate(shown.threads):
        out.append(f"  CPU{i}: {p.name}() in {p.path}")
    out.extend(_summary(r) for r in results)
    if result == "violation":
        out.append("")
        out.append(
            f"possible unsafe interleaving (split pte locks {_split(shown)}), "
            f"{len(shown.trace)} steps:"
        )
        out.append("")
        out.extend(_timeline(shown))
    return "\n".join(out) + "\n"


def _timeline(r: SimResult) -> list[str]:
    n = len(r.threads)
    pad = " " * 9
    rows = [
        pad + "".join(f"{f'CPU{i}':<{COLUMN}}" for i in range(n)).rstrip(),
        pad + "".join(f"{'----':<{COLUMN}}" for _ in range(n)).rstrip(),
    ]
    for k, s in enumerate(r.trace, 1):
        indent = " " * (COLUMN * s.thread)
        mark = "***" if s.violation else "   "
        name = Path(r.threads[s.thread].path).name
        rows.append(f"{mark} {k:>3}  {indent}{name}:{s.op.line}: {s.op.text}")
        tail = "   <== invariant broken" if s.violation else ""
        rows.append(f"{pad}{indent}  -> {s.change}{tail}")
    return rows


def render_svg(results: list[SimResult]) -> str:
    """Swimlanes: one lane per thread, one box per step, top to bottom."""
    _, r = combined(results)
    lane, row, top, margin = 380, 46, 70, 10
    n = max(1, len(r.threads))
    width = margin * 2 + lane * n
    height = top + row * len(r.trace) + margin * 2 + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="{margin}" y="18" font-size="13" font-weight="bold">'
        f"{escape(f'scenario {r.scenario}: {r.result}')}</text>",
    ]
    for i, p in enumerate(r.threads):
        x = margin + i * lane
        out.append(
            f'<rect x="{x}" y="28" width="{lane - 6}" height="{height - 40}" '
            f'fill="#f4f6f8" stroke="#c0c6cc"/>'
        )
        out.append(
            f'<text x="{x + 6}" y="44" font-weight="bold">{escape(f"CPU{i}: {p.name}()")}</text>'
        )
    for k, s in enumerate(r.trace):
        x = margin + s.thread * lane + 4
        y = top + k * row
        fill, stroke = ("#fde2e1", "#c62828") if s.violation else ("#ffffff", "#8a949e")
        name = Path(r.threads[s.thread].path).name
        out.append(
            f'<rect x="{x}" y="{y}" width="{lane - 14}" height="{row - 6}" rx="3" '
            f'fill="{fill}" stroke="{stroke}"/>'
        )
        head = f"{k + 1}. {name}:{s.op.line}: {s.op.text}"[:58]
        out.append(f'<text x="{x + 6}" y="{y + 15}">{escape(head)}</text>')
        out.append(f'<text x="{x + 6}" y="{y + 31}" fill="#444">{escape(s.change[:58])}</text>')
    if r.outcome.violation is not None:
        y = top + row * len(r.trace) + 16
        out.append(
            f'<text x="{margin}" y="{y}" fill="#c62828" font-weight="bold">'
            f"{escape(r.outcome.violation.message)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
