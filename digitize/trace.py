"""Trace extraction: one continuity-weighted path per printed row, read to sub-pixel rows.

For each row a Viterbi path runs over the pixel rows of a search band (wider than the row, so
QRS complexes that reach into the neighbouring row stay with their own trace). The cost of a
column is the lack of ink under the path; the cost of moving between columns is small along
ink (steep QRS strokes are drawn ink) and large across blank paper, so the path follows its
own trace and never jumps to text, ticks or another row unless its own trace is gone. Pixels
of text boxes and calibration pulses can be masked out beforehand.

The path only says *which* ink run a column's signal is in (where it misses the ink, e.g.
beside a thin spike's tip, the run joined to its neighbour's run is taken). The value is then
read from that run: a short run (flat trace) gives its darkness-weighted centroid; a tall run
(steep segment) is read from where the trace enters and leaves the column — both at the same
end → a peak, whose tip is the far edge of the run less half a line width (QRS peaks are
kept, not flattened); opposite ends → a stroke, read at its middle; neither → another trace crosses
here, read near the row's own path and flagged. Where the strokes of two rows merge into
one run (neighbouring QRS complexes at 20 mm/mV), the ink cannot say which part is whose:
those columns are left NaN (``RowTrace.overlapped``), not guessed. A sub-column fit of a pen
model to the runs' edges then gives two samples per column; a tip the column reading found is
kept where that fit's smoothing pulled it short.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)

FILL_NEAR_APEX = False
ERODE = False
REFINE = True
OVERLAP_NAN = True
"""Leave columns NaN where a row's ink run is also another row's and neither row's line is
seen passing straight through (QRS complexes of neighbouring rows merged into one stroke,
at 20 mm/mV or on crowded pages): which part is whose cannot be told from the ink, so
nothing is read there rather than a guess. Where one row's flat line does cross the other's
stroke, the stroke's row reads it as usual."""
BRIDGE_NAN = True
"""…and the row whose flat line crosses a foreign stroke is left NaN there too, rather than
interpolated straight across (on 30 benchmark pages at 20 mm/mV: 15.0 dB vs 14.6 dB)."""
BRIDGE_THROUGH = 1.0
"""A row's line is read straight across a stroke another row claims only where the stroke
reaches past the line on both sides by this × the line width (0 to bridge regardless). A
narrow R spike of the row's own (one or two columns wide at 25 mm/s and ~140 dpi) had been
bridged as if a foreign stroke crossed, and the neighbour, whose S wave merged with it, read
the spike down to this row's line as its own (V3 of an own render: −1.5 mV for −0.65)."""
OVERLAP_PAD_MM = 0.5
"""…and this far on either side of such columns, where the path is often already on the
neighbour's stroke (chosen on the seed-0 benchmark: 0.5 and 1 mm gave the same SNR, 0.5
keeps more of the trace). Without the rule: 9.5 dB on those 30 pages."""


@dataclasses.dataclass(frozen=True)
class RowTrace:
    """The trace read in one row.

    Attributes
    ----------
    row
        Row index (top to bottom).
    x_px
        Column coordinates (deskewed page pixels), one per read column.
    y_px
        Sub-pixel row coordinate of the signal per column; NaN where the trace was lost.
    shared
        True where the column's ink run is shared with another trace (crossing).
    confidence
        Fraction of columns read cleanly (not lost, not shared), in [0, 1].
    line_width_px
        Estimated stroke width of the trace.
    fine_x_px, fine_y_px
        The same trace at ``SUBSAMPLES`` points per column (see :func:`refine_envelope`):
        the signal between and within columns, which a steep QRS stroke or a narrow spike
        needs. NaN where ``y_px`` is NaN; ``None`` when not computed.
    overlapped
        True on columns left unread (NaN) because the ink there is shared with another
        row's trace (see ``OVERLAP_NAN``); ``None`` when not computed.
    """

    row: int
    x_px: np.ndarray
    y_px: np.ndarray
    shared: np.ndarray
    confidence: float
    line_width_px: float
    fine_x_px: np.ndarray | None = None
    fine_y_px: np.ndarray | None = None
    overlapped: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class TraceResult:
    """Traces of all rows plus the parameters used."""

    rows: tuple[RowTrace, ...]
    ink_threshold: float
    line_width_px: float
    network_runs: bool = False
    """Whether the segmentation network raised faint trace pixels into the runs
    (:func:`digitize.seg_ink.trace_stage_ink`)."""
    row_trace_coverage: tuple[float, ...] | None = None
    """Per row, the share of its columns where the network sees trace near its centre
    (:func:`digitize.seg_ink.row_trace_coverage`); None without the network."""


