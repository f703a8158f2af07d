"""Plain terminal text: one block per finding, compiler-style first line."""

from __future__ import annotations

from collections.abc import Mapping

from lockcheck.model.finding import Finding


def render_finding(f: Finding, source_lines: list[str] | None = None) -> str:
    out = [f"{f.path}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.rule}]"]
    if source_lines and 0 < f.line <= len(source_lines):
        out.append(f"  {f.line:>5} | {source_lines[f.line - 1].rstrip()}")
    out.append(f"  in `{f.function}()`; held here: {{{', '.join(f.held) or '-'}}}")
    for r in f.related:
        out.append(f"  {r.path or f.path}:{r.line}: {r.message}")
    if f.evidence:
        out.append(f"  evidence: {f.evidence}")
    return "\n".join(out)


def render_text(
    findings: list[Finding],
    stats: Mapping[str, int],
    sources: Mapping[str, list[str]] | None = None,
    quiet: bool = False,
) -> str:
    blocks = [render_finding(f, (sources or {}).get(f.path)) for f in findings]
    body = "\n\n".join(blocks)
    if quiet:
        return body + ("\n" if body else "")
    n = len(findings)
    summary = (
        f"{n} finding{'s' if n != 1 else ''} in {stats.get('files', 0)} file(s), "
        f"{stats.get('functions_analysed', 0)}/{stats.get('functions', 0)} functions analysed"
    )
    return (body + "\n\n" if body else "") + summary + "\n"
