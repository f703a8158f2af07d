"""Every class of bad input: one `lockcheck: error:` line each, exit 2, no traceback.

Partial results: the inputs that worked are still reported, and the summary
counts the ones that did not. docs/robustness.md is the table of these
cases; each row there is a case here.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lockcheck.engine import Config, Engine
from lockcheck.errors import InputError
from lockcheck.inputs.files import MAX_INPUT_BYTES, read_bounded
from tests.helpers import FIXTURES, ROOT, run_cli, run_main

SERIES = FIXTURES / "series"
TREE = SERIES / "tree"
PATCH1 = next(SERIES.glob("0001-*.patch"))
PATCH2 = next(SERIES.glob("0002-*.patch"))
GOOD_C = b"int f(void)\n{\n\treturn 0;\n}\n"
NOT_APPLYING = b"--- a/x.c\n+++ b/x.c\n@@ -1,1 +1,1 @@\n-not in the file\n+int y;\n"

Setup = Callable[[Path], list[str]]


def _file(name: str, data: bytes, *args: str) -> Setup:
    def setup(d: Path) -> list[str]:
        (d / name).write_bytes(data)
        return [*args, str(d / name)]

    return setup


def _fifo(d: Path) -> list[str]:
    os.mkfifo(d / "pipe.c")
    return ["check", str(d / "pipe.c")]


def _device(d: Path) -> list[str]:
    (d / "zero.patch").symlink_to("/dev/zero")
    return ["review", str(d / "zero.patch")]


def _tree_without_file(d: Path) -> list[str]:
    (d / "tree").mkdir()
    (d / "x.patch").write_bytes(NOT_APPLYING)
    return ["review", "--tree", str(d / "tree"), str(d / "x.patch")]


def _hunk_not_applying(d: Path) -> list[str]:
    (d / "tree").mkdir()
    (d / "tree" / "x.c").write_bytes(GOOD_C)
    (d / "x.patch").write_bytes(NOT_APPLYING)
    return ["review", "--tree", str(d / "tree"), str(d / "x.patch")]


def _outside_tree(d: Path) -> list[str]:
    (d / "tree").mkdir()
    (d / "x.patch").write_bytes(b"--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n")
    return ["review", "--tree", str(d / "tree"), str(d / "x.patch")]


def _config_names_a_device(d: Path) -> list[str]:
    """A reviewed repository's .lockcheck.toml is input too: its baseline must not hang us."""
    (d / ".lockcheck.toml").write_text('baseline = "/dev/zero"\n')
    (d / "a.c").write_bytes(GOOD_C)
    return ["check", str(d / "a.c")]


def _not_a_repo(d: Path) -> list[str]:
    return ["review", "--tree", str(d), "--git", "HEAD~1..HEAD"]


