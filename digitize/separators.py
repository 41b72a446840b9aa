"""Lead changes printed on the page: the time axis fitted to the separators.

Most 12-lead printouts mark where one lead's cell gives way to the next on a row: a short
vertical bar through the 0 mV line (ECG-Image-Kit, many carts), dashes above and below it,
or a dotted line over the row's height. Their x is the printed time of the change (2.5 s,
5 s, 7.5 s on a 10-s page), whatever the page's ends show: rows that run on along a grid
line, calibration pulses printed after the trace, or an image cut at its edge move the
axis read from the ends, not the separators.

:func:`separator_profile` measures, per row and column, the thin vertical ink off the read
trace; :func:`fit_separators` finds the start and pitch of the axis whose quarter points
(2.5, 5, 7.5 s) lie on it, and says whether the page's separators decide them.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)

SEPARATOR_BAND_MM = 6.0
"""Half-height of the band around a row's 0 mV line searched for separators (mm); at most
0.45 of the row pitch."""
SEPARATOR_MAX_WIDTH_MM = 1.0
"""Widest stroke (mm, at least 3 px) counted as a separator: wider ink is text or a blot."""
SEPARATOR_LIGHTEST_LEVEL = 0.3
"""Darkness of a pixel's lightest colour channel (0 paper, 1 black) from which it can be a
separator's ink: a separator is printed with the trace's pen, dark in every channel."""
SEPARATOR_MIN_MOVE_MM = 1.0
"""Least move of a lead change (mm; 0.04 s at 25 mm/s) for the fit to replace the axis read
from the rows' ends. Where that axis is right it is right to a fraction of a pixel (ECG-Image-
Kit pages with truth, unwarped: median error 0.12 mm); the separators' centres are not (a bar
drawn a pen's width off the first sample, JPEG blur): on the 13 ECG-Image-Kit pages whose fit
moved every lead change by less than 1 mm the fit cost 7.8 dB in sum (2024 SNR, 0.6 on
average); on the real images such moves changed no grade."""
GRID_SQUARE_MM = 5.0
"""Pitch of a grid's major lines (mm); see :func:`fit_separators`."""
GRID_REPEATS = 4
"""How many whole squares either side of a column :func:`fit_separators` looks for the same
thin ink (a grid line's remnants, on an ECG-Image-Kit wrinkled page every 10 mm)."""
SEPARATOR_MIN_MM = 1.0
"""Thin vertical ink (mm, summed over the band) that shows a separator at a column."""
SEPARATOR_SHIFT_MM = 25.0
"""Farthest the fitted axis start may lie from the one read from the rows' ends (mm: 1 s
at 25 mm/s)."""
SEPARATOR_SCALE = 0.15
"""Largest relative change of the axis pitch the separators may make: a grid's px/mm is
known to a few per cent on photos, and the pitches fitted on the real images lay at 0.99-1.13
of the one their grid's px/mm gives."""
SEPARATOR_FRACTIONS = (0.25, 0.5, 0.75)
CONFIRMED_WEIGHT = 1000
"""A confirmed boundary outweighs any number of rows seen at unconfirmed ones."""


@dataclasses.dataclass(frozen=True)
class SeparatorFit:
    """The axis start and length the separators give (page px), and what decided it.

    ``seen`` counts the (row, boundary) pairs with a separator at the fitted axis,
    ``seen_before`` those at the axis read from the rows' ends, ``confirmed`` the fitted
    boundaries most cell rows confirm, ``n_pairs`` all (row, boundary) pairs; ``strip_seen``
    the fitted boundaries where a rhythm strip (which has no lead changes) shows thin ink.
    ``shift_mm`` and ``scale`` give the fitted start and length against the read axis;
    ``accepted`` says whether the fit replaces it (see :func:`fit_separators`)."""

    x0_px: float
    x1_px: float
    shift_mm: float
    scale: float
    seen: int
    seen_before: int
    confirmed: int
    strip_seen: int
    n_pairs: int
    accepted: bool
    reason: str


