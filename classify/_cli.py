"""Sub-commands of this package (argparse only; heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ecglens.app.args import add_input_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to the ``ecglens`` parser."""
    p = subparsers.add_parser(
        "classify", help="PTB-XL superclass probabilities (NORM, MI, STTC, CD, HYP) of a record "
        "or a paper ECG, and AAMI labels of the lead-II beats",
        description="Classify a WFDB/CSV/JSON record or an image/PDF of a paper ECG (read by "
        "`ecglens digitize` first) with the committed 1-D CNN: per-class probabilities, the "
        "decision thresholds (max F1 on PTB-XL fold 9), the model version and the disclaimer. "
        "Beats of lead II (a page's rhythm strip) are labelled N/S/V/F/Q.",
    )
    p.add_argument("input", metavar="INPUT", help="WFDB (.hea), CSV, JSON, PNG/JPEG/... or PDF")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--saliency", metavar="OUT.png", default=None,
                   help="write an integrated-gradient saliency plot for the most probable "
                   "class (for a page also OUT_overlay.png on the digitizer's overlay)")
    p.add_argument("--no-beats", action="store_true", help="skip the beat labels")
    add_input_options(p)
    p.set_defaults(func=_run_classify)


def _run_classify(args: argparse.Namespace) -> int:
    import json

    reports = classify_input(Path(args.input), saliency_png=args.saliency,
                             beats=not args.no_beats, page=args.page,
                             start_s=args.start, window_s=args.seconds, upright=args.upright)
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=1))
        return 0
    for rep in reports:
        print(f"{rep['source']}" + (f" (page {rep['page']})" if rep.get("page") else ""))
        print(f"  model {rep['model_version']}")
        if rep.get("assessable") is False:
            # the measurability gate refused the record: no probability becomes a decision
            print(f"  {rep['reason']}")
            print("  no class decision (no probabilities are reported for this record)")
        else:
            print("  class  probability  threshold  decision")
            for c in rep["classes"]:
                flag = "POSITIVE" if c in rep["positive"] else "-"
                print(f"  {c:<5}  {rep['probabilities'][c]:11.3f}  "
                      f"{rep['thresholds'][c]:9.3f}  {flag}")
        beats = rep.get("beats")
        if beats and beats.get("counts"):
            counts = ", ".join(f"{k} {v}" for k, v in beats["counts"].items() if v)
            print(f"  beats (lead {beats['lead']}, {beats['duration_s']:.1f} s): {counts}")
        for warning in rep.get("warnings", []):
            print(f"  warning: {warning}")
        for path in rep.get("saliency_png", []):
            print(f"  saliency: {path}")
        print(f"  {rep['disclaimer']}")
    return 0


def classify_input(path: Path, saliency_png: str | Path | None = None, beats: bool = True,
                   page: int | None = None, start_s: float = 0.0, window_s: float = 300.0,
                   upright: bool = False) -> list[dict[str, Any]]:
    """Classify a record file or every page (or page ``page``) of an image/PDF
    (``upright``: its pages are upright as given)."""
    from ecglens.app.inputs import iter_inputs
    from ecglens.classify.report import classify_one

    out = []
    for item in iter_inputs(path, page=page, start_s=start_s, window_s=window_s,
                            upright=upright):
        multi = item.n_pages > 1
        out.append(classify_one(item.record, item.source, item.page if multi else None,
                                saliency_png, digitized=item.digitized, beats=beats))
    return out
