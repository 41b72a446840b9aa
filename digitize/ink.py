"""Ink stage: separate trace/text ink from grid and paper.

Darkness is measured after dividing out the paper background (lighting, tint). Coloured grid
lines are dark in only some colour channels, so the ink evidence for a coloured grid is the
darkness of the *lightest* channel (black ink is dark in all three). Grey and black-and-white
grids are neutral like ink, so there the separation is by level: grid lines are lighter than
the trace; the grid level is estimated from the page itself (grid pixels far outnumber ink).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from digitize.grid import GridResult, normalised_u8

log = logging.getLogger(__name__)

#: darkness above which a pixel is ink in the boolean mask
MASK_LEVEL = 0.5
#: least length of the straight lines whose darkness is the grid level (mm)
LINE_LENGTH_MM = 10.0


@dataclass(frozen=True)
class InkResult:
    """Ink evidence for every pixel.

    Attributes
    ----------
    darkness
        ``(H, W)`` float32 in [0, 1]: 1 = certainly trace/text ink, grid and paper ~0.
    mask
        ``(H, W)`` bool, ``darkness > threshold``.
    threshold
        Level of ``darkness`` used for ``mask``.
    grid_level
        Raw darkness of grid lines that was mapped to 0 (diagnostic).
    ink_level
        Raw darkness mapped to 1 (diagnostic).
    capped_at_grid_lines
        True if the grid level was capped by the grid's straight lines (``find_ink``).
    """

    darkness: np.ndarray = dataclasses.field(repr=False)
    mask: np.ndarray = dataclasses.field(repr=False)
    threshold: float
    grid_level: float = float("nan")
    ink_level: float = float("nan")
    capped_at_grid_lines: bool = False


def _levels(raw: np.ndarray, coloured: bool, line_level: float | None = None
            ) -> tuple[float, float]:
    """Darkness of grid lines (-> 0) and of certain ink (-> 1) on this page.

    Paper and grid cover far more of a page than ink (a few %), so a high percentile of the
    darkness over the page is the level of the darkest grid lines; ink is above it. Where ink
    covers more than that (twelve rows of trace at 100 dpi, a faded or absent grid), the
    percentile lands on the trace itself; ``line_level``, when given, the darkness of the
    page's long straight horizontal lines (the grid's), then caps it.
    """
    grid_level = float(np.percentile(raw.ravel(), 93 if not coloured else 90))
    if line_level is not None:
        grid_level = min(grid_level, line_level)
    lo = min(max(grid_level + 0.1, 0.15), 0.65)
    hi = min(lo + 0.3, 0.95)
    return lo, hi


def _line_level(light: np.ndarray, px_per_mm: float) -> float:
    """Darkness (0-1) of the darkest 1 % of a page's pixels that lie on a straight horizontal
    line at least ``LINE_LENGTH_MM`` long: the grid's horizontal lines (a trace, text or noise
    does not stay on one pixel row that long); 1.0 when the scale is unknown."""
    if not (np.isfinite(px_per_mm) and px_per_mm > 0):
        return 1.0
    length = max(5, int(LINE_LENGTH_MM * px_per_mm))
    dark = 255 - light[::3, :]   # every third row: a horizontal line survives in full
    opened = cv2.erode(dark, np.ones((1, length), np.uint8))
    return float(np.percentile(opened[:, ::3], 99)) / 255.0


def find_ink(image_rgb: np.ndarray, grid: GridResult, cap_at_grid_lines: bool = False
             ) -> InkResult:
    """Ink darkness map and mask of a (deskewed) page.

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 RGB.
    grid
        Grid result for this image (its ``grid_colour`` selects the colour rule).
    cap_at_grid_lines
        Take the grid level no higher than the darkness of the page's long straight
        horizontal lines (:func:`_line_level`): for pages on which the usual estimate finds no
        trace rows because ink covers more of the page than grid lines do. Used on every page
        of the seed-0 benchmark it read the scans 0.44 dB better but the clean pages 0.27 dB
        worse (one refused, others moved both ways by several dB), so the pipeline uses it
        only as a second attempt.

    Returns
    -------
    InkResult
    """
    norm = normalised_u8(image_rgb)  # paper ~255
    coloured = grid.grid_colour in ("red", "pink", "orange", "green", "blue")
    if coloured:
        # coloured grid lines stay bright in at least one channel; ink is dark in all
        light = cv2.max(cv2.max(norm[:, :, 0], norm[:, :, 1]), norm[:, :, 2])
    else:
        light = cv2.cvtColor(norm, cv2.COLOR_RGB2GRAY)
    sub = (255 - light[::3, ::3]).astype(np.float32) * np.float32(1.0 / 255.0)
    line_level = _line_level(light, grid.px_per_mm_x) if cap_at_grid_lines else None
    lo, hi = _levels(sub, coloured, line_level)
    # darkness = clip(((255 - light) / 255 - lo) / (hi - lo), 0, 1), one float32 per grey
    # level, looked up (3x faster than the arithmetic on a 300-dpi page)
    gain = np.float32(1.0 / (255.0 * (hi - lo)))
    table = (np.float32(255.0 * (1.0 - lo)) - np.arange(256, dtype=np.float32)) * gain
    dark = cv2.LUT(light, np.clip(table, 0.0, 1.0).astype(np.float32))
    mask = dark > MASK_LEVEL
    log.debug("ink: colour=%s levels %.3f..%.3f, %.2f%% ink", grid.grid_colour, lo, hi,
              100.0 * float(mask.mean()))
    return InkResult(darkness=dark, mask=mask, threshold=MASK_LEVEL, grid_level=lo, ink_level=hi,
                     capped_at_grid_lines=cap_at_grid_lines)
