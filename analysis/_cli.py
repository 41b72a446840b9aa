"""Sub-commands of this package (argparse only; heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse

from ecglens.app.args import add_input_options, age_years


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
    parser.add_argument("--age", type=age_years, default=None, help="patient age in years")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    add_input_options(parser)
    parser.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    """``ecglens analyze``: print the text or JSON report; exit 0 (also for 'cannot measure')."""
    import json

    from ecglens.analysis.report import analyze_record
    from ecglens.app.inputs import iter_inputs

    reports = []
    for item in iter_inputs(args.input, page=args.page, start_s=args.start,
                            window_s=args.seconds, upright=args.upright):
        report = analyze_record(item.record, sex=args.sex, age=args.age)
        reports.append((item, report))
        if not args.json:
            if item.n_pages > 1:
                print(f"{item.source} (page {item.page} of {item.n_pages})")
            print(report.to_text())
    if args.json:
        out = [{"source": item.source, "page": item.page, **report.to_dict()}
               for item, report in reports]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=2, ensure_ascii=False,
                         default=str))
    return 0
