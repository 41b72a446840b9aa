"""Rows, time axis and layout of a page, decided by evidence.

Rows come from the horizontal ink projection (a trace row inks most columns across the page;
a text line does not). The layout is chosen among the templates of :mod:`ecglens.core.layouts`
by the number of rows, the separator ticks at cell boundaries, the positions and texts of the
lead labels read by OCR, and — between templates that only differ in lead order (12x1 vs
Cabrera) — Einthoven's law on the read signals. A page whose evidence fits no template is
reported as unknown, never silently forced into one. A rhythm strip prints the lead whose name
is read at its start, else the lead whose cell its trace copies, else (with a warning) the
template's default (:func:`strip_leads`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator

import numpy as np

from ecglens.core.layouts import LAYOUTS, Layout

log = logging.getLogger(__name__)

STANDARD_AXIS_MM = 250.0
"""Printed time axis of a standard page: 10 s at 25 mm/s."""
AXIS_MAX_GAP_MM = 4.0
"""Farthest the standard 250-mm axis, counted back from the rows' right end, may start after the
calibration pulses' right side; farther, the right end is not the trace's (ink past the paper's
edge on a photo, pulses or marks printed after the rows) and the axis starts at the pulses'
right side instead, 250 mm long. Measured on the stored reads of every family at ``450f0c1``
(start minus pulses' right side): own renders 2.1-3.05 mm (the renderer leaves about 2.9 mm),
real images 1.8-3.6 mm (one at 9.6), photos −3.6-−0.6 (one at 25.5 mm, its cells a column
late); ECG-Image-Kit −3.9-1.7 mm, and 18 pages at 4.5-15 mm whose every lead scored late by
exactly that gap (lag 100-250 samples, or unaligned and below 0 dB)."""
AXIS_EDGE_MM = 1.0
"""Rows whose common right end lies this close to the image's right edge (mm) run off the
image. Stored reads of every family at ``8de26b4`` whose axis came out shorter than 9.8 s:
six real images end 0.1-0.4 mm from the edge (each graded WRONG for columns drifting early
by up to 0.3-0.6 s: a 9.2-9.6 s span cut into four); the nearest others 0.9 mm (a rectified
real image), 1.5 mm (a real image at 50 mm/s read as 25), ECG-Image-Kit 7.2 mm and more,
photos 26 mm and more."""
END_SAMPLES = 1.31
END_PX = -0.22
"""Where the time axis ends relative to a row's last inked column ``c`` (a line ``w`` px wide,
``v`` px per sample): ``x1 = c + 0.5 - w/2 + END_SAMPLES * v + END_PX``. One sample period
after the last sample is the geometric part; the rest is how far the last column that still
reaches the ink threshold falls short of the stroke's end. Calibrated on the unrotated clean
pages of the seed-0 benchmark set (the read axis start was 0.31 px left of the printed one
with the earlier ``+ 0.5 v``); checked on the held-out seed-1 set."""


MAX_LABEL_READS = 2
"""A lead name read more often than this on one page is noise (see :func:`choose_layout`)."""

STRIP_LABEL_X = (-0.04, 0.06)
"""Where a rhythm strip's name is read: its label's left edge as a fraction of the time axis
(10 s) from the axis start. The window of a cell label in :func:`choose_layout` starts at
−0.04 too; it ends at 0.06 (15 mm at 25 mm/s) because the names read on the strip rows of the
ECG-Image-Kit tune pages (folds 1-8) lie at −0.03…0.03 and the nearest other text read there
(a QRS or the pulse taken for a letter) further right."""

STRIP_MATCH_MARGIN = 0.05
"""A name read on a strip is kept unless the strip's trace correlates better, by more than
this, with the template lead's cell than with the named lead's cell (the strip prints the very
samples of its lead's cell). On the ECG-Image-Kit tune pages (folds 1-8) OCR named 4 of 163
lead II strips "I"; their II cells beat the I cells by 0.10-0.25. Of the 6 strips named right
(not II), 3 matched the named cell better, 2 the II cell by 0.012 and 0.002 (V5 strips), 1 by
0.69 (a 6x2+1 page whose strip correlates 0.16 with its V5 cell: that name is lost)."""

StripMatch = Callable[[Layout, int, str], "float | None"]
"""``match(layout, strip_row, lead)``: correlation of a strip's trace with the cell(s) of
``lead`` over the same samples (None where it cannot be measured); see :func:`strip_matcher`."""

StripDistance = Callable[[Layout, int, str], "float | None"]
"""``distance(layout, strip_row, lead)``: how far a strip's trace is from the cell of ``lead``
over the same samples (None where it cannot be measured); see :func:`strip_distances`."""

STRIP_COPY_DISTANCE = 0.2
"""A rhythm strip with no name read at its start prints the lead whose cell its trace copies:
the rms of their difference (means removed) at most this share of the larger of their standard
deviations, and the next nearest lead's cell at least :data:`STRIP_COPY_CONTRAST` times as far
(:func:`strip_leads`). On the 46 strips read on the ECG-Image-Kit tune pages (folds 1-8,
layout variant; measured with a script on the page reads, not kept): where the nearest cell was
another lead's (6 strips: an aVF strip near II, a V5 strip near V6, misread strips) it lay at
0.32-0.76 and the next within 1.32 times that; the 32 strips whose printed lead's cell lay at
0.01-0.23 with the next 1.6-72 times as far were named right; the 14 others (neighbours alike:
V5/V6, II/aVF within 1.15-1.45 times; or the cell at 0.29-0.38) keep the template's lead or
the name read.
With a bound of 0.25, over every ECG-Image-Kit page read (all variants, both parts,
``benchmarks/families.py``) 126 strips were named from their trace, 125 right: every strip
named a lead other than the template's on the tune part lay at 0.013-0.182 (16 strips), the
one wrong (a wrinkled tune page's II strip named V5) at 0.241; hence 0.2, which changes no
other read (the strips named at 0.2-0.25 on every family's pages were the template's II). On
the real images, one picture (read with its cells 0.35 s late, itself wrong) has its II strip
named V6 at 0.197."""
STRIP_COPY_CONTRAST = 1.5
SAME_INK_DISTANCE = 0.005
"""A strip read at this distance from a cell or nearer is the very ink of that cell's row read
twice (two rows' paths on one stroke), not a copy printed apart: that cell is not a candidate.
On the tune pages, two 12x1+1 strips (V1) lay at 0.000 from their III cells; every copy
printed apart at 0.013 or more."""

STRIP_NAMES = frozenset({"I", "II", "III", "aVR", "aVL", "aVF", "-aVR",
                         "V1", "V2", "V3", "V4", "V5", "V6"})
"""Lead names a rhythm strip may print (any of the 12; ``-aVR`` inverted)."""

SPECK_CELLS = 2
"""Ink components of at most this many cells of the ~2 px/mm copy (about 1 mm²) are left out
of the row search's coverage."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One printed trace row.

    Attributes
    ----------
    index
        Row number, top to bottom.
    centre_px
        Vertical centre of the row's ink (page px); the 0 mV line comes from calibration.
    coverage
        Fraction of the page's trace columns that hold ink near ``centre_px``.
    x_first_px, x_last_px
        First and last inked column of the row (pulse included).
    """

    index: int
    centre_px: float
    coverage: float
    x_first_px: int
    x_last_px: int


@dataclasses.dataclass(frozen=True)
class RowsResult:
    """Rows found on the page (``pulsed_rows``: how many of them were placed on a calibration
    pulse, for rows from the pulse scan; None for rows from the ink projection)."""

    rows: tuple[Row, ...]
    pitch_px: float
    pulsed_rows: int | None = None


@dataclasses.dataclass(frozen=True)
class TimeAxis:
    """Where the printed time axis lies (page px) and how long it is."""

    x0_px: float
    x1_px: float
    duration_s: float
    n_samples: int
    source: str


@dataclasses.dataclass(frozen=True)
class StripLead:
    """The lead a rhythm-strip row prints, and why.

    Attributes
    ----------
    row
        The strip's row.
    lead
        The lead it prints.
    source
        ``"label"``: the name read at the strip's start; ``"trace"``: the lead whose cell the
        strip's trace copies (no usable name read; :data:`STRIP_COPY_DISTANCE`);
        ``"template"``: the template's default (neither).
    label_x
        Where the name that decided it was read (fraction of the time axis), or None.
    label_lead
        The single name read at the strip's start, or None.
    r_label, r_template
        Correlation of the strip's trace with the cell of ``label_lead`` and of the template's
        lead (None where not measured).
    copy_distance
        With source ``"trace"``: the strip's distance from the cell it copies
        (:func:`strip_distances`).
    """

    row: int
    lead: str
    source: str
    label_x: float | None = None
    label_lead: str | None = None
    r_label: float | None = None
    r_template: float | None = None
    copy_distance: float | None = None


@dataclasses.dataclass(frozen=True)
class LayoutResult:
    """The chosen layout.

    Attributes
    ----------
    name
        Layout name from :data:`ecglens.core.layouts.LAYOUTS`, or ``"unknown"``.
    confidence
        In [0, 1].
    scores
        Evidence score per candidate template.
    evidence
        What was seen: rows, cells per row from ticks, labels matched.
    warnings
        Problems (unknown layout, weak evidence, a strip's lead assumed).
    strips
        The lead of each rhythm strip and where it came from (empty without strips).
    """

    name: str
    confidence: float
    scores: dict[str, float]
    evidence: dict[str, object]
    warnings: tuple[str, ...]
    strips: tuple[StripLead, ...] = ()

    @property
    def layout(self) -> Layout | None:
        """The template with its strips' leads as decided, or None when unknown."""
        template = LAYOUTS.get(self.name)
        if template is None or not self.strips:
            return template
        return template.with_rhythm_leads({s.row: s.lead for s in self.strips})


LAST_INK_HALF_PITCH = True
"""A row's last inked column is looked for within 0.45 of the distance to its neighbouring
rows (2.5-10 mm), not only ±2.5 mm of its projection peak: after a row's last QRS its trace
can sit higher than that for the rest of the page (ST elevation and tall T waves at
20 mm/mV; an own-renderer 12-row Cabrera page: five rows ended 22 mm early at their last
QRS, were not read further, and the time axis, which ends at the rows' median end, began
5 mm early)."""


LAST_INK_MIN_MM = 5.0
"""...taken only where it lies this much further right (a few pixels more, a neighbour's
stroke reaching into the band, moved two own renders by −2 and −4 dB through the pen model
the envelope fit chose for the whole page)."""


def _last_ink_over_half_pitch(rows: list[tuple[float, float, int, int]], mask: np.ndarray,
                              px_per_mm: float) -> list[tuple[float, float, int, int]]:
    """``rows`` with each one's last inked column taken over its half-pitch band."""
    h = mask.shape[0]
    out = []
    for i, (y, coverage, first, last) in enumerate(rows):
        gaps = [abs(y - rows[j][0]) for j in (i - 1, i + 1) if 0 <= j < len(rows)]
        half = float(np.clip(0.45 * min(gaps, default=20 * px_per_mm), 2.5 * px_per_mm,
                             10 * px_per_mm))
        band = mask[max(0, int(y - half)):min(h, int(y + half) + 1)].any(axis=0)
        xs = np.flatnonzero(band)
        # only a trace that runs on (a few pixels of a neighbour's stroke are no reason to
        # read further: they changed the pen model chosen for the whole page)
        longer = len(xs) > 0 and xs[-1] > last + LAST_INK_MIN_MM * px_per_mm
        out.append((y, coverage, first, int(xs[-1]) if longer else last))
    return out


def find_rows(darkness: np.ndarray, px_per_mm: float, min_coverage: float = 0.6,
              pair_rows: bool = False, page_width_px: float | None = None,
              bridge_single_gaps: bool = False) -> RowsResult:
    """Trace rows from the horizontal ink projection.

    Parameters
    ----------
    darkness
        Page ink darkness in [0, 1].
    px_per_mm
        Vertical scale.
    min_coverage
        Least fraction of inked columns (within ±2.5 mm of the row) to count as a trace row.
    pair_rows
        Count a pixel as ink where it and the pixel above it add up to the ink level: a thin
        line on a rotated low-resolution scan, resampled by the deskew, splits its ink over
        two pixel rows, each below the level (an own-renderer page at 100 dpi, turned 2 deg:
        no row found; with pairs, rows whose pulses then give all six).
    page_width_px
        Width of the paper where it is narrower than the image (a photo): coverage is a
        share of it; None: of the image width.
    bridge_single_gaps
        A gap of one column of the ~2 px/mm copy (0.25-0.5 mm) does not break a row's
        unbroken stretch: for the ink the segmentation network calls trace, where a thin
        trace at 100 px per inch loses single columns every few mm (a dark-gridded
        ECG-Image-Kit tune page: its lower two rows' longest stretches 19.6 and 18.3 mm, 44
        and 51 mm with such gaps bridged). Not for colour ink, where it joins the fragments of
        dark grid lines into rows.
    """
    import cv2
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    if pair_rows:
        paired = darkness.copy()
        paired[1:] += darkness[:-1]
        mask = paired >= 0.3
    else:
        mask = darkness >= 0.3
    h, w = mask.shape
    profile = gaussian_filter1d(mask.sum(axis=1).astype(float), 1.2 * px_per_mm)
    if profile.max() <= 0:
        return RowsResult(rows=(), pitch_px=float("nan"))
    # local maxima within ±7 mm that stand out of the valleys on both sides
    reach_peak = max(3, int(7 * px_per_mm))
    local = (maximum_filter1d(profile, 2 * reach_peak + 1, mode="constant") == profile)
    local &= profile > 0.1 * profile.max()
    peaks = [int(y) for y in np.flatnonzero(local)]
    peaks = [y for i, y in enumerate(peaks) if i == 0 or y - peaks[i - 1] > 1]
    # coverage on a ~2 px/mm copy: fraction of columns with ink within ±2.5 mm of the row
    f = max(1, int(px_per_mm / 2))
    hs, ws = h // f, w // f
    small: np.ndarray = np.asarray(
        mask[:hs * f, :ws * f].reshape(hs, f, ws, f).any(axis=(1, 3)), dtype=np.uint8)
    dil_wide = small.astype(bool)
    # specks (a dark grid dot, paper noise) are no trace: on a dotted grid whose darker dots
    # pass the ink level, rows of dots lend every line coverage (header text was taken for
    # trace rows on two own-renderer pages). They stay in for the unbroken-stretch test
    # below: a thin steep stroke can break into specks (a real scan lost its rhythm row
    # when they were left out there too).
    _, parts, stats, _ = cv2.connectedComponentsWithStats(small, connectivity=8)
    specks = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= SPECK_CELLS)
    specks = specks[specks > 0]
    if len(specks):
        small[np.isin(parts, specks)] = 0
    reach = max(1, round(2.5 * px_per_mm / f))
    dil = cv2.dilate(small, np.ones((2 * reach + 1, 1), np.uint8))
    reach_wide = max(1, round(5 * px_per_mm / f))
    cols_full = mask.any(axis=0)
    if not cols_full.any():
        return RowsResult(rows=(), pitch_px=float("nan"))
    rows = []
    for y in peaks:
        ys = min(hs - 1, int(y) // f)
        line = dil[ys].astype(bool)
        inked = np.flatnonzero(line)
        if len(inked) == 0:
            continue
        coverage = float(line[inked[0]:inked[-1] + 1].mean()) * (inked[-1] - inked[0]) / max(
            1, 0.8 * (ws if page_width_px is None else min(ws, page_width_px / f)))
        coverage = min(coverage, 1.0)
        if coverage < min_coverage:
            continue
        # a trace runs unbroken for a long stretch (within ±5 mm); text breaks between words
        wide: np.ndarray = np.asarray(
            dil_wide[max(0, ys - reach_wide):ys + reach_wide + 1].any(axis=0), dtype=bool)
        if bridge_single_gaps:
            wide[1:-1] |= wide[:-2] & wide[2:]
        edges = np.flatnonzero(np.diff(np.concatenate([[0], wide.astype(np.int8), [0]])))
        longest = int(np.max(edges[1::2] - edges[::2])) if len(edges) else 0
        if longest * f < 20 * px_per_mm:
            continue
        # exact first/last inked columns near the row, at full resolution
        r0, r1 = max(0, int(y - 2.5 * px_per_mm)), min(h, int(y + 2.5 * px_per_mm) + 1)
        band = mask[r0:r1].any(axis=0)
        xs = np.flatnonzero(band)
        rows.append((float(y), coverage, int(xs[0]), int(xs[-1])))
    rows = _merge_close(rows, 5 * px_per_mm)
    if LAST_INK_HALF_PITCH:
        rows = _last_ink_over_half_pitch(rows, mask, px_per_mm)
    rows = _drop_spurious(rows, darkness, px_per_mm)
    pitch = float(np.median(np.diff([r[0] for r in rows]))) if len(rows) > 1 else float("nan")
    return RowsResult(rows=tuple(Row(i, y, round(c, 3), a, b) for i, (y, c, a, b) in
                                 enumerate(rows)), pitch_px=pitch)


def row_coverage(darkness: np.ndarray, px_per_mm: float, x_first: int, x_last: int
                  ) -> Callable[[float], float]:
    """``coverage_at(y)``: the share of columns ``x_first..x_last`` with ink (darkness ≥ 0.3)
    within ±2.5 mm of row ``y`` (px)."""
    mask = darkness >= 0.3
    height = darkness.shape[0]
    reach = round(2.5 * px_per_mm)

    def coverage_at(y: float) -> float:
        a, b = max(0, int(y) - reach), min(height, int(y) + reach + 1)
        return float(mask[a:b, x_first:x_last + 1].any(axis=0).mean()) if b > a else 0.0

    return coverage_at


def complete_rows(rows: RowsResult, darkness: np.ndarray, px_per_mm: float,
                  counts: tuple[int, ...], min_coverage: float = 0.2) -> RowsResult:
    """Rows a template needs but the projection missed, found on the row lattice.

    Trace rows are printed at one pitch. Where the found rows sit on such a lattice with
    gaps (large complexes of neighbouring rows blur the projection at 20 mm/mV), the missing
    lattice positions of the smallest template row count in ``counts`` that fits are checked
    for a trace (inked columns within ±2.5 mm over at least ``min_coverage`` of the page
    width) and added; so are the holes in a template count of rows. Returns ``rows``
    unchanged when no template is completed this way.
    """
    found = [r.centre_px for r in rows.rows]
    n = len(found)
    if n < 2:
        return rows
    diffs = np.diff(found)
    if diffs.min() <= 0:
        return rows
    # the ink centre of a row with large complexes is off its 0 mV line by up to ~1/5 pitch,
    # so the pitch is the span over the number of steps, and a step of 1.7-2.3 pitches is a
    # missing row. A template's count of rows with such a hole between them is completed
    # too (three of a 3x4+1 page's four rows: the steps are measured from the shortest).
    # Off a template count the pitch is the median step or, where every other row is
    # missing (the median falls between one and two pitches: an own 12-row render at 14 mm
    # pitch read as 5 rows), the shortest.
    if n in counts:
        mult = np.maximum(np.round(diffs / float(diffs.min())), 1)
        if mult.max() < 2:
            return rows
        bases = [float(diffs.min())]
    else:
        bases = [float(np.median(diffs)), float(diffs.min())]
    for base in bases:
        mult = np.maximum(np.round(diffs / base), 1)
        pitch = float(diffs.sum() / mult.sum())
        if np.max(np.abs(diffs / pitch - mult)) <= 0.3:
            break
    else:
        return rows
    slots = np.concatenate([[0], np.cumsum(mult)]).astype(int)
    span = int(slots[-1]) + 1
    h = darkness.shape[0]
    x_first = int(np.median([r.x_first_px for r in rows.rows]))
    x_last = int(np.median([r.x_last_px for r in rows.rows]))
    coverage_at = row_coverage(darkness, px_per_mm, x_first, x_last)

    def coverage(y: float) -> tuple[float, float]:
        """Best coverage within a quarter pitch of ``y`` (of equal ones the nearest to
        ``y``: coverage saturates within ±2.5 mm of a line), and where."""
        step = max(1.0, 0.5 * px_per_mm)
        tries = [(coverage_at(y + d), -abs(d), y + d)
                 for d in np.arange(-0.25 * pitch, 0.25 * pitch + step, step)]
        cov, _, where = max(tries)
        return cov, where

    for total in sorted(c for c in counts if c > n):
        if total < span:
            continue
        best = None
        for shift in range(0, total - span + 1):
            ys = [found[0] + (slot - shift) * pitch for slot in range(total)]
            if ys[0] < 3 * px_per_mm or ys[-1] > h - 3 * px_per_mm:
                continue
            occupied = set((slots + shift).tolist())
            new = [k for k in range(total) if k not in occupied]
            seen = [coverage(ys[k]) for k in new]
            cov = [c for c, _ in seen]
            if min(cov) < min_coverage:
                continue
            if best is None or min(cov) > best[0]:
                for k, (_, y) in zip(new, seen, strict=True):
                    ys[k] = y
                best = (min(cov), ys, occupied, cov)
        if best is None:
            continue
        _, ys, occupied, cov = best
        old = iter(rows.rows)
        new_cov = iter(cov)
        out = []
        for k, y in enumerate(ys):
            if k in occupied:
                r = next(old)
                out.append(Row(k, r.centre_px, r.coverage, r.x_first_px, r.x_last_px))
            else:
                out.append(Row(k, float(y), round(next(new_cov), 3), x_first, x_last))
        log.info("rows: %d found, %d added on the %.1f-px lattice for %d rows", n, total - n,
                 pitch, total)
        return RowsResult(rows=tuple(out), pitch_px=pitch)
    return rows


def lattice_rows(rows: RowsResult, darkness: np.ndarray, px_per_mm: float, total: int,
                 min_coverage: float = 0.2, n_best: int = 1) -> list[RowsResult]:
    """Up to ``n_best`` lattices of ``total`` rows that explain the rows found, best first.

    At 20 mm/mV on 12-row pages the ink centre of a row is pulled far off its 0 mV line by
    its complexes, so rows go missing or sit off :func:`complete_rows`'s lattice by more
    than it accepts. Here every pitch from 0.9 × ``span / (total - 1)`` up to
    ``span / (n - 3)`` (0.25-px steps; span = first to last found row, the two outermost
    rows may be left out) and every phase is scored by how close the found rows lie to the
    lattice (a row more than 0.4 pitch from it adds nothing; up to two off-lattice rows are
    allowed, and rows outside the ``total`` consecutive slots that fit best are left out).
    The best-scoring pitches (at least 3 % apart) that fit ``total`` rows between the page
    margins, with ink (inked columns within ±2.5 mm over at least ``min_coverage`` of the
    rows' width) at every position, are returned. The caller must confirm a lattice
    (calibration pulses on its rows): the score alone cannot tell pitches within a few
    per cent apart (an own 12-row render scored a 108.5-px lattice over the printed 96.8-px
    one).
    """
    found = np.array([r.centre_px for r in rows.rows], dtype=float)
    n = len(found)
    if n < max(3, total // 2) or n > total + 2:
        return []
    h = darkness.shape[0]
    # the outer found rows can sit inside the outer printed lines (centres pulled inwards by
    # complexes; an own 12-row render: found span / 11 = 97.5 px, printed pitch 96.8 px), and
    # one or two of them can be header lines above the rows (another own render)
    inner_span = min(float(found[n - 1 - j] - found[i]) for i in range(3) for j in range(3 - i)
                     if n - 1 - j > i)
    span = float(found[-1] - found[0])
    lo_pitch = max(8.0 * px_per_mm, 0.9 * inner_span / (total - 1))
    hi_pitch = span / max(1, n - 3)
    if hi_pitch < lo_pitch:
        return []
    x_first = int(np.median([r.x_first_px for r in rows.rows]))
    x_last = int(np.median([r.x_last_px for r in rows.rows]))
    coverage_at = row_coverage(darkness, px_per_mm, x_first, x_last)

    per_pitch: list[tuple[float, float, float, float]] = []   # score, pitch, first, last
    for pitch in np.arange(lo_pitch, hi_pitch + 0.25, 0.25):
        best_here: tuple[float, float, float, float] | None = None
        for phase in np.arange(0.0, pitch, max(1.0, 0.02 * pitch)):
            k = np.round((found - found[0] - phase) / pitch)
            d = np.abs(found - found[0] - phase - k * pitch) / (0.4 * pitch)
            fit = np.clip(1.0 - d ** 2, 0.0, None)
            inliers = d < 1.0
            if inliers.sum() < n - 2:
                continue
            # the ``total`` consecutive lattice slots holding the best-fitting rows
            for k0 in np.unique(k[inliers])[:3]:
                window = inliers & (k >= k0) & (k <= k0 + total - 1)
                if window.sum() < n - 2:
                    continue
                score = float(np.sum(fit[window]))
                if best_here is None or score > best_here[0] + 1e-9:
                    first = float(found[0] + phase + k[window].min() * pitch)
                    last = float(found[0] + phase + k[window].max() * pitch)
                    best_here = (score, float(pitch), first, last)
        if best_here is not None:
            per_pitch.append(best_here)
    chosen: list[tuple[float, float, float, float]] = []
    for cand in sorted(per_pitch, key=lambda c: -c[0]):
        if len(chosen) >= n_best:
            break
        if all(abs(cand[1] - c[1]) > 0.03 * c[1] for c in chosen):
            chosen.append(cand)
    out_list: list[RowsResult] = []
    for _score, pitch, y_first_inlier, y_last_inlier in chosen:
        used = round((y_last_inlier - y_first_inlier) / pitch) + 1
        # place the rows the found ones do not cover above or below, where the page has
        # room and ink
        options = []
        for above in range(0, total - used + 1):
            ys = y_first_inlier + (np.arange(total) - above) * pitch
            if ys[0] < 3 * px_per_mm or ys[-1] > h - 3 * px_per_mm:
                continue
            cov = [coverage_at(y) for y in ys]
            if min(cov) >= min_coverage:
                options.append((min(cov), ys, cov))
        if not options:
            continue
        _c, ys, cov = max(options, key=lambda o: o[0])
        out = tuple(Row(i, float(y), round(c, 3), x_first, x_last)
                    for i, (y, c) in enumerate(zip(ys, cov, strict=True)))
        log.debug("rows: %d found off any template; %d on a %.1f-px lattice", n, total, pitch)
        out_list.append(RowsResult(rows=out, pitch_px=pitch))
    return out_list


def _drop_spurious(rows: list[tuple[float, float, int, int]], darkness: np.ndarray,
                   px_per_mm: float) -> list[tuple[float, float, int, int]]:
    """Drop 'rows' that are page borders or fills: at the image edge, starting far right of
    the other rows, or solid ink rather than a line."""
    if not rows:
        return rows
    h = darkness.shape[0]
    first = float(np.median([r[2] for r in rows]))
    kept = []
    for y, cov, x0, x1 in rows:
        if y < 6 * px_per_mm or y > h - 6 * px_per_mm:
            continue
        if len(rows) > 2 and x0 > first + 20 * px_per_mm:
            continue
        band = darkness[max(0, int(y - px_per_mm)):int(y + px_per_mm) + 1, x0:x1 + 1]
        if band.size and float(np.mean(band >= 0.3)) > 0.85:
            continue
        # a ruled line (grid border, residual grid) is perfectly straight; a trace is not
        wide = darkness[max(0, int(y - 2 * px_per_mm)):int(y + 2 * px_per_mm) + 1, x0:x1 + 1]
        inked = wide.max(axis=0) >= 0.3
        if inked.sum() > 10 and inked.mean() > 0.98:
            peak_rows = np.argmax(wide[:, inked], axis=0)
            if float(np.percentile(np.abs(peak_rows - np.median(peak_rows)), 95)) <= 1.0:
                continue
        kept.append((y, cov, x0, x1))
    return kept


def _merge_close(rows: list[tuple[float, float, int, int]], min_gap: float
                 ) -> list[tuple[float, float, int, int]]:
    out: list[tuple[float, float, int, int]] = []
    for row in sorted(rows):
        if out and row[0] - out[-1][0] < min_gap:
            if row[1] > out[-1][1]:
                out[-1] = row
            continue
        out.append(row)
    return out


def find_time_axis(rows: RowsResult, pulse_right_px: float | None, px_per_mm_x: float,
                   speed_mm_s: float, fs: float = 500.0, line_width_px: float = 0.0,
                   last_ink_px: list[float] | None = None,
                   max_gap_mm: float | None = AXIS_MAX_GAP_MM,
                   image_width_px: int | None = None) -> TimeAxis:
    """The printed time axis: it ends at the rows' common right end (the last inked column
    less half a line width, plus one sample period; see :data:`END_SAMPLES`); it starts
    250 mm earlier (a standard 10-s page at 25 mm/s) when that is right of the pulse, else
    just after it. Where that start lies more than ``max_gap_mm`` (default
    :data:`AXIS_MAX_GAP_MM`) after the pulses, the axis is the 250 mm after them; None skips
    that check (a scale from the pulses alone, refined on the rows' span afterwards). Where
    the axis so found is shorter than the standard and the rows end within
    :data:`AXIS_EDGE_MM` of the image's right edge (``image_width_px``), the image cut the
    printout: the axis is the standard 250 mm from the start."""
    ends = np.array(last_ink_px if last_ink_px else [r.x_last_px for r in rows.rows],
                    dtype=float)
    starts = np.array([r.x_first_px for r in rows.rows], dtype=float)
    px_per_sample = speed_mm_s * px_per_mm_x / fs
    x1 = (float(np.median(ends)) + 0.5 - 0.5 * line_width_px + END_SAMPLES * px_per_sample
          + END_PX)
    standard = x1 - STANDARD_AXIS_MM * px_per_mm_x
    left = float(np.median(starts))
    if pulse_right_px is not None:
        left = pulse_right_px + 1.0 * px_per_mm_x
    if (pulse_right_px is not None and max_gap_mm is not None
            and standard > pulse_right_px + max_gap_mm * px_per_mm_x):
        x0 = pulse_right_px
        x1 = x0 + STANDARD_AXIS_MM * px_per_mm_x
        return TimeAxis(x0_px=x0, x1_px=x1, duration_s=round(STANDARD_AXIS_MM / speed_mm_s, 4),
                        n_samples=round(STANDARD_AXIS_MM / speed_mm_s * fs),
                        source="250 mm from the pulses' right side (the rows end "
                               f"{(standard - pulse_right_px) / px_per_mm_x:.1f} mm too late "
                               "for a standard axis)")
    if standard >= left - 2.5 * px_per_mm_x:
        x0, source = max(standard, left - 2.5 * px_per_mm_x), "standard 250-mm axis"
        if x0 != standard:
            source = "pulse end"
    else:
        x0, source = left, "first ink after the pulse" if pulse_right_px is not None else \
            "first ink"
    duration = (x1 - x0) / (px_per_mm_x * speed_mm_s)
    # snap to the standard duration when within 2 %
    standard_s = STANDARD_AXIS_MM / speed_mm_s
    if abs(duration - standard_s) < 0.02 * standard_s:
        duration = standard_s
        x0 = x1 - STANDARD_AXIS_MM * px_per_mm_x
    elif (image_width_px is not None and duration < standard_s
          and image_width_px - float(np.median(ends)) < AXIS_EDGE_MM * px_per_mm_x):
        # the rows run into the image's right edge: the printout goes on past the image, so
        # the columns are 2.5 s apart from the start, and the rest is not in the image
        x1 = x0 + STANDARD_AXIS_MM * px_per_mm_x
        return TimeAxis(x0_px=x0, x1_px=x1, duration_s=round(standard_s, 4),
                        n_samples=round(standard_s * fs),
                        source=f"{source}; the rows run into the image's right edge after "
                               f"{duration:.2f} s: the standard {STANDARD_AXIS_MM:g} mm from "
                               "their start")
    return TimeAxis(x0_px=x0, x1_px=x1, duration_s=round(duration, 4),
                    n_samples=round(duration * fs), source=source)


ROW_SPAN_RULE_SHARE = 0.8
"""A column inked over this share of the rows' height is a vertical rule (a page frame or a
border), not a trace: it is left out of the rows' span (:func:`scale_from_row_span`)."""
ROW_SPAN_GAP = 0.01
"""Largest gap (share of the image width) inside one row's run of inked columns; a wider gap
parts the trace from a page frame or text beside it (1 % is 11-15 px on the 1100-1500 px
ECG-Image-Kit pages). On the gridless ECG-Image-Kit pages read at this scale (tune and
validation, 100 px per inch = 3.937 px/mm) the span gave 3.94 px/mm on every page printed
without a pulse, the frame left out; 4.02 where an unfound pulse started the rows."""
ROW_SPAN_AGREE = 0.03
"""Rows whose span is within this share of the median span agree on it; at least half the
rows (and :data:`ROW_SPAN_MIN_ROWS`) must, or the rows' span gives no scale."""
ROW_SPAN_MIN_ROWS = 3
ROW_SPAN_PX_PER_MM = (1.5, 40.0)
"""Scales a printout is scanned or photographed at (about 40-1000 dpi)."""


@dataclasses.dataclass(frozen=True)
class RowSpanScale:
    """A page's scale from its trace rows' common span taken as the standard 250 mm (10 s at
    25 mm/s), for a page with neither a grid nor a dpi: ``span_px`` the median span,
    ``n_agree`` the rows within :data:`ROW_SPAN_AGREE` of it."""

    px_per_mm: float
    span_px: float
    n_rows: int
    n_agree: int


def _longest_run(inked: np.ndarray, max_gap_px: int) -> tuple[int, int] | None:
    """First and last column of the longest run of ``inked`` columns that bridges gaps of up
    to ``max_gap_px``; None where nothing is inked."""
    cols = np.flatnonzero(inked)
    if not len(cols):
        return None
    breaks = np.flatnonzero(np.diff(cols) > max_gap_px + 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(cols) - 1]))
    best = int(np.argmax(cols[ends] - cols[starts]))
    return int(cols[starts[best]]), int(cols[ends[best]])


def scale_from_row_span(darkness: np.ndarray, rows: RowsResult) -> RowSpanScale | None:
    """px/mm of a page printed without a grid and given without a dpi, from the span of its
    trace rows (``rows`` found at any assumed scale): a 12-lead printout's rows run 10 s at
    25 mm/s, the standard 250 mm, whatever their layout. Vertical rules (a page frame) and
    ink parted from a row's trace by a gap are left out. None where fewer than
    :data:`ROW_SPAN_MIN_ROWS` rows, or fewer than half of them, agree on the span."""
    if len(rows.rows) < ROW_SPAN_MIN_ROWS or not np.isfinite(rows.pitch_px):
        return None
    mask = darkness >= 0.3
    h, w = mask.shape
    half = 0.5 * rows.pitch_px
    top = max(int(rows.rows[0].centre_px - half), 0)
    bottom = min(int(rows.rows[-1].centre_px + half) + 1, h)
    rules = mask[top:bottom].mean(axis=0) > ROW_SPAN_RULE_SHARE
    max_gap_px = max(1, round(ROW_SPAN_GAP * w))
    spans = []
    for row in rows.rows:
        band = mask[max(int(row.centre_px - half), 0):min(int(row.centre_px + half) + 1, h)]
        run = _longest_run(band.any(axis=0) & ~rules, max_gap_px)
        if run is not None:
            spans.append(run[1] - run[0] + 1)
    if len(spans) < ROW_SPAN_MIN_ROWS:
        return None
    span_px = float(np.median(spans))
    n_agree = int(np.sum(np.abs(np.asarray(spans) / span_px - 1.0) <= ROW_SPAN_AGREE))
    px_per_mm = span_px / STANDARD_AXIS_MM
    if (n_agree < max(ROW_SPAN_MIN_ROWS, 0.5 * len(rows.rows))
            or not ROW_SPAN_PX_PER_MM[0] <= px_per_mm <= ROW_SPAN_PX_PER_MM[1]):
        return None
    return RowSpanScale(px_per_mm=px_per_mm, span_px=span_px, n_rows=len(rows.rows),
                        n_agree=n_agree)


def tick_evidence(darkness: np.ndarray, baselines_px: list[float], axis: TimeAxis,
                  px_per_mm: float) -> list[dict[float, float]]:
    """For each row, how much a separator tick (a short vertical stroke through the 0 mV line,
    ±2 mm) is seen at each candidate cell boundary (fractions 1/4, 1/2, 3/4 of the axis)."""
    out = []
    h, w = darkness.shape
    for base in baselines_px:
        seen: dict[float, float] = {}
        for frac in (0.25, 0.5, 0.75):
            x = axis.x0_px + frac * (axis.x1_px - axis.x0_px)
            xa, xb = int(max(0, x - 0.8 * px_per_mm)), int(min(w, x + 0.8 * px_per_mm + 1))
            above = [int(base - 1.7 * px_per_mm), int(base - 1.2 * px_per_mm)]
            below = [int(base + 1.2 * px_per_mm), int(base + 1.7 * px_per_mm)]
            if xb <= xa or above[0] < 0 or below[1] >= h:
                seen[frac] = 0.0
                continue
            up = darkness[above[0]:above[1] + 1, xa:xb].max(axis=0)
            down = darkness[below[0]:below[1] + 1, xa:xb].max(axis=0)
            seen[frac] = float(np.max(np.minimum(up, down)))
        out.append(seen)
    return out


def _template_boundaries(layout: Layout, row: int) -> set[float]:
    cells = layout.row_cells(row)
    return {round(c.t0, 3) for c in cells[1:]}


def strip_leads(layout: Layout, labels: list[tuple[int, float, str]],
                match: StripMatch | None = None, distance: StripDistance | None = None
                ) -> tuple[tuple[StripLead, ...], list[str]]:
    """The lead each rhythm strip of ``layout`` prints, and warnings.

    A strip prints the lead whose name is read at its start (``STRIP_LABEL_X``). A name there
    that is also the first lead of the row above is that row's label printed low (ECG-Image-
    Kit prints names below the trace start; on its 12x1+1 pages the last row's name is nearer
    the strip's 0 mV line than its own) and is left out while another name is read there.
    With ``match``, a name other than the template's lead is kept only where the strip's
    trace does not match the template lead's cell better (``STRIP_MATCH_MARGIN``): OCR reads
    a II as I now and then. With no name, two different ones, or a name the trace refutes,
    the template's lead is kept and a warning says that it was assumed, unless ``distance``
    shows the lead whose cell the strip's trace copies (:data:`STRIP_COPY_DISTANCE`; source
    ``"trace"``, with a warning that names it: on a page whose cells are read at the wrong time,
    a strip can copy a lead alike better than its own, contaminated cell).
    """
    strips = []
    warnings = []
    for row in layout.rhythm_rows:
        default = layout.row_cells(row)[0].lead
        names: dict[str, float] = {}
        for r, x, lead in labels:
            if r == row and STRIP_LABEL_X[0] <= x < STRIP_LABEL_X[1] and lead in STRIP_NAMES:
                names[lead] = min(x, names.get(lead, x))
        above = layout.row_cells(row - 1)[0].lead if row > 0 else None
        if len(names) > 1 and above in names:
            del names[above]
        if len(names) == 1:
            ((lead, x),) = names.items()
            r_label = r_default = None
            if match is not None and lead != default:
                r_label, r_default = match(layout, row, lead), match(layout, row, default)
            strip = StripLead(row, lead, "label", round(float(x), 3), lead,
                              None if r_label is None else round(r_label, 3),
                              None if r_default is None else round(r_default, 3))
            if r_label is None or r_default is None or r_default <= r_label + STRIP_MATCH_MARGIN:
                strips.append(strip)
                continue
            strips.append(dataclasses.replace(strip, lead=default, source="template"))
            why = (f"{lead} read at its start, but its trace matches the {default} cell "
                   f"(r {r_default:.2f}) better than the {lead} cell (r {r_label:.2f})")
        else:
            copied = _copied_lead(layout, row, distance) if distance is not None else None
            if copied is not None:
                strips.append(StripLead(row, copied[0], "trace",
                                        copy_distance=round(copied[1], 3)))
                warnings.append(f"rhythm strip (row {row}) named {copied[0]} from its trace, "
                                f"which copies the {copied[0]} cell (distance {copied[1]:.2f}): "
                                "no lead name read at its start")
                continue
            strips.append(StripLead(row, default, "template"))
            why = ("no lead name read at its start" if not names else
                   f"names {', '.join(sorted(names))} read at its start")
        warnings.append(f"rhythm strip (row {row}) assumed to be lead {default}, the "
                        f"{layout.name} template's: {why}")
    return tuple(strips), warnings


def _copied_lead(layout: Layout, row: int, distance: StripDistance
                 ) -> tuple[str, float] | None:
    """The lead whose cell a strip's trace copies, and its distance (see
    :data:`STRIP_COPY_DISTANCE`); None where no lead's cell is clearly the one."""
    found = sorted((d, lead) for lead in {c.stored_lead for c in layout.cells}
                   if (d := distance(layout, row, lead)) is not None)
    if not found or found[0][0] > STRIP_COPY_DISTANCE:
        return None
    if len(found) > 1 and found[1][0] < STRIP_COPY_CONTRAST * found[0][0]:
        return None
    return found[0][1], found[0][0]


def _strip_and_cells(traces: tuple, axis: TimeAxis, layout: Layout, row: int, lead: str
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """For each cell of ``lead`` on another row: the strip's trace and the cell's, read at the
    same instants (the middle 90 % of the cell; the strip's cell starts at the axis start),
    where both are finite (at least 50 samples, neither flat), and whether the cell prints the
    lead inverted."""
    span = axis.x1_px - axis.x0_px
    strip = traces[row]
    for cell in layout.cells:
        if (cell.stored_lead != lead.lstrip("-") or cell.row == row
                or cell.row >= len(traces)):
            continue
        a, b = cell.record_span
        f = np.linspace(a + 0.05 * (b - a), b - 0.05 * (b - a), 400)
        other = traces[cell.row]
        ys = np.interp(axis.x0_px + f * span, np.asarray(strip.x_px, float), strip.y_px,
                       left=np.nan, right=np.nan)
        yc = np.interp(axis.x0_px + (cell.t0 + f - a) * span, np.asarray(other.x_px, float),
                       other.y_px, left=np.nan, right=np.nan)
        ok = np.isfinite(ys) & np.isfinite(yc)
        if ok.sum() < 50 or np.std(ys[ok]) == 0 or np.std(yc[ok]) == 0:
            continue
        yield ys[ok], yc[ok], cell.inverted != lead.startswith("-")


def strip_distances(traces: tuple, axis: TimeAxis) -> StripDistance:
    """:data:`StripDistance` on a page's row traces: the least rms difference (means removed)
    between a strip row's trace and a cell of the lead, as a share of the larger of their
    standard deviations (0: the very samples), over the samples of :func:`strip_matcher`; a
    cell at :data:`SAME_INK_DISTANCE` or nearer is the strip's own ink and is left out."""

    def distance(layout: Layout, row: int, lead: str) -> float | None:
        if row >= len(traces):
            return None
        best = None
        for ys, yc, inverted in _strip_and_cells(traces, axis, layout, row, lead):
            if inverted:
                yc = -yc
            diff = (ys - ys.mean()) - (yc - yc.mean())
            d = float(np.sqrt(np.mean(diff ** 2)) / max(np.std(ys), np.std(yc)))
            if d > SAME_INK_DISTANCE:
                best = d if best is None else min(best, d)
        return best

    return distance


def strip_matcher(traces: tuple, axis: TimeAxis) -> StripMatch:
    """:data:`StripMatch` on a page's row traces (``RowTrace``: ``x_px``, ``y_px``): the best
    correlation of a strip row's trace with a cell of the lead over that cell's samples (the
    middle 90 %), the strip read at the same instants (its cell starts at the axis start)."""

    def match(layout: Layout, row: int, lead: str) -> float | None:
        if row >= len(traces):
            return None
        best = None
        for ys, yc, inverted in _strip_and_cells(traces, axis, layout, row, lead):
            r = float(np.corrcoef(ys, yc)[0, 1])
            if inverted:
                r = -r
            best = r if best is None else max(best, r)
        return best

    return match


def choose_layout(n_rows: int, ticks: list[dict[float, float]],
                  labels: list[tuple[int, float, str]], einthoven: dict[str, float] | None = None,
                  strip_match: StripMatch | None = None,
                  strip_distance: StripDistance | None = None) -> LayoutResult:
    """Score every template against the evidence and pick the best.

    Parameters
    ----------
    n_rows
        Number of trace rows found.
    ticks
        Per row, tick strength at fractions 0.25/0.5/0.75 (see :func:`tick_evidence`).
    labels
        OCR'd lead labels as ``(row, x_fraction_of_axis, lead)``.
    einthoven
        Residual of Einthoven's law per template name (lower is better), for templates that
        differ only in lead order.
    strip_match
        Checks a name read on a rhythm strip against its trace (see :func:`strip_leads`).
    strip_distance
        Names a rhythm strip with no name read from the cell its trace copies (see
        :func:`strip_leads`).
    """
    # a lead is printed once (twice with its rhythm strip): a name read more often is OCR
    # taking strokes for letters ("I" from QRS spikes: a faint own-renderer scan at 110 dpi
    # read 17 of them), and none of its reads counts
    reads: dict[str, int] = {}
    for _row, _x, lead in labels:
        reads[lead.lstrip("-").lower()] = reads.get(lead.lstrip("-").lower(), 0) + 1
    labels = [lab for lab in labels if reads[lab[2].lstrip("-").lower()] <= MAX_LABEL_READS]
    scores: dict[str, float] = {}
    details: dict[str, dict[str, float]] = {}
    for name, layout in LAYOUTS.items():
        if layout.n_rows != n_rows:
            continue
        tick_score = 0.0
        for r in range(n_rows):
            want = _template_boundaries(layout, r)
            for frac, strength in (ticks[r].items() if r < len(ticks) else ()):
                expected = round(frac, 3) in want
                tick_score += strength if expected else -strength
        label_score = 0.0
        for row, xfrac, lead in labels:
            if row >= n_rows:
                continue
            cells = layout.row_cells(row)
            match = [c for c in cells if c.t0 - 0.04 <= xfrac < c.t1 - 0.02]
            if match and match[0].lead.lstrip("-").lower() == lead.lstrip("-").lower():
                label_score += 1.0
            elif match:
                label_score -= 0.5
        # ticks: summed over a row's boundaries, averaged over rows (each row up to ±3)
        score = tick_score / max(n_rows, 1) + 0.5 * label_score
        if einthoven and name in einthoven and np.isfinite(einthoven[name]):
            score -= 2.0 * einthoven[name]
        scores[name] = round(float(score), 3)
        details[name] = {"ticks": round(tick_score, 3), "labels": label_score}
    warnings: list[str] = []
    evidence: dict[str, object] = {"rows": n_rows, "ticks": ticks, "labels": labels,
                                   "einthoven": einthoven or {}, "details": details}
    if not scores:
        warnings.append(f"{n_rows} trace rows fit no known layout "
                        f"({', '.join(f'{k}: {v.n_rows}' for k, v in LAYOUTS.items())})")
        return LayoutResult("unknown", 0.0, {}, evidence, tuple(warnings))
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    best, best_score = ranked[0]
    if len(ranked) == 1:
        confidence = 0.9
    else:
        margin = best_score - ranked[1][1]
        confidence = float(np.clip(0.5 + margin, 0.3, 0.95))
        if margin < 0.15:
            warnings.append(f"layout {best} only narrowly preferred to {ranked[1][0]} "
                            f"(scores {best_score:.2f} vs {ranked[1][1]:.2f})")
    strips, strip_warnings = strip_leads(LAYOUTS[best], labels, strip_match, strip_distance)
    warnings.extend(strip_warnings)
    evidence["strips"] = [dataclasses.asdict(s) for s in strips]
    return LayoutResult(best, round(confidence, 3), scores, evidence, tuple(warnings), strips)
