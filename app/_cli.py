"""Sub-commands of the application layer (argparse only; heavy imports inside the commands).

Each command lives in its own ``*_cli`` module of this package and is registered here.
"""

from __future__ import annotations

import argparse

from ecglens.app import archive_cli, report_cli, serve_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the application layer's sub-commands to the ``ecglens`` parser."""
    modules: list = [report_cli, serve_cli, archive_cli]
    for module in modules:
        module.register(subparsers)
