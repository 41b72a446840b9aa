"""ruff and mypy over the installed ``ecglens`` packages (run by CI through the test command)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "digitize", "analysis", "classify", "synth", "score", "app")
MODULES = ("__init__.py", "cli.py")


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        if os.environ.get("ECGLENS_REQUIRE_DATA", "") not in ("", "0"):
            pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_is_clean() -> None:
    out = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean(tmp_path: Path) -> None:
    """mypy sees the repository root as the package ``ecglens`` through a link named so (the
    root is installed under that name by ``package-dir``; the checkout's folder may be named
    anything)."""
    link = tmp_path / "ecglens"
    link.symlink_to(REPO, target_is_directory=True)
    targets = [f"ecglens/{name}" for name in (*PACKAGES, *MODULES)]
    out = subprocess.run([_tool("mypy"), "--config-file", str(REPO / "pyproject.toml"),
                          "--cache-dir", str(tmp_path / "cache"), *targets], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