def _band_stack(darkness: np.ndarray, centres: np.ndarray, half_px: int, x0: int,
                x1: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_rows, n_cols, band) darkness slices around each row centre (zero outside the page)."""
    height = darkness.shape[0]
    tops = np.round(centres).astype(int) - half_px
    band = 2 * half_px + 1
    out = np.zeros((len(centres), x1 - x0, band), dtype=np.float32)
    for k, top in enumerate(tops):
        lo, hi = max(top, 0), min(top + band, height)
        if hi > lo:
            out[k, :, lo - top:hi - top] = darkness[lo:hi, x0:x1].T
    return out, tops


def viterbi_paths(bands: np.ndarray, start_px: np.ndarray, px_per_mm: float,
                  start_col: np.ndarray | None = None, dead_px: float = np.inf,
                  full_ink: float = 1.0) -> np.ndarray:
    """Continuity-weighted best path through each band.

    Parameters
    ----------
    bands
        ``(n_rows, n_cols, band_px)`` darkness in [0, 1].
    start_px
        ``(n_rows,)`` expected position (band pixel) at the start: a weak prior.
    px_per_mm
        Vertical scale, which sets the jump costs per mm.
    start_col
        ``(n_rows,)`` first column of each row (columns before it are free).
    dead_px
        Distance from the start position beyond which staying costs much more (a trace
        spends little time far from its own row; this keeps a path off a neighbouring row).
    full_ink
        Darkness that counts as fully inked when the path climbs between columns (1: the
        climb costs ``1 - darkness`` per pixel; lower on pages whose steep strokes are
        printed lighter than their flat trace, see :func:`stroke_contrast`).

    Returns
    -------
    ``(n_rows, n_cols)`` int path positions (band pixels).
    """
    n_rows, n_cols, band = bands.shape
    y = np.arange(band, dtype=np.float32)
    gap_cost = np.float32(0.6 / px_per_mm)      # per px of blank paper crossed between columns
    move_cost = np.float32(0.015 / px_per_mm)   # per px of any vertical move
    prior_cost = np.float32(0.002 / px_per_mm)  # per px from the start position, per column
    out_cost = np.float32(0.05 / px_per_mm)     # per px beyond ``dead_px``, per column
    offset = np.abs(y[None, :] - start_px[:, None].astype(np.float32))
    prior = prior_cost * offset + out_cost * np.maximum(offset - dead_px, 0)
    if start_col is None:
        start_col = np.zeros(n_rows, dtype=int)
    # moving from y' to y into column x costs |climb[x, y] - climb[x, y']|: the cumulative
    # cost of the pixels between (blank paper in both this and the previous column is dear)
    # (built column-major, the order the passes below read them in)
    by_col = bands.transpose(1, 0, 2)
    climb = np.empty((n_cols, n_rows, band), np.float32)
    climb[0] = by_col[0]
    np.maximum(by_col[1:], by_col[:-1], out=climb[1:])
    if full_ink < 1.0:
        climb *= np.float32(1.0 / full_ink)
        np.minimum(climb, np.float32(1.0), out=climb)
    climb *= -gap_cost
    climb += gap_cost + move_cost
    np.cumsum(climb, axis=2, out=climb)
    emission = np.empty_like(climb)
    np.subtract(np.float32(0.45), by_col, out=emission)
    emission /= np.float32(0.3)
    np.clip(emission, 0.0, 1.0, out=emission)
    emission += prior[None]
    for k in range(n_rows):
        emission[:start_col[k], k] = 50 * prior[k]
    # forward pass: the min over y' of cost(y') + |climb(y) - climb(y')| as two running
    # minima (y' <= y and y' >= y); the cost entering each column is kept, and the path's
    # predecessors are found again on the way back (cheaper than tracking arg-minima)
    # entering[x]: the best cost of each position after columns < x (entering[0]: the start)
    entering = np.empty((n_cols + 1, n_rows, band), np.float32)
    entering[0] = np.clip((0.45 - bands[:, 0, :]) / 0.3, 0.0, 1.0) + 50 * prior
    both = np.empty((2, n_rows, band), np.float32)
    below = np.empty((n_rows, band), np.float32)
    above = np.empty_like(below)
    for x in range(n_cols):
        cost, c, nxt = entering[x], climb[x], entering[x + 1]
        np.subtract(cost, c, out=both[0])
        np.add(cost[:, ::-1], c[:, ::-1], out=both[1])
        np.minimum.accumulate(both, axis=2, out=both)
        np.add(both[0], c, out=below)
        np.subtract(both[1, :, ::-1], c, out=above)
        np.minimum(below, above, out=nxt)
        nxt += emission[x]
        if x % RENORMALISE_EVERY == 0:
            # keep float32 costs small (their differences are what counts)
            nxt -= nxt.min(axis=1, keepdims=True)
    cost = entering[n_cols]
    path = np.empty((n_rows, n_cols), dtype=np.int32)
    path[:, -1] = np.argmin(cost, axis=1)
    rows = np.arange(n_rows)
    for x in range(n_cols - 1, 0, -1):
        c = climb[x]
        step = np.abs(c - c[rows, path[:, x]][:, None])
        path[:, x - 1] = np.argmin(entering[x] + step, axis=1)
    return path


MAX_EXCURSION_MV = 4.0
"""Largest deflection from a row's 0 mV line the path search allows for (a QRS beyond ±4 mV
is exceedingly rare); with the gain known from the pulses this sets the search band."""

RENORMALISE_EVERY = 8
"""Columns between subtractions of the running minimum from the Viterbi costs."""

FAINT_STROKE_RATIO = 0.7
"""A page whose steep strokes are printed lighter than this × its flat trace (median
darkness under the path; :func:`stroke_contrast`) has its path searched again with
``full_ink`` at the strokes' darkness (at least :data:`FAINT_STROKE_FULL_INK`). Thermal
printers draw fast strokes lighter: on four real phone photos the ratio is 0.54-0.68 and
the path cut their tall R spikes at a third of their height. Of the 240 seed-0 benchmark
pages it runs on one, a faint 110-dpi scan (3.39 -> 5.77 dB); a sample of 30 others read
0.72-1.2. A lower climb cost on every page followed the photos' spikes but
cost 0.5 dB on the clean benchmark."""
FAINT_STROKE_FULL_INK = 0.4
"""Lowest darkness counted as full ink on such a page."""
VITERBI_PX_PER_MM = 6.0
"""Vertical resolution the path search runs at: bands finer than this are max-pooled first
(the path only picks the ink run; the value is read at full resolution)."""


def _coarse_viterbi(bands: np.ndarray, start_px: np.ndarray, px_per_mm: float,
                    start_col: np.ndarray, dead_px: float, full_ink: float = 1.0) -> np.ndarray:
    """:func:`viterbi_paths` on bands max-pooled vertically by ``px_per_mm / 6`` (to the
    nearest integer), mapped back to full resolution: in each column the darkest pixel of
    the pooled cell the path is in."""
    factor = round(px_per_mm / VITERBI_PX_PER_MM)
    if factor < 2:
        return viterbi_paths(bands, start_px, px_per_mm, start_col=start_col, dead_px=dead_px,
                             full_ink=full_ink)
    n_rows, n_cols, band = bands.shape
    n_cells = band // factor
    cells = bands[:, :, :n_cells * factor].reshape(n_rows, n_cols, n_cells, factor)
    pooled = cells[..., 0].copy()
    for offset in range(1, factor):     # (a max over a short last axis is slow in numpy)
        np.maximum(pooled, cells[..., offset], out=pooled)
    coarse = viterbi_paths(pooled, start_px / factor, px_per_mm / factor, start_col=start_col,
                           dead_px=dead_px / factor, full_ink=full_ink)
    rows = np.arange(n_rows)[:, None]
    cols = np.arange(n_cols)[None, :]
    within = np.argmax(cells[rows, cols, coarse], axis=2)
    return (coarse * factor + within).astype(np.int32)


def stroke_contrast(bands: np.ndarray, path: np.ndarray) -> tuple[float, float]:
    """Median darkness of a page's steep strokes and of its flat trace, under ``path``.

    Flat: columns where the path moves at most 1 px to either side (the darkness at the
    path). Steep: columns where it moves 3 px or more from the previous one (the median
    darkness along that move, the darker of the two columns per pixel). NaN where none."""
    n_rows, n_cols, band = bands.shape
    flat, steep = [], []
    cols = np.arange(n_cols)
    levels = np.arange(band)
    for k in range(n_rows):
        y = path[k].astype(np.int64)
        under = bands[k, cols, y]
        step = np.abs(np.diff(y))
        left, right = np.r_[0, step], np.r_[step, 0]
        flat.append(under[(left <= 1) & (right <= 1) & (under > 0)])
        xs = np.flatnonzero(left >= 3)
        if len(xs):
            lo = np.minimum(y[xs - 1], y[xs])[:, None]
            hi = np.maximum(y[xs - 1], y[xs])[:, None]
            move = np.maximum(bands[k, xs], bands[k, xs - 1]).astype(np.float64)
            move[(levels < lo) | (levels > hi)] = np.nan
            steep.append(np.nanmedian(move, axis=1))
    flat_all = np.concatenate(flat) if flat else np.array([])
    steep_all = np.concatenate(steep) if steep else np.array([])
    return (float(np.median(steep_all)) if len(steep_all) else float("nan"),
            float(np.median(flat_all)) if len(flat_all) else float("nan"))


RUN_LEVEL = 0.35
"""Darkness at which a pixel counts into a column's ink run (:func:`extract_traces`)."""

STROKE_GAP_PX = 4
"""Longest gap (px) in a column's ink run that is bridged where a neighbouring column is inked
at the same height (:func:`bridge_stroke_gaps`). Mean 2024 SNR with 0 / 2 / 4 / 6 px on
every 4th ECG-Image-Kit tune page (58) 4.99 / 5.32 / 5.36 / 5.37 dB (clean 13.76 → 14.68 at
4) and every 8th own seed-0 page (30) 19.74 / 19.90 / 19.95 / 19.96 dB: the gain levels off
at 4."""


def bridge_stroke_gaps(ink: np.ndarray, max_gap_px: int = STROKE_GAP_PX) -> np.ndarray:
    """``ink`` (``(n_cols, band)`` bool, a band's columns) with vertical gaps of up to
    ``max_gap_px`` pixels filled where a neighbouring column is inked at the same height.

    A steep thin stroke (a QRS at 100 px per inch spans 100 px in two or three columns)
    meanders between neighbouring columns, so each column alone shows it broken, and the run
    under the path stopped at the first break: R and S tips were cut.
    """
    if max_gap_px <= 0:
        return ink
    side = np.zeros_like(ink)
    side[1:] |= ink[:-1]
    side[:-1] |= ink[1:]
    above = np.zeros_like(ink)
    below = np.zeros_like(ink)
    for d in range(1, max_gap_px + 1):
        above[:, d:] |= ink[:, :-d]
        below[:, :-d] |= ink[:, d:]
    return ink | (side & above & below)


