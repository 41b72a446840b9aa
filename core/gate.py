"""The measurability gate: is this record an ECG that can carry a clinical statement?

:func:`assess_measurability` runs before every clinical output (``analyze_record`` and the
classifier) and returns a :class:`Measurability`: assessable or not with the reason, the record
to use (the 12 standard leads in mV, converted when the file's amplitudes were in µV, nV or V),
warnings and the leads assessed. Checks, in order:

0. **orientation** (records read from paper): the digitizer keeps its orientation decision in
   the record's provenance (and WFDB header); a page whose orientation nothing on it confirmed
   may have been read upside down (every wave inverted, time reversed), so it gets no finding
   unless the user states it is upright (``--upright``);
1. **signal**: some standard lead has a finite sample (all NaN → not assessable);
2. **length**: at least :data:`MIN_DURATION_S` of signal;
3. **units**: the median over the leads of the robust peak-to-peak range (0.5–99.5 percentile
   of the filtered lead) lies in :data:`AMPLITUDE_RANGE_MV`; if not, the one unit of
   :data:`UNIT_SCALES` that brings it there is applied (with a warning), and if none does the
   record is refused (a flat line, a wrong gain, not an ECG);
4. **QRS**: the signal has steep complexes (:data:`MIN_SHARPNESS_PER_S`), not smooth waves;
5. **leads**: at least :data:`MIN_LEADS` leads (for the purpose) that are not empty or flat;
6. **beats** (the one detector, :func:`ecglens.core.beats.find_record_beats`): at least
   :data:`MIN_BEATS` beats that resemble one another (:data:`MIN_BEAT_SIMILARITY`: noise and
   drawings that are not an ECG fail here) at a heart rate in :data:`HR_RANGE_BPM`;
7. **analysis only**: a dominant beat for the median beat (:data:`MIN_BEAT_CORRELATION`).

Every threshold is a physiological range or was set against real ECGs — LUDB (200 records, at
1 µV/unit and as ``read_record`` gives them), PTB-XL folds 1–9 at 100 Hz (2,295 records; fold 10
never used) — and synthetic non-ECGs (white, band-limited and random-walk noise, sines,
triangles). Of those 2,695 real records the gate refuses none for classification and 3 for the
analysis (PTB-XL 14148, 14316, 21419: bigeminy / AF with PVCs / pacing, no dominant beat for a
median beat — refused before the gate too); 294 page-layout records (ECG-Image-Kit truth, NaN
where not printed) all pass. Not caught: strictly periodic sharp waves (square, sawtooth, fast
sines ≥ 3 Hz) look like beats to every check here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from typing import Literal

import numpy as np

from ecglens.core.beats import FLAT_MV, RecordBeats, find_record_beats, windows
from ecglens.core.filters import FilterSpec, filter_record
from ecglens.core.record import STANDARD_LEADS, ECGRecord

log = logging.getLogger(__name__)

Purpose = Literal["analysis", "classification", "beats"]
"""What the record is assessed for: intervals/ST/STEMI rules, the 12-lead superclass classifier,
or the one-lead beat labels."""

MIN_DURATION_S = 4.0
"""Seconds of signal needed: ≥ 3 beats for a median beat down to 45 bpm (was analysis' limit)."""

AMPLITUDE_RANGE_MV: tuple[float, float] = (0.1, 10.0)
"""Plausible median lead range (mV): measured 0.32–3.68 mV on LUDB (also as ``read_record``
gives it) + PTB-XL folds 1–9 (2,695 records); 0.1 mV (1 mm) is below any low-voltage ECG,
10 mV above any LVH. The ratio (100) is under 1000, so at most one unit of
:data:`UNIT_SCALES` can make a record plausible."""

UNIT_SCALES: tuple[tuple[str, float], ...] = (("mV", 1.0), ("µV", 1e-3), ("nV", 1e-6),
                                              ("V", 1e3))
"""Units a record may really be in, with the factor to mV; mV is tried first."""

MIN_LEADS: dict[str, int] = {"analysis": 1, "classification": 9, "beats": 1}
"""Observed (not empty, not flat) standard leads needed. Analysis: 1 (intervals can be measured
in one lead; the STEMI rules need two contiguous leads and name the leads assessed). Beats: 1
(the MIT-BIH beat classifier reads lead II alone).
Classification: 9, the fewest at which the committed model, on PTB-XL fold 9 with random leads
masked (6 draws), keeps macro-AUC within 0.05 of its 12-lead value in every draw and macro-F1 at
its thresholds within 0.10 on average: 12 leads 0.931 / 0.791; 11: 0.921 / 0.760;
10: 0.909 / 0.732; 9: 0.900 (worst 0.891) / 0.713; 8: 0.887 (worst 0.876) / 0.690;
6: 0.861 / 0.643; 3: 0.808 / 0.578; 1: 0.687 / 0.392."""

MIN_BEATS = 3
"""Beats needed: a median beat and an RR interval need ≥ 3 (fewest in real ECGs: 5)."""

MIN_BEAT_SIMILARITY = 0.5
"""Median over beats of the best correlation of its QRS window (all leads) with another beat.
Real ECGs ≥ 0.89 (PTB-XL folds 1–9: min 0.894, LUDB 0.970; ectopy, AF and pacing included);
noise ≤ 0.35 (white 0.19, band-limited 1–15 Hz 0.29, random walk 0.35; 20 seeds at 100, 250 and
500 Hz)."""

SIMILARITY_WINDOW_S: tuple[float, float] = (0.10, 0.12)
"""Beat window before/after the anchor for the similarity: the detector's own QRS core."""

MAX_SIMILARITY_BEATS = 64
"""Beats compared at most (evenly spread), so a 30-min Holter record costs what 1 min does."""

MIN_BEAT_CORRELATION = 0.6
"""Analysis only: median correlation of the beats with their template (the median beat needs a
dominant morphology). Unchanged from analysis; fails 3 of 2,695 real records (PTB-XL 14148,
14316, 21419: PVCs / bigeminy, AF with PVCs, pacing with mixed beats)."""

MIN_SHARPNESS_PER_S = 8.0
"""Least QRS sharpness: per lead the 99th percentile of the filtered slope (mV/s) over the lead's
range (mV), median over the leads. A QRS is steep: LUDB + PTB-XL folds 1–9 ≥ 12.0 /s (median
50); smooth waves are not: sines and triangles at 0.5–2.1 Hz (heart-rate frequencies) ≤ 6.6."""

HR_RANGE_BPM: tuple[float, float] = (25.0, 250.0)
"""Physiological heart rate: escape rhythms ≥ 25 bpm; the detector's 250-ms refractory period
cannot see more than 240 bpm anyway (measured 31–194 bpm on LUDB + PTB-XL folds 1–9)."""


@dataclasses.dataclass(frozen=True)
class Measurability:
    """The gate's verdict on one record.

    Attributes
    ----------
    assessable
        True when a clinical statement may be made.
    reason
        ``"not assessable: <why>"``, empty when assessable.
    record
        The record to use: the 12 standard leads (NaN where absent) in mV, converted when the
        amplitudes were in another unit.
    warnings
        Unit conversion, empty and flat leads.
    leads_assessed
        Standard leads with a usable (not empty, not flat) signal.
    purpose
        ``"analysis"``, ``"classification"`` or ``"beats"``.
    unit
        Unit the input amplitudes were read in (``"mV"`` unless converted).
    amplitude_mv
        Median robust lead range in mV after conversion (NaN if not reached).
    beats
        The detector's output on ``record`` (None when the gate stopped before it).
    hr_bpm, beat_similarity
        Heart rate and beat similarity (NaN if not reached).
    """

    assessable: bool
    reason: str
    record: ECGRecord
    warnings: tuple[str, ...]
    leads_assessed: tuple[str, ...]
    purpose: str
    unit: str = "mV"
    amplitude_mv: float = float("nan")
    beats: RecordBeats | None = None
    hr_bpm: float = float("nan")
    beat_similarity: float = float("nan")

    @property
    def leads_missing(self) -> tuple[str, ...]:
        """Standard leads that were not assessed."""
        return tuple(lead for lead in STANDARD_LEADS if lead not in self.leads_assessed)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (no signal)."""
        def num(v: float) -> float | None:
            return None if not math.isfinite(v) else round(float(v), 3)
        return {"assessable": self.assessable, "reason": self.reason or None,
                "purpose": self.purpose, "unit": self.unit,
                "leads_assessed": list(self.leads_assessed),
                "leads_missing": list(self.leads_missing),
                "amplitude_mv": num(self.amplitude_mv), "hr_bpm": num(self.hr_bpm),
                "beat_similarity": num(self.beat_similarity), "warnings": list(self.warnings)}


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value:.3f} s"


def lead_ranges(x: np.ndarray) -> np.ndarray:
    """Robust peak-to-peak range (99.5 − 0.5 percentile) of each column; NaN if empty."""
    out = np.full(x.shape[1], np.nan)
    for k in range(x.shape[1]):
        col = x[:, k]
        col = col[np.isfinite(col)]
        if col.size:
            out[k] = float(np.percentile(col, 99.5) - np.percentile(col, 0.5))
    return out


def beat_similarity(found: RecordBeats) -> float:
    """Median over beats of the best Pearson correlation of a beat with any other beat.

    Each beat is its QRS window (:data:`SIMILARITY_WINDOW_S`) over every lead, less its
    per-lead median; pairs are compared on the samples both have (a page prints different
    leads at different times). A heartbeat recurs, so it matches another beat (ectopic beats
    match each other); noise picked as 'beats' does not. NaN with fewer than 2 beats.
    """
    anchors = found.beats.anchors
    if len(anchors) > MAX_SIMILARITY_BEATS:
        pick = np.linspace(0, len(anchors) - 1, MAX_SIMILARITY_BEATS).round().astype(int)
        anchors = anchors[pick]
    if len(anchors) < 2:
        return float("nan")
    fs = found.fs
    pre, post = round(SIMILARITY_WINDOW_S[0] * fs), round(SIMILARITY_WINDOW_S[1] * fs)
    win = windows(found.signal_mv, anchors, pre, post)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        win = win - np.nanmedian(win, axis=1, keepdims=True)
    flat = win.reshape(len(anchors), -1)
    mask = np.isfinite(flat).astype(np.float64)
    x = np.where(mask > 0, flat, 0.0)
    n = mask @ mask.T
    sx = x @ mask.T
    sxx = (x * x) @ mask.T
    sxy = x @ x.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var_i = sxx - sx * sx / n
        var_j = sxx.T - sx.T * sx.T / n
        corr = cov / np.sqrt(var_i * var_j)
    corr[(n < 10) | ~np.isfinite(corr)] = np.nan
    np.fill_diagonal(corr, np.nan)
    if not np.isfinite(corr).any():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanmax(corr, axis=1)
    return float(np.nanmedian(best))


def sharpness(x: np.ndarray, fs: float, ranges: np.ndarray) -> float:
    """Median over the leads of (99th percentile of |slope| in mV/s) / (lead range in mV), 1/s.

    ``x`` is the filtered signal, ``ranges`` its :func:`lead_ranges`; leads with a zero or NaN
    range are skipped. Unit-free (slope and range scale alike). NaN if no lead qualifies.
    """
    values = []
    for k in range(x.shape[1]):
        if not (np.isfinite(ranges[k]) and ranges[k] > 0):
            continue
        slope = np.abs(np.diff(x[:, k])) * fs
        slope = slope[np.isfinite(slope)]
        if slope.size:
            values.append(float(np.percentile(slope, 99)) / float(ranges[k]))
    return float(np.median(values)) if values else float("nan")


def _choose_unit(amplitude: float) -> tuple[str, float] | None:
    lo, hi = AMPLITUDE_RANGE_MV
    for unit, factor in UNIT_SCALES:
        if lo <= amplitude * factor <= hi:
            return unit, factor
    return None


def assess_measurability(record: ECGRecord, purpose: Purpose = "analysis",
                         spec: FilterSpec | None = None) -> Measurability:
    """Decide whether ``record`` can carry a clinical statement for ``purpose``.

    Parameters
    ----------
    record
        Any record; its standard leads are used (absent ones are NaN).
    purpose
        ``"analysis"`` (intervals, ST, STEMI rules), ``"classification"`` (12-lead
        superclasses) or ``"beats"`` (one-lead beat labels).
    spec
        Filters for the amplitude and beat checks (default :class:`FilterSpec`).

    Returns
    -------
    Measurability
        Never raises for a bad signal: the reason says what is wrong.
    """
    if purpose not in MIN_LEADS:
        raise ValueError(f"purpose must be one of {sorted(MIN_LEADS)}, got {purpose!r}")
    spec = spec or FilterSpec()
    rec = record.standard12()
    warns: list[str] = []
    nan = float("nan")
    unit, unit_note, amplitude, similarity, hr = "mV", "", nan, nan, nan
    found: RecordBeats | None = None
    assessed: tuple[str, ...] = ()

    def verdict(why: str = "") -> Measurability:
        if why:
            log.info("not assessable (%s): %s", purpose, why)
        return Measurability(not why, f"not assessable: {why}{unit_note}" if why else "", rec,
                             tuple(warns), assessed, purpose, unit, amplitude, found, hr,
                             similarity)

    orientation = record.provenance.get("orientation")
    if isinstance(orientation, dict) and orientation.get("confirmed") is False:
        # a page read upside down inverts every wave and reverses time (ST elevation reads as
        # depression); the data is written, but no finding is made on it
        return verdict("the page's orientation was not confirmed (no calibration pulse, lead "
                       "name or clear trace direction says which way is up); if the page is "
                       "upright as given, read it again stating so (--upright)")

    finite = np.isfinite(rec.signal)
    if not finite.any():
        if np.isfinite(record.signal).any():
            return verdict(f"no standard 12-lead signal (leads: {', '.join(record.leads)})")
        return verdict("every lead is empty (all NaN)")
    n_covered = int(finite.any(axis=1).sum())
    covered_s = n_covered / rec.fs
    if covered_s < MIN_DURATION_S:
        return verdict(f"only {_seconds(covered_s)} of signal ({n_covered} samples; at least "
                       f"{MIN_DURATION_S:.0f} s needed for a median beat)")

    # units: the filters are linear, so the ranges scale with the unit
    filtered = filter_record(rec, spec)
    ranges = lead_ranges(filtered)
    moving = ranges[np.isfinite(ranges) & (ranges > 0)]
    if moving.size == 0:
        return verdict("flat line in every lead" if np.isfinite(ranges).any()
                       else "no run of signal long enough to filter (≥ 0.5 s)")
    raw_amplitude = float(np.median(moving))
    lo, hi = AMPLITUDE_RANGE_MV
    chosen = _choose_unit(raw_amplitude)
    if chosen is None:
        if raw_amplitude < lo:
            return verdict(f"flat line or signal too small: median lead range "
                           f"{raw_amplitude:.3g} mV (a 12-lead ECG spans {lo:g}–{hi:g} mV), "
                           "a plausible ECG in no unit (mV, µV, nV, V)")
        return verdict(f"implausible amplitude: median lead range {raw_amplitude:.4g} in the "
                       f"record's units is a 12-lead ECG ({lo:g}–{hi:g} mV) in none of mV, "
                       "µV, nV or V (wrong gain, or not an ECG)")
    unit, factor = chosen
    amplitude = raw_amplitude * factor
    if factor != 1.0:
        unit_note = f" (amplitudes read as {unit})"
        warns.append(f"amplitudes look like {unit}, not mV (median lead range "
                        f"{raw_amplitude:.4g} in the record's units; a 12-lead ECG spans "
                        f"{lo:g}–{hi:g} mV): converted to mV (×{factor:g})")
        log.warning("%s: %s", rec.provenance.get("source") or "record", warns[-1])
        provenance = dict(rec.provenance)
        provenance["unit_conversion"] = f"{unit} → mV (×{factor:g}) by the measurability gate"
        rec = rec.replace(signal=rec.signal * factor, provenance=provenance)

    sharp = sharpness(filtered, rec.fs, np.where(ranges * factor >= FLAT_MV, ranges, np.nan))
    if math.isfinite(sharp) and sharp < MIN_SHARPNESS_PER_S:
        return verdict(f"no QRS complex: the signal is smooth (steepest slopes {sharp:.1f} "
                       f"lead ranges per second, ≥ {MIN_SHARPNESS_PER_S:g} in real ECGs): not an "
                       "ECG")

    # leads and beats: the one beat detector on the record in mV
    found = find_record_beats(rec, spec)
    empty, flat = found.empty_leads, found.flat_leads
    if empty:
        warns.append(f"no signal in {', '.join(empty)}")
    if flat:
        warns.append(f"flat line (< {FLAT_MV} mV) in {', '.join(flat)}: not measured")
    assessed = tuple(lead for lead in rec.leads if lead not in empty and lead not in flat)
    if not assessed:
        return verdict("flat line in every lead")
    need = MIN_LEADS[purpose]
    if len(assessed) < need:
        return verdict(f"only {len(assessed)} of 12 leads observed ({', '.join(assessed)}); "
                       f"the {purpose} needs at least {need}")
    beats = found.beats
    if beats.n < MIN_BEATS:
        return verdict(f"only {beats.n} heartbeat(s) found (≥ {MIN_BEATS} needed)")
    similarity = beat_similarity(found)
    if not (math.isfinite(similarity) and similarity >= MIN_BEAT_SIMILARITY):
        shown = "n/a" if not math.isfinite(similarity) else f"{similarity:.2f}"
        return verdict(f"no heartbeat: the {beats.n} detected beats do not resemble one "
                       f"another (similarity {shown}, ≥ {MIN_BEAT_SIMILARITY} in real ECGs): "
                       "noise or not an ECG")
    hr = 60.0 * rec.fs / float(np.median(np.diff(beats.anchors)))
    if not HR_RANGE_BPM[0] <= hr <= HR_RANGE_BPM[1]:
        return verdict(f"heart rate {hr:.0f} bpm outside {HR_RANGE_BPM[0]:.0f}–"
                       f"{HR_RANGE_BPM[1]:.0f} bpm")
    if purpose == "analysis":
        corr = (float(np.nanmedian(beats.correlation))
                if np.isfinite(beats.correlation).any() else 0.0)
        if corr < MIN_BEAT_CORRELATION or beats.kept.sum() < MIN_BEATS:
            return verdict(f"no consistent heartbeat (beats correlate {corr:.2f} with their "
                           f"median; ≥ {MIN_BEAT_CORRELATION} needed): noise, artefact or "
                           "mixed beats with no dominant one")
    return verdict()


__all__ = ["AMPLITUDE_RANGE_MV", "HR_RANGE_BPM", "MIN_BEATS", "MIN_BEAT_CORRELATION",
           "MIN_BEAT_SIMILARITY", "MIN_DURATION_S", "MIN_LEADS", "MIN_SHARPNESS_PER_S",
           "UNIT_SCALES", "Measurability", "Purpose", "assess_measurability", "beat_similarity",
           "lead_ranges", "sharpness"]
