"""Intervals (HR, PR, QRS, QT, QTc), frontal axis and QRS amplitudes from the median beats."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ecglens.analysis.delineate import Beats, Fiducials, MedianBeats


@dataclasses.dataclass(frozen=True)
class Intervals:
    """Global intervals in ms (heart rate in bpm, axis in degrees); NaN with a reason if unknown.

    QTc by Bazett (QT/√RR) and Fridericia (QT/∛RR), RR in seconds.
    """

    hr_bpm: float
    rr_ms: float
    pr_ms: float
    qrs_ms: float
    qt_ms: float
    qtc_bazett_ms: float
    qtc_fridericia_ms: float
    axis_deg: float
    reasons: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (NaN → None)."""
        out: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float):
                out[field.name] = None if not math.isfinite(value) else round(value, 1)
            else:
                out[field.name] = value
        return out


@dataclasses.dataclass(frozen=True)
class QRSAmplitudes:
    """QRS amplitudes of one lead's median beat, relative to the PR level, in mV.

    ``r_mv`` the largest positive deflection, ``s_mv`` the depth (positive number) of the largest
    negative deflection after R, ``q_mv`` the depth of a negative deflection before R,
    ``net_mv`` = max + min, ``t_mv`` the T-wave extreme (signed), ``terminal_mv`` the mean of
    the last 30 ms of the QRS (positive for the R' of a right bundle-branch block in V1),
    ``r_time_ms`` the R-peak time (QRS onset to the largest positive deflection).
    """

    r_mv: float
    s_mv: float
    q_mv: float
    net_mv: float
    t_mv: float
    terminal_mv: float = float("nan")
    r_time_ms: float = float("nan")

    @property
    def neg_mv(self) -> float:
        """Depth (positive, mV) of the deepest negative deflection (S, or QS), mV."""
        return max(self.s_mv, self.q_mv)


def _ms(samples: float, fs: float) -> float:
    return samples / fs * 1000.0


def qrs_amplitudes(med: MedianBeats, fid: Fiducials) -> list[QRSAmplitudes]:
    """Per-lead QRS and T amplitudes (mV) between the global QRS onset and J point."""
    n_leads = med.beats.shape[1]
    nan = QRSAmplitudes(np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)
    if not (np.isfinite(fid.qrs_onset) and np.isfinite(fid.j_point)):
        return [nan] * n_leads
    on, j = int(fid.qrs_onset), int(fid.j_point)
    out = []
    for k in range(n_leads):
        iso = fid.iso_mv[k]
        seg = med.beats[on:j + 1, k] - iso
        if not np.isfinite(iso) or not np.isfinite(seg).all() or seg.size < 3:
            out.append(nan)
            continue
        i_max = int(np.argmax(seg))
        r = float(max(seg[i_max], 0.0))
        s = float(max(-seg[i_max:].min(), 0.0))
        q = float(max(-seg[:i_max + 1].min(), 0.0))
        t_end = fid.t_end_lead[k] if np.isfinite(fid.t_end_lead[k]) else fid.t_end
        t_mv = np.nan
        if np.isfinite(t_end) and int(t_end) > j + 5:
            tseg = med.beats[j + int(0.06 * med.fs):int(t_end), k] - iso
            if tseg.size and np.isfinite(tseg).all():
                t_mv = float(tseg[int(np.argmax(np.abs(tseg)))])
        terminal = float(np.mean(seg[-max(2, int(0.03 * med.fs)):]))
        r_time = i_max / med.fs * 1000.0
        out.append(QRSAmplitudes(r, s, q, float(seg.max() + seg.min()), t_mv, terminal, r_time))
    return out


def frontal_axis_deg(amps: dict[str, QRSAmplitudes]) -> float:
    """Frontal QRS axis (degrees, −180…180) from net QRS amplitude in I and aVF.

    With Einthoven's triangle, I = A·cos θ and aVF = (√3/2)·A·sin θ, so
    θ = atan2(2·aVF/√3, I). Falls back to I and II (aVF = II − I/2) when aVF is missing.
    """
    lead_i = amps.get("I")
    if lead_i is None or not np.isfinite(lead_i.net_mv):
        return np.nan
    avf = amps.get("aVF")
    if avf is not None and np.isfinite(avf.net_mv):
        y = avf.net_mv
    else:
        lead_ii = amps.get("II")
        if lead_ii is None or not np.isfinite(lead_ii.net_mv):
            return np.nan
        y = lead_ii.net_mv - lead_i.net_mv / 2.0
    return float(np.degrees(np.arctan2(2.0 * y / np.sqrt(3.0), lead_i.net_mv)))


def compute_intervals(beats: Beats, med: MedianBeats, fid: Fiducials,
                      amps: dict[str, QRSAmplitudes]) -> Intervals:
    """HR, PR, QRS, QT, QTc (Bazett, Fridericia) and frontal axis."""
    fs = med.fs
    reasons: dict[str, str] = {}
    anchors = beats.anchors
    if len(anchors) >= 2:
        rr = np.diff(anchors)
        # RR only between consecutive beats (a page's column change does not break it)
        rr_ms = float(np.median(rr)) / fs * 1000.0
    else:
        rr_ms = np.nan
        reasons["hr_bpm"] = "fewer than 2 beats"
    hr = 60000.0 / rr_ms if np.isfinite(rr_ms) else np.nan
    pr = _ms(fid.qrs_onset - fid.p_onset, fs)
    if not np.isfinite(pr):
        reasons["pr_ms"] = "no P wave found before the QRS (e.g. atrial fibrillation or noise)"
    qrs = _ms(fid.j_point - fid.qrs_onset, fs)
    if not np.isfinite(qrs):
        reasons["qrs_ms"] = fid.reason or "QRS limits not found"
    qt = _ms(fid.t_end - fid.qrs_onset, fs)
    if not np.isfinite(qt):
        reasons["qt_ms"] = "T-wave end not found"
    rr_s = rr_ms / 1000.0
    qtc_b = qt / math.sqrt(rr_s) if np.isfinite(qt) and np.isfinite(rr_s) else np.nan
    qtc_f = qt / rr_s ** (1.0 / 3.0) if np.isfinite(qt) and np.isfinite(rr_s) else np.nan
    axis = frontal_axis_deg(amps)
    if not np.isfinite(axis):
        reasons["axis_deg"] = "lead I or aVF/II not measurable"
    return Intervals(hr, rr_ms, pr, qrs, qt, qtc_b, qtc_f, axis, reasons)
