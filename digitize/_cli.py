"""Sub-command ``digitize`` (argparse only; the work is imported lazily)."""

from __future__ import annotations

import argparse

from ecglens.app.args import add_upright_option, positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``digitize`` sub-command to the ``ecglens`` parser."""
    # ---------------------------------------------------------------- digitize
    digitize = subparsers.add_parser(
        "digitize", help="read scanned/photographed/PDF ECGs into calibrated 12-lead WFDB",
        description="Read each INPUT (PNG, JPEG, BMP, TIFF, PDF; multi-page too) and write "
        "OUTDIR/<stem>.hea/.dat (12 leads, mV, 500 Hz, NaN where not printed), <stem>.json "
        "and <stem>_overlay.png, each page complete or absent, plus OUTDIR/manifest.csv (one "
        "row per page). <stem> is a safe WFDB name made from the input's name (its folder's "
        "name in front where two inputs share a name). A bad page is reported and the others "
        "are read; exit code 1 if any failed. Existing outputs are never replaced without "
        "--overwrite; --resume skips complete pages.",
    )
    digitize.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="image or PDF files, or folders")
    digitize.add_argument("-o", "--outdir", required=True, help="output folder")
    digitize.add_argument("--json", action="store_true", help="print a JSON summary per page")
    digitize.add_argument("--dpi", type=positive_float, default=None,
                          help="DPI of the input if known (PDF pages are rasterised at it; "
                          "by default a scanned page at its image's resolution, others at 300)")
    add_upright_option(digitize)
    digitize.add_argument("--no-overlay", action="store_true", help="skip writing the overlay PNG")
    digitize.add_argument("--overwrite", action="store_true",
                          help="replace outputs that exist (default: such a page fails)")
    digitize.add_argument("--resume", action="store_true",
                          help="skip pages that OUTDIR/manifest.csv lists as complete")
    digitize.set_defaults(func=_run_digitize)


def _run_digitize(args: argparse.Namespace) -> int:
    from ecglens.app.digitize_cli import run_digitize

    return run_digitize(args)
