"""Shared fixtures. Real data comes from ``../shared/data`` through :func:`shared_data` only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("ECGLENS_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


REQUIRE_DATA_ENV = "ECGLENS_REQUIRE_DATA"
"""Set (to anything but empty or 0) by ``.ci/run``: missing shared data fails instead of
skipping, so CI cannot go green with the real-data tests silently skipped."""


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public ECG data (``../shared/data``).

    Absent, the test is skipped with a message for a newcomer, or fails where
    ``ECGLENS_REQUIRE_DATA`` is set (CI).
    """
    path = _shared_data_dir()
    if not (path / "MANIFEST.md").exists():
        message = (f"shared ECG data not found at {path} (set ECGLENS_SHARED_DATA to the folder "
                   "holding MANIFEST.md)")
        if os.environ.get(REQUIRE_DATA_ENV, "") not in ("", "0"):
            pytest.fail(f"{message}; {REQUIRE_DATA_ENV} is set, so this is an error")
        pytest.skip(message)
    return path
