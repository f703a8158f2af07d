"""Mutation testing with mutmut: each module against its own fast tests.

`make mutate` (or `python -m tests.mutate [--first] [--since REV] [MODULE ...]`;
`--since REV` mutates only the lines changed since REV) copies the checkout
to .cache/mutate/<module>/src for each module, so mutants never touch the
working tree and one module's survivors can be studied (`mutmut show ID`,
`mutmut apply ID` there) while the next module runs, and runs `mutmut run`
there with that module's runner: the tests that exercise it, stopping at the
first failure (`-x`). Progress goes to .cache/mutate/<module>/log; the
survivors are printed and kept in .cache/mutate/<module>/results.txt.
docs/testing.md says what to do with them.
Not part of `make test` or CI: a module takes minutes to half an hour.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# a mutant that loops while growing a list would take the shared machine's
# memory before mutmut's time-out ends it: it dies of this limit instead
MEMORY_LIMIT = 4 << 30
# and one that loops without growing ends here (mutmut's own time-out is ten
# times its first run): killed, as a test run that never finishes would be
TIME_LIMIT = 120


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


_ANALYSIS = ("tests/test_analysis.py", "tests/test_rule_fixtures.py")
_RULES = (  # not test_rules_packs.py: its CLI runs take half a minute
    "tests/test_rule_fixtures.py",
    "tests/test_rules_decide.py",
    "tests/test_rules_meta.py",
)
_REPORT = ("tests/test_report_sarif.py", "tests/test_report.py", "tests/test_report_review.py")


def runners() -> dict[str, tuple[str, ...]]:
    """module -> the tests that exercise it (the fastest set that does); a new
    module of a mutated package gets its package's runner."""
    out: dict[str, tuple[str, ...]] = {
        "lockcheck/review.py": (
            "tests/test_review_unit.py",
            "tests/test_review.py",
            "tests/test_hook.py",
        ),
        "lockcheck/inputs/patch.py": ("tests/test_patch.py", "tests/test_fuzz_mbox.py"),
    }
    for package, tests in (("analysis", _ANALYSIS), ("rules", _RULES), ("report", _REPORT)):
        for path in sorted((ROOT / "lockcheck" / package).glob("*.py")):
            if path.name != "__init__.py":
                out[str(path.relative_to(ROOT))] = tests
    for path in sorted((ROOT / "lockcheck" / "report").glob("*.py")):
        out[str(path.relative_to(ROOT))] = ("tests/test_report_unit.py", *_REPORT)
    out["lockcheck/report/sarif.py"] = ("tests/test_report_sarif.py",)
    # in-process tests of the module itself first: they kill most mutants in a second
    out["lockcheck/analysis/state.py"] = ("tests/test_analysis_state.py", *_ANALYSIS)
    out["lockcheck/analysis/values.py"] = ("tests/test_values.py", *_ANALYSIS)
    out["lockcheck/analysis/transfer.py"] = ("tests/test_analysis_transfer.py", *_ANALYSIS)
    out["lockcheck/analysis/flow.py"] = ("tests/test_analysis_flow.py", *_ANALYSIS)
    out["lockcheck/analysis/function.py"] = ("tests/test_analysis_function.py", *_ANALYSIS)
    out["lockcheck/analysis/paths.py"] = ("tests/test_analysis_paths.py", *_ANALYSIS)
    out["lockcheck/analysis/summaries.py"] = ("tests/test_analysis_summaries.py", *_ANALYSIS)
    out["lockcheck/analysis/file.py"] = ("tests/test_analysis_file.py", *_ANALYSIS)
    out["lockcheck/analysis/tree.py"] = (
        "tests/test_tree_index.py",
        "tests/test_tree_partial.py",
        *_ANALYSIS,
    )
    out["lockcheck/rules/check_under_lock.py"] = (
        "tests/test_rules_check_under_lock.py",
        "tests/test_rule_fixtures.py",
        "tests/test_rules_meta.py",
    )
    out["lockcheck/rules/lock_pairing.py"] = (
        "tests/test_rules_lock_pairing.py",
        "tests/test_rule_fixtures.py",
        "tests/test_rules_meta.py",
    )
    for rule in (
        "lock_balance",
        "stale_value",
        "lock_effect",
        "claim",
        "act_requires_locks",
        "moved_out",
        "suppression",
        "baseline",
        "sleep_in_atomic",
        "nesting",
        "forbidden_while_held",
        "lock_order",
        "queries",
        "base",
        "registry",
    ):
        out[f"lockcheck/rules/{rule}.py"] = (f"tests/test_rules_{rule}.py", *_RULES)
    for module, first in (
        ("order_reversed", "tests/test_rules_order_reversed.py"),
        ("recheck_after_lock", "tests/test_rules_recheck.py"),
        ("recheck_after_relock", "tests/test_rules_recheck.py"),
    ):
        out[f"lockcheck/rules/{module}.py"] = (
            first,
            "tests/test_rule_fixtures.py",
            "tests/test_rules_meta.py",
        )
    out["lockcheck/rules/docs.py"] = ("tests/test_rules_docs_render.py", *_RULES)
    out["lockcheck/rules/builtin.py"] = ("tests/test_rules_registry.py", *_RULES)
    out["lockcheck/rules/fixtures.py"] = ("tests/test_rules_fixture_examples.py", *_RULES)
    return out


