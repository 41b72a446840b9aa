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
    """Darkness of grid lines (-> 0) and of certain ink (-> 1) on this page.

    Paper and grid cover far more of a page than ink (a few %), so a high percentile of the
    darkness over the page is the level of the darkest grid lines; ink is above it.
    """
    sub = raw.ravel()
    grid_level = float(np.percentile(sub, 93 if not coloured else 90))
    lo = min(max(grid_level + 0.1, 0.15), 0.65)
    hi = min(lo + 0.3, 0.95)
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
    norm = normalised_u8(image_rgb)  # paper ~255
    coloured = grid.grid_colour in ("red", "pink", "orange", "green", "blue")
    if coloured:
        # coloured grid lines stay bright in at least one channel; ink is dark in all
        light = np.maximum(np.maximum(norm[:, :, 0], norm[:, :, 1]), norm[:, :, 2])
    else:
        light = cv2.cvtColor(norm, cv2.COLOR_RGB2GRAY)
    sub = (255 - light[::3, ::3]).astype(np.float32) * np.float32(1.0 / 255.0)
    lo, hi = _levels(sub, coloured)
    # darkness = clip(((255 - light) / 255 - lo) / (hi - lo), 0, 1), as one affine map
    gain = np.float32(1.0 / (255.0 * (hi - lo)))
    dark = (np.float32(255.0 * (1.0 - lo)) - light.astype(np.float32)) * gain
    np.clip(dark, 0.0, 1.0, out=dark)
    mask = dark > MASK_LEVEL
    log.debug("ink: colour=%s levels %.3f..%.3f, %.2f%% ink", grid.grid_colour, lo, hi,
              100.0 * float(mask.mean()))
    return InkResult(darkness=dark, mask=mask, threshold=MASK_LEVEL, grid_level=lo, ink_level=hi)