def _runs_under(columns: np.ndarray, path: np.ndarray, threshold: float,
                connect_cols: int = 0, ink: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ink run ``[a, b]`` containing the path (or within two pixels of it) in every column
    of one band at once.

    ``columns`` is ``(n_cols, band)`` darkness, ``path`` ``(n_cols,)``; returns
    ``(found, a, b)``, with ``a``/``b`` meaningless where ``found`` is False. With
    ``connect_cols`` > 0, columns whose path misses ink take the run that touches a
    neighbouring column's run, up to that many columns from the nearest found one
    (:func:`_connect_runs`). ``ink``: the band's bridged ink mask where the caller has it
    (:func:`bridge_stroke_gaps` of ``columns >= threshold``).
    """
    n_cols, band = columns.shape
    if ink is None:
        ink = bridge_stroke_gaps(columns >= threshold)
    cols = np.arange(n_cols)
    y = np.asarray(path, dtype=np.int64).copy()
    found = ink[cols, y]
    for dy in (-1, 1, -2, 2):      # one or two pixels of slack (anti-aliased thin lines)
        cand = y + dy
        ok = ~found & (cand >= 0) & (cand < band)
        ok[ok] = ink[cols[ok], cand[ok]]
        y[ok] = cand[ok]
        found |= ok
    # runs of the columns laid end to end, a paper pixel after each column
    flat = np.zeros((n_cols, band + 2), dtype=bool)
    flat[:, 1:-1] = ink
    flat = flat.ravel()
    starts = np.flatnonzero(flat[1:] & ~flat[:-1]) + 1
    ends = np.flatnonzero(flat[:-1] & ~flat[1:])
    where = cols * (band + 2) + y + 1
    run = np.clip(np.searchsorted(starts, where, side="right") - 1, 0, max(len(starts) - 1, 0))
    if len(starts) == 0:
        return found, y, y
    origin = cols * (band + 2) + 1
    a, b = starts[run] - origin, ends[run] - origin
    if connect_cols > 0 and not found.all() and found.any():
        found, a, b = _connect_runs(ink, found, a, b, connect_cols)
    return found, a, b


def _column_runs(column: np.ndarray) -> list[tuple[int, int]]:
    """The ``(first, last)`` pixels of each run of True in a bool column."""
    edges = np.flatnonzero(np.diff(np.r_[0, column.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), (edges[1::2] - 1).tolist(), strict=True))


CONNECT_COLS = 3
"""Columns (either side of a read column) in which a path that misses the ink takes the run
touching its neighbour's run instead (:func:`_connect_runs`). The path search weighs a climb
against staying on a faint speck: at the tip of a thin QRS spike (one or two columns wide at
100 px per inch) it often stays beside the tip, the column had no run under it and the gap
was interpolated, cutting the spike (ECG-Image-Kit clean tune pages: the read peak of 352 of
696 leads more than 0.1 mV short of the truth's after best lag and offset). On the first 80
ECG-Image-Kit tune pages and every 8th own seed-0 page, 2024 SNR 12.08 -> 12.23 dB and
19.65 -> 19.84 dB (every variant better); every family in docs/digitize.md."""


def _connect_runs(ink: np.ndarray, found: np.ndarray, a: np.ndarray, b: np.ndarray,
                  max_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill columns without a run under the path with the ink run that overlaps (8-connected)
    the run of a neighbouring column that has one, working outwards from the found columns up
    to ``max_cols`` columns; where several runs touch, the one overlapping most.

    The stroke that joins two read columns is one piece of ink: where the path left it, the
    run it passes through is still the trace's."""
    found, a, b = found.copy(), a.copy(), b.copy()
    n_cols = len(found)
    for _ in range(max_cols):
        todo = np.flatnonzero(~found & ((np.r_[False, found[:-1]]) | np.r_[found[1:], False]))
        if not len(todo):
            break
        new = []
        for c in todo:
            refs = [(int(a[n]), int(b[n])) for n in (c - 1, c + 1) if 0 <= n < n_cols and found[n]]
            best = None
            for lo, hi in _column_runs(ink[c]):
                touch = max(min(hi, rb + 1) - max(lo, ra - 1) + 1 for ra, rb in refs)
                if touch > 0 and (best is None or touch > best[0]):
                    best = (touch, lo, hi)
            if best is not None:
                new.append((c, best[1], best[2]))
        if not new:
            break
        for c, lo, hi in new:
            found[c], a[c], b[c] = True, lo, hi
    return found, a, b


FOLLOW_STROKES = True
"""Whether a steep stroke the path leaves for a shortcut is followed (:func:`follow_strokes`)
rather than read from the runs under the path. On the first 80 ECG-Image-Kit tune pages and
every 8th own seed-0 page (each read from its own copy of the code), 2024 SNR
ECG-Image-Kit 12.65 -> 12.89 dB (clean 16.41 -> 16.72, scan 12.99 -> 13.41, wrinkles
13.76 -> 13.95, layout 6.71 -> 6.75; Kaggle 13.11 -> 13.70), own renders 19.75 -> 20.28 dB
(clean 20.31 -> 21.11, scan 18.79 -> 18.84); no page 1 dB worse, 11 pages 1-6 dB better.
Following every stroke end without the rejoin check (a first version) read 11.87 / 18.89 dB:
a followed run went on along other ink (a label, a neighbouring row) for whole cells."""
FOLLOW_MAX_MM = 2.5
"""Longest stretch (mm along the row: 0.1 s at 25 mm/s, a wide QRS) over which a followed
stroke must reach the path's runs again to replace them (4 mm read the same subset to the
hundredth of a dB)."""
FOLLOW_MAX_SHARE = 0.03
"""Largest share of a row's columns the following may change. On captured reads of a phone
photo, an ECG-Image-Kit page and a real image it changed 0-11 columns per row (<= 0.6 %); on
a real image whose dark grid lines were read as trace (a page of six limb-lead strips, which
must be refused) 18-233 of 1061 (1.7-22 %), and the grid lines it followed in every row at
the same columns made the rows beat together and the page pass the final check."""
FOLLOW_REACH_PENS = 2.0
"""How near a stroke's exit (pen widths, at least 2 px) the next column's run must start to
continue it. Subset (as :data:`FOLLOW_STROKES`, with the 0.4-mm pulse clearance): one pen
width 12.92 / 20.28 dB, two 12.95 / 20.29 dB (ECG-Image-Kit / own; Kaggle 13.80 -> 13.91),
no page 1 dB apart."""


def _exit_end(a: int, b: int, prev_a: int, prev_b: int) -> int | None:
    """Where a stroke that spans ``[a, b]`` in a column leaves it, given the run it came from
    in the previous column: the end away from that run, which lies in this run's upper or
    lower third; None where it says neither (a run beside one of the same extent: a peak's
    other stroke)."""
    third = (b - a) / 3.0
    centre_prev = 0.5 * (prev_a + prev_b)
    if centre_prev < a + third:
        return b
    if centre_prev > b - third:
        return a
    return None


def follow_strokes(ink: np.ndarray, found: np.ndarray, a: np.ndarray, b: np.ndarray,
                   tall_px: float, reach_px: int, max_cols: int,
                   max_share: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``[a, b]`` per column (``found``) where the path left a steep stroke for a
    shortcut replaced by the stroke's own runs, in both directions along the row.

    A steep stroke (a run taller than ``tall_px``) leaves its column at the end away from the
    previous column's run. Where the next column's run under the path is not within
    ``reach_px`` of that end, the stroke is followed instead: column by column the run that
    touches the last one (the one nearest its exit), until it reaches the path's run again;
    if it does so within ``max_cols`` columns those runs replace the path's, else nothing
    changes. The path search weighs a climb against a few columns of faint specks, and
    across a deep, narrow S wave (its fast strokes printed lighter than its turning point) it
    can stay on specks at the baseline: the column reading then cut the wave (real phone
    photos). Where more than ``max_share`` of the row's columns would change, nothing does:
    what was followed is not the trace's strokes."""
    found0, a0, b0 = found, a, b
    found, a, b = found.copy(), a.copy(), b.copy()
    n_cols = len(found)
    runs_of: dict[int, list[tuple[int, int]]] = {}

    def runs(c: int) -> list[tuple[int, int]]:
        if c not in runs_of:
            runs_of[c] = _column_runs(ink[c])
        return runs_of[c]

    def left_strokes(step: int, after: int) -> list[int]:
        """The columns (in walking order, past ``after``) whose steep stroke's exit the next
        column's run does not reach: :func:`_exit_end` and the reach test, for all at once."""
        x = np.arange(1, n_cols - 1)
        prev, nxt = x - step, x + step
        top, bottom = a[x].astype(float), b[x].astype(float)
        third = (bottom - top) / 3.0
        centre_prev = 0.5 * (a[prev] + b[prev])
        leaves_low = centre_prev < top + third
        leaves_high = ~leaves_low & (centre_prev > bottom - third)
        exit_y = np.where(leaves_low, bottom, top)
        reached = found[nxt] & (a[nxt] <= exit_y + reach_px) & (b[nxt] >= exit_y - reach_px)
        left = (found[x] & found[prev] & (b[x] - a[x] + 1 > tall_px)
                & (leaves_low | leaves_high) & ~reached)
        picked = x[left] if step > 0 else x[left][::-1]
        return [int(c) for c in picked if (c - after) * step > 0]

    for step in (1, -1):
        todo = left_strokes(step, 0 if step > 0 else n_cols - 1)
        while todo:
            x = todo.pop(0)
            prev, nxt = x - step, x + step
            exit_y = _exit_end(int(a[x]), int(b[x]), int(a[prev]), int(b[prev]))
            if exit_y is None:
                continue
            chain: list[tuple[int, int, int]] = []
            cur_a, cur_b = int(a[x]), int(b[x])
            cur_exit: int | None = exit_y
            c, rejoined = nxt, False
            while 0 <= c < n_cols and len(chain) < max_cols:
                touching = [(r0, r1) for r0, r1 in runs(c) if r0 <= cur_b + 1 and r1 >= cur_a - 1]
                if cur_exit is not None:
                    touching = [(r0, r1) for r0, r1 in touching
                                if r0 <= cur_exit + reach_px and r1 >= cur_exit - reach_px]
                if not touching:
                    break
                target = cur_exit if cur_exit is not None else 0.5 * (cur_a + cur_b)
                r0, r1 = min(touching, key=lambda r: 0.0 if r[0] <= target <= r[1]
                             else min(abs(r[0] - target), abs(r[1] - target)))
                if found[c] and r0 <= b[c] and r1 >= a[c]:
                    rejoined = True
                    break
                chain.append((c, r0, r1))
                cur_exit = _exit_end(r0, r1, cur_a, cur_b) if r1 - r0 + 1 > tall_px else None
                cur_a, cur_b = r0, r1
                c += step
            if rejoined and chain:
                for c, r0, r1 in chain:
                    found[c], a[c], b[c] = True, r0, r1
                todo = left_strokes(step, x)     # the runs changed: look again from here
    if max_share is not None and np.count_nonzero(
            (found != found0) | (a != a0) | (b != b0)) > max_share * n_cols:
        # strokes everywhere: ink that is not the trace's (a dark grid's lines) was followed
        return found0, a0, b0
    return found, a, b


def _centroids(columns: np.ndarray, x: np.ndarray, a: np.ndarray, b: np.ndarray
               ) -> np.ndarray:
    """Darkness-weighted centroid of runs ``[a, b]`` of columns ``x``, one pixel of margin each
    side (the middle of the run where it holds no darkness)."""
    if len(x) == 0:
        return np.zeros(0)
    band = columns.shape[1]
    lo = np.maximum(a - 1, 0)
    hi = np.minimum(b + 2, band)
    width = int((hi - lo).max())
    pos = lo[:, None] + np.arange(width)[None, :]
    inside = pos < hi[:, None]
    w = np.where(inside, columns[x[:, None], np.minimum(pos, band - 1)], 0.0).astype(np.float64)
    total = w.sum(axis=1)
    moment = (w * pos).sum(axis=1)
    return np.where(total > 0, moment / np.where(total > 0, total, 1.0), 0.5 * (a + b))


def estimate_line_width(bands: np.ndarray, path: np.ndarray, threshold: float) -> float:
    """Pen width along the paths, in px.

    Per sampled column the smaller of the run's summed darkness (the width of a flat line)
    and twice the largest distance from the run to paper minus half a pixel (the width of a
    steep stroke, whose vertical run is much taller than the pen); the median of those. A
    noisy or fast-moving trace is steep almost everywhere, so the run height alone
    overestimates the pen.
    """
    import cv2

    heights = []
    n_rows, n_cols, _ = bands.shape
    step = max(1, n_cols // 400)
    for k in range(n_rows):
        ink = np.ascontiguousarray((bands[k] >= threshold).astype(np.uint8))
        dist = cv2.distanceTransform(ink, cv2.DIST_L2, 5)
        xs = np.arange(0, n_cols, step)
        found, starts, ends = _runs_under(bands[k, xs], path[k, xs], threshold)
        for x, a, b in zip(xs[found], starts[found], ends[found], strict=True):
            col = bands[k, x]
            across = 2.0 * float(dist[x, a:b + 1].max()) - 0.5
            heights.append(min(float(col[max(a - 1, 0):b + 2].sum()), across))
    if not heights:
        return 2.0
    return float(max(1.0, np.median(heights)))


def read_columns(bands: np.ndarray, path: np.ndarray, tops: np.ndarray, threshold: float,
                 line_width_px: float, px_per_mm: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                            np.ndarray, np.ndarray]:
    """Sub-pixel value per column from the ink runs under the path (see module docstring).

    A pen of width ``w`` draws every point of the signal as a disc of radius ``R = w/2``, so
    the top edge ``U`` and bottom edge ``L`` of a column's run bound the signal:
    ``U + R <= y <= L - R``. Flat runs give their darkness centroid; tall runs (steep
    strokes) the middle ``(U + L)/2``; at a peak (``U`` lowest within the pen's reach) the
    tip is ``U + R`` (``L - R`` for a downward peak), which keeps QRS amplitudes; the columns
    under the pen's cap beside a tip are interpolated between the tip and the strokes.

    Returns ``(y_band_px, shared, upper, lower, merged, bridged, apex)``: NaN where the column
    has no ink under the path; ``shared`` marks columns whose run overlaps the run under
    another row's path (a crossing, or strokes of two rows merged); ``upper`` / ``lower`` are
    the sub-pixel top and bottom edges of each column's run (band px, NaN where none);
    ``merged`` the shared columns no row's line explains, ``bridged`` those a row's line was
    read straight across; ``apex`` (int8) +1 at an upward peak's tip column, -1 at a
    downward one's, 0 elsewhere. A steep stroke the path left for a shortcut is read from its
    own runs (:func:`follow_strokes`, over at most :data:`FOLLOW_MAX_MM` at ``px_per_mm``;
    4 px/mm where not given).
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    n_rows, n_cols, band = bands.shape
    values = np.full((n_rows, n_cols), np.nan)
    shared = np.zeros((n_rows, n_cols), dtype=bool)
    bridged = np.zeros((n_rows, n_cols), dtype=bool)
    apex = np.zeros((n_rows, n_cols), dtype=np.int8)
    tall = 1.5 * line_width_px + 1.5
    radius = 0.5 * line_width_px
    reach = int(np.ceil(radius)) + 1
    slack = max(1.5 * line_width_px, 2.0)
    page_runs = np.full((n_rows, n_cols, 2), -1, dtype=np.int64)
    upper = np.full((n_rows, n_cols), np.nan)
    lower = np.full((n_rows, n_cols), np.nan)
    cols = np.arange(n_cols)
    max_cols = round(FOLLOW_MAX_MM * (px_per_mm if px_per_mm is not None else 4.0))
    for k in range(n_rows):
        ink = bridge_stroke_gaps(bands[k] >= threshold)
        found, a, b = _runs_under(bands[k], path[k], threshold, connect_cols=CONNECT_COLS,
                                  ink=ink)
        found &= ~((a == 0) & (b == band - 1))   # ink edge to edge of the band: a fill
        if FOLLOW_STROKES:
            found, a, b = follow_strokes(ink, found, a, b,
                                         tall, max(2, int(np.ceil(FOLLOW_REACH_PENS
                                                                  * line_width_px))),
                                         max_cols, max_share=FOLLOW_MAX_SHARE)
            found &= ~((a == 0) & (b == band - 1))
        x = cols[found]
        a, b = a[found], b[found]
        col = bands[k]
        page_runs[k, x, 0] = a + tops[k]
        page_runs[k, x, 1] = b + tops[k]
        above = np.where(a > 0, col[x, np.maximum(a - 1, 0)], 0.0)
        below = np.where(b + 1 < band, col[x, np.minimum(b + 1, band - 1)], 0.0)
        upper[k, x] = a - 0.5 + (1.0 - col[x, a].astype(np.float64)) - above
        lower[k, x] = b + 0.5 - (1.0 - col[x, b].astype(np.float64)) + below
        short = b - a + 1 <= tall
        values[k, x[~short]] = 0.5 * (upper[k, x[~short]] + lower[k, x[~short]])
        values[k, x[short]] = _centroids(col, x[short], a[short], b[short])
    for k in range(n_rows):
        others = [j for j in range(n_rows) if j != k]
        height = page_runs[k, :, 1] - page_runs[k, :, 0] + 1
        is_tall = (page_runs[k, :, 0] >= 0) & (height > tall)
        # crossings: a tall run claimed by another row too. The row whose own line passes
        # through (short runs at the same level on both sides) reads across it; the row
        # whose stroke it is reads it as usual.
        anchor = ~is_tall & np.isfinite(values[k])
        look = max(3, int(np.ceil(2 * line_width_px)))
        for x in (int(c) for c in np.flatnonzero(is_tall)):
            # the same ink run (each band clips it at its own edges, so: overlapping)
            claimed = any(page_runs[j, x, 0] >= 0 and page_runs[j, x, 0] <= page_runs[k, x, 1]
                          and page_runs[j, x, 1] >= page_runs[k, x, 0] for j in others)
            if not claimed:
                continue
            shared[k, x] = True
            left = [c for c in range(x - 1, max(-1, x - look - 1), -1)
                    if not is_tall[c] and np.isfinite(values[k, c])]
            right = [c for c in range(x + 1, min(n_cols, x + look + 1))
                     if not is_tall[c] and np.isfinite(values[k, c])]
            if left and right and abs(values[k, left[0]] - values[k, right[0]]) < slack + 1:
                a_, b_ = left[0], right[0]
                level = values[k, a_] + (values[k, b_] - values[k, a_]) * (x - a_) / (b_ - a_)
                if BRIDGE_THROUGH and not (upper[k, x] < level - BRIDGE_THROUGH * line_width_px
                                           and lower[k, x] > level + BRIDGE_THROUGH
                                           * line_width_px):
                    # the stroke starts or ends at this row's line: its own spike, not another
                    # row's stroke crossing it
                    continue
                values[k, x] = level
                anchor[x] = True
                is_tall[x] = False
                bridged[k, x] = True
        u = np.where(np.isfinite(upper[k]), upper[k], np.inf)
        lo = np.where(np.isfinite(lower[k]), lower[k], -np.inf)
        u_min = minimum_filter1d(u, 2 * reach + 1, mode="nearest")
        l_max = maximum_filter1d(lo, 2 * reach + 1, mode="nearest")
        u_side = np.minimum(np.roll(u, reach + 1), np.roll(u, -(reach + 1)))
        l_side = np.maximum(np.roll(lo, reach + 1), np.roll(lo, -(reach + 1)))
        up_apex = is_tall & (u <= u_min) & (u + 1.0 < u_side)
        down_apex = is_tall & (lo >= l_max) & (lo - 1.0 > l_side)
        # one apex per plateau of equal extremes
        up_apex[1:] &= ~(up_apex[:-1] & (u[1:] == u[:-1]))
        down_apex[1:] &= ~(down_apex[:-1] & (lo[1:] == lo[:-1]))
        near = np.zeros(n_cols, dtype=bool)
        for x in np.flatnonzero(up_apex):
            values[k, x] = u[x] + radius
            near[max(0, x - reach):x + reach + 1] = True
        for x in np.flatnonzero(down_apex):
            values[k, x] = lo[x] - radius
            near[max(0, x - reach):x + reach + 1] = True
        apex[k, up_apex] = 1
        apex[k, down_apex] = -1
        anchor |= up_apex | down_apex | (is_tall & ~near)
        anchor &= np.isfinite(values[k])
        fill = near & ~anchor & np.isfinite(values[k]) & FILL_NEAR_APEX
        if fill.any() and anchor.sum() >= 2:
            xs = np.flatnonzero(anchor)
            values[k, fill] = np.interp(np.flatnonzero(fill), xs, values[k, xs])
    # a merge is explained where another row's line was read straight across this column:
    # the tall run is then this row's own stroke; otherwise, shared by two strokes, it is not
    merged = shared & ~bridged
    for k in range(n_rows):
        for j in range(n_rows):
            if j == k:
                continue
            crossing = bridged[j] & (page_runs[j, :, 0] <= page_runs[k, :, 1]) & (
                page_runs[j, :, 1] >= page_runs[k, :, 0])
            merged[k] &= ~crossing
    return values, shared, upper, lower, merged, bridged, apex


PEN_FACTORS = (1.0, 0.85)
"""Pen widths (× the estimated line width) the envelope refinement tries, in turn."""
PEN_MISFIT_GAIN = 0.95
"""A narrower pen model is kept only when its RMS edge misfit is below this × the best so
far. On 46 seed-0 pages the misfit ratio separated the pages a narrower model helps (ratio
< 0.95: +1.3 dB on average) from those where it is mixed or hurts (0.97-1.06); with this
rule the subset read +0.76 dB (clean) and +0.69 dB (scan), against +0.36/+0.64 for a plain
0.85 × width."""
REFINE_LR = 0.8
"""Adam step (px) of :func:`refine_envelope`. On 40 seed-0 benchmark pages, 0.8 px for 100
iterations read 0.2 dB better than 0.25 px for 120 (which had not converged: 240 iterations
at 0.25 px gained as much) and takes less time; 1.0 px for 80 iterations gained 0.15 dB."""
SUBSAMPLES = 2
"""Points per column of the refined trace (``RowTrace.fine_*``)."""
ACTIVE_ONLY = True
ACTIVE_RUN_FACTOR = 1.25
ACTIVE_PAD_COLS = 4
"""The envelope fit runs only on columns near a run taller than ``ACTIVE_RUN_FACTOR`` × the
line width + 1 px (steep strokes, peaks; ``ACTIVE_PAD_COLS`` + the pen radius either side):
elsewhere the trace is a flat run whose centre is already its value, and those fine samples
stay at the column reading. On 46 seed-0 pages against fitting every column: +0.10 dB
(clean) and +0.05 dB (scan) at 1.25 / 4, +0.03 / -0.02 dB at 1.5 / 3, -0.10 / -0.14 dB at
2.0 / 2; the trace stage of a 300-dpi page took 0.39 s instead of 0.50 s."""


KEEP_TIPS = True
"""Whether a peak's tip read from its column (:func:`read_columns`) overrides the refined
trace where the refinement left it short (:func:`keep_tips`). On the first 80 ECG-Image-Kit
tune pages (folds 1-8) and every 8th own seed-0 page (30), after the connected runs: 2024 SNR
ECG-Image-Kit 12.23 -> 12.46 dB (clean 16.04 -> 16.41, scan 12.76 -> 12.99, wrinkles
13.03 -> 13.30, layout 6.40 -> 6.44), own renders 19.84 -> 19.75 dB (clean 20.42 -> 20.31,
scan 18.85 -> 18.79: worse). Moving a tip only where the fit falls short by more than a pen
width gave the same (12.44 / 19.73 dB). A smaller smoothing weight everywhere (0.05 for 0.4)
read the ECG-Image-Kit pages better still (12.65 dB) but cost the own renders more (19.55 dB;
own 100-dpi scans up to -1.2 dB, where the smoothing holds noise down): not kept."""


def keep_tips(fine: np.ndarray, values: np.ndarray, apex: np.ndarray, subsamples: int
              ) -> np.ndarray:
    """``fine`` with the most extreme fine sample of each tip column moved out to the column's
    tip value where it falls short of it.

    The refinement's smoothing term weighs the squared second difference; a QRS spike one or
    two columns wide (100 px per inch) has a second difference of tens of px at its tip, so
    the fit pulls the tip back by several px although the ink edge says where it is (an
    ECG-Image-Kit clean page: the column read lead I's R tip at 328.8 px, the refined trace at
    332.3 px, the truth at 328.9 px). Only the tip moves; the strokes keep the fit."""
    out = fine.copy()
    m = subsamples
    for k, x in zip(*np.nonzero(apex), strict=True):
        tip = values[k, x]
        cell = out[k, x * m:(x + 1) * m]
        if not np.isfinite(tip) or not np.isfinite(cell).any():
            continue
        if apex[k, x] > 0:          # upward peak: smaller y is higher
            j = int(np.nanargmin(cell))
            if cell[j] > tip:
                cell[j] = tip
        else:
            j = int(np.nanargmax(cell))
            if cell[j] < tip:
                cell[j] = tip
    return out


def _pen_offsets(radius_px: float, subsamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Fine-sample offsets (relative to ``subsamples * column``) of the samples whose pen disc
    reaches a column, and the half height of the disc's ink in that column there (px)."""
    reach = radius_px + 0.5
    kmax = int(np.ceil(reach * subsamples)) + 1
    offs = np.arange(-kmax, kmax + subsamples)
    pos = (offs + 0.5) / subsamples - 0.5          # sample position relative to column centre
    dist = np.maximum(np.abs(pos) - 0.5, 0.0)      # to the nearest point of the column
    keep = dist < radius_px
    half = np.sqrt(np.maximum(radius_px ** 2 - dist[keep] ** 2, 0.0))
    return offs[keep], half


def _first_extreme(values: np.ndarray, extreme: np.ndarray) -> np.ndarray:
    """Per column of ``(n_slots, n)`` ``values``, the first slot that holds ``extreme`` (its
    min or max): the slot ``np.argmin`` / ``np.argmax`` along that axis give, found with
    whole-array operations (an arg-reduction over a short axis runs per element)."""
    n_slots = values.shape[0]
    if n_slots > 50:
        slot = np.full(values.shape[1], n_slots - 1, dtype=np.intp)
        for s in range(n_slots - 2, -1, -1):
            np.copyto(slot, s, where=values[s] == extreme)
        return slot
    # with a weight 2**(n_slots - 1 - s) on each slot s that holds the extreme, the first is
    # the highest bit of their sum (exact in float64 for up to 52 slots)
    weights = np.exp2(np.arange(n_slots - 1, -1, -1, dtype=np.float64))
    holds = np.equal(values, extreme).astype(np.float64)
    return n_slots - np.frexp(weights @ holds)[1]


def _adam_edges(zf: np.ndarray, free: np.ndarray, idx: np.ndarray, win_ok: np.ndarray,
                half: np.ndarray, u_obs: np.ndarray, l_obs: np.ndarray,
                shape: tuple[int, int], iterations: int, smooth: float) -> None:
    """The Adam iterations of :func:`refine_envelope`, in place on the flat fine samples
    ``zf``; only the samples ``free`` move.

    ``idx`` ``(n_pairs, n_win)``: the fine samples whose pen disc reaches each fitted column
    (``win_ok`` False where that slot lies off the page), ``half`` the disc's half height per
    slot, ``u_obs`` / ``l_obs`` the column's observed run edges (px). The window slots are
    held slot-major, so each min / max is a few whole-array operations.
    """
    fdt = zf.dtype
    n_rows, n_fine = shape
    lr, b1, b2 = fdt.type(REFINE_LR), fdt.type(0.8), fdt.type(0.95)
    size = zf.size
    n_pairs = idx.shape[0]
    idx_t = np.ascontiguousarray(idx.T)
    # window slots outside the page get -inf half heights: their top edge is +inf, their
    # bottom edge -inf, so they never win the min / max
    half_t = np.ascontiguousarray(np.where(win_ok, half[None, :], -np.inf).T.astype(fdt))
    pairs = np.arange(n_pairs)
    mom = np.zeros(len(free), fdt)
    vel = np.zeros_like(mom)
    step = np.empty_like(mom)
    grad_free = np.empty_like(mom)
    zw = np.empty(idx_t.shape, fdt)
    top = np.empty_like(zw)
    bot = np.empty_like(zw)
    g2 = np.zeros((n_rows, n_fine), fdt)
    g2_flat = g2.ravel()
    z2 = zf.reshape(n_rows, n_fine)
    for it in range(1, iterations + 1):
        np.take(zf, idx_t, out=zw)
        np.subtract(zw, half_t, out=top)
        np.add(zw, half_t, out=bot)
        top_edge = top.min(axis=0)
        bot_edge = bot.max(axis=0)
        at = idx_t[_first_extreme(top, top_edge), pairs]
        ab = idx_t[_first_extreme(bot, bot_edge), pairs]
        grad = (np.bincount(at, top_edge - u_obs, size)
                + np.bincount(ab, bot_edge - l_obs, size)).astype(fdt)
        d2 = z2[:, :-2] - 2 * z2[:, 1:-1] + z2[:, 2:]
        g2[:, :-2] = d2
        g2[:, -2:] = 0.0
        g2[:, 1:-1] -= 2 * d2
        g2[:, 2:] += d2
        # d/dz of sum(r**2) is 2 r; of smooth * sum(d2**2) it is 2 smooth g2
        np.take(grad, free, out=grad_free)
        grad_free *= 2
        grad_free += (2 * smooth) * g2_flat[free]
        mom *= b1
        mom += (1 - b1) * grad_free
        vel *= b2
        grad_free *= grad_free
        vel += (1 - b2) * grad_free
        np.sqrt(vel / (1 - b2 ** it), out=step)
        step += fdt.type(1e-3)
        np.divide(mom, step, out=step)
        step *= lr / (1 - b1 ** it)
        zf[free] -= step


def refine_envelope(upper: np.ndarray, lower: np.ndarray, initial: np.ndarray,
                    valid: np.ndarray, line_width_px: float, subsamples: int = SUBSAMPLES,
                    iterations: int = 100, smooth: float = 0.4,
                    return_misfit: bool = False) -> np.ndarray | tuple[np.ndarray, float]:
    """The signal at ``subsamples`` points per column whose pen drawing matches the ink.

    A pen of radius ``R`` draws each point of the signal as a disc, so column ``j``'s run
    has top edge ``min_i (z_i - s_ij)`` and bottom edge ``max_i (z_i + s_ij)`` over the fine
    samples ``z_i`` whose disc reaches the column (``s_ij``: the disc's half height there).
    A steep stroke therefore fixes the signal at both ends of the column's window, and a
    narrow spike's tip is where its far edge says — information that one value per column
    throws away. ``z`` minimises the squared misfit of both edges on ``valid`` columns plus
    ``smooth`` × the squared second difference (Adam, started from ``initial``).

    Parameters
    ----------
    upper, lower
        ``(n_rows, n_cols)`` sub-pixel run edges (px, y down).
    initial
        ``(n_rows, n_cols)`` one value per column (px); NaN where the trace was lost.
    valid
        ``(n_rows, n_cols)`` columns whose edges are the trace's own (not lost or shared).
    line_width_px
        Pen width; ``R`` is half of it.

    return_misfit
        Also return the RMS misfit of the fitted edges (px), which says how well a pen of
        this width explains the ink.

    Returns
    -------
    ``(n_rows, n_cols * subsamples)`` px; NaN where ``initial`` is NaN (with the misfit,
    a tuple).
    """
    n_rows, n_cols = initial.shape
    m = subsamples
    radius = max(0.5, 0.5 * line_width_px)
    offs, half = _pen_offsets(radius, m)
    n_fine = n_cols * m
    base = (np.arange(n_cols) * m)[:, None] + offs[None, :]          # (n_cols, n_win)
    inside = (base >= 0) & (base < n_fine)
    base = np.clip(base, 0, n_fine - 1)
    finite = np.isfinite(initial)
    fine_pos = (np.arange(n_fine) + 0.5) / m - 0.5
    z = np.zeros((n_rows, n_fine))
    for k in range(n_rows):
        cols = np.flatnonzero(finite[k])
        if len(cols):
            z[k] = np.interp(fine_pos, cols, initial[k, cols])
    use = valid & finite & np.isfinite(upper) & np.isfinite(lower)
    use[finite.sum(axis=1) < 2] = False
    all_use = use
    if ACTIVE_ONLY:
        from scipy.ndimage import maximum_filter1d

        tall = use & ((lower - upper) > ACTIVE_RUN_FACTOR * line_width_px + 1.0)
        reach = int(np.ceil(radius)) + ACTIVE_PAD_COLS
        use = use & maximum_filter1d(tall.astype(np.uint8), 2 * reach + 1, axis=1).astype(bool)
    # every row at once: (row, column) pairs of the columns that take part, flat indices
    rr, jj = np.nonzero(use)
    out = np.where(np.repeat(finite, m, axis=1), z, np.nan)
    if len(rr) < 2:
        return (out, float("nan")) if return_misfit else out
    idx = rr[:, None] * n_fine + base[jj]
    # float32: this fit 27 % faster than in float64; on the 240 seed-0 benchmark pages, with
    # the scanner-border mask on whole cells (``pipeline._solid_border``), mean SNR 19.26 ->
    # 19.25 dB (clean 20.40 either way, scan 18.15 -> 18.13; single leads moved by up to 4 dB
    # both ways), layout/gain/speed unchanged
    fdt = np.float32
    u_obs, l_obs = upper[rr, jj].astype(fdt), lower[rr, jj].astype(fdt)
    # a column with no trace of its own holds its neighbours' fine samples still; only the
    # others (``free``) are moved
    free = np.flatnonzero(np.repeat(use, m, axis=1).ravel())
    zf = z.ravel().astype(fdt)
    _adam_edges(zf, free, idx, inside[jj], half, u_obs, l_obs, (n_rows, n_fine), iterations,
                smooth)
    z = zf.reshape(n_rows, n_fine)
    out = np.where(np.repeat(finite, m, axis=1), z, np.nan)
    if return_misfit:
        if all_use is not use:
            # the misfit over every column that takes part, as without the active set
            rr, jj = np.nonzero(all_use)
            zw = z.ravel()[rr[:, None] * n_fine + base[jj]]
            h = np.where(inside[jj], half[None, :], -np.inf)
            ru = (zw - h).min(axis=1) - upper[rr, jj]
            rl = (zw + h).max(axis=1) - lower[rr, jj]
        return out, float(np.sqrt(np.mean(np.concatenate([ru, rl]) ** 2)))
    return out


def extract_traces(darkness: np.ndarray, baselines_px: list[float], x_ranges_px: list[
        tuple[int, int]], px_per_mm: float, half_band_px: int | None = None,
        threshold: float = RUN_LEVEL, max_gap_s_px: int | None = None,
        max_excursion_px: float | None = None,
        path_darkness: np.ndarray | None = None) -> TraceResult:
    """Read every row's trace.

    Parameters
    ----------
    darkness
        ``(H, W)`` ink darkness in [0, 1] with text/pulse/grid already suppressed.
    baselines_px
        Approximate vertical centre of each row's trace (page px).
    x_ranges_px
        ``(x_start, x_stop)`` per row: the columns to read.
    px_per_mm
        Vertical px/mm (sets jump costs and the default band).
    half_band_px
        Half height of each search band; default 1.3 × the median row spacing (≥ 12 mm).
    threshold
        Darkness at which a pixel counts as ink in a run.
    max_gap_s_px
        Gaps in the read trace up to this many columns are interpolated; longer ones stay NaN.
    max_excursion_px
        If given, the search band reaches at most this far (but at least 12 mm) from a row's
        centre: the largest deflection a trace can have at the page's gain (see
        ``MAX_EXCURSION_MV``), which keeps the path search off paper no trace can reach.
    path_darkness
        Darkness the path search runs on where it differs from ``darkness`` (the runs are
        read from ``darkness``): the segmentation network's trace pixels counted as full ink
        (:func:`digitize.seg_ink.path_ink`), so that the path climbs a faint stroke to the
        run of its tip instead of staying on the baseline under it.
    """
    n_rows = len(baselines_px)
    centres = np.asarray(baselines_px, dtype=float)
    if half_band_px is None:
        spacing = float(np.median(np.diff(np.sort(centres)))) if n_rows > 1 else 40 * px_per_mm
        half_band_px = int(max(12 * px_per_mm, 1.3 * spacing))
    pitch_px = half_band_px / 1.3
    if max_excursion_px is not None:
        half_band_px = int(min(half_band_px, max(12 * px_per_mm, max_excursion_px)))
    x0 = int(min(r[0] for r in x_ranges_px))
    x1 = int(max(r[1] for r in x_ranges_px))
    bands, tops = _band_stack(darkness, centres, half_band_px, x0, x1)
    path_bands = bands if path_darkness is None else _band_stack(path_darkness, centres,
                                                                 half_band_px, x0, x1)[0]
    # columns outside a row's own range carry no ink for it
    for k, (a, b) in enumerate(x_ranges_px):
        for stack in (bands, path_bands):
            stack[k, : max(a - x0, 0)] = 0
            stack[k, b - x0:] = 0
    start = centres - tops
    start_col = np.array([r[0] - x0 for r in x_ranges_px])
    dead_px = max(0.45 * pitch_px, 5 * px_per_mm)
    path = _coarse_viterbi(path_bands, start, px_per_mm, start_col=start_col, dead_px=dead_px)
    steep_ink, flat_ink = stroke_contrast(path_bands, path)
    faint_strokes = steep_ink < FAINT_STROKE_RATIO * flat_ink
    if faint_strokes:
        full_ink = max(FAINT_STROKE_FULL_INK, steep_ink)
        log.info("steep strokes %.2f of the flat trace's darkness: path searched again with "
                 "darkness %.2f as full ink", steep_ink / flat_ink, full_ink)
        path = _coarse_viterbi(path_bands, start, px_per_mm, start_col=start_col,
                               dead_px=dead_px, full_ink=full_ink)
    line_width = estimate_line_width(bands, path, threshold)
    values, shared, upper, lower, merged, bridged, apex = read_columns(
        bands, path, tops, threshold, line_width, px_per_mm=px_per_mm)
    fine = None
    if REFINE:
        fine, misfit = refine_envelope(upper, lower, values, ~shared,
                                       PEN_FACTORS[0] * line_width, return_misfit=True)
        for factor in PEN_FACTORS[1:]:
            # a narrower pen model is taken only where it explains the ink edges clearly
            # better (the width estimate runs high on blurred, thick strokes)
            trial, trial_misfit = refine_envelope(upper, lower, values, ~shared,
                                                  factor * line_width, return_misfit=True)
            log.debug("pen x%.2f: edge misfit %.3f px (best so far %.3f)", factor, trial_misfit,
                      misfit)
            if not trial_misfit < PEN_MISFIT_GAIN * misfit:
                break
            fine, misfit = trial, trial_misfit
        if KEEP_TIPS:
            fine = keep_tips(fine, values, np.where(shared, 0, apex), SUBSAMPLES)
    erode_px = int(0.5 * line_width - 0.5) if ERODE else 0
    if erode_px >= 1:
        # a thick pen smears steep strokes over the neighbouring columns; eroding the ink by
        # (almost) the pen radius leaves the pen's centre line, which is read the same way
        import cv2

        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1,) * 2)
        thin = np.empty_like(bands)
        for k in range(n_rows):
            thin[k] = cv2.erode(bands[k], kernel)
        thin_values, thin_shared, *_ = read_columns(thin, path, tops, threshold,
                                                      max(1.0, line_width - 2 * erode_px))
        use = np.isfinite(thin_values)
        values = np.where(use, thin_values, values)
        shared = np.where(use, thin_shared, shared)
    if max_gap_s_px is None:
        max_gap_s_px = max(2, round(0.6 * px_per_mm))
    rows = []
    for k, (a, b) in enumerate(x_ranges_px):
        xs = np.arange(a, b)
        ys = values[k, a - x0:b - x0] + tops[k]
        sh = shared[k, a - x0:b - x0]
        unsure = merged[k, a - x0:b - x0] | (bridged[k, a - x0:b - x0] & BRIDGE_NAN)
        ys = _fill_short_gaps(_drop_end_specks(ys, round(END_SPECK_MM * px_per_mm)),
                              max_gap_s_px)
        unreadable = np.zeros(len(ys), dtype=bool)
        if OVERLAP_NAN and unsure.any():
            from scipy.ndimage import binary_dilation

            pad = round(OVERLAP_PAD_MM * px_per_mm)
            unreadable = binary_dilation(unsure, iterations=pad) if pad else unsure.copy()
            ys = np.where(unreadable, np.nan, ys)
        fine_x = fine_y = None
        if fine is not None:
            m = SUBSAMPLES
            fine_x = (a + (np.arange((b - a) * m) + 0.5) / m - 0.5).astype(float)
            fine_y = fine[k, (a - x0) * m:(b - x0) * m] + tops[k]
            # short gaps filled in the column trace are filled the same way here
            gap = ~np.isfinite(fine_y) & np.repeat(np.isfinite(ys), m)
            if gap.any():
                fine_y = fine_y.copy()
                fine_y[gap] = np.interp(fine_x[gap], xs.astype(float), ys)
            if unreadable.any():
                fine_y = np.where(np.repeat(unreadable, m), np.nan, fine_y)
        n = max(len(xs), 1)
        lost = float(np.mean(~np.isfinite(ys))) if len(ys) else 1.0
        confidence = max(0.0, 1.0 - lost - 0.5 * float(np.mean(sh)) if len(sh) else 0.0)
        rows.append(RowTrace(row=k, x_px=xs, y_px=ys, shared=sh, confidence=round(confidence, 3),
                             line_width_px=line_width, fine_x_px=fine_x, fine_y_px=fine_y,
                             overlapped=unreadable))
        log.debug("row %d: %d columns, %.1f%% lost, %.1f%% shared", k, n, 100 * lost,
                  100 * float(np.mean(sh)) if len(sh) else 0.0)
    return TraceResult(rows=tuple(rows), ink_threshold=threshold, line_width_px=line_width)


END_SPECK_MM = 1.0
"""A piece of a row's read trace at its very start or end, shorter than this and cut off
from the rest by a gap, is a speck (a grid dot, a tick) and not read: it would extend the
trace, and with it the time axis."""


def _drop_end_specks(y: np.ndarray, max_len: int) -> np.ndarray:
    """NaN over a first or last finite piece of ``y`` shorter than ``max_len`` samples that a
    gap separates from the rest."""
    finite = np.isfinite(y)
    idx = np.flatnonzero(finite)
    if len(idx) < 2 or max_len < 1:
        return y
    breaks = np.flatnonzero(np.diff(idx) > 1)
    if not len(breaks):
        return y
    y = y.copy()
    first_end = idx[breaks[0]]
    if first_end - idx[0] + 1 < max_len:
        y[idx[0]:first_end + 1] = np.nan
    last_start = idx[breaks[-1] + 1]
    if idx[-1] - last_start + 1 < max_len:
        y[last_start:idx[-1] + 1] = np.nan
    return y


def _fill_short_gaps(y: np.ndarray, max_gap: int) -> np.ndarray:
    y = y.copy()
    finite = np.isfinite(y)
    if finite.sum() < 2:
        return y
    idx = np.flatnonzero(finite)
    gaps = np.diff(idx)
    for i in np.flatnonzero((gaps > 1) & (gaps <= max_gap + 1)):
        lo, hi = idx[i], idx[i + 1]
        y[lo + 1:hi] = np.interp(np.arange(lo + 1, hi), [lo, hi], [y[lo], y[hi]])
    return y


TAIL_CONTRAST = 0.8
"""A read column belongs to a row's trace where the ink under its path stands out of the paper
``TAIL_OFFSET_MM`` (+ the pen width) above and below it (left and right for a steep
stroke) by at least this share of the row's
median such contrast (see :func:`contrast_end_px`). ECG-Image-Kit pages (100 px/inch JPEGs
with colour subsampling) print the 0 mV line on a major grid line whose thin red line passes
the ink level: the path ran on along it, and the time axis ended 26-54 px (7-14 mm) after
the trace on 34 of 119 EIK tune pages (clean 13/30, wrinkles 16/30; 8 left after). There the
trace's last millimetres stand out by 1.0 (median) and the grid line or a wrinkle's shading
under the path after it by 0.4-0.5; 0.7 left one wrinkled page 20 px late (its shading's
contrast ~0.75), 0.9 cut pages whose trace ended right 1-2 px early."""

TAIL_OFFSET_MM = 0.5
"""How far beyond the pen width above and below the path the paper is looked at."""

TAIL_MIN_TRIM_MM = 1.0
"""The end moves back only where it moves by at least this much: the last column or two of
a trace that ends right is anti-aliased and lighter (the time axis end's constants,
``layout_detect.END_SAMPLES`` / ``END_PX``, are fitted on the last column at the ink level)."""


def contrast_end_px(trace: RowTrace, darkness: np.ndarray, px_per_mm: float,
                    end_px: float) -> float:
    """``end_px`` (a row's last trace column, e.g. from ``pipeline._trace_end_px``), moved back
    to the last column whose path ink stands out of the paper above and below it (thin ink
    line, not a broad shading or a run along a grid line that passes the ink level): the
    last read column at least :data:`TAIL_CONTRAST` × the row's median contrast with half of
    the columns of its last millimetre so too. Unchanged where that moves it by less than
    :data:`TAIL_MIN_TRIM_MM`."""
    ok = np.flatnonzero(np.isfinite(trace.y_px))
    if len(ok) < 2:
        return end_px
    h, w = darkness.shape
    xs = np.clip(np.round(trace.x_px[ok]).astype(int), 0, w - 1)
    ys = np.clip(np.round(trace.y_px[ok]).astype(int), 0, h - 1)
    off = max(2, round(trace.line_width_px + TAIL_OFFSET_MM * px_per_mm))
    on = np.max([darkness[np.clip(ys + k, 0, h - 1), xs] for k in (-1, 0, 1)], axis=0)
    # paper above and below a flat line, or left and right of a steep stroke (which has ink
    # above and below it): the lighter of the two sides
    across = np.maximum(darkness[np.clip(ys - off, 0, h - 1), xs],
                        darkness[np.clip(ys + off, 0, h - 1), xs])
    along = np.maximum(darkness[ys, np.clip(xs - off, 0, w - 1)],
                       darkness[ys, np.clip(xs + off, 0, w - 1)])
    contrast = on - np.minimum(across, along)
    ref = float(np.median(contrast))
    if ref <= 0:
        return end_px
    cols = xs[contrast >= TAIL_CONTRAST * ref]
    cols = cols[cols <= end_px]
    if not len(cols):
        return end_px
    window = max(2.0, px_per_mm)
    dense = np.arange(len(cols)) - np.searchsorted(cols, cols - window, side="right") + 1
    last = np.flatnonzero(dense >= 0.5 * window)
    if not len(last):
        return end_px
    end = float(cols[last[-1]])
    return end if end_px - end >= TAIL_MIN_TRIM_MM * px_per_mm else end_px


TAIL_ROWS_SHARE = 2.0 / 3.0
"""Every row's trace stops at the same time: a row's end moved by :func:`contrast_end_px`
is used only where it lies within ``TAIL_MIN_TRIM_MM`` of the median of all the rows' moved
ends and at least this share of the rows' moved ends does too (on an ECG-Image-Kit page the
path runs on along a grid line on most rows, and their moved ends meet). A row moved off the
others' end is a faint stretch of its own trace and keeps its end: on an own-set page
(105 dpi, 12 rows at 20 mm/mV) five rows' ends moved 10-16 px back through the crossing
complexes of their neighbours, and would have moved the rows' median end; on wrinkled EIK
pages one row of four stopped 13-20 px early in a crease's shading."""


def common_contrast_ends(traces: tuple[RowTrace, ...] | list[RowTrace], darkness: np.ndarray,
                         px_per_mm: float, ends_px: list[float]) -> list[float]:
    """The rows' ends ``ends_px``, each moved back by :func:`contrast_end_px` where the moved
    ends meet at one column (see :data:`TAIL_ROWS_SHARE`); else ``ends_px`` unchanged."""
    moved = [contrast_end_px(t, darkness, px_per_mm, e) for t, e in zip(traces, ends_px,
                                                                          strict=True)]
    if moved == list(ends_px):
        return list(ends_px)
    centre = float(np.median(moved))
    tol = TAIL_MIN_TRIM_MM * px_per_mm
    near = [abs(m - centre) <= tol for m in moved]
    if sum(near) < TAIL_ROWS_SHARE * len(moved):
        return list(ends_px)
    return [m if ok else e for m, e, ok in zip(moved, ends_px, near, strict=True)]
