"""ST level per lead at the J point and J+60 ms, against the PR-segment baseline (mV).

The baseline of each lead is the mean of its median beat 20 … 4 ms before the global QRS onset
(the end of the PR segment), never 0 mV. The J point is the global QRS end of the median beats
(as in most computerised ECG programs), so every lead is measured at the same instant.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ecglens.analysis.delineate import Fiducials, MedianBeats

J60_S = 0.060


@dataclasses.dataclass(frozen=True)
class STLevel:
    """ST measurement of one lead.

    Attributes
    ----------
    lead
        Lead name.
    st_j_mv
        Median-beat level at the J point minus the PR level, mV (1 mm = 0.1 mV).
    st_j60_mv
        Same at J + 60 ms, mV.
    baseline_mv
        PR-segment level of the median beat, mV.
    n_beats
        Beats in the lead's median beat.
    noise_mv
        Median absolute deviation of the beats from the median beat over the ST segment, mV
        (a measurement-uncertainty proxy).
    reason
        Why the values are NaN, empty if measured.
    """

    lead: str
    st_j_mv: float
    st_j60_mv: float
    baseline_mv: float
    n_beats: int
    noise_mv: float
    reason: str = ""

    @property
    def measured(self) -> bool:
        """True when the J-point level is a number."""
        return math.isfinite(self.st_j_mv)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (NaN → None; mV rounded to µV)."""
        def r(v: float) -> float | None:
            return None if not math.isfinite(v) else round(float(v), 3)
        return {"lead": self.lead, "st_j_mv": r(self.st_j_mv), "st_j60_mv": r(self.st_j60_mv),
                "baseline_mv": r(self.baseline_mv), "n_beats": int(self.n_beats),
                "noise_mv": r(self.noise_mv), "reason": self.reason}


def _level(beat: np.ndarray, at: float, half: int) -> float:
    i = round(at)
    lo, hi = max(0, i - half), min(len(beat), i + half + 1)
    seg = beat[lo:hi]
    return float(np.mean(seg)) if seg.size and np.isfinite(seg).all() else np.nan


def measure_st(med: MedianBeats, fid: Fiducials, leads: tuple[str, ...],
               beat_noise_mv: np.ndarray | None = None, j_point: float | None = None
               ) -> list[STLevel]:
    """ST at J and J+60 ms for every lead (NaN with a reason where it cannot be measured).

    Parameters
    ----------
    med
        Median beats.
    fid
        Fiducials (global J point, per-lead PR level).
    leads
        Lead names in the column order of ``med.beats``.
    beat_noise_mv
        Optional per-lead noise estimate (mV).
    j_point
        Override of the J point (sample in the median-beat window), e.g. an annotated one.
    """
    fs = med.fs
    j = fid.j_point if j_point is None else j_point
    half = max(1, round(0.004 * fs))  # average over ±4 ms
    out = []
    for k, name in enumerate(leads):
        noise = float(beat_noise_mv[k]) if beat_noise_mv is not None else np.nan
        if med.n_beats[k] == 0:
            out.append(STLevel(name, np.nan, np.nan, np.nan, 0, noise,
                               "no usable beat in this lead"))
            continue
        if not np.isfinite(j):
            out.append(STLevel(name, np.nan, np.nan, np.nan, int(med.n_beats[k]), noise,
                               fid.reason or "J point not found"))
            continue
        base = fid.iso_mv[k]
        if not np.isfinite(base):
            out.append(STLevel(name, np.nan, np.nan, np.nan, int(med.n_beats[k]), noise,
                               "PR segment not measurable"))
            continue
        st_j = _level(med.beats[:, k], j, half) - base
        st_60 = _level(med.beats[:, k], j + J60_S * fs, half) - base
        out.append(STLevel(name, st_j, st_60, float(base), int(med.n_beats[k]), noise,
                           "" if np.isfinite(st_j) else "median beat incomplete at J"))
    return out
