"""Baselines: the fingerprints of findings already known, hidden from later runs.

A baseline is JSON: either what `lockcheck check --format json` prints
(its findings carry fingerprints), or `{"fingerprints": [...]}` as
`--write-baseline` writes it, or a bare list of fingerprints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lockcheck.errors import InputError
from lockcheck.inputs.files import read_regular
from lockcheck.model.finding import Finding


def _fingerprints(doc: Any) -> list[Any] | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("fingerprints"), list):
        return list(doc["fingerprints"])
    if isinstance(doc, dict) and isinstance(doc.get("findings"), list):
        return [f.get("fingerprint") if isinstance(f, dict) else None for f in doc["findings"]]
    return None


def load_baseline(path: Path) -> set[str]:
    try:
        doc = json.loads(read_regular(path).decode("utf-8"))
    except OSError as exc:
        raise InputError(f"baseline {path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"baseline {path}: not valid JSON: {exc}") from None
    prints = _fingerprints(doc)
    if prints is None:
        raise InputError(
            f"baseline {path}: expected `lockcheck check --format json` output,"
            ' {"fingerprints": [...]} or a list of fingerprints'
        )
    for i, fp in enumerate(prints):
        if not isinstance(fp, str) or not fp:
            raise InputError(f"baseline {path}: entry {i}: fingerprint must be a string")
    return set(prints)


def baseline_json(findings: Iterable[Finding]) -> str:
    prints = sorted({f.fingerprint for f in findings})
    return json.dumps({"version": 1, "fingerprints": prints}, indent=2) + "\n"
