"""The one object that carries an ECG through ecglens: :class:`ECGRecord`.

A record is a frozen dataclass holding a ``(n_samples, n_leads)`` float array in millivolts
with NaN wherever the value is unknown (a lead that was not printed, a span that could not
be read), the sampling rate in Hz, normalised lead names, optional age and sex, provenance
(which file, which page, which program produced it) and a per-lead confidence in [0, 1].
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ecglens.core.errors import RecordError

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""The 12 standard leads in conventional order."""

CABRERA_LEADS: tuple[str, ...] = (
    "aVL", "I", "-aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""Cabrera (orderly) display sequence; ``-aVR`` is aVR inverted."""

_ALIASES: dict[str, str] = {
    "i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
    "mlii": "II", "ml2": "II", "d1": "I", "d2": "II", "d3": "III",
    "-avr": "-aVR", "avr-": "-aVR",
}
for _k in range(1, 7):
    _ALIASES[f"v{_k}"] = f"V{_k}"
    _ALIASES[f"c{_k}"] = f"V{_k}"


def normalize_lead_name(name: str) -> str:
    """Map a lead name from any common source to its standard spelling.

    Accepts LUDB's ``i``, ``avr``, ``v1``; CinC/PTB-XL's ``AVR``; MIT-BIH's ``MLII`` (→ ``II``);
    ``-aVR`` for Cabrera displays. Names that are not 12-lead names (PTB's Frank leads
    ``vx``, ``vy``, ``vz``) are returned upper-cased and stripped.

    >>> normalize_lead_name("avr"), normalize_lead_name("V5"), normalize_lead_name("vx")
    ('aVR', 'V5', 'VX')
    """
    key = re.sub(r"[\s_]", "", str(name)).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    return str(name).strip().upper()


def _normalize_sex(sex: Any) -> str | None:
    if sex is None:
        return None
    text = str(sex).strip().lower()
    if text in {"m", "male", "man", "0"}:
        return "M"
    if text in {"f", "female", "woman", "w", "1"}:
        return "F"
    return None


@dataclasses.dataclass(frozen=True)
class ECGRecord:
    """A multi-lead ECG in millivolts.

    Attributes
    ----------
    signal
        ``(n_samples, n_leads)`` float64 array in mV; NaN where the value is unknown.
    fs
        Sampling rate in Hz.
    leads
        Lead names, normalised by :func:`normalize_lead_name`.
    age
        Age in years, if known.
    sex
        ``"M"``, ``"F"`` or ``None``.
    provenance
        Where the record came from: ``source`` (file), ``page``, ``producer`` (program and
        stage) and anything else worth keeping (free-form, JSON-serialisable).
    confidence
        Per-lead confidence in [0, 1] (1 for a record loaded from a file), same order as
        ``leads``.
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    age: float | None = None
    sex: str | None = None
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    confidence: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        signal = np.asarray(self.signal, dtype=np.float64)
        if signal.ndim == 1:
            signal = signal[:, None]
        if signal.ndim != 2:
            raise RecordError(f"signal must be 2-D (n_samples, n_leads), got shape {signal.shape}")
        leads = tuple(normalize_lead_name(name) for name in self.leads)
        if len(leads) != signal.shape[1]:
            raise RecordError(
                f"{len(leads)} lead names for a signal with {signal.shape[1]} columns"
            )
        if len(set(leads)) != len(leads):
            raise RecordError(f"duplicate lead names: {leads}")
        if not (np.isfinite(self.fs) and self.fs > 0):
            raise RecordError(f"sampling rate must be a positive number of Hz, got {self.fs}")
        confidence = self.confidence
        if confidence is None:
            confidence = tuple(
                0.0 if not np.isfinite(signal[:, k]).any() else 1.0 for k in range(signal.shape[1])
            )
        confidence = tuple(float(c) for c in confidence)
        if len(confidence) != len(leads):
            raise RecordError(f"{len(confidence)} confidences for {len(leads)} leads")
        signal.setflags(write=False)
        object.__setattr__(self, "signal", signal)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "sex", _normalize_sex(self.sex))
        object.__setattr__(self, "age", None if self.age is None else float(self.age))
        object.__setattr__(self, "provenance", dict(self.provenance))
        object.__setattr__(self, "confidence", confidence)

    # ------------------------------------------------------------------ basic facts
    @property
    def lead_confidence(self) -> tuple[float, ...]:
        """Per-lead confidence, always set after construction (1.0 per lead by default)."""
        if self.confidence is None:   # unreachable: __post_init__ fills it
            raise RecordError("record without confidences")
        return self.confidence

    @property
    def n_samples(self) -> int:
        """Number of samples per lead."""
        return int(self.signal.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the record in seconds."""
        return self.n_samples / self.fs

    @property
    def time_s(self) -> np.ndarray:
        """Sample times in seconds from the record start."""
        return np.arange(self.n_samples) / self.fs

    def lead(self, name: str) -> np.ndarray:
        """The samples of one lead (mV, read-only view); raises :class:`RecordError` if absent."""
        key = normalize_lead_name(name)
        if key == "-aVR" and "aVR" in self.leads:
            return -self.signal[:, self.leads.index("aVR")]
        if key not in self.leads:
            present = ", ".join(self.leads)
            raise RecordError(f"lead {name!r} is not in this record (leads: {present})",
                              self.provenance.get("source"))
        return self.signal[:, self.leads.index(key)]

    def has_lead(self, name: str) -> bool:
        """True if the lead is present and has at least one finite sample."""
        key = normalize_lead_name(name)
        return key in self.leads and bool(np.isfinite(self.signal[:, self.leads.index(key)]).any())

    # ------------------------------------------------------------------ derived records
    def replace(self, **changes: Any) -> ECGRecord:
        """A copy with some fields changed (see :func:`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def select(self, leads: Sequence[str] = STANDARD_LEADS) -> ECGRecord:
        """The record restricted/reordered to ``leads``; absent leads become all-NaN columns."""
        names = [normalize_lead_name(name) for name in leads]
        columns = []
        confidence = []
        for name in names:
            if name in self.leads:
                k = self.leads.index(name)
                columns.append(self.signal[:, k])
                confidence.append(self.lead_confidence[k])
            else:
                columns.append(np.full(self.n_samples, np.nan))
                confidence.append(0.0)
        return self.replace(signal=np.stack(columns, axis=1), leads=tuple(names),
                            confidence=tuple(confidence))

    def standard12(self) -> ECGRecord:
        """The 12 standard leads in order, NaN where missing (see :meth:`select`)."""
        return self.select(STANDARD_LEADS)

    def resample(self, fs: float) -> ECGRecord:
        """The record at another sampling rate (polyphase, NaN-aware).

        Each run of finite samples is resampled on its own, so NaN gaps stay NaN and never
        leak into the signal. Runs shorter than 8 samples are linearly interpolated.
        """
        if abs(fs - self.fs) < 1e-9:
            return self
        ratio = Fraction(fs / self.fs).limit_denominator(1000)
        n_out = round(self.n_samples * fs / self.fs)
        out = np.full((n_out, self.signal.shape[1]), np.nan)
        for k in range(self.signal.shape[1]):
            out[:, k] = _resample_nan_aware(self.signal[:, k], self.fs, fs, ratio, n_out)
        return self.replace(signal=out, fs=float(fs))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN samples become ``None``."""
        return {
            "fs": self.fs,
            "leads": list(self.leads),
            "age": self.age,
            "sex": self.sex,
            "provenance": dict(self.provenance),
            "confidence": list(self.lead_confidence),
            "signal": {
                name: [None if not np.isfinite(v) else round(float(v), 6)
                       for v in self.signal[:, k]]
                for k, name in enumerate(self.leads)
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ECGRecord:
        """Inverse of :meth:`to_dict`."""
        try:
            leads = list(data["leads"])
            columns = [
                np.array([np.nan if v is None else float(v) for v in data["signal"][name]])
                for name in leads
            ]
            return cls(
                signal=np.stack(columns, axis=1),
                fs=float(data["fs"]),
                leads=tuple(leads),
                age=data.get("age"),
                sex=data.get("sex"),
                provenance=data.get("provenance") or {},
                confidence=tuple(data["confidence"]) if data.get("confidence") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"not an ecglens record dict ({exc})") from exc


def _resample_nan_aware(x: np.ndarray, fs_in: float, fs_out: float, ratio: Fraction,
                        n_out: int) -> np.ndarray:
    from scipy.signal import resample_poly

    out = np.full(n_out, np.nan)
    finite = np.isfinite(x)
    if not finite.any():
        return out
    for start, stop in finite_runs(finite):
        segment = x[start:stop]
        t0 = start / fs_in
        first = int(np.ceil(t0 * fs_out - 1e-9))
        last = min(n_out, int(np.floor(((stop - 1) / fs_in) * fs_out + 1e-9)) + 1)
        if last <= first:
            continue
        t_out = np.arange(first, last) / fs_out
        if len(segment) >= 8 and ratio.numerator <= 1000:
            y = resample_poly(segment, ratio.numerator, ratio.denominator, padtype="line")
            t_y = t0 + np.arange(len(y)) / fs_out
            out[first:last] = np.interp(t_out, t_y, y)
        else:
            t_x = t0 + np.arange(len(segment)) / fs_in
            out[first:last] = np.interp(t_out, t_x, segment)
    return out


def finite_runs(mask: np.ndarray) -> Iterable[tuple[int, int]]:
    """Yield ``(start, stop)`` index pairs of the runs where ``mask`` is True."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
