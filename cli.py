"""``ecglens`` command line: paper ECG → calibrated 12-lead record → findings.

Each package registers its own sub-commands from a light ``_cli`` module (argparse only);
heavy imports (OpenCV, torch, wfdb) happen inside the command, so ``ecglens --help`` is fast.
Errors of the :class:`ecglens.core.errors.EcglensError` family print one line naming the file and
exit with code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from ecglens import __version__
from ecglens.core import DISCLAIMER

__all__ = ["DISCLAIMER", "__version__", "build_parser", "main"]


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 1, like every other error
    (its sub-command parsers are of the same class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"ecglens: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    from ecglens.analysis import _cli as analysis_cli
    from ecglens.app import _cli as app_cli
    from ecglens.classify import _cli as classify_cli
    from ecglens.digitize import _cli as digitize_cli
    from ecglens.score import _cli as score_cli
    from ecglens.synth import _cli as synth_cli

    parser = OneLineErrorParser(
        prog="ecglens",
        description="Turn paper ECGs into calibrated 12-lead records, and records into findings.",
    )
    parser.add_argument("--version", action="version", version=f"ecglens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (synth_cli, digitize_cli, score_cli, analysis_cli, classify_cli, app_cli):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    Every error prints one line ``ecglens: error: ...`` and gives exit code 1 (130 after
    Ctrl-C or SIGTERM); ``--debug`` shows the traceback instead, and debug logging. Warnings
    of the libraries ecglens calls (PIL, NumPy, ...) go to the log, shown with ``--debug``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # --help, --version (0) or a bad argument (1, one line)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(False)   # re-installs the capture if an earlier call's was undone
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if args.debug else logging.CRITICAL)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
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
    except Exception as exc:  # a bug or a resource problem: one line unless --debug
        if args.debug:
            raise
        text = str(exc).strip().splitlines()
        print(f"ecglens: error: {type(exc).__name__}: {text[0] if text else ''} (run with "
              "--debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_term)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: the page in progress is cleaned up, outputs stay whole."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