def separator_profile(darkness: np.ndarray, trace_mask: np.ndarray,
                      baselines_px: list[float], pitch_px: float, px_per_mm: float,
                      lightest: np.ndarray | None = None, level: float = 0.3) -> np.ndarray:
    """Thin vertical ink off the read traces, per row and column (mm of ink in the band
    around the row's 0 mV line): strokes at most :data:`SEPARATOR_MAX_WIDTH_MM` wide.
    ``trace_mask`` marks the pixels under the read traces (they are not separators).
    ``lightest`` (the page's lightest colour channel, :func:`digitize.grid.lightest_channel`,
    paper ~255) leaves out what is light in any channel: a coloured grid's lines, which
    ``darkness`` may keep at a dark grid's level and which lie every 5 mm."""
    import cv2

    h, w = darkness.shape
    inked = darkness >= level
    if lightest is not None:
        inked &= lightest <= round(255 * (1.0 - SEPARATOR_LIGHTEST_LEVEL))
    ink = (inked & ~trace_mask).astype(np.uint8)
    # a separator's pieces off the trace are narrow strokes or dots; a letter of a lead name
    # printed beside it (an aVR's R, an aVL's L) is a wider piece, its stem included
    _n, labels, stats, _c = cv2.connectedComponentsWithStats(ink, connectivity=8)
    max_width_px = max(3, round(SEPARATOR_MAX_WIDTH_MM * px_per_mm))
    narrow = stats[:, cv2.CC_STAT_WIDTH] <= max_width_px
    narrow[0] = False
    thin = narrow[labels]
    half = min(SEPARATOR_BAND_MM * px_per_mm,
               0.45 * pitch_px if np.isfinite(pitch_px) else SEPARATOR_BAND_MM * px_per_mm)
    out = np.zeros((len(baselines_px), w), dtype=float)
    for i, base in enumerate(baselines_px):
        top, bottom = max(int(base - half), 0), min(int(base + half) + 1, h)
        if bottom > top:
            out[i] = thin[top:bottom].sum(axis=0) / px_per_mm
    return out


