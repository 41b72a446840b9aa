"""Sub-command ``render`` (argparse only; the work is imported lazily)."""

from __future__ import annotations

import argparse

from ecglens.app.args import non_negative_int, positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` sub-command to the ``ecglens`` parser."""
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
    render.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed for the profile (an integer >= 0)")
    render.add_argument("--speed", type=positive_float, default=25.0,
                        help="paper speed, mm/s (25 or 50)")
    render.add_argument("--gain", type=positive_float, default=10.0,
                        help="gain, mm/mV (5, 10 or 20)")
    render.add_argument("--dpi", type=positive_float, default=200.0,
                        help="resolution (72-600 dpi)")
    render.add_argument("--grid", default="red", help="grid colour (red, pink, orange, green, "
                        "blue, grey, bw, none)")
    render.add_argument("--font", default=None, help="label font (hershey_simplex, "
                        "hershey_duplex, hershey_complex, hershey_triplex, sans, serif, mono, ...)")
    render.add_argument("--label-position", default=None,
                        help="lead label position: top-left, baseline or bottom-left")
    render.set_defaults(func=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from ecglens.synth.render_cli import run_render

    return run_render(args)
