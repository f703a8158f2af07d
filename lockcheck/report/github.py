"""GitHub Actions workflow commands: one `::error file=...,line=...::` per finding.

GitHub shows these as annotations on the lines of the pull request diff.
Escaping follows the runner's rules (actions/toolkit `command.ts`): in the
message `%`, CR and LF are percent-encoded; in property values `:` and `,`
are too, since they delimit the properties. The message keeps the held set
and the related sites on further lines (encoded LFs), as the annotation is
all a reviewer sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockcheck.model.finding import Finding
from lockcheck.report.base import Reporter, char_column, source_line

_COMMAND = {"error": "error", "warning": "warning", "note": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, properties: Mapping[str, object], message: str) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items())
    return f"::{command} {props}::{escape_data(message)}"


class GithubReporter(Reporter):
    name = "github"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def finding(self, f: Finding) -> None:
        text = source_line(self.sources.get(f.path, ()), f.line)
        props: dict[str, object] = {"file": f.path, "line": f.line}
        if f.column > 0:
            props["col"] = char_column(text, f.column)
        props["title"] = f"lockcheck {f.rule}"
        body = [f.message, f"in `{f.function}()`; held here: {{{', '.join(f.held) or '-'}}}"]
        body.extend(f"{r.path or f.path}:{r.line}: {r.message}" for r in f.related)
        if f.evidence:
            body.append(f"evidence: {f.evidence}")
        command = _COMMAND.get(f.severity, "warning")
        self.lines.append(workflow_command(command, props, "\n".join(body)))

    def stop(self, stats: Mapping[str, Any]) -> str:
        return "".join(line + "\n" for line in self.lines)
