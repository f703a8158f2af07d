"""Kind `lock-effect-changed`: a patch changes what a function holds when it returns.

What it finds: for a function the patch changes, the locks it holds on each
kind of return (void, 0, an error value, any other value) before and after
the patch. A lock now held on a kind of return where it was released before
(an unlock dropped before `return 0`), or now released where it was held
before while callers release it after the call (a double unlock), is
reported with the callers that relied on the old effect.

Why: a function's lock effect is a contract with its callers. A caller
written for "returns with the pte lock released" now returns to its own
caller with the lock held; one written for "returns with it held" now
unlocks a lock that is no longer held.

Review only: a single image has no "before", so `lockcheck check` never
reports it. Callers are searched in the patched file (and, with a
directory `--tree`, in the C files next to it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lockcheck.analysis.function import FunctionFacts
from lockcheck.analysis.paths import ZERO_VALUES
from lockcheck.analysis.summaries import addressed_params, is_failure_value, substitute
from lockcheck.model.finding import Finding, Related
from lockcheck.model.ir import Acquire, Call, Function, Release, Site
from lockcheck.rules.base import ReviewRule
from lockcheck.rules.queries import single_definitions

MAX_TREE_FILES = 400  # C files of the directory searched for callers
MAX_CALLERS = 6  # callers a message names


def return_kind(value: str) -> str:
    """Coarse kinds of return, so that `-EINVAL` -> `-EBUSY` is no change."""
    v = value.strip()
    if not v:
        return "return"
    if is_failure_value(v):
        return "error return"
    if v in ZERO_VALUES or v.endswith(":zero"):
        return "return of zero"
    return "return of a value"


@dataclass(frozen=True, slots=True)
class Effect:
    """One lock's fate at a function's ways out."""

    held: dict[str, int]  # kind of return -> first line returning with the lock held
    free: dict[str, int]  # kind of return -> first line returning without it


def exit_effects(ff: FunctionFacts) -> dict[str, Effect]:
    """Per lock the function takes, releases or is given: where it returns holding it."""
    touched: set[str] = {r.inst.split("@")[0] for r in ff.entry_locks}
    for evs in ff.events:
        for ev in evs:
            if isinstance(ev, (Acquire, Release)) and not ev.guard and ev.lock.inst != "*":
                touched.add(ev.lock.inst.split("@")[0])
    out: dict[str, Effect] = {}
    nodes = ff.fn.cfg.nodes
    for name in sorted(touched):
        held: dict[str, int] = {}
        free: dict[str, int] = {}
        for nid, st, _rel, ret in ff.exits:
            kind = return_kind(ret)
            line = nodes[nid].line
            hits = [h for r, h in st.may.items() if r.inst.split("@")[0] == name]
            if any(h.escaped for h in hits):
                continue  # handed to code we cannot see: no telling
            target = held if hits else free
            target[kind] = min(line, target.get(kind, line))
        out[name] = Effect(held, free)
    return out


def _callers(
    post: Sequence[FunctionFacts], callee: Function, lock: str, releasing: bool
) -> list[tuple[str, int]]:
    """Functions of the file that call `callee` (and, if `releasing`, release
    `lock`, in their own terms, after the call)."""
    out: list[tuple[str, int]] = []
    for ff in post:
        if ff.fn.name == callee.name:
            continue
        for nid, evs in enumerate(ff.events):
            for ev in evs:
                if not isinstance(ev, Call) or ev.callee != callee.name:
                    continue
                if releasing and not _releases_after(
                    ff, nid, _in_caller(callee, ev, lock), callee.name
                ):
                    continue
                out.append((ff.fn.name, ev.site.line))
                break
            if out and out[-1][0] == ff.fn.name:
                break  # one call site per caller is enough to name it
    return out


def _in_caller(callee: Function, call: Call, lock: str) -> str:
    addressed = addressed_params(callee.params, call.addressed)
    return substitute(lock, callee.params, call.args, frozenset(), addressed) or lock


def _releases_after(ff: FunctionFacts, nid: int, lock: str, callee: str) -> bool:
    """Does the caller release `lock` itself after the call (not through the
    callee's own summary, whose events follow the call in its node)?"""
    for later in ff.reachable_from(nid):
        for ev in ff.events[later]:
            if (
                isinstance(ev, Release)
                and not ev.maybe
                and ev.primitive != callee
                and ev.lock.inst.split("@")[0] == lock
            ):
                return True
    return False


def tree_callers(directory: Path | None, name: str, skip: str) -> list[str]:
    """`file:line` of calls to `name` in the C files of `directory` (a --tree)."""
    if directory is None or not directory.is_dir():
        return []
    call = re.compile(rf"(?<![\w.>]){re.escape(name)}\s*\(")
    out: list[str] = []
    for path in sorted(directory.glob("*.c"))[:MAX_TREE_FILES]:
        if path.name == skip:
            continue
        try:
            text = path.read_text("utf-8", "replace")
        except OSError:
            continue
        if name not in text:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            # a call is indented; a definition or prototype starts the line
            if line[:1] in (" ", "\t") and call.search(line):
                out.append(f"{path.name}:{i}")
                break
    return out


def _names(callers: Iterable[str]) -> str:
    items = list(callers)
    shown = ", ".join(items[:MAX_CALLERS])
    more = len(items) - MAX_CALLERS
    return shown + (f" and {more} more" if more > 0 else "")


class LockEffectChanged(ReviewRule):
    kind = "lock-effect-changed"

    def compare(
        self,
        path: str,
        pre: Sequence[FunctionFacts],
        post: Sequence[FunctionFacts],
        changed: set[str],
        elsewhere: Path | None = None,
    ) -> list[Finding]:
        """Findings for the functions in `changed` whose exit lock effects differ."""
        before = single_definitions(pre)
        out: list[Finding] = []
        for ff in post:
            name = ff.fn.name
            old = before.get(name)
            if name not in changed or old is None or ff.budget_exceeded or old.budget_exceeded:
                continue
            if len([f for f in post if f.fn.name == name]) > 1:
                continue  # #ifdef variants: which one changed is not known
            was, now = exit_effects(old), exit_effects(ff)
            for lock in sorted(set(was) & set(now)):
                out.extend(self._diff(path, ff, post, lock, was[lock], now[lock], elsewhere))
        return out

    def _diff(
        self,
        path: str,
        ff: FunctionFacts,
        post: Sequence[FunctionFacts],
        lock: str,
        was: Effect,
        now: Effect,
        elsewhere: Path | None,
    ) -> list[Finding]:
        out: list[Finding] = []
        name = ff.fn.name
        # held now on a kind of return that released it before
        for kind, line in sorted(now.held.items()):
            # paths with equal lock states merge, and their return values with
            # them: a lock never held at any return before counts as released
            # on every kind
            if kind in was.held or (kind not in was.free and (was.held or not was.free)):
                continue
            callers = [f"{c}() at line {ln}" for c, ln in _callers(post, ff.fn, lock, False)]
            callers += tree_callers(elsewhere, name, Path(path).name)
            who = f"; callers that expect it released: {_names(callers)}" if callers else ""
            out.append(
                self._finding(
                    path,
                    ff,
                    Site(line, 1, f"{name}:{lock}:held:{kind}"),
                    f"`{name}()` now returns with `{lock}` held ({kind} at line {line}); "
                    f"before the patch every {kind} released it{who}",
                    lock,
                    (Related(line, 1, "returns here with the lock held"),),
                )
            )
        # released now where it was held before, and callers release it again
        for kind, line in sorted(now.free.items()):
            if kind not in was.held or kind in now.held:
                continue
            releasing = _callers(post, ff.fn, lock, True)
            if not releasing:
                continue
            callers = [f"{c}() at line {ln}" for c, ln in releasing]
            out.append(
                self._finding(
                    path,
                    ff,
                    Site(line, 1, f"{name}:{lock}:free:{kind}"),
                    f"`{name}()` now releases `{lock}` before its {kind} at line {line}, "
                    f"where it returned with it held before; these callers release it "
                    f"again: {_names(callers)}",
                    lock,
                    tuple(
                        Related(ln, 1, f"{c}() releases it after the call") for c, ln in releasing
                    ),
                )
            )
        return out

    def _finding(
        self,
        path: str,
        ff: FunctionFacts,
        site: Site,
        message: str,
        lock: str,
        related: tuple[Related, ...],
    ) -> Finding:
        return Finding(
            rule=self.spec.id,
            severity=self.spec.severity,
            path=path,
            line=site.line,
            column=site.column,
            function=ff.fn.name,
            message=message,
            held=(lock,),
            related=related,
            anchor=site.text,
        )

