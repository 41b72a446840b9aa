"""Pixels → millivolts and seconds: the 12-lead, 500-Hz record of a page.

``mV = (baseline_px − y_px) / (px_per_mm_y · gain)`` and ``t = (x_px − x0_px) /
(px_per_mm_x · speed)``. Each cell is written at its own time offset (NaN elsewhere; a cell
with a ``source_t0`` at that one instead of the time under it); a
rhythm-strip row is written last so that its lead carries the strip over the whole duration;
a Cabrera ``-aVR`` cell is stored as aVR inverted. Einthoven's law is checked where I, II and
III (or aVR, aVL, aVF) were printed at the same time.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ecglens.core.layouts import Layout
from ecglens.core.record import STANDARD_LEADS, ECGRecord
from ecglens.digitize.trace import RowTrace

log = logging.getLogger(__name__)

FS_HZ = 500.0


@dataclasses.dataclass(frozen=True)
class LeadRead:
    """How one stored lead was read."""

    lead: str
    rows: tuple[int, ...]
    t_start_s: float
    t_end_s: float
    finite_fraction: float
    confidence: float
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ConvertResult:
    """The record plus per-lead details and the Einthoven check."""

    record: ECGRecord
    leads: tuple[LeadRead, ...]
    einthoven: dict[str, float]


def row_samples_mv(trace: RowTrace, baseline_px: float, px_per_mm_y: float,
                   gain_mm_mv: float) -> tuple[np.ndarray, np.ndarray]:
    """``(x_px, mV)`` of a row at its finest resolution: the sub-column trace when the trace
    stage made one, else one value per column."""
    if trace.fine_x_px is not None and trace.fine_y_px is not None:
        x_px, y_px = trace.fine_x_px, trace.fine_y_px
    else:
        x_px, y_px = trace.x_px.astype(float), trace.y_px
    return x_px, (baseline_px - y_px) / (px_per_mm_y * gain_mm_mv)


def _guard_boundaries(x_px: np.ndarray, mv: np.ndarray, layout: Layout, row: int, x0_px: float,
                      x_end_px: float, guard_px: float) -> np.ndarray:
    """NaN within ``guard_px`` of inner cell boundaries: a separator tick and the jump from
    one lead's trace to the next are printed there, not either lead's signal."""
    cells = layout.row_cells(row)
    if len(cells) < 2:
        return mv
    out = mv.copy()
    span = x_end_px - x0_px
    for cell in cells[1:]:
        xb = x0_px + cell.t0 * span
        out[np.abs(x_px - xb) <= guard_px] = np.nan
    return out


def einthoven_residual(signal: np.ndarray) -> dict[str, float]:
    """Relative residuals of II = I + III and aVR + aVL + aVF = 0 on simultaneous samples.

    Returns ``{"limb": r1, "augmented": r2}`` (rms residual / rms of the leads; NaN where the
    leads were never printed together).
    """
    out = {}
    i, ii, iii = signal[:, 0], signal[:, 1], signal[:, 2]
    both = np.isfinite(i) & np.isfinite(ii) & np.isfinite(iii)
    if both.sum() > 50:
        res = ii[both] - i[both] - iii[both]
        res = res - np.median(res)  # baselines are forgiven
        scale = np.sqrt(np.mean((ii[both] - np.median(ii[both])) ** 2)) + 1e-6
        out["limb"] = float(np.sqrt(np.mean(res ** 2)) / scale)
    else:
        out["limb"] = float("nan")
    avr, avl, avf = signal[:, 3], signal[:, 4], signal[:, 5]
    both = np.isfinite(avr) & np.isfinite(avl) & np.isfinite(avf)
    if both.sum() > 50:
        res = avr[both] + avl[both] + avf[both]
        res = res - np.median(res)
        scale = np.sqrt(np.mean((avr[both] - np.median(avr[both])) ** 2)) + 1e-6
        out["augmented"] = float(np.sqrt(np.mean(res ** 2)) / scale)
    else:
        out["augmented"] = float("nan")
    return out


def build_record(traces: tuple[RowTrace, ...], layout: Layout, baselines_px: list[float],
                 row_gain_mm_mv: list[float], speed_mm_s: float, px_per_mm_x: float,
                 px_per_mm_y: float, x0_px: float, n_samples: int,
                 row_confidence: list[float] | None = None, extra_confidence: float = 1.0,
                 provenance: dict | None = None, guard_px: float = 0.0) -> ConvertResult:
    """Place every cell of ``layout`` into a 12-lead record (see module docstring).

    ``guard_px``: columns this close to a boundary between two cells of a row (where a
    separator tick may be printed) are not read (NaN).
    """
    signal = np.full((n_samples, 12), np.nan)
    t = np.arange(n_samples) / FS_HZ
    x_of_t = x0_px + t * speed_mm_s * px_per_mm_x
    rows_of: dict[str, list[int]] = {}
    spans: dict[str, tuple[float, float]] = {}
    conf: dict[str, float] = {}
    reasons: dict[str, list[str]] = {}
    cells = sorted(layout.cells, key=lambda c: (c.t1 - c.t0, c.row))  # rhythm strips last
    for cell in cells:
        if cell.row >= len(traces):
            continue
        trace = traces[cell.row]
        i0, i1 = round(cell.t0 * n_samples), round(cell.t1 * n_samples)
        # where the cell's samples go in the record (the time under it unless it says not)
        j0 = round(cell.record_span[0] * n_samples)
        j1 = min(j0 + (i1 - i0), n_samples)
        i1 = i0 + (j1 - j0)
        if len(trace.x_px) < 2:
            continue
        x_px, mv = row_samples_mv(trace, baselines_px[cell.row], px_per_mm_y,
                                  row_gain_mm_mv[cell.row])
        y_row = mv
        if guard_px > 0:
            y_row = _guard_boundaries(x_px, mv, layout, cell.row, x0_px,
                                      x0_px + n_samples / FS_HZ * speed_mm_s * px_per_mm_x,
                                      guard_px)
        values = np.interp(x_of_t[i0:i1], x_px, y_row, left=np.nan, right=np.nan)
        if cell.inverted:
            values = -values
        k = STANDARD_LEADS.index(cell.stored_lead)
        signal[j0:j1, k] = values
        rows_of.setdefault(cell.stored_lead, []).append(cell.row)
        a, b = spans.get(cell.stored_lead, (j0 / FS_HZ, j1 / FS_HZ))
        spans[cell.stored_lead] = (min(a, j0 / FS_HZ), max(b, j1 / FS_HZ))
        finite = float(np.mean(np.isfinite(values))) if len(values) else 0.0
        c = (row_confidence[cell.row] if row_confidence else 1.0) * finite
        conf[cell.stored_lead] = max(conf.get(cell.stored_lead, 0.0), c)
        overlap = 0.0
        if trace.overlapped is not None and trace.overlapped.any() and len(values):
            near = np.interp(x_of_t[i0:i1], trace.x_px, trace.overlapped.astype(float),
                             left=0.0, right=0.0) > 0.5
            overlap = float(np.mean(near & ~np.isfinite(values)))
        if overlap >= 0.005:
            reasons.setdefault(cell.stored_lead, []).append(
                f"row {cell.row}: {100 * overlap:.0f} % not read where its trace merges with "
                "a neighbouring row's (which ink is whose cannot be told)")
        if finite + overlap < 0.95:
            reasons.setdefault(cell.stored_lead, []).append(
                f"row {cell.row}: {100 * (1 - finite - overlap):.0f} % of the cell could not "
                "be read")
    leads = []
    confidence = []
    for k, name in enumerate(STANDARD_LEADS):
        if name not in rows_of:
            leads.append(LeadRead(name, (), 0.0, 0.0, 0.0, 0.0, ("not printed",)))
            confidence.append(0.0)
            continue
        c = round(float(np.clip(conf[name] * extra_confidence, 0, 1)), 3)
        a, b = spans[name]
        finite = float(np.mean(np.isfinite(signal[int(a * FS_HZ):int(b * FS_HZ), k])))
        leads.append(LeadRead(name, tuple(rows_of[name]), a, b, round(finite, 3), c,
                              tuple(reasons.get(name, ()))))
        confidence.append(c)
    record = ECGRecord(signal=signal, fs=FS_HZ, leads=STANDARD_LEADS,
                       provenance=provenance or {}, confidence=tuple(confidence))
    return ConvertResult(record=record, leads=tuple(leads), einthoven=einthoven_residual(signal))
