"""Terminal text: compiler-style first line, a source excerpt, the held set.

With colour (a TTY, or `--color always`) the excerpt is highlighted by
pygments and the severity, marker and caret are coloured; without it the
same characters are printed, so stripping the escape sequences from the
coloured output gives exactly the plain output. Colour follows the NO_COLOR
convention (https://no-color.org): `auto` means a TTY and no NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter, char_column, drive, source_line

CONTEXT_BEFORE = 1  # source lines shown above the marked line
CONTEXT_AFTER = 1

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_SEVERITY = {"error": "\x1b[1;31m", "warning": "\x1b[1;35m", "note": "\x1b[1;36m"}
_MARK = "\x1b[1;31m"
_CARET = "\x1b[1;32m"
# Control characters from the input as their Unicode pictures (one column each, so carets
# still line up): a comment holding ESC ] 0; or ESC [ 2J must not drive the terminal.
_CONTROLS = {c: 0x2400 + c for c in range(32) if c != 9} | {0x7F: 0x2421}
_CONTROLS |= {c: 0xFFFD for c in range(0x80, 0xA0)}


def printable(text: str) -> str:
    """`text` with control characters (but tab) made visible and inert."""
    return text.translate(_CONTROLS)


def want_color(choice: str, isatty: bool, environ: Mapping[str, str]) -> bool:
    """`--color auto|always|never`: auto is a TTY without a non-empty NO_COLOR."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    return isatty and not environ.get("NO_COLOR")


class TextReporter(Reporter):
    name = "text"

    def __init__(self, *, color: bool = False, quiet: bool = False) -> None:
        super().__init__()
        self.color = color
        self.quiet = quiet
        self.blocks: list[str] = []
        self.count = 0

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and text else text

    def finding(self, f: Finding) -> None:
        self.count += 1
        lines = self.sources.get(f.path, ())
        sev = self._paint(_SEVERITY.get(f.severity, _BOLD), f"{f.severity}:")
        where = printable(f"{f.path}:{f.line}:{f.column}:")
        out = [
            f"{self._paint(_BOLD, where)} {sev} {printable(f.message)} "
            f"{self._paint(_DIM, f'[{f.rule}]')}"
        ]
        out.extend(self._excerpt(f, lines))
        held = printable(", ".join(f.held) or "-")
        fn = printable(f.function)
        out.append(f"  in `{fn}()`; held here: {self._paint(_BOLD, '{' + held + '}')}")
        for r in f.related:
            out.append(printable(f"  {r.path or f.path}:{r.line}: {r.message}"))
        if f.evidence:
            out.append(printable(f"  evidence: {f.evidence}"))
        self.blocks.append("\n".join(out))

    def _excerpt(self, f: Finding, lines: Sequence[str]) -> list[str]:
        marked = source_line(lines, f.line)
        if marked is None:
            return []
        first = max(1, f.line - CONTEXT_BEFORE)
        last = min(len(lines), f.line + CONTEXT_AFTER)
        numbers = range(first, last + 1)
        texts = [printable((source_line(lines, n) or "").rstrip()) for n in numbers]
        shown = self._highlight(texts) if self.color else texts
        width = max(5, len(str(last)))
        # the caret keeps the line's tabs so that it lines up in a terminal
        col = char_column(marked, f.column)
        pad = "".join(c if c == "\t" else " " for c in marked[: col - 1])
        span = len(f.anchor.split("\n")[0].rstrip()) if f.anchor else 1
        span = max(1, min(span, len(marked) - (col - 1)))
        caret = self._paint(_CARET, "^" + "~" * (span - 1))
        out = []
        for n, text in zip(numbers, shown, strict=True):
            mark = self._paint(_MARK, ">") if n == f.line else " "
            out.append(f"  {mark}{n:>{width}} |" + (f" {text}" if texts[n - first] else ""))
            if n == f.line:
                out.append(f"   {' ' * width} | {pad}{caret}")
        return out

    @staticmethod
    def _highlight(texts: list[str]) -> list[str]:
        """Highlight the excerpt as one block so comments spanning lines lex right."""
        # imported here: only colour output highlights, and pygments costs start-up time
        from pygments import highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import CLexer

        lexer = CLexer(stripnl=False, ensurenl=True)
        code = highlight("\n".join(texts) + "\n", lexer, TerminalFormatter())
        got = code.split("\n")
        if got and got[-1] == "":
            got.pop()
        return got if len(got) == len(texts) else texts

    def stop(self, stats: Mapping[str, Any]) -> str:
        body = "\n\n".join(self.blocks)
        if self.quiet:
            return body + ("\n" if body else "")
        n = self.count
        summary = (
            f"{n} finding{'s' if n != 1 else ''} in {stats.get('files', 0)} file(s), "
            f"{stats.get('functions_analysed', 0)}/{stats.get('functions', 0)} functions analysed"
        )
        if stats.get("budget_outs", 0):
            summary += f", {stats['budget_outs']} over budget"
        summary += parse_error_note(stats)
        if "baselined" in stats:
            summary += f", {stats['baselined']} hidden by the baseline"
        if stats.get("input_errors", 0):
            summary += f", {stats['input_errors']} input(s) failed (errors on stderr)"
        return (body + "\n\n" if body else "") + summary + "\n"


def parse_error_note(stats: Mapping[str, Any]) -> str:
    """What a reader must know of code the parser could not read: findings may be missing."""
    functions, errors = stats.get("parse_error_functions", 0), stats.get("parse_errors", 0)
    if functions:
        return f", {functions} of them with parse errors (their findings may be incomplete)"
    if errors:
        return f", {errors} parse error{'s' * (errors != 1)} outside functions (not analysed)"
    return ""


def render_text(
    findings: list[Finding],
    stats: Mapping[str, int],
    sources: Mapping[str, list[str]] | None = None,
    quiet: bool = False,
    color: bool = False,
) -> str:
    return drive(TextReporter(color=color, quiet=quiet), findings, stats, sources)
