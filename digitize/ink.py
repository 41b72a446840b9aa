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

from ecglens.digitize.grid import GridResult, lightest_channel, normalised_u8
from ecglens.digitize.seg_ink import gate_darkness, resolve

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
    grid_subtracted
        True if the darkness is measured above a model of the grid's own lines
        (``find_ink(..., subtract_grid=True)``).
    trace_model
        The trace-segmentation variant that gated the darkness (:mod:`digitize.seg_ink`),
        None where the network was not used.
    """

    darkness: np.ndarray = dataclasses.field(repr=False)
    mask: np.ndarray = dataclasses.field(repr=False)
    threshold: float
    grid_level: float = float("nan")
    ink_level: float = float("nan")
    capped_at_grid_lines: bool = False
    grid_subtracted: bool = False
    trace_model: str | None = None


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


#: period (mm) over which the grid's line profiles are folded: one major square, 5 minor lines
GRID_PERIOD_MM = 5.0
#: block (mm) along a line family in which one line profile is measured
GRID_BLOCK_MM = 30.0
#: percentile of the darkness along a pixel row (column) of a block taken as its grid level:
#: a grid line runs through the whole block, a trace through part of it
GRID_PERCENTILE = 20.0
#: darkness above the grid model (0-1) at which ink starts (scanner noise stays below it)
GRID_MODEL_LEVEL = 0.08
#: darkness above the grid model (0-1) over which ink goes from 0 to 1
GRID_MODEL_SPAN = 0.3


def _folded_median(profile: np.ndarray, period_px: float, bin_px: float = 0.25) -> np.ndarray:
    """``profile`` (one value per pixel) replaced by the median of its values at the same phase
    of ``period_px`` (phase bins ``bin_px`` wide): a line that repeats every period keeps its
    level, a trace that runs along one pixel row in one period is outvoted by the others."""
    n = len(profile)
    n_bins = max(1, round(period_px / bin_px))
    phase = np.minimum((np.mod(np.arange(n), period_px) / period_px * n_bins).astype(int),
                       n_bins - 1)
    order = np.argsort(phase, kind="stable")
    cuts = np.searchsorted(phase[order], np.arange(n_bins + 1))
    values = profile[order]
    level = np.zeros(n_bins, np.float32)
    for k in range(n_bins):
        if cuts[k + 1] > cuts[k]:
            level[k] = np.median(values[cuts[k]:cuts[k + 1]])
    return level[phase]


def grid_model(raw: np.ndarray, px_per_mm_x: float, px_per_mm_y: float) -> np.ndarray:
    """Darkness (0-1) the grid alone puts at each pixel of a deskewed page.

    The horizontal lines' level at each pixel row is a low percentile of the darkness along
    that row, in blocks of ``GRID_BLOCK_MM``, folded over the ``GRID_PERIOD_MM`` period (the
    median of the rows at the same phase); the vertical lines' likewise down the columns; the
    grid is the darker of the two. ``raw`` is ``(H, W)`` float32 darkness."""
    height, width = raw.shape
    model_h = np.empty_like(raw)
    block = max(16, int(GRID_BLOCK_MM * px_per_mm_x))
    for x0 in range(0, width, block):
        level = np.percentile(raw[:, x0:x0 + block], GRID_PERCENTILE, axis=1)
        model_h[:, x0:x0 + block] = _folded_median(level, GRID_PERIOD_MM * px_per_mm_y)[:, None]
    model_v = np.empty_like(raw)
    block = max(16, int(GRID_BLOCK_MM * px_per_mm_y))
    for y0 in range(0, height, block):
        level = np.percentile(raw[y0:y0 + block], GRID_PERCENTILE, axis=0)
        model_v[y0:y0 + block] = _folded_median(level, GRID_PERIOD_MM * px_per_mm_x)[None, :]
    return np.maximum(model_h, model_v)


def find_ink(image_rgb: np.ndarray, grid: GridResult, cap_at_grid_lines: bool = False,
             subtract_grid: bool = False, trace_model: bool | str | None = None) -> InkResult:
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
    subtract_grid
        Measure the darkness above :func:`grid_model` (the grid's own line profiles) instead of
        above one level for the page: a thin, blurred trace on a low-resolution grey or
        black-and-white scan is lighter than the grid's darkest lines, and a level above those
        loses it (an own-renderer page at 158 dpi with a grey grid: no rows found). Used when
        the other reads find no rows (see ``digitize_image``).
    trace_model
        Gate the darkness with the trace-segmentation network (:mod:`digitize.seg_ink`, an
        issue 22): None (default) follows the environment variable ``ECGLENS_TRACE_MODEL``
        (unset: on, ``gate``; ``0``: off), False/True off/on (``gate``), or a variant name.

    Returns
    -------
    InkResult
    """
    norm = normalised_u8(image_rgb)  # paper ~255
    coloured = grid.grid_colour in ("red", "pink", "orange", "green", "blue")
    # coloured grid lines stay bright in at least one channel; ink is dark in all
    light = lightest_channel(norm) if coloured else cv2.cvtColor(norm, cv2.COLOR_RGB2GRAY)
    if subtract_grid:
        raw = (255 - light).astype(np.float32) * np.float32(1.0 / 255.0)
        above = raw
        if grid.found and np.isfinite(grid.px_per_mm_x) and np.isfinite(grid.px_per_mm_y):
            above = raw - grid_model(raw, grid.px_per_mm_x, grid.px_per_mm_y)
        dark = np.clip((above - GRID_MODEL_LEVEL) * np.float32(1.0 / GRID_MODEL_SPAN), 0.0,
                       1.0).astype(np.float32)
        variant = resolve(trace_model)
        if variant is not None:
            dark = gate_darkness(image_rgb, dark, grid.px_per_mm_x, grid.px_per_mm_y, variant)
        mask = dark > MASK_LEVEL
        log.debug("ink above the grid model: colour=%s, %.2f%% ink", grid.grid_colour,
                  100.0 * float(mask.mean()))
        return InkResult(darkness=dark, mask=mask, threshold=MASK_LEVEL,
                         grid_level=GRID_MODEL_LEVEL,
                         ink_level=GRID_MODEL_LEVEL + GRID_MODEL_SPAN, grid_subtracted=True,
                         trace_model=variant)
    sub = (255 - light[::3, ::3]).astype(np.float32) * np.float32(1.0 / 255.0)
    line_level = _line_level(light, grid.px_per_mm_x) if cap_at_grid_lines else None
    lo, hi = _levels(sub, coloured, line_level)
    # darkness = clip(((255 - light) / 255 - lo) / (hi - lo), 0, 1), one float32 per grey
    # level, looked up (3x faster than the arithmetic on a 300-dpi page)
    gain = np.float32(1.0 / (255.0 * (hi - lo)))
    table = (np.float32(255.0 * (1.0 - lo)) - np.arange(256, dtype=np.float32)) * gain
    dark = cv2.LUT(light, np.clip(table, 0.0, 1.0).astype(np.float32))
    variant = resolve(trace_model)
    if variant is not None:
        dark = gate_darkness(image_rgb, dark, grid.px_per_mm_x, grid.px_per_mm_y, variant)
    mask = dark > MASK_LEVEL
    log.debug("ink: colour=%s levels %.3f..%.3f, %.2f%% ink", grid.grid_colour, lo, hi,
              100.0 * float(mask.mean()))
    return InkResult(darkness=dark, mask=mask, threshold=MASK_LEVEL, grid_level=lo, ink_level=hi,
                     capped_at_grid_lines=cap_at_grid_lines, trace_model=variant)
