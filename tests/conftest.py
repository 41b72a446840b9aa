"""Shared fixtures. Real data comes from ``../shared/data`` through :func:`shared_data` only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("ECGLENS_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public ECG data (``../shared/data``); skips the test if absent."""
    path = _shared_data_dir()
    if not (path / "MANIFEST.md").exists():
        pytest.skip(f"shared ECG data not found at {path} (set ECGLENS_SHARED_DATA)")
    return path
