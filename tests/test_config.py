"""`.lockcheck.toml` / `[tool.lockcheck]`: found, validated, and obeyed by check, review, hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockcheck.config import CONFIG_NAME, ProjectConfig, find_config
from lockcheck.errors import InputError
from tests.helpers import FIXED, PRE_SERIES, SOURCE, V1, V1_RULES, new_repo, run_cli, stage

ANON, UFFD = "anon-vma-under-ptl", "uffd-wp-under-ptl"


def rules_in(text: str) -> list[str]:
    return sorted(r.strip("[]") for r in V1_RULES if r in text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository whose v1 file is committed in two places."""
    return new_repo(tmp_path / "linux", files={"mm/a.c": V1, "mm/legacy/b.c": V1})


def configure(root: Path, text: str, name: str = CONFIG_NAME) -> Path:
    (root / name).write_text(text)
    return root / name


def check(*args: str, cwd: Path) -> tuple[int, str]:
    proc = run_cli("check", "--no-sim", *args, cwd=cwd)
    assert proc.returncode == 2 or proc.stderr == "", proc.stderr
    return proc.returncode, proc.stdout


# --- discovery


def test_found_upwards_and_paths_relative_to_the_file(tree: Path) -> None:
    configure(
        tree,
        'packs = ["mm", "packs/local.toml"]\nbaseline = "known.json"\n'
        'disable = ["lock-order"]\ninclude = ["mm"]\n[severity]\nuffd-wp-under-ptl = "note"\n',
    )
    cfg = find_config(tree / "mm" / "legacy" / "b.c")
    assert cfg.source == (tree / CONFIG_NAME).resolve()
    assert cfg.packs == ("mm", str(tree.resolve() / "packs/local.toml"))
    assert cfg.baseline == tree.resolve() / "known.json"
    assert cfg.disable == {"lock-order"} and dict(cfg.severity) == {UFFD: "note"}
    assert cfg.include == ("mm",) and cfg.exclude == ()


def test_pyproject_table_and_which_file_wins(tree: Path) -> None:
    (tree / "mm" / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no table: passed over
    configure(tree, '[tool.lockcheck]\ndisable = ["anon-vma-under-ptl"]\n', "pyproject.toml")
    cfg = find_config(tree / "mm")
    assert cfg.source == (tree / "pyproject.toml").resolve() and cfg.disable == {ANON}
    configure(tree, 'disable = ["uffd-wp-under-ptl"]\n')
    assert find_config(tree / "mm").disable == {UFFD}  # .lockcheck.toml first, same directory


def test_never_read_from_outside_the_repository(tmp_path: Path) -> None:
    configure(tmp_path, 'disable = ["anon-vma-under-ptl"]\n')
    repo = new_repo(tmp_path / "linux")
    assert find_config(repo / SOURCE) == ProjectConfig(root=(repo / "mm").resolve())
    assert find_config(tmp_path).disable == {ANON}  # outside any repository: found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("packs = 'mm'\n", "packs: must be a list of strings"),
        ("disabled = []\n", "unknown key 'disabled'"),
        ("[severity]\nuffd-wp-under-ptl = 'fatal'\n", "severity.uffd-wp-under-ptl: must be one"),
        ("severity = 3\n", "severity: must be a table"),
        ("baseline = 1\n", "baseline: must be a path"),
        ("include = [1]\n", "include: must be a list of strings"),
        ("disable = [\n", "not valid TOML"),
        ("disable = ['no-such-rule']\n", "disable: unknown rule id 'no-such-rule'"),
        ("[severity]\nno-such-rule = 'note'\n", "severity: unknown rule id 'no-such-rule'"),
        ("baseline = 'missing.json'\n", "baseline "),
    ],
)
def test_bad_configuration_is_a_precise_input_error(tree: Path, text: str, message: str) -> None:
    path = configure(tree, text)
    with pytest.raises(InputError) as err:
        find_config(tree / "mm").engine(None, None)
    assert message in str(err.value)
    assert str(path.resolve()) in str(err.value) or "missing.json" in str(err.value)


@pytest.mark.parametrize(
    "args", [("check", "--no-sim", "mm"), ("review", "--staged"), ("hook", "run")]
)
def test_bad_configuration_is_one_error_line(tree: Path, args: tuple[str, ...]) -> None:
    path = configure(tree, "disable = ['no-such-rule']\n")
    proc = run_cli(*args, cwd=tree)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"lockcheck: error: {path.resolve()}: disable: unknown rule id 'no-such-rule'"
        " (see `lockcheck rules list`)\n"
    )


def test_pyproject_without_the_table_as_a_file_is_an_error(tmp_path: Path) -> None:
    from lockcheck.config import load_config_file

    path = configure(tmp_path, "[tool.other]\nx = 1\n", "pyproject.toml")
    with pytest.raises(InputError, match=r"no \[tool.lockcheck\] table"):
        load_config_file(path)


# --- `check` obeys it


