"""Trace rows and calibration pulses found from each other.

The ink projection (:func:`digitize.layout_detect.find_rows`) loses rows where the complexes
of neighbouring rows cross (20 mm/mV, crowded pages). Every row starts with a calibration
pulse, and pulses stay apart: these helpers find a row's pulse, confirm a row lattice by
pulses, scan the left margin for the pulses' lattice, add rows beyond the found ones where
pulses stand, and search again for faint pulses. Used by :mod:`digitize.pipeline`.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ecglens.digitize.calibration import Pulse, find_pulse
from ecglens.digitize.layout_detect import Row, RowsResult, lattice_rows, row_coverage

log = logging.getLogger(__name__)


PULSE_SEARCH_MM = 40.0
"""Width of the strip, from a row's first inked column, searched for its calibration pulse.
A 10-mm pulse (50 mm/s) with its lead-out did not fit 30 mm where a scanner's dark edge
strip was the rows' first ink, 20 mm left of the pulses (an own render: no pulse, 25 mm/s
assumed)."""


def row_pulse(darkness: np.ndarray, row: Row, ppmm_x: float, ppmm_y: float,
              pitch: float, x_start_px: int | None = None,
              search_mm: float | None = None) -> Pulse | None:
    """The calibration pulse of ``row``: searched from its first ink (or ``x_start_px``
    where that is further left) to ``search_mm`` (default :data:`PULSE_SEARCH_MM`) right of
    it."""
    start = row.x_first_px if x_start_px is None else min(row.x_first_px, x_start_px)
    width_mm = PULSE_SEARCH_MM if search_mm is None else search_mm
    search = (start - 1, start + int(width_mm * ppmm_x))
    return find_pulse(darkness, row.index, row.centre_px, search, ppmm_x, ppmm_y, pitch)


def rows_start_px(rows: RowsResult) -> int:
    """The rows' common first inked column (their median), where their pulses start.

    A row whose own first ink lies right of it is searched from there: an own render's
    rhythm row started 15 mm late (its pulse's thin strokes were not counted as the row's
    ink), its pulse was not found, and the rows above the first were not looked for."""
    return int(np.median([r.x_first_px for r in rows.rows]))


LATTICE_PULSE_SHARE = 0.75
"""Share of the rows of a fitted row lattice (:func:`layout_detect.lattice_rows`) that must
hold a calibration pulse for the lattice to be read."""
LATTICE_CANDIDATES = 4
"""Lattices (best-scored, pitches ≥ 3 % apart) per template row count tried for pulses."""
LATTICE_PULSE_SCATTER = 0.06
"""…and those pulses' 0 mV levels must lie on one straight pitch within this share of it
(printed pulses do, to ~0.01 on rendered pages; on a dark-gridded real photo major grid
squares were taken for 5-mm/mV pulses off it by up to 0.11, and the page was read along its
grid lines)."""


def pulse_lattice(rows: RowsResult, darkness: np.ndarray, ppmm_x: float, ppmm_y: float,
                  template_rows: tuple[int, ...]) -> RowsResult | None:
    """The row lattice, for a template's row count, that calibration pulses confirm: at
    least :data:`LATTICE_PULSE_SHARE` of its rows (and three) have a pulse whose 0 mV line
    lies within a quarter pitch of the lattice row, and those 0 mV lines lie on one straight
    pitch within :data:`LATTICE_PULSE_SCATTER` of it. Largest template first; of the
    :data:`LATTICE_CANDIDATES` best lattices per template, the one with most pulses wins.
    None when none is confirmed."""
    for total in sorted(template_rows, reverse=True):
        confirmed: list[tuple[int, RowsResult]] = []
        for lattice in lattice_rows(rows, darkness, ppmm_y, total, n_best=LATTICE_CANDIDATES):
            pitch = lattice.pitch_px
            hits: list[tuple[int, float]] = []
            for k, row in enumerate(lattice.rows):
                pulse = row_pulse(darkness, row, ppmm_x, ppmm_y, pitch)
                if pulse is not None and abs(pulse.baseline_px - row.centre_px) <= 0.25 * pitch:
                    hits.append((k, pulse.baseline_px))
            log.debug("lattice of %d rows (pitch %.1f px): %d pulses", total, pitch, len(hits))
            if len(hits) < max(LATTICE_PULSE_SHARE * total, 3):
                continue
            # printed pulses sit on one pitch: grid squares taken for pulses do not
            index, level = np.array(hits, dtype=float).T
            fit = np.polyfit(index, level, 1)
            scatter = float(np.max(np.abs(level - np.polyval(fit, index))))
            if scatter <= LATTICE_PULSE_SCATTER * pitch:
                confirmed.append((len(hits), lattice))
            else:
                log.debug("lattice of %d rows: pulse levels off one pitch by up to %.2f pitch",
                          total, scatter / pitch)
        if confirmed:
            best = max(confirmed, key=lambda c: c[0])[1]   # first (best-scored) among ties
            log.info("rows: %d found off any template; %d on a %.1f-px lattice",
                     len(rows.rows), total, best.pitch_px)
            return best
    return None


def extend_rows_by_pulses(rows: RowsResult, pulses: list[Pulse], darkness: np.ndarray,
                          ppmm_x: float, ppmm_y: float, template_rows: tuple[int, ...]
                          ) -> tuple[RowsResult, list[Pulse]] | None:
    """Rows above the first and below the last row found, one pitch at a time, where a
    calibration pulse like the rows' own (same gain and speed, score at least
    :data:`PULSE_SCAN_SCORE`) stands within :data:`PULSE_SCAN_TOLERANCE` of the pitch; None
    unless some are found and the new count is a template's. Two probes on most pages.

    At 20 mm/mV the projection can lose the outer rows to the complexes crossing them while
    the count left is still a template's (an own render: 4 of 6 rows, read as 3x4+1). Where
    no row is added this way (or the rows' pulses are off one pitch), three rows may still
    get their rhythm strip (:func:`_rhythm_row_below`)."""
    if len(pulses) < 2 or len(pulses) != len(rows.rows):
        return None
    if len({(p.gain_mm_mv, p.speed_mm_s) for p in pulses}) != 1:
        return None
    levels = np.array([p.baseline_px for p in pulses])
    steps = np.diff(levels)
    if steps.min() <= 0:
        return None
    pitch = float(np.median(steps))
    h = darkness.shape[0]
    x_first = int(np.median([r.x_first_px for r in rows.rows]))
    x_last = int(np.median([r.x_last_px for r in rows.rows]))
    like = (pulses[0].gain_mm_mv, pulses[0].speed_mm_s)
    if np.max(np.abs(steps / pitch - 1)) > PULSE_SCAN_TOLERANCE:
        return _rhythm_row_below(rows, pulses, darkness, ppmm_x, ppmm_y, template_rows, pitch,
                                 x_first, x_last)
    added: dict[int, Pulse] = {}
    for direction in (-1, 1):
        k = 0 if direction < 0 else len(pulses) - 1
        while True:
            k += direction
            y = levels[0] + k * pitch
            if y < 5 * ppmm_y or y > h - 3 * ppmm_y:
                break
            pulse = find_pulse(darkness, k, float(y),
                               (x_first - 1, x_first + int(PULSE_SEARCH_MM * ppmm_x)),
                               ppmm_x, ppmm_y, 0.3 * pitch)
            if (pulse is None or pulse.score < PULSE_SCAN_SCORE
                    or (pulse.gain_mm_mv, pulse.speed_mm_s) != like
                    or abs(pulse.baseline_px - y) > PULSE_SCAN_TOLERANCE * pitch):
                break
            added[k] = pulse
    if not added:
        # a rhythm strip is often printed further below the rows than their pitch
        return _rhythm_row_below(rows, pulses, darkness, ppmm_x, ppmm_y, template_rows, pitch,
                                 x_first, x_last)
    if len(rows.rows) + len(added) not in template_rows:
        return None
    coverage_at = row_coverage(darkness, ppmm_y, x_first, x_last)
    slots = sorted([*added, *range(len(rows.rows))])
    out_rows, out_pulses = [], []
    for index, k in enumerate(slots):
        if k in added:
            level = added[k].baseline_px
            out_rows.append(Row(index, level, round(coverage_at(level), 3), x_first, x_last))
            out_pulses.append(dataclasses.replace(added[k], row=index))
        else:
            old = rows.rows[k]
            out_rows.append(dataclasses.replace(old, index=index))
            out_pulses.append(dataclasses.replace(pulses[k], row=index))
    log.info("rows: %d added beyond the %d found, on their pulses", len(added), len(rows.rows))
    return RowsResult(rows=tuple(out_rows), pitch_px=pitch), out_pulses


FAINT_PULSE_GAIN = 1.6
"""Darkness factor for the second pulse search on a page where no row shows a pulse."""


RHYTHM_ROW_COVERAGE = 0.5
"""Share of the page width a rhythm strip found below three rows by its pulse must be inked
over (±2.5 mm of its 0 mV line): a rhythm strip runs across the whole page."""


def _rhythm_row_below(rows: RowsResult, pulses: list[Pulse], darkness: np.ndarray,
                      ppmm_x: float, ppmm_y: float, template_rows: tuple[int, ...],
                      pitch: float, x_first: int, x_last: int
                      ) -> tuple[RowsResult, list[Pulse]] | None:
    """The rhythm strip below three rows (3x4 → 3x4+1) that no probe one pitch below found:
    on a phone photo the rows' pulses can be off one pitch (perspective left in it: a real
    photo's rows 147 and 186 px apart, its strip's pulse 95 px below them), and a strip is
    often printed further below the rows than their pitch (another real photo: 164 px below
    rows 140 and 153 px apart). Kept where a pulse like theirs (same gain and width, score at least
    :data:`PULSE_SCAN_SCORE`) stands 0.4–1.5 pitches below the last row's and its row is
    inked across :data:`RHYTHM_ROW_COVERAGE` of the page."""
    if len(rows.rows) != 3 or 4 not in template_rows:
        return None
    last = pulses[-1].baseline_px
    h = darkness.shape[0]
    if last + 0.4 * pitch > h - 3 * ppmm_y:
        return None
    pulse = find_pulse(darkness, len(rows.rows), float(last + pitch),
                       (x_first - 1, x_first + int(PULSE_SEARCH_MM * ppmm_x)), ppmm_x, ppmm_y,
                       pitch)
    if (pulse is None or pulse.score < PULSE_SCAN_SCORE
            or (pulse.gain_mm_mv, pulse.speed_mm_s) != (pulses[0].gain_mm_mv,
                                                         pulses[0].speed_mm_s)
            or not last + 0.4 * pitch <= pulse.baseline_px <= last + 1.5 * pitch):
        return None
    coverage = row_coverage(darkness, ppmm_y, x_first, x_last)(pulse.baseline_px)
    if coverage < RHYTHM_ROW_COVERAGE:
        return None
    log.info("rows: a rhythm strip below the %d rows found, on its pulse %.0f px below",
             len(rows.rows), pulse.baseline_px - last)
    row = Row(len(rows.rows), pulse.baseline_px, round(coverage, 3), x_first, x_last)
    return (RowsResult(rows=(*rows.rows, row), pitch_px=rows.pitch_px),
            [*pulses, pulse])


def faint_pulses(darkness: np.ndarray, rows: RowsResult, ppmm_x: float, ppmm_y: float,
                 pitch: float) -> list[Pulse]:
    """Pulses searched again at :data:`FAINT_PULSE_GAIN` times the darkness, kept only when
    at least half the rows (and two) show one and all of them have one height and width.

    A scanner's blur leaves one-pixel vertical strokes at a third to a half of the trace's
    darkness at ~110 dpi (two own renders: no pulse matched, 10 mm/mV
    assumed for pages printed at 20 and 5 mm/mV)."""
    boosted = np.minimum(darkness * np.float32(FAINT_PULSE_GAIN), np.float32(1.0))
    start = rows_start_px(rows)
    found = [p for p in (row_pulse(boosted, row, ppmm_x, ppmm_y, pitch, start)
                         for row in rows.rows) if p is not None]
    if len(found) < max(2, 0.5 * len(rows.rows)):
        return []
    if len({(p.gain_mm_mv, p.speed_mm_s) for p in found}) != 1:
        return []
    return found


PULSE_SCAN_SCORE = 0.8
"""Least :func:`find_pulse` score (1.0: every side of the pulse fully inked) of a pulse
found by :func:`pulse_scan_rows`; on the benchmark pages printed pulses score 0.84-1.0
(lower where complexes of the row above cross them), grid squares and text taken for
pulses 0.5-0.9, off the pulses' lattice."""
PULSE_SCAN_STEP_MM = 8.0
"""Vertical step of the pulse scan; each step searches ±5 mm for the pulse's 0 mV line."""
PULSE_SCAN_TOLERANCE = 0.08
"""Share of the pitch a scanned pulse's 0 mV line may lie off the pulses' lattice."""


