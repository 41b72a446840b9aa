"""``ecglens render``: draw a record as a paper ECG with its ground truth."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run_render(args: argparse.Namespace) -> int:
    """Render ``args.record`` to ``args.output`` (+ ``_truth.hea/.dat/.json``); returns 0."""
    from ecglens.core.io import read_record
    from ecglens.synth.distort import apply_profile, get_profile
    from ecglens.synth.render import RenderSettings, render_page, save_page

    get_profile(args.profile)  # fail early, listing the valid profiles
    settings = RenderSettings(
        layout=args.layout, speed_mm_s=float(args.speed), gain_mm_mv=float(args.gain),
        dpi=float(args.dpi), grid=args.grid,
        font=getattr(args, "font", None) or RenderSettings.font,
        label_position=getattr(args, "label_position", None) or RenderSettings.label_position,
    ).validated()
    record = read_record(args.record)
    page = render_page(record, settings)
    page = apply_profile(page, args.profile, seed=int(args.seed))
    out = save_page(page, Path(args.output))
    log.info("wrote %s (%dx%d px, layout %s, profile %s)", out, page.image.shape[1],
             page.image.shape[0], settings.layout, args.profile)
    if not getattr(args, "quiet", False):
        print(f"{out}  {page.image.shape[1]}x{page.image.shape[0]} px  truth: "
              f"{out.with_name(out.stem + '_truth')}.hea/.dat/.json")
    return 0
