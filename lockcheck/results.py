"""A file's part of a check as JSON: what the cache stores and shards carry.

Unlike the JSON report, this keeps every field of a finding (its anchor for
the fingerprint, the simulator's trace), so a finding read back is equal to
the one that was written and a merged run renders exactly as a single one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lockcheck.engine import CheckResult, Config, Engine, FileResult, Stats
from lockcheck.errors import InputError
from lockcheck.model.finding import Finding, Related
from lockcheck.order.graph import OrderEdge

if TYPE_CHECKING:
    from lockcheck.parallel import Shard


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "function": f.function,
        "message": f.message,
        "held": list(f.held),
        "expected": list(f.expected),
        "related": [[r.line, r.column, r.message, r.path] for r in f.related],
        "anchor": f.anchor,
        "evidence": f.evidence,
        "trace": [dict(t) for t in f.trace],
    }


def finding_from_dict(d: dict[str, Any]) -> Finding:
    return Finding(
        rule=str(d["rule"]),
        severity=str(d["severity"]),
        path=str(d["path"]),
        line=int(d["line"]),
        column=int(d["column"]),
        function=str(d["function"]),
        message=str(d["message"]),
        held=tuple(str(h) for h in d["held"]),
        expected=tuple(str(e) for e in d["expected"]),
        related=tuple(Related(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in d["related"]),
        anchor=str(d["anchor"]),
        evidence=None if d.get("evidence") is None else str(d["evidence"]),
        trace=tuple(dict(t) for t in d.get("trace", [])),
    )


def result_to_dict(r: FileResult) -> dict[str, Any]:
    return {
        "path": r.path,
        "findings": [finding_to_dict(f) for f in r.findings],
        "stats": {k: getattr(r.stats, k) for k in Stats.__dataclass_fields__},
        "errors": list(r.errors),
        "edges": [e.as_dict() for e in r.edges],
    }


def result_from_dict(d: dict[str, Any]) -> FileResult:
    """A part read back; a malformed one raises KeyError, TypeError or ValueError."""
    return FileResult(
        path=str(d["path"]),
        findings=[finding_from_dict(f) for f in d["findings"]],
        stats=Stats.from_dict(d["stats"]),
        errors=[str(e) for e in d["errors"]],
        edges=[OrderEdge.from_dict(e) for e in d["edges"]],
    )


SHARD_FORMAT = "lockcheck-shard"


def shard_payload(
    shard: Shard, engine: Engine, command: str, result: CheckResult
) -> dict[str, Any]:
    """What `lockcheck merge` needs of one shard, beside its JSON report: every
    field of its findings, each file's stats, errors and lock-order edges, and
    the settings the report was made with."""
    c = engine.config
    return {
        "format": SHARD_FORMAT,
        "version": 1,
        "shard": f"{shard.index}/{shard.count}",
        "command": command,
        "config": {
            "packs": list(c.packs),
            "select": sorted(c.select) if c.select is not None else None,
            "disable": sorted(c.disable),
            "severity": dict(sorted(c.severity.items())),
        },
        "findings": [finding_to_dict(f) for f in result.findings],
        "parts": [{**result_to_dict(p), "findings": []} for p in result.parts],
        "bad": list(result.bad),
    }


@dataclass(slots=True)
class ShardResult:
    shard: tuple[int, int]
    command: str
    config: Config
    findings: list[Finding]
    parts: list[FileResult]
    bad: list[str]


def read_shard(data: Any, origin: str) -> ShardResult:
    """One shard's payload from its JSON report; a clear error if it is not one."""
    payload = data.get("shard") if isinstance(data, dict) else None
    if not isinstance(payload, dict) or payload.get("format") != SHARD_FORMAT:
        raise InputError(
            f"{origin}: not a shard result (make one with"
            " `lockcheck check --shard K/N --format json`)"
        )
    try:
        k, n = (int(x) for x in str(payload["shard"]).split("/"))
        conf = payload["config"]
        config = Config(
            packs=[str(p) for p in conf["packs"]],
            select=None if conf["select"] is None else {str(x) for x in conf["select"]},
            disable={str(x) for x in conf["disable"]},
            severity={str(a): str(b) for a, b in conf["severity"].items()},
        )
        return ShardResult(
            (k, n),
            str(payload["command"]),
            config,
            [finding_from_dict(f) for f in payload["findings"]],
            [result_from_dict(p) for p in payload["parts"]],
            [str(b) for b in payload["bad"]],
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InputError(f"{origin}: damaged shard result ({type(exc).__name__}: {exc})") from None
