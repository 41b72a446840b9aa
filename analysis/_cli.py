"""Sub-commands of this package (argparse only; heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pdf"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to the ``ecglens`` parser."""
    parser = subparsers.add_parser(
        "analyze",
        help="intervals, ST per lead and STEMI rules for a record or a paper ECG",
        description="Measure intervals and the ST level of every lead and apply the STEMI rules "
                    "of the Fourth Universal Definition of MI. INPUT is a WFDB record, a CSV or "
                    "JSON record, or an image/PDF (digitized first).",
    )
    parser.add_argument("input", metavar="INPUT",
                        help="WFDB record (.hea), CSV, JSON, image or PDF")
    parser.add_argument("--sex", choices=["M", "F"], type=str.upper, default=None,
                        help="patient sex (sets the V2–V3 threshold; default: from the record)")
    parser.add_argument("--age", type=float, default=None, help="patient age in years")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.set_defaults(func=run_analyze)


def _load(path: str):  # -> ECGRecord
    from pathlib import Path

    from digitize.errors import InputError

    p = Path(path)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        if not p.exists():
            raise InputError("no such file", p)
        try:
            from digitize.pipeline import digitize_file  # type: ignore[import-not-found]
        except ImportError as exc:
            raise InputError("reading paper ECGs needs digitize.pipeline, which is not "
                             f"available in this installation ({exc})", p) from exc
        results = digitize_file(p)
        if not isinstance(results, list | tuple):
            results = [results]
        if not results:
            raise InputError("no ECG found on this page", p)
        if len(results) > 1:
            import logging
            logging.getLogger(__name__).warning("%s: %d pages; analysing the first", p,
                                                len(results))
        return results[0].record
    from digitize.io import read_record

    return read_record(p)


def run_analyze(args: argparse.Namespace) -> int:
    """``ecglens analyze``: print the text or JSON report; exit 0 (also for 'cannot measure')."""
    import json

    from analysis.report import analyze_record

    record = _load(args.input)
    report = analyze_record(record, sex=args.sex, age=args.age)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(report.to_text())
    return 0