def copy_checkout(dest: Path) -> None:
    """The tracked and new (not ignored) files of the checkout, as they are now."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if dest.exists():
        shutil.rmtree(dest)
    for rel in sorted(set(listed.split("\0")) - {""}):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def main(argv: list[str]) -> int:
    table = runners()
    # --first: only each runner's first test file (the module's in-process tests),
    # for a module whose full runner costs minutes per survivor; the survivors
    # are then run against the rest of the runner by hand (docs/testing.md)
    first = "--first" in argv
    argv = [a for a in argv if a != "--first"]
    if first:
        table = {m: tests[:1] for m, tests in table.items()}
    # --since REV: only the lines each module changed since REV (mutmut's
    # --use-patch-file, which needs the `patch` extra: whatthepatch)
    since: str | None = None
    if "--since" in argv:
        i = argv.index("--since")
        if i + 1 >= len(argv):
            print("mutate: --since needs a revision", file=sys.stderr)
            return 2
        since = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    modules = argv or list(table)
    unknown = [m for m in modules if m not in table]
    if unknown:
        print(f"mutate: no runner for {', '.join(unknown)}", file=sys.stderr)
        return 2
    mutmut = [sys.executable, "-m", "mutmut"]
    env = {k: v for k, v in os.environ.items() if k != "LOCKCHECK_DEBUG"}
    for module in modules:
        patch_text = ""
        if since is not None:
            diff = subprocess.run(
                ["git", "diff", since, "--", module],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if diff.returncode != 0:
                print(f"mutate: git diff {since}: {diff.stderr.strip()}", file=sys.stderr)
                return 2
            if not diff.stdout:
                print(f"mutate: {module}: no change since {since}", flush=True)
                continue
            patch_text = diff.stdout
        work = ROOT / ".cache" / "mutate" / module.replace("/", "_")
        src = work / "src"
        copy_checkout(src)
        extra: list[str] = []
        if patch_text:
            patch = work / "changes.patch"
            patch.write_text(patch_text)
            extra = ["--use-patch-file", str(patch)]
        # mutmut 2 counts only exit status 1 as killed: a collection error (2),
        # a crash or the time limit (124) is a kill too
        pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        run = " ".join(["timeout", "-k", "5", str(TIME_LIMIT), *pytest, *table[module]])
        runner = shlex.join(["sh", "-c", f"{run} || exit 1"])
        start = time.monotonic()
        print(f"mutate: {module} ({' '.join(table[module])})", flush=True)
        log = work / "log"  # mutmut's progress line
        with log.open("w") as out:
            subprocess.run(
                [*mutmut, "run", "--paths-to-mutate", module, "--runner", runner, *extra],
                cwd=src,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                preexec_fn=_limit_memory,
            )
        print(f"mutate: {module} done in {time.monotonic() - start:.0f}s", flush=True)
        results = subprocess.run(
            [*mutmut, "results"], cwd=src, capture_output=True, text=True, check=False
        ).stdout
        (work / "results.txt").write_text(results)
        print(results, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
