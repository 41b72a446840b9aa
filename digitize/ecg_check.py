"""Final check of a read page: is what was read an ECG?

The reading stages find trace rows in any page with long lines of ink across it, and turn
whatever they follow into millivolts. This stage looks at the record that came out and
refuses it (``digitize.pipeline`` raises a ``DigitizeError`` with :attr:`ReadingCheck.reason`)
where it clearly is not an ECG:

* **beats**: the one beat detector of ecglens (:func:`ecglens.core.beats.find_record_beats`)
  finds beats, at a heart rate a person can have, and they look alike (their correlation with
  the record's median beat);
* **rhythm across leads**: leads printed at the same time beat at the same instants (their
  QRS envelopes correlate);
* **Einthoven**: II = I + III (and aVR + aVL + aVF = 0) where those leads were printed at the
  same time (:func:`digitize.convert.einthoven_residual`);
* **read share**: the printed leads were read over most of their cells (a trace followed
  over a photo's edges breaks off where they do).

Each threshold lies beyond every page of the benchmark families that a person reads correctly
(``benchmarks/orientation_check.py``); a page is refused only where it clearly fails.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from typing import Any

import numpy as np

from ecglens.core.beats import find_record_beats
from ecglens.digitize.convert import ConvertResult

log = logging.getLogger(__name__)

# Thresholds from benchmarks/orientation_check.py (pages read as given: the own renderer's
# set, every 2nd of 120 pages; ECG-Image-Kit, every 3rd of 294; the 38 phone photos; the 53
# real images). "Read correctly": median r >= 0.8 against the truth (118 pages of own set,
# ECG-Image-Kit and photos); "misread": r < 0.5 (29 pages); real images judged by eye.

MIN_BEATS = 2
"""Fewest beats a read record must hold (every read family page: 4 or more)."""

RATE_BPM: tuple[float, float] = (20.0, 300.0)
"""Heart rates (from the median beat interval) a person can have (family reads: 41-149)."""

MIN_BEAT_CORRELATION = 0.3
"""Least median correlation of the beats with the record's median beat. Pages read correctly
(ECG-Image-Kit, photos with truth, real images by eye): 0.355 and up; random walks drawn on a
grid: 0.28. Not a refusal on its own (see :data:`BEAT_CORRELATION_ALONE_REFUSES`)."""

BEAT_CORRELATION_ALONE_REFUSES = False
"""Beats unlike each other refuse a page only together with another failure: on the own-renderer
benchmark (seed 0, 240 pages) three pages read at 19.0-21.7 dB (12x1 pages of records with
ectopic beats) have a median beat correlation of 0.06-0.22 and pass every other check, while
no page of the other families (ECG-Image-Kit, photos, real images) is refused by it alone."""

MIN_RHYTHM_AGREEMENT = 0.25
"""Least median correlation of the QRS envelopes of leads read together. Pages read correctly:
0.298 and up (own set); not ECGs: 0.18 and below (a photo of a cup, a page of text, random
lines on a grid: 0.18, 0.12, -0.05); refused below it: 5 misreads (ECG-Image-Kit 0.07-0.08,
photos with truth -0.04 and -0.03 at r < 0.1, one real image whose QRS complexes were not
followed, -0.05)."""

MAX_EINTHOVEN = 5.0
"""Largest Einthoven residual (of the signal rms) of a read page. Pages read correctly: up to
3.63 (ECG-Image-Kit at r 0.79 and 0.96); refused above it: misreads at 8.7-14.5 (three
ECG-Image-Kit pages and a photo, all at r < 0.3) and a real image at 5.44 whose leads I and
III were read from other traces (by eye)."""

MIN_READ_SHARE = 0.7
"""Least median share of a printed lead's cell that was read. Pages read correctly: 0.89 and
up; real images and photos: 0.756 and up; a misread ECG-Image-Kit page: 0.59; a photo of a
cup: 0.61."""

ENVELOPE_SMOOTH_S = 0.04
"""Smoothing of the QRS envelope (as the beat detector's)."""

MIN_OVERLAP_S = 1.0
"""Least time two leads must have been read together to be compared."""


@dataclasses.dataclass(frozen=True)
class ReadingCheck:
    """What the final check measured on a read record; its verdict is :attr:`failures`.

    Attributes
    ----------
    beats
        Beats found on the record.
    rate_bpm
        Heart rate from the median beat interval (NaN with fewer than two beats).
    beat_correlation
        Median correlation of the beats with the record's median beat (NaN without beats).
    rhythm_agreement
        Median over the pairs of leads read together of the correlation of their QRS
        envelopes (:func:`rhythm_agreement`; NaN without such pairs).
    einthoven
        Largest Einthoven residual where the leads were printed together (NaN where none).
    read_share
        Median over the printed leads of the share of their cells that was read.
    """

    beats: int
    rate_bpm: float
    beat_correlation: float
    rhythm_agreement: float
    einthoven: float
    read_share: float

    @property
    def failures(self) -> tuple[str, ...]:
        """One line per check that fails (empty: the record reads as an ECG)."""
        out = []
        if self.read_share < MIN_READ_SHARE:
            out.append(f"only {100 * self.read_share:.0f} % of the printed leads read")
        if self.beats < MIN_BEATS:
            out.append(f"{self.beats} beat(s) found")
        elif not RATE_BPM[0] <= self.rate_bpm <= RATE_BPM[1]:
            out.append(f"heart rate {self.rate_bpm:.0f} bpm")
        unlike = (math.isfinite(self.beat_correlation)
                  and self.beat_correlation < MIN_BEAT_CORRELATION)
        if not math.isfinite(self.rhythm_agreement):
            # every layout prints leads at the same time (every read family page has a pair)
            out.append(f"no two leads read at the same time for {MIN_OVERLAP_S:g} s")
        elif self.rhythm_agreement < MIN_RHYTHM_AGREEMENT:
            out.append(f"leads printed together do not beat together (QRS envelopes "
                       f"correlate {self.rhythm_agreement:.2f})")
        if math.isfinite(self.einthoven) and self.einthoven > MAX_EINTHOVEN:
            out.append(f"limb leads break Einthoven's law (residual {self.einthoven:.2f} of "
                       "the signal rms)")
        if unlike and (out or BEAT_CORRELATION_ALONE_REFUSES):
            out.append(f"beats unlike each other (median correlation "
                       f"{self.beat_correlation:.2f})")
        return tuple(out)

    @property
    def refused(self) -> bool:
        """Whether the page is refused."""
        return bool(self.failures)

    @property
    def reason(self) -> str:
        """One line: why the page is refused ('' when it is not)."""
        failures = self.failures
        return "what was read is not an ECG: " + "; ".join(failures) if failures else ""

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (the page JSON's ``ecg_check``): the measures and the failures."""
        return {"beats": self.beats, "rate_bpm": _round(self.rate_bpm),
                "beat_correlation": _round(self.beat_correlation),
                "rhythm_agreement": _round(self.rhythm_agreement),
                "einthoven": _round(self.einthoven), "read_share": _round(self.read_share),
                "failures": list(self.failures)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReadingCheck:
        """The check of :meth:`to_json`'s dict (its failures judged again with this module's
        thresholds)."""
        def value(key: str) -> float:
            return float("nan") if data.get(key) is None else float(data[key])

        return cls(int(data["beats"]), value("rate_bpm"), value("beat_correlation"),
                   value("rhythm_agreement"), value("einthoven"), value("read_share"))


def _round(value: float) -> float | None:
    return round(float(value), 3) if math.isfinite(value) else None


def rhythm_agreement(signal_mv: np.ndarray, fs: float) -> float:
    """Median over the pairs of leads read together for :data:`MIN_OVERLAP_S` of the
    correlation of their QRS envelopes (squared slope, smoothed over
    :data:`ENVELOPE_SMOOTH_S`) where both were read: leads printed at the same time beat at the
    same instants; NaN where no pair overlaps."""
    from scipy.ndimage import uniform_filter1d

    width = max(1, round(ENVELOPE_SMOOTH_S * fs))
    slope = np.diff(signal_mv, axis=0) ** 2
    finite = np.isfinite(slope)
    envelope = uniform_filter1d(np.where(finite, slope, 0.0), width, axis=0)
    leads = [k for k in range(slope.shape[1]) if finite[:, k].sum() >= MIN_OVERLAP_S * fs]
    scores = []
    for i, j in itertools.combinations(leads, 2):
        both = finite[:, i] & finite[:, j]
        if both.sum() < MIN_OVERLAP_S * fs:
            continue
        a, b = envelope[both, i], envelope[both, j]
        if np.std(a) > 0 and np.std(b) > 0:
            scores.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.median(scores)) if scores else float("nan")


def check_reading(convert: ConvertResult) -> ReadingCheck:
    """Measure a read record (the convert stage's result) and decide whether it reads as an
    ECG (see the module docstring)."""
    record = convert.record
    found = find_record_beats(record)
    beats = found.beats
    anchors = np.sort(beats.anchors)
    rate = (60.0 * record.fs / float(np.median(np.diff(anchors))) if len(anchors) >= 2
            else float("nan"))
    corr = beats.correlation[np.isfinite(beats.correlation)]
    beat_corr = float(np.median(corr)) if len(corr) else float("nan")
    agreement = rhythm_agreement(found.signal_mv, record.fs)
    residuals = [v for v in convert.einthoven.values() if math.isfinite(v)]
    residual = max(residuals) if residuals else float("nan")
    shares = [lead.finite_fraction for lead in convert.leads if lead.rows]
    read_share = float(np.median(shares)) if shares else 0.0
    result = ReadingCheck(beats=beats.n, rate_bpm=rate, beat_correlation=beat_corr,
                          rhythm_agreement=agreement, einthoven=residual,
                          read_share=read_share)
    log.debug("ECG check: %s", result)
    return result
