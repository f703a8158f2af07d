"""Shared test helpers: the CLI as a subprocess, fixtures, the kernel corpus."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
KERNEL_TARBALL = Path(
    os.environ.get("LOCKCHECK_KERNEL_TARBALL", "/usr/src/linux-source-6.1.tar.xz")
)
KERNEL_CACHE = ROOT / ".cache" / "linux-source-6.1"
# What the tests read from the corpus: mm/ and the headers it includes.
KERNEL_MEMBERS = ("mm/", "include/linux/")
# The current LTS (Debian's linux-source-6.12): the same members.
KERNEL_612_TARBALL = Path(
    os.environ.get("LOCKCHECK_KERNEL_612_TARBALL", "/usr/src/linux-source-6.12.tar.xz")
)
KERNEL_612_CACHE = ROOT / ".cache" / "linux-source-6.12"


def run_cli(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m lockcheck ARGS` the way a user would."""
    env = dict(os.environ)
    env.pop("LOCKCHECK_DEBUG", None)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "lockcheck", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        input=stdin.decode() if stdin is not None else None,
        env=env,
        timeout=600,
    )


def _extract_kernel(
    tarball: Path = KERNEL_TARBALL, cache: Path = KERNEL_CACHE, prefix: str = "linux-source-6.1/"
) -> Path | None:
    done = cache / ".extracted"
    if done.exists():
        return cache
    if not tarball.is_file():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        members = []
        for m in tar:
            name = m.name[len(prefix) :] if m.name.startswith(prefix) else m.name
            if any(name.startswith(p) for p in KERNEL_MEMBERS) and (m.isfile() or m.isdir()):
                m.name = name
                members.append(m)
        tar.extractall(cache, members=members, filter="data")
    done.touch()
    return cache


@pytest.fixture(scope="session")
def kernel_tree() -> Path:
    """Debian's linux-source-6.1 (mm/ and include/linux/), extracted once."""
    tree = _extract_kernel()
    if tree is None:
        pytest.skip(f"kernel corpus absent: {KERNEL_TARBALL} (apt-get install linux-source-6.1)")
    return tree


@pytest.fixture(scope="session")
def kernel_tree_6_12() -> Path:
    """Debian's linux-source-6.12 (mm/ and include/linux/), extracted once."""
    tree = _extract_kernel(KERNEL_612_TARBALL, KERNEL_612_CACHE, "linux-source-6.12/")
    if tree is None:
        pytest.skip(
            f"kernel corpus absent: {KERNEL_612_TARBALL} (apt-get install linux-source-6.12)"
        )
    return tree
