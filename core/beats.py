"""The one beat detector of ecglens: R-peak anchors from a multi-lead QRS envelope.

Used by the analysis (median beats, intervals, ST) and by the beat classifier, so one record
gives one list of beats everywhere (the JSON of ``analyze`` and ``classify`` shows the same
times). Method (measured on LUDB in ``benchmarks/ludb_delineation.py``):

Per lead, the squared first difference of the filtered signal, scaled by its own 99th
percentile, averaged over the leads present at each instant (NaN-aware, so a 3x4 page with
3 leads at a time works), smoothed over 40 ms. Peaks at least 250 ms apart and above 30 % of the
typical peak height are beats; each is moved to the maximum of the 16-ms smoothed envelope and
then aligned (±12 ms) to the multi-lead template by cross-correlation. On a page layout (one
rhythm-strip lead runs through the whole record, the others cover parts) the timing and
alignment use the rhythm strip alone.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import ndimage
from scipy import signal as sps

from ecglens.core.filters import FilterSpec, filter_record
from ecglens.core.record import ECGRecord

REFRACTORY_S = 0.25
ALIGN_S = 0.012
MIN_BEAT_CORR = 0.7
FLAT_MV = 0.05
"""A lead whose filtered 0.5–99.5 percentile range is below this is a flat line (not used)."""


@dataclasses.dataclass(frozen=True)
class Beats:
    """Detected beats.

    Attributes
    ----------
    anchors
        Anchor sample of every beat (QRS energy maximum after alignment), int array.
    kept
        True for beats used in the median beat (not ectopic / artefact).
    correlation
        Multi-lead correlation of each beat with the template (NaN if not computable).
    """

    anchors: np.ndarray
    kept: np.ndarray
    correlation: np.ndarray

    @property
    def n(self) -> int:
        """Number of beats detected."""
        return len(self.anchors)


def _robust_scale(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.nan
    return float(np.percentile(finite, 99))


def qrs_envelope(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """Multi-lead QRS energy envelope (dimensionless, NaN where no lead is present).

    Parameters
    ----------
    signal_mv
        ``(n_samples, n_leads)`` filtered signal in mV.
    fs
        Sampling rate in Hz.
    """
    diff = np.diff(signal_mv, axis=0, prepend=np.nan) ** 2
    scaled = np.full(diff.shape, np.nan)
    for k in range(diff.shape[1]):
        scale = _robust_scale(diff[:, k])
        if np.isfinite(scale) and scale > 0:
            scaled[:, k] = diff[:, k] / scale
    present = np.isfinite(scaled).any(axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        env = np.nanmean(scaled, axis=1)
    env[~present] = np.nan
    return env


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    filled = np.where(np.isfinite(x), x, 0.0)
    return ndimage.uniform_filter1d(filled, max(1, width), mode="nearest")


def detect_beats(signal_mv: np.ndarray, fs: float) -> Beats:
    """Find beats on the multi-lead envelope and align them (see module docstring)."""
    env = qrs_envelope(signal_mv, fs)
    if not np.isfinite(env).any():
        return Beats(np.zeros(0, int), np.zeros(0, bool), np.zeros(0))
    wide = _smooth(env, int(0.04 * fs))
    narrow = _smooth(env, int(0.016 * fs))
    peaks, _props = sps.find_peaks(wide, distance=int(REFRACTORY_S * fs))
    if len(peaks) == 0:
        return Beats(np.zeros(0, int), np.zeros(0, bool), np.zeros(0))
    heights = wide[peaks]
    ref = np.percentile(heights, 90)
    peaks = peaks[heights > 0.3 * ref]
    half = int(0.06 * fs)
    anchors = []
    for p in peaks:
        lo, hi = max(0, p - half), min(len(narrow), p + half + 1)
        anchors.append(lo + int(np.argmax(narrow[lo:hi])))
    anchors_arr = np.unique(np.array(anchors, dtype=int))
    # drop anchors closer than the refractory period (keep the larger)
    keep: list[int] = []
    for a in anchors_arr:
        if keep and a - keep[-1] < REFRACTORY_S * fs:
            if narrow[a] > narrow[keep[-1]]:
                keep[-1] = int(a)
            continue
        keep.append(int(a))
    anchors_arr = np.array(keep, dtype=int)
    ref = reference_lead(signal_mv)
    if ref is None:
        return _align_beats(signal_mv, fs, anchors_arr)
    # page layout: time every beat on the one lead that runs through the whole record (the
    # rhythm strip), so median beats from different columns share one time reference
    strip = signal_mv[:, [ref]]
    narrow_ref = _smooth(qrs_envelope(strip, fs), int(0.016 * fs))
    moved = []
    for a in anchors_arr:
        lo, hi = max(0, a - half), min(len(narrow_ref), a + half + 1)
        moved.append(lo + int(np.argmax(narrow_ref[lo:hi])))
    return _align_beats(strip, fs, np.array(moved, dtype=int))


def reference_lead(signal_mv: np.ndarray) -> int | None:
    """Index of a rhythm-strip lead in a page layout, else None.

    A page (3x4+1, 6x2+1 …) prints most leads for a part of the time and one or more leads for
    the whole of it. If one lead covers ≥ 90 % of the samples that carry any signal while every
    other lead covers < 60 %, it is returned; for simultaneous recordings this is None.
    """
    finite = np.isfinite(signal_mv)
    covered = finite.any(axis=1).sum()
    if covered == 0 or signal_mv.shape[1] < 2:
        return None
    coverage = finite.sum(axis=0) / covered
    order = np.argsort(coverage)[::-1]
    if coverage[order[0]] >= 0.9 and coverage[order[1]] < 0.6:
        return int(order[0])
    return None


def windows(signal_mv: np.ndarray, anchors: np.ndarray, pre: int, post: int) -> np.ndarray:
    """``(n_beats, pre + post, n_leads)`` beat windows, NaN outside the record."""
    n, n_leads = signal_mv.shape
    out = np.full((len(anchors), pre + post, n_leads), np.nan)
    for i, a in enumerate(anchors):
        lo, hi = a - pre, a + post
        slo, shi = max(lo, 0), min(hi, n)
        if shi > slo:
            out[i, slo - lo:shi - lo] = signal_mv[slo:shi]
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10:
        return np.nan
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else np.nan


def _align_beats(signal_mv: np.ndarray, fs: float, anchors: np.ndarray) -> Beats:
    if len(anchors) == 0:
        return Beats(anchors, np.zeros(0, bool), np.zeros(0))
    core_pre, core_post = int(0.10 * fs), int(0.12 * fs)
    shift_max = round(ALIGN_S * fs)
    win = windows(signal_mv, anchors, core_pre + shift_max, core_post + shift_max)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        win = win - np.nanmedian(win, axis=1, keepdims=True)
        template = np.nanmedian(win, axis=0)[shift_max:shift_max + core_pre + core_post]
    shifts = np.zeros(len(anchors), dtype=int)
    corr = np.full(len(anchors), np.nan)
    for i in range(len(anchors)):
        best, best_s = -np.inf, 0
        for s in range(-shift_max, shift_max + 1):
            seg = win[i, shift_max + s:shift_max + s + core_pre + core_post]
            c = _corr(seg.ravel(), template.ravel())
            if np.isfinite(c) and c > best:
                best, best_s = c, s
        shifts[i] = best_s
        corr[i] = best if np.isfinite(best) else np.nan
    anchors = np.clip(anchors + shifts, 0, signal_mv.shape[0] - 1)
    kept = np.isfinite(corr) & (corr >= MIN_BEAT_CORR)
    return Beats(anchors=anchors, kept=kept, correlation=corr)


@dataclasses.dataclass(frozen=True)
class RecordBeats:
    """Beats of a whole record, found on its filtered leads (the input of every beat consumer).

    Attributes
    ----------
    signal_mv
        ``(n_samples, 12)`` filtered standard leads, flat leads set to NaN.
    fs
        Sampling rate in Hz.
    beats
        :class:`Beats` found on ``signal_mv``.
    empty_leads, flat_leads
        Leads with no samples at all, and leads that are a flat line (< :data:`FLAT_MV`).
    filter_spec
        The filters applied.
    """

    signal_mv: np.ndarray
    fs: float
    beats: Beats
    empty_leads: tuple[str, ...]
    flat_leads: tuple[str, ...]
    filter_spec: FilterSpec

    @property
    def times_s(self) -> np.ndarray:
        """Beat times in seconds from the record start."""
        return self.beats.anchors / self.fs


def find_record_beats(record: ECGRecord, spec: FilterSpec | None = None) -> RecordBeats:
    """Filter the 12 standard leads of ``record``, drop flat ones and detect the beats."""
    rec = record.standard12()
    spec = spec or FilterSpec()
    x = filter_record(rec, spec)
    empty, flat = [], []
    for k, name in enumerate(rec.leads):
        col = x[:, k]
        if not np.isfinite(col).any():
            empty.append(name)
            continue
        if np.nanpercentile(col, 99.5) - np.nanpercentile(col, 0.5) < FLAT_MV:
            flat.append(name)
            x[:, k] = np.nan
    if len(empty) + len(flat) == len(rec.leads):
        beats = Beats(np.zeros(0, int), np.zeros(0, bool), np.zeros(0))
    else:
        beats = detect_beats(x, rec.fs)
    return RecordBeats(x, rec.fs, beats, tuple(empty), tuple(flat), spec)


__all__ = ["FLAT_MV", "Beats", "RecordBeats", "detect_beats", "find_record_beats",
           "qrs_envelope", "reference_lead", "windows"]
