"""Third-party rule plugins through the `lockcheck.rules` entry point group."""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PLUGIN = ROOT / "tests" / "plugin_pkg"

IRQ_C = """
static void drain(struct queue *q)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->count = 0;
	spin_unlock(&q->lock);
	spin_lock_irqsave(&q->lock, flags);
	q->count = 1;
	spin_unlock_irqrestore(&q->lock, flags);
}
"""


def _run(
    python: Path | str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **(env or {}))
    full.pop("LOCKCHECK_DEBUG", None)
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, env=full, timeout=300
    )


def _fake_distribution(where: Path, module: str, body: str) -> None:
    """An installed distribution as importlib.metadata finds one: a dist-info directory."""
    info = where / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lockcheck.rules]\nbroken = {module}:register\n")
    (where / f"{module}.py").write_text(body)


def test_plugin_import_error_is_one_line_exit_2(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "broken_rules", "import lockcheck_no_such_module\n")
    res = _run(
        sys.executable, "-m", "lockcheck", "rules", "list", env={"PYTHONPATH": str(tmp_path)}
    )
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "lockcheck: error: rule plugin 'broken' (broken_rules:register) failed to load: "
        "No module named 'lockcheck_no_such_module'"
    ]


def test_plugin_that_registers_a_bad_pack_is_one_line_exit_2(tmp_path: Path) -> None:
    body = (
        "from pathlib import Path\n"
        "def register(registry):\n"
        "    registry.add_pack('halfdone', Path(__file__).with_name('halfdone.toml'))\n"
    )
    _fake_distribution(tmp_path, "halfdone_rules", body)
    (tmp_path / "halfdone.toml").write_text('[[rule]]\nid = "x"\nkind = "nope"\nmessage = "m"\n')
    env = {"PYTHONPATH": str(tmp_path)}
    res = _run(sys.executable, "-m", "lockcheck", "rules", "list", "--rules", "halfdone", env=env)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1
    assert "halfdone.toml: rule[0] (x).kind: unknown kind 'nope'" in lines[0]


def test_pip_installed_plugin_rule_runs(tmp_path: Path) -> None:
    """A real `pip install` of tests/plugin_pkg into a fresh venv, then its rule fires."""
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv))
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # lockcheck and its dependencies come from the environment running the tests
    pth = "".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages())
    Path(purelib.stdout.strip(), "_lockcheck_under_test.pth").write_text(pth)
    # with the build backend at hand (a test extra) the install needs no network
    offline = importlib.util.find_spec("hatchling") is not None
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
    pip += ["--no-build-isolation", "--no-index"] if offline else []
    installed = _run(pip[0], *pip[1:], str(PLUGIN))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    src = tmp_path / "irq.c"
    src.write_text(IRQ_C)
    res = _run(python, "-m", "lockcheck", "check", "--no-sim", "--rules", "demo", str(src))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "irqsave-without-irqrestore" in res.stdout
    assert f"{src}:8:2:" in res.stdout
    assert res.stdout.count("[irqsave-without-irqrestore]") == 1
    shown = _run(
        python, "-m", "lockcheck", "rules", "show", "irqsave-without-irqrestore", "--rules", "demo"
    )
    assert shown.returncode == 0, shown.stderr
    assert "pack: demo" in shown.stdout
    unknown = _run(python, "-m", "lockcheck", "rules", "list", "--rules", "nope")
    assert unknown.returncode == 2
    assert "unknown rule pack 'nope' (known packs: demo, mm)" in unknown.stderr
    where = _run(python, "-c", "import lockcheck_demo_plugin as m; print(m.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout
