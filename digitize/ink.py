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

import numpy as np

from digitize.grid import GridResult, normalised_darkness

log = logging.getLogger(__name__)

#: darkness above which a pixel is ink in the boolean mask
MASK_LEVEL = 0.5


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
    """

    darkness: np.ndarray = dataclasses.field(repr=False)
    mask: np.ndarray = dataclasses.field(repr=False)
    threshold: float
    grid_level: float = float("nan")
    ink_level: float = float("nan")


def _levels(raw: np.ndarray, coloured: bool) -> tuple[float, float]:
    """Darkness of grid lines (-> 0) and of certain ink (-> 1) on this page."""
    sub = raw[::3, ::3].ravel()
    nonpaper = sub[sub > 0.04]
    if nonpaper.size < 50:
        return 0.15, 0.5
    grid_level = float(np.percentile(nonpaper, 80 if not coloured else 90))
    ink_ref = float(np.percentile(nonpaper, 99.5))
    lo = min(max(grid_level + 0.05, 0.12), 0.6)
    hi = max(lo + 0.15, min(0.85, 0.5 * (lo + ink_ref)))
    return lo, hi


def find_ink(image_rgb: np.ndarray, grid: GridResult) -> InkResult:
    """Ink darkness map and mask of a (deskewed) page.

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 RGB.
    grid
        Grid result for this image (its ``grid_colour`` selects the colour rule).

    Returns
    -------
    InkResult
    """
    d_r, d_g, d_b = normalised_darkness(image_rgb)
    coloured = grid.grid_colour in ("red", "pink", "orange", "green", "blue")
    if coloured:
        raw = np.minimum(np.minimum(d_r, d_g), d_b)
    else:
        raw = (d_r + d_g + d_b) * np.float32(1.0 / 3.0)
    lo, hi = _levels(raw, coloured)
    dark = np.clip((raw - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
    dark = dark.astype(np.float32, copy=False)
    mask = dark > MASK_LEVEL
    log.debug("ink: colour=%s levels %.3f..%.3f, %.2f%% ink", grid.grid_colour, lo, hi,
              100.0 * float(mask.mean()))
    return InkResult(darkness=dark, mask=mask, threshold=MASK_LEVEL, grid_level=lo, ink_level=hi)
