"""Sub-commands of this package (argparse only; heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to the ``ecglens`` parser."""