def pulse_scan_rows(rows: RowsResult, darkness: np.ndarray, ppmm_x: float, ppmm_y: float,
                    template_rows: tuple[int, ...]) -> RowsResult | None:
    """Rows from the calibration pulses down the page's left margin, or None.

    The strip where the found rows start (their median first inked column,
    :data:`PULSE_SEARCH_MM` wide) is
    searched for pulses every :data:`PULSE_SCAN_STEP_MM`; pulses scoring at least
    :data:`PULSE_SCAN_SCORE` (one per 3 mm) are fitted with the evenly spaced lattice (pitch
    ≥ 8 mm) that holds most of them within :data:`PULSE_SCAN_TOLERANCE` of its pitch. Its
    slots from the first to the last pulse on it, widened above or below to the smallest
    template row count that fits the page, are the rows, when at least three pulses and
    :data:`LATTICE_PULSE_SHARE` of the slots hold one, and every empty slot has ink across
    the page (of several placements, the one whose emptiest slot has most). At 20 mm/mV the
    complexes of
    overlapping rows blur the ink projection; the pulses stay apart (two own renders: 5 rows
    found of 12, and 2 of 6).
    """
    if not rows.rows:
        return None
    x_first = int(np.median([r.x_first_px for r in rows.rows]))
    x_last = int(np.median([r.x_last_px for r in rows.rows]))
    search = (x_first - 1, x_first + int(PULSE_SEARCH_MM * ppmm_x))
    found: list[Pulse] = []
    h = darkness.shape[0]
    for y in np.arange(5 * ppmm_y, h - 3 * ppmm_y, PULSE_SCAN_STEP_MM * ppmm_y):
        pulse = find_pulse(darkness, 0, float(y), search, ppmm_x, ppmm_y, 10 * ppmm_y)
        if pulse is not None and pulse.score >= PULSE_SCAN_SCORE:
            found.append(pulse)
    kept: list[Pulse] = []
    for pulse in sorted(found, key=lambda p: -p.score):
        if all(abs(pulse.baseline_px - k.baseline_px) > 3 * ppmm_y for k in kept):
            kept.append(pulse)
    if len(kept) < 3:
        return None
    levels = np.sort([p.baseline_px for p in kept])
    best: tuple[int, float, float, np.ndarray] | None = None   # inliers, -spread, pitch, slots
    for i in range(len(levels)):
        for j in range(i + 1, len(levels)):
            for steps in (1, 2):
                pitch = float(levels[j] - levels[i]) / steps
                if pitch < 8 * ppmm_y:
                    continue
                k = (levels - levels[i]) / pitch
                on = np.abs(k - np.round(k)) <= PULSE_SCAN_TOLERANCE
                slots = np.round(k[on]).astype(int)
                if len(slots) < 3 or len(set(slots.tolist())) < len(slots):
                    continue
                # refine the pitch on the inliers (least squares through their slots)
                fit = np.polyfit(slots, levels[on], 1)
                cand = (int(on.sum()), -float(slots.max() - slots.min()), float(fit[0]),
                        np.array([fit[1] + fit[0] * s for s in range(slots.min(),
                                                                     slots.max() + 1)]))
                if best is None or cand[:2] > best[:2]:
                    best = cand
    if best is None:
        return None
    n_pulses, _, pitch, span_ys = best
    coverage_at = row_coverage(darkness, ppmm_y, x_first, x_last)
    # the slots from the first to the last pulse, widened above and below to the smallest
    # template count that fits the page (outer rows whose pulses a crossing QRS spoils:
    # an own render, 9 pulses over 10 slots of 12 rows); every empty slot must have ink
    options = []
    for total in sorted(t for t in template_rows if t >= len(span_ys)):
        if n_pulses < max(3, LATTICE_PULSE_SHARE * total):
            break
        extra = total - len(span_ys)
        for above in range(extra + 1):
            ys = span_ys[0] + pitch * (np.arange(total) - above)
            if ys[0] < 3 * ppmm_y or ys[-1] > h - 3 * ppmm_y:
                continue
            # a slot with a pulse sits on its 0 mV line; an empty one on the lattice
            ys = np.array([next((p.baseline_px for p in kept
                                 if abs(y - p.baseline_px) <= PULSE_SCAN_TOLERANCE * pitch), y)
                           for y in ys])
            cov = [coverage_at(y) for y in ys]
            on_pulse = [any(abs(y - p.baseline_px) < 1e-6 for p in kept) for y in ys]
            empty = [c for c, hit in zip(cov, on_pulse, strict=True) if not hit]
            if min(empty, default=1.0) >= 0.2:
                options.append((min(empty, default=1.0), ys, cov, sum(on_pulse)))
        if options:
            break
    if not options:
        return None
    _, ys, cov, n_on_pulse = max(options, key=lambda o: o[0])
    total = len(ys)
    log.info("rows: %d found in the ink projection; %d on the %.1f-px lattice of %d pulses",
             len(rows.rows), total, pitch, n_pulses)
    return RowsResult(rows=tuple(Row(i, float(y), round(c, 3), x_first, x_last)
                                 for i, (y, c) in enumerate(zip(ys, cov, strict=True))),
                      pitch_px=pitch, pulsed_rows=int(n_on_pulse))
