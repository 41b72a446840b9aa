"""``ecglens`` command line: paper ECG → calibrated 12-lead record → findings.

Each package registers its own sub-commands from a light ``_cli`` module (argparse only);
heavy imports (OpenCV, torch, wfdb) happen inside the command, so ``ecglens --help`` is fast.
Errors of the :class:`ecglens.core.errors.EcglensError` family print one line naming the file and
exit with code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ecglens import __version__
from ecglens.core import DISCLAIMER

__all__ = ["DISCLAIMER", "__version__", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    from ecglens.analysis import _cli as analysis_cli
    from ecglens.classify import _cli as classify_cli
    from ecglens.digitize import _cli as digitize_cli

    parser = argparse.ArgumentParser(
        prog="ecglens",
        description="Turn paper ECGs into calibrated 12-lead records, and records into findings.",
    )
    parser.add_argument("--version", action="version", version=f"ecglens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (digitize_cli, analysis_cli, classify_cli):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from ecglens.core.errors import EcglensError

    try:
        return int(args.func(args) or 0)
    except EcglensError as exc:
        if args.debug:
            raise
        print(f"ecglens: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ecglens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
