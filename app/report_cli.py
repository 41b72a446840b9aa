"""``ecglens report``: the one-page PDF report of one ECG (argparse only; heavy imports inside)."""

from __future__ import annotations

import argparse

from ecglens.app.args import add_upright_option, page_number

MAX_AGE_Y = 130.0


def _age(text: str) -> float:
    """Age in years, 0 to 130."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= MAX_AGE_Y:
        raise argparse.ArgumentTypeError(f"expected an age in years (0-{MAX_AGE_Y:g}), "
                                         f"got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``ecglens`` parser."""
    p = subparsers.add_parser(
        "report", help="one-page PDF report of a record or a paper ECG page, for a clinician",
        description="Write a one-page A4 PDF: the 12 leads re-plotted on ECG grid paper "
        "(25 mm/s, 10 mm/mV, 3x4 + lead II rhythm strip, at true scale), intervals, the ST "
        "table, the STEMI statement with the rules that fired, class probabilities with their "
        "decisions, warnings, for a paper input the page with what was read, provenance and the "
        "disclaimer. INPUT is a WFDB record, a CSV or JSON record, or an image/PDF (digitized "
        "first).")
    p.add_argument("input", metavar="INPUT", help="WFDB record (.hea), CSV, JSON, image or PDF")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pdf",
                   help="the PDF to write (replaced if it exists; never left half-written)")
    p.add_argument("--page", type=page_number, default=None, metavar="N",
                   help="page N of a multi-page PDF/TIFF (required when it has several)")
    p.add_argument("--sex", choices=["M", "F"], type=str.upper, default=None,
                   help="patient sex (sets the V2-V3 threshold; default: from the record)")
    p.add_argument("--age", type=_age, default=None, metavar="Y", help="patient age in years")
    add_upright_option(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Build the report; print its path (unless ``--quiet``)."""
    from ecglens.app.report import build_report_pdf

    out = build_report_pdf(args.input, args.output, page=args.page, sex=args.sex, age=args.age,
                           upright=args.upright)
    if not getattr(args, "quiet", False):
        print(f"report: {out}")
    return 0
