"""Sub-commands ``render``, ``digitize`` and ``score`` (argparse only; work is imported lazily)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the digitize package's sub-commands to the ``ecglens`` parser."""
    # ---------------------------------------------------------------- render
    render = subparsers.add_parser(
        "render", help="draw an ECG record as a paper ECG (PNG, JPEG or PDF) with ground truth",
        description="Draw a WFDB/CSV/JSON record as a paper ECG. Writes OUT plus OUT's stem + "
        "'_truth.hea/.dat' (exactly what was printed, 500 Hz, NaN where not printed) and "
        "'_truth.json' (page geometry).",
    )
    render.add_argument("record", help="WFDB record (with or without .hea), CSV or JSON")
    render.add_argument("-o", "--output", required=True, help="output image: .png, .jpg or .pdf")
    render.add_argument("--layout", default="3x4+1", help="page layout (default 3x4+1)")
    render.add_argument("--profile", default="clean", help="distortion profile (default clean)")
    render.add_argument("--seed", type=int, default=0, help="random seed for the profile")
    render.add_argument("--speed", type=float, default=25.0, help="paper speed, mm/s (25 or 50)")
    render.add_argument("--gain", type=float, default=10.0, help="gain, mm/mV (5, 10 or 20)")
    render.add_argument("--dpi", type=float, default=200.0, help="resolution (72-600 dpi)")
    render.add_argument("--grid", default="red", help="grid colour (red, pink, orange, green, "
                        "blue, grey, bw, none)")
    render.add_argument("--font", default=None, help="label font (hershey_simplex, "
                        "hershey_duplex, hershey_complex, hershey_triplex, sans, serif, mono, ...)")
    render.add_argument("--label-position", default=None,
                        help="lead label position: top-left, baseline or bottom-left")
    render.set_defaults(func=_run_render)

    # ---------------------------------------------------------------- digitize
    digitize = subparsers.add_parser(
        "digitize", help="read scanned/photographed/PDF ECGs into calibrated 12-lead WFDB",
        description="Read each INPUT (PNG, JPEG, BMP, TIFF, PDF; multi-page too) and write "
        "OUTDIR/<stem>.hea/.dat (12 leads, mV, 500 Hz, NaN where not printed), <stem>.json "
        "and <stem>_overlay.png. A bad file is reported and skipped; exit code 1 if any failed.",
    )
    digitize.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="image or PDF files, or folders")
    digitize.add_argument("-o", "--outdir", required=True, help="output folder")
    digitize.add_argument("--json", action="store_true", help="print a JSON summary per page")
    digitize.add_argument("--dpi", type=float, default=None,
                          help="DPI of the input if known (PDF pages are rasterised at it; "
                          "by default a scanned page at its image's resolution, others at 300)")
    digitize.add_argument("--no-overlay", action="store_true", help="skip writing the overlay PNG")
    digitize.set_defaults(func=_run_digitize)

    # ---------------------------------------------------------------- score
    score = subparsers.add_parser(
        "score", help="compare read records with the truth (Challenge-2024 SNR, r, RMSE)",
        description="For each truth record in TRUTH_DIR (files *_truth.hea or any .hea), find the "
        "read record of the same stem in READ_DIR and score every printed lead. Writes a table "
        "per profile and layout (markdown) and, with --out, JSON.",
    )
    score.add_argument("truth_dir", help="folder of truth records (from `ecglens render` or the "
                       "benchmark set)")
    score.add_argument("read_dir", help="folder of read records (from `ecglens digitize`)")
    score.add_argument("--out", default=None, help="write score.json and score.md into this folder")
    score.add_argument("--no-shift", action="store_true",
                       help="score without the 0.5 s/1 mV alignment")
    score.set_defaults(func=_run_score)


def _run_render(args: argparse.Namespace) -> int:
    from ecglens.synth.render_cli import run_render

    return run_render(args)


def _run_digitize(args: argparse.Namespace) -> int:
    from ecglens.digitize.pipeline_cli import run_digitize

    return run_digitize(args)


def _run_score(args: argparse.Namespace) -> int:
    from ecglens.score.scoring import run_score

    return run_score(args)