def test_check_disable_and_severity(tree: Path) -> None:
    code, out = check("mm/a.c", cwd=tree)
    assert code == 1 and rules_in(out) == [ANON, UFFD]
    configure(tree, f'disable = ["{ANON}"]\n[severity]\n{UFFD} = "warning"\n')
    code, out = check("mm/a.c", cwd=tree)
    assert code == 1 and rules_in(out) == [UFFD] and "warning: `userfaultfd_wp(vma)`" in out
    assert check("--fail-on", "error", "mm/a.c", cwd=tree)[0] == 0  # a warning now
    # explicit options win: --select ignores `disable`
    code, out = check("--select", ANON, "mm/a.c", cwd=tree)
    assert code == 1 and rules_in(out) == [ANON]


def test_check_include_exclude(tree: Path) -> None:
    configure(tree, 'exclude = ["mm/legacy"]\n')
    code, out = check(".", cwd=tree)
    assert code == 1 and "mm/a.c:" in out and "legacy" not in out
    code, out = check("mm/legacy/b.c", cwd=tree)  # named explicitly: still excluded
    assert code == 0 and "0 findings in 0 file(s)" in out
    configure(tree, 'include = ["**/legacy/*.c"]\n')
    code, out = check("mm", cwd=tree)
    assert code == 1 and "mm/legacy/b.c:" in out and "mm/a.c" not in out
    # a path outside the configured directory is not theirs to filter
    (tree.parent / "elsewhere.c").write_text(V1)
    code, out = check("mm/legacy/b.c", str(tree.parent / "elsewhere.c"), cwd=tree)
    assert code == 1 and "mm/legacy/b.c:" in out and "elsewhere.c:" in out


def test_check_baseline_from_config(tree: Path) -> None:
    proc = run_cli("check", "--no-sim", "--write-baseline", "known.json", "mm", cwd=tree)
    assert (
        proc.returncode == 0
        and len(json.loads((tree / "known.json").read_text())["fingerprints"]) == 4
    )
    configure(tree, 'baseline = "known.json"\n')
    code, out = check("mm", cwd=tree)  # found upwards from the operand
    assert code == 0 and "0 findings" in out
    (tree / "empty.json").write_text("[]\n")
    assert check("--baseline", str(tree / "empty.json"), "mm", cwd=tree)[0] == 1  # option wins


def test_packs_from_config_relative_to_it(tree: Path) -> None:
    (tree / "packs").mkdir()
    (tree / "packs" / "local.toml").write_text(
        '[pack]\nname = "local"\nuses = ["mm"]\n\n[[rule]]\nid = "local-uffd-wp"\n'
        'kind = "check-under-lock"\nsummary = "uffd-wp tested without the pte lock"\n'
        'severity = "warning"\nflag = "uffd-wp"\nacts = ["pt-detach"]\n'
        'locks = ["pte_lock", "mmap_lock:write"]\nmessage = "`{expr}` tested without {wanted}"\n'
    )
    configure(tree, 'packs = ["packs/local.toml"]\n')
    code, out = check("a.c", cwd=tree / "mm")
    assert code == 1 and "[local-uffd-wp]" in out and rules_in(out) == []
    code, out = check("--rules", "mm", "a.c", cwd=tree / "mm")  # --rules replaces `packs`
    assert "[local-uffd-wp]" not in out and rules_in(out) == [ANON, UFFD]


# --- `review` and the hook obey it


def test_review_and_hook_follow_the_config(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "linux", files={SOURCE: PRE_SERIES, "mm/legacy/old.c": PRE_SERIES})
    stage(repo, {SOURCE: V1, "mm/legacy/old.c": V1})
    proc = run_cli("review", "--staged", cwd=repo)
    assert proc.returncode == 1 and "mm/legacy/old.c:" in proc.stdout

    configure(repo, f'exclude = ["mm/legacy/"]\ndisable = ["{ANON}"]\n')
    proc = run_cli("review", "--staged", cwd=repo)
    assert proc.returncode == 1 and rules_in(proc.stdout) == [UFFD]
    assert "mm/legacy" not in proc.stdout
    proc = run_cli("hook", "run", cwd=repo)
    assert proc.returncode == 1 and rules_in(proc.stdout) == [UFFD]
    assert "mm/legacy" not in proc.stdout and "introduce 1 finding at" in proc.stdout

    # severities decide what blocks: a note is shown, but passes the default --fail-on
    configure(repo, f'exclude = ["mm/legacy/"]\n[severity]\n{ANON} = "note"\n{UFFD} = "note"\n')
    proc = run_cli("hook", "run", cwd=repo)
    assert proc.returncode == 0 and rules_in(proc.stdout) == [ANON, UFFD]
    assert "note: `userfaultfd_wp(vma)`" in proc.stdout
    assert run_cli("hook", "run", "--fail-on", "note", cwd=repo).returncode == 1

    stage(repo, {SOURCE: FIXED})
    proc = run_cli("hook", "run", cwd=repo)
    assert (proc.returncode, proc.stdout) == (0, "")
