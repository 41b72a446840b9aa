"""Filtering that keeps the ST segment intact (NaN-aware).

Why these filters
-----------------
* **Baseline wander**: zero-phase (forward-backward) 2nd-order Butterworth high-pass at
  0.67 Hz. A causal high-pass above 0.05 Hz shifts and tilts the ST segment (phase distortion);
  run forward and backward, the phase is zero and the 0.67 Hz corner is the limit the AHA/ACC/HRS
  2007 recommendations (Kligfield et al., Circulation 115:1306) allow for bidirectional filters:
  it is below the lowest heart rate of interest (40 bpm), so the ST level relative to the
  PR segment of the same beat is preserved. ST is in any case measured against the PR
  segment of the same median beat, never against 0 mV, so residual wander cancels.
* **Powerline**: zero-phase IIR notches at 50 and 60 Hz, quality factor 30 (≈ 2 Hz wide): they
  remove only the mains line (harmonics are above the low-pass).
* **Muscle noise**: zero-phase 4th-order Butterworth low-pass at 40 Hz. It lowers the sharpest
  QRS peaks a little (amplitudes are used only for LVH/Sgarbossa screens) and does not touch
  the ST segment, whose spectrum is below 10 Hz.

Every run of finite samples is filtered on its own, so NaN gaps (a 3x4 page has 2.5 s per lead)
stay NaN and never smear into the signal; runs shorter than :data:`MIN_RUN_S` stay NaN.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from scipy import signal as sps

from ecglens.core.record import ECGRecord, finite_runs

log = logging.getLogger(__name__)

HIGHPASS_HZ = 0.67
LOWPASS_HZ = 40.0
NOTCH_HZ = (50.0, 60.0)
NOTCH_Q = 30.0
MIN_RUN_S = 0.5


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """The filter chain (all zero-phase), in Hz."""

    highpass_hz: float = HIGHPASS_HZ
    lowpass_hz: float = LOWPASS_HZ
    notch_hz: tuple[float, ...] = NOTCH_HZ

    def describe(self) -> str:
        """One line naming the filters."""
        notches = ", ".join(f"{f:g}" for f in self.notch_hz)
        return (f"zero-phase Butterworth high-pass {self.highpass_hz:g} Hz (baseline wander), "
                f"notches {notches} Hz (powerline), low-pass {self.lowpass_hz:g} Hz "
                "(muscle noise); ST measured against the PR segment of the same median beat")


def _filter_run(x: np.ndarray, fs: float, spec: FilterSpec) -> np.ndarray:
    nyq = fs / 2.0
    pad = min(len(x) - 1, round(fs))
    y = x - np.median(x)
    if spec.highpass_hz > 0:
        sos = sps.butter(2, spec.highpass_hz / nyq, btype="highpass", output="sos")
        y = sps.sosfiltfilt(sos, y, padlen=pad, padtype="odd")
    for mains_hz in spec.notch_hz:
        if mains_hz < 0.95 * nyq:
            b, a = sps.iirnotch(mains_hz, NOTCH_Q, fs=fs)
            y = sps.filtfilt(b, a, y, padlen=min(pad, 3 * max(len(a), len(b))))
    if spec.lowpass_hz and spec.lowpass_hz < 0.95 * nyq:
        sos = sps.butter(4, spec.lowpass_hz / nyq, btype="lowpass", output="sos")
        y = sps.sosfiltfilt(sos, y, padlen=pad, padtype="odd")
    return y


def filter_lead(x: np.ndarray, fs: float, spec: FilterSpec | None = None) -> np.ndarray:
    """Filter one lead (mV); NaN stays NaN, runs shorter than 0.5 s become NaN.

    Parameters
    ----------
    x
        Samples in mV, NaN where unknown.
    fs
        Sampling rate in Hz.
    spec
        Filter settings (default :class:`FilterSpec`).
    """
    spec = spec or FilterSpec()
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    min_run = round(MIN_RUN_S * fs)
    for start, stop in finite_runs(np.isfinite(x)):
        if stop - start < max(min_run, 16):
            continue
        out[start:stop] = _filter_run(x[start:stop], fs, spec)
    return out


def filter_record(record: ECGRecord, spec: FilterSpec | None = None) -> np.ndarray:
    """Filter every lead of a record; returns a new ``(n_samples, n_leads)`` array in mV."""
    spec = spec or FilterSpec()
    return np.stack([filter_lead(record.signal[:, k], record.fs, spec)
                     for k in range(record.signal.shape[1])], axis=1)


def bandpass_filled(x: np.ndarray, fs: float, low_hz: float, high_hz: float,
                    order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass of a whole lead in mV, NaN → 0 first.

    For fixed-length model inputs (the beat classifier): unlike :func:`filter_lead` it keeps
    the array whole. ``high_hz`` is capped at 0.45·fs.
    """
    y = np.nan_to_num(np.asarray(x, float))
    sos = sps.butter(order, [low_hz, min(high_hz, 0.45 * fs)], btype="band", fs=fs,
                     output="sos")
    return sps.sosfiltfilt(sos, y)