CASES: dict[str, tuple[Setup, str]] = {
    "missing C file": (lambda d: ["check", str(d / "nope.c")], "no such file or directory"),
    "not a .c/.h file": (_file("notes.txt", b"hi\n", "check"), "not a C source file"),
    "binary C file": (_file("bin.c", b"int x;\0\0\1", "check"), "binary file, not C source"),
    "FIFO named .c": (_fifo, "not a regular file"),
    "device as patch": (_device, "not a regular file"),
    "missing patch": (lambda d: ["review", str(d / "nope.patch")], "no such file or directory"),
    "binary patch": (_file("b.patch", b"\x89PNG\0\0\0", "review"), "binary file, not a patch"),
    "not a patch": (_file("n.patch", b"hello\nworld\n", "review"), "no patch found"),
    "malformed diff": (
        _file("t.patch", b"--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n x\n", "review"),
        "corrupt patch",
    ),
    "mbox without a diff": (
        _file("c.mbox", b"From x\nFrom: a\nSubject: [PATCH 0/2] cover\n\ntext\n", "review"),
        "no diff in it",
    ),
    "email in an unknown charset": (
        _file(
            "u.eml",
            b"From: a\nSubject: [PATCH] x\nContent-Type: text/plain; charset=x-nonesuch\n"
            b"Content-Transfer-Encoding: base64\n\n!!!notbase64\n",
            "review",
        ),
        "cannot decode the message body",
    ),
    "annotate, nothing quoted": (
        _file("r.eml", b"From: a\nSubject: Re: x\n\nlooks fine\n", "annotate"),
        "no quoted patch to annotate",
    ),
    "tree missing a file": (_tree_without_file, "no such file in"),
    "hunk does not apply": (_hunk_not_applying, "does not apply"),
    "path outside the tree": (_outside_tree, "outside the tree"),
    "--git outside a repository": (_not_a_repo, "not a git repository"),
    "unknown rule": (
        lambda d: ["check", "--select", "no-such-rule", str(FIXTURES / "khugepaged" / "v1.c")],
        "unknown rule id",
    ),
    "unknown pack": (lambda d: ["rules", "list", "--rules", "nopack"], "unknown rule pack"),
    "pack not TOML": (_file("p.toml", b"x = [\n", "rules", "list", "--rules"), "not valid TOML"),
    "pack with a bad field": (
        _file("p.toml", b"[pack]\nname = 3\n", "rules", "list", "--rules"),
        "pack.name",
    ),
    "pack with an unknown kind": (
        _file(
            "k.toml",
            b'[pack]\nname = "k"\n[[rule]]\nid = "r"\nkind = "no-such-kind"\n'
            b'severity = "error"\nsummary = "s"\nmessage = "m"\n',
            "rules",
            "list",
            "--rules",
        ),
        "unknown kind 'no-such-kind'",
    ),
    "actor model not C": (
        _file("a.c", b"this is not C {{{\n", "simulate", "fault-fill", "--example", "--actor"),
        "actor model",
    ),
    "baseline is a device": (
        lambda d: ["check", "--baseline", "/dev/zero", str(FIXTURES / "khugepaged" / "v1.c")],
        "not a regular file",
    ),
    "config names a device": (_config_names_a_device, "not a regular file"),
    "actor model is a device": (
        lambda d: ["simulate", "fault-fill", "--example", "--actor", "/dev/zero"],
        "not a regular file",
    ),
    "actor model nested too deep": (
        _file(
            "deep.c",
            ("void f(void) {" + "if (a) {" * 300 + "x++;" + "}" * 300 + "}\n").encode(),
            "simulate",
            "fault-fill",
            "--example",
            "--actor",
        ),
        "nested too deeply",
    ),
    "control characters in a name": (
        lambda d: ["check", str(d / "a\nb\x1b[31m.c")],
        "no such file or directory",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path: Path, case: str) -> None:
    """In-process for speed; `test_bad_input_through_a_process` runs a few for real."""
    setup, expect = CASES[case]
    code, out, err = run_main(*setup(tmp_path))
    assert "Traceback" not in err and "internal error" not in err
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockcheck: error: "), err
    assert expect in lines[0]
    assert "\x1b" not in err


@pytest.mark.parametrize("case", ["FIFO named .c", "malformed diff", "pack not TOML"])
def test_bad_input_through_a_process(tmp_path: Path, case: str) -> None:
    setup, expect = CASES[case]
    proc = run_cli(*setup(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and expect in proc.stderr


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret.c"
    path.write_bytes(GOOD_C)
    path.chmod(0)
    proc = run_cli("check", str(path))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_oversized_input_is_refused() -> None:
    with pytest.raises(InputError, match="larger than"):
        read_bounded(io.BytesIO(bytes(MAX_INPUT_BYTES + 1)), "<stdin>")
    assert len(read_bounded(io.BytesIO(bytes(1000)), "<stdin>")) == 1000


def test_check_reports_the_good_files_and_counts_the_bad(tmp_path: Path) -> None:
    good = FIXTURES / "khugepaged" / "v1.c"
    (tmp_path / "bin.c").write_bytes(b"\0\0")
    proc = run_cli(
        "check", "--no-sim", "--format", "json", str(good), str(tmp_path / "no.c"),
        str(tmp_path / "bin.c"),
    )  # fmt: skip
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["stats"]["files"] == 1 and report["stats"]["input_errors"] == 2
    assert report["findings"], "the good file's findings are still reported"
    assert len(proc.stderr.splitlines()) == 2
    text = run_cli("check", "--no-sim", str(good), str(tmp_path / "no.c"))
    assert "1 input(s) failed" in text.stdout.splitlines()[-1]


def test_review_reports_the_patches_that_applied(tmp_path: Path) -> None:
    """A series with an unreadable and a non-applying patch: the others are reviewed."""
    bad = tmp_path / "bad.patch"
    bad.write_bytes(NOT_APPLYING)
    args = ["review", "--format", "json", "--tree", str(TREE)]
    proc = run_cli(*args, str(PATCH1), str(bad), str(PATCH2), str(tmp_path / "gone.patch"))
    assert proc.returncode == 2
    errors = proc.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("lockcheck: error: ") for e in errors)
    assert "gone.patch: no such file" in errors[0] and "no such file in" in errors[1]
    report = json.loads(proc.stdout)
    assert report["stats"]["input_errors"] == 2
    assert [p["number"] for p in report["review"]["patches"]] == [1, 2]
    alone = run_cli(*args, str(PATCH1), str(PATCH2))
    assert json.loads(alone.stdout)["findings"] == report["findings"]


def test_review_with_nothing_reviewable_prints_only_errors(tmp_path: Path) -> None:
    proc = run_cli("review", str(tmp_path / "a.patch"), str(tmp_path / "b.patch"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 2


# --- budgets ------------------------------------------------------------------------


def _many_paths(n: int) -> bytes:
    """2**n paths: n independent branches, each between a lock and unlock of its own lock."""
    body = []
    for i in range(n):
        body.append(f"\tif (a{i}) x++; else y++;")
        body.append(f"\tif (b{i}) spin_lock(&l{i % 5}); else z++;")
        body.append(f"\tif (b{i}) spin_unlock(&l{i % 5});")
    return ("void f(int x, int y, int z)\n{\n" + "\n".join(body) + "\n}\n").encode()


def test_two_to_the_forty_paths_finish_bounded() -> None:
    """The path-sensitive analysis merges beyond MAX_PATHS states: work is linear in n."""
    engine = Engine()
    analysis = engine.analyse_source("paths.c", _many_paths(40))
    engine.findings_for(analysis)
    (ff,) = analysis.facts.functions
    assert not ff.budget_exceeded  # merged, not given up on
    assert len(analysis.model.functions[0].cfg.nodes) < 1000


def test_node_budget_is_counted_in_stats(tmp_path: Path) -> None:
    engine = Engine(Config(max_nodes=50))
    (tmp_path / "big.c").write_bytes(_many_paths(40) + GOOD_C.replace(b"f(", b"g("))
    result = engine.check_paths([tmp_path / "big.c"])
    assert result.stats.budget_outs == 1 and result.stats.functions_analysed == 1
    assert not result.errors


@pytest.mark.parametrize(
    "source",
    [
        "void f(void) {" + "if (a) {" * 400 + "x++;" + "}" * 400 + "}",
        "void f(void) {" + " else ".join(f"if (a{i}) x++;" for i in range(1500)) + "}",
        "int f(void) { return " + "(" * 2000 + "1" + ")" * 2000 + "; }",
    ],
    ids=["nested-ifs", "else-if-chain", "parentheses"],
)
def test_too_deep_nesting_is_a_budget_out_not_a_crash(tmp_path: Path, source: str) -> None:
    path = tmp_path / "deep.c"
    path.write_text(source + "\nint g(void)\n{\n\treturn 0;\n}\n")
    proc = run_cli("check", "--no-sim", "--format", "json", str(path))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["budget_outs"] == 1 and stats["functions_analysed"] == 1
    text = run_cli("check", "--no-sim", str(path))
    assert "1 over budget" in text.stdout


# --- terminal safety ----------------------------------------------------------------

ESCAPES = "\x1b]0;PWNED\x07 \x1b[2J \x9b31m"
HOSTILE_C = (
    "void f(struct vm_area_struct *vma, spinlock_t *ptl)\n{\n"
    f"\t/* {ESCAPES} */ if (vma->anon_vma) {{\n"
    "\t\tspin_lock(ptl);\n\t\tpmdp_collapse_flush(vma, 0, 0);\n\t\tspin_unlock(ptl);\n\t}\n}\n"
)


def test_control_characters_in_source_never_reach_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "esc.c"
    path.write_text(HOSTILE_C)
    proc = run_cli("check", "--no-sim", str(path))
    assert proc.returncode == 1
    assert not any(c in proc.stdout for c in "\x1b\x07\x9b")
    lines = proc.stdout.splitlines()
    marked = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(">"))
    code, caret = lines[marked].split("|", 1)[1], lines[marked + 1].split("|", 1)[1]
    assert code[caret.index("^") :].startswith("vma->anon_vma")  # still lined up


def test_control_characters_in_a_subject_never_reach_the_terminal(tmp_path: Path) -> None:
    mail = PATCH1.read_text().replace(
        "Subject: [PATCH 1/3]", "Subject: =?utf-8?q?=1B]0;PWNED=07?= [PATCH 1/3]"
    )
    path = tmp_path / "esc.patch"
    path.write_text(mail)
    proc = run_cli("review", "--tree", str(TREE), str(path))
    assert proc.returncode in (0, 1), proc.stderr
    assert "PWNED" in proc.stdout and "\x1b" not in proc.stdout and "\x07" not in proc.stdout


def test_annotate_reads_a_pipe_once() -> None:
    """Regression: `annotate <(...)` read the pipe twice and printed an empty email."""
    reply = SERIES / "reply.eml"
    cmd = f"{shlex.quote(sys.executable)} -m lockcheck annotate <(cat {shlex.quote(str(reply))})"
    piped = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, timeout=600)
    direct = run_cli("annotate", str(reply))
    assert piped.returncode == direct.returncode == 1, piped.stderr
    assert piped.stdout.decode().splitlines()[:40] == direct.stdout.splitlines()[:40]
    assert len(piped.stdout) > len(reply.read_bytes())  # the email, with notes added


def test_order_reports_the_good_files_and_fails_on_the_bad(tmp_path: Path) -> None:
    """Regression: `order --claims BINARY.c` printed an error line and exited 0."""
    (tmp_path / "bin.c").write_bytes(b"\0\0")
    good = str(FIXTURES / "khugepaged" / "v1.c")
    code, out, err = run_main(
        "order", "--claims", "--format", "json", good, str(tmp_path / "bin.c")
    )
    assert code == 2 and err.count("\n") == 1 and "binary file" in err
    assert json.loads(out) == json.loads(run_main("order", "--claims", "--format", "json", good)[1])
    code, out, err = run_main("order", "--claims", str(tmp_path / "bin.c"))
    assert (code, out) == (2, "")