def fit_separators(profile: np.ndarray, x0_px: float, x1_px: float, px_per_mm: float,
                   strip_rows: tuple[int, ...] = ()) -> SeparatorFit | None:
    """The axis whose quarter points lie on the page's separators.

    Searches starts within :data:`SEPARATOR_SHIFT_MM` of ``x0_px`` and lengths within
    :data:`SEPARATOR_SCALE` of ``x1_px - x0_px``; a (row, quarter point) pair is seen where
    the profile holds :data:`SEPARATOR_MIN_MM` within a pixel of it, unless the row holds as
    much at two or more whole grid squares along it (:data:`GRID_REPEATS`: a grid's lines).
    Rows in ``strip_rows`` (rhythm strips: no lead changes) rule a column out where they show
    any: QRS complexes line up over every row of a simultaneous printout.
    A boundary is confirmed where most cell rows (at least two) show a separator at it; the
    fit is accepted where it confirms all three, more than the read axis does, and moves a
    lead change by at least :data:`SEPARATOR_MIN_MOVE_MM`. None where there are no cell rows."""
    n_rows, w = profile.shape
    cell_rows = [r for r in range(n_rows) if r not in strip_rows]
    if not cell_rows or x1_px <= x0_px:
        return None
    # a separator's column, within a pixel either way (rounding, a slight slant)
    near = np.maximum(profile, np.maximum(np.roll(profile, 1, axis=1),
                                          np.roll(profile, -1, axis=1)))
    seen_map = near >= SEPARATOR_MIN_MM
    # a rhythm strip has no lead changes: any thin ink it shows at a column (a QRS every row
    # shares, a grid line) rules the column out
    strip_col = (seen_map[list(strip_rows)].any(axis=0) if strip_rows
                 else np.zeros(w, dtype=bool))
    # thin ink with more of it at two or more whole grid squares (5 mm) along its row, up to
    # GRID_REPEATS either side, is what is left of a grid's lines (a JPEG-greyed coloured
    # line keeps its darkness in every channel), not a separator
    repeats = np.zeros(seen_map.shape, dtype=int)
    for k in range(1, GRID_REPEATS + 1):
        step = round(k * GRID_SQUARE_MM * px_per_mm)
        if 0 < step < w:
            repeats[:, step:] += seen_map[:, :-step]
            repeats[:, :-step] += seen_map[:, step:]
    seen_map = seen_map & (repeats < 2)
    # per column: the cell rows that show a separator there, none where the strip shows
    # one too (a QRS column, not a lead change)
    support = np.where(strip_col, 0, seen_map[cell_rows].sum(axis=0))
    need = max(2, (len(cell_rows) + 1) // 2)
    # a boundary is confirmed where most cell rows show a separator at it; confirmed
    # boundaries decide the fit, the rows seen at the others break ties
    value = np.where(support >= need, CONFIRMED_WEIGHT, 0) + support
    span = x1_px - x0_px

    def score(start: np.ndarray, length: np.ndarray) -> np.ndarray:
        total = np.zeros(np.broadcast(start, length).shape, dtype=int)
        for f in SEPARATOR_FRACTIONS:
            col = np.round(start + f * length).astype(int)
            total += np.where((col >= 0) & (col < w), value[np.clip(col, 0, w - 1)], 0)
        return total

    def search(max_scale: float) -> tuple[int, float, float]:
        max_shift = SEPARATOR_SHIFT_MM * px_per_mm
        shifts = np.arange(-np.floor(max_shift), np.floor(max_shift) + 1)
        n_scales = int(np.ceil(max_scale * span / 0.5))   # half a pixel at the far end
        scales = (1.0 + max_scale * np.arange(-n_scales, n_scales + 1) / max(n_scales, 1)
                  if n_scales else np.ones(1))
        grid = score(x0_px + shifts[:, None], span * scales[None, :])
        # ties go to the smallest change of scale, then of start
        key = (grid - 1e-3 * np.abs(scales[None, :] - 1.0) / max(max_scale, 1e-9)
               - 1e-6 * np.abs(shifts[:, None]))
        i, j = np.unravel_index(int(np.argmax(key)), key.shape)
        return int(grid[i, j]), float(shifts[i]), float(scales[j])

    before = int(score(np.asarray(x0_px), np.asarray(span)))
    total, shift, scale = search(SEPARATOR_SCALE)
    pitch_fixed = total // CONFIRMED_WEIGHT < 2
    if pitch_fixed:
        # one confirmed boundary places the axis, it does not measure its pitch
        total, shift, scale = search(0.0)
    start, length = x0_px + shift, span * scale
    fr = np.asarray(SEPARATOR_FRACTIONS)
    cols = np.round(start + fr * length).astype(int)
    inside = (cols >= 0) & (cols < w)
    fr, cols = fr[inside], cols[inside]
    # each confirmed boundary at the centre of its separators' ink (the search only places
    # it within a pixel), then the axis through them
    weight = profile[cell_rows].sum(axis=0)
    at, frac = [], []
    for f, c in zip(fr, cols, strict=True):
        if support[c] >= need or (c > 0 and support[c - 1] >= need) or (
                c + 1 < w and support[c + 1] >= need):
            lo, hi = max(c - 2, 0), min(c + 3, w)
            wts = weight[lo:hi]
            if wts.sum() > 0:
                at.append(float(np.dot(np.arange(lo, hi), wts) / wts.sum()))
                frac.append(float(f))
    if len(at) >= 2 and not pitch_fixed:
        length, start = (float(v) for v in np.polyfit(frac, at, 1))
    elif at:
        start = float(np.mean(np.asarray(at) - length * np.asarray(frac)))
    shift, scale = start - x0_px, length / span
    strip_n = int(strip_col[cols].sum())
    confirmed, confirmed_before = total // CONFIRMED_WEIGHT, before // CONFIRMED_WEIGHT
    n = total % CONFIRMED_WEIGHT
    n_pairs = len(cell_rows) * len(SEPARATOR_FRACTIONS)
    # every boundary must be confirmed (grid remnants and QRS spikes the read trace missed
    # confirm one or two), and a move within what the axis from the ends is right to is none
    moved_mm = float(np.max(np.abs(start + np.asarray(SEPARATOR_FRACTIONS) * length
                                   - (x0_px + np.asarray(SEPARATOR_FRACTIONS) * span))))
    moved_mm /= px_per_mm
    accepted = (confirmed > confirmed_before and confirmed == len(SEPARATOR_FRACTIONS)
                and moved_mm >= SEPARATOR_MIN_MOVE_MM)
    reason = (f"{confirmed} boundaries confirmed by separators on >= {need} rows "
              f"({confirmed_before} at the axis read from the rows' ends), {n} of {n_pairs} "
              f"row boundaries seen; start {shift / px_per_mm:+.1f} mm, pitch x{scale:.3f}, "
              f"lead changes moved up to {moved_mm:.1f} mm")
    if not accepted:
        reason += ": axis kept"
    log.debug("separators: %s", reason)
    return SeparatorFit(x0_px=float(start), x1_px=float(start + length),
                        shift_mm=round(shift / px_per_mm, 2), scale=round(scale, 4), seen=n,
                        seen_before=before % CONFIRMED_WEIGHT, confirmed=confirmed,
                        strip_seen=strip_n, n_pairs=n_pairs,
                        accepted=bool(accepted), reason=reason)
