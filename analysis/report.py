"""One call from an :class:`ECGRecord` to a checkable STEMI report: :func:`analyze_record`.

The report carries the intervals, the ST level of every lead, every rule's outcome, the STEMI
statement with its confidence, warnings, and the disclaimer. What cannot be measured is NaN
(``None`` in JSON) with a reason; a record that the measurability gate
(:mod:`ecglens.core.gate`) refuses (flat line, noise, too short, all NaN, amplitudes in no unit,
implausible heart rate) gives ``measurable = False`` with ``"not assessable: <reason>"`` and
never a STEMI call.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from typing import Any

import numpy as np

from ecglens.analysis import delineate
from ecglens.analysis.intervals import Intervals, QRSAmplitudes, compute_intervals, qrs_amplitudes
from ecglens.analysis.st import STLevel, measure_st
from ecglens.analysis.stemi import RuleOutcome, StemiResult, evaluate_stemi
from ecglens.core import DISCLAIMER
from ecglens.core.beats import windows
from ecglens.core.filters import FilterSpec
from ecglens.core.gate import assess_measurability
from ecglens.core.record import STANDARD_LEADS, ECGRecord

log = logging.getLogger(__name__)


PACING_SPIKE_MV = 0.25
PACING_SPIKE_RATIO = 10.0


@dataclasses.dataclass(frozen=True)
class AnalysisReport:
    """Everything :func:`analyze_record` measured and concluded.

    ``measurable`` is False when the record cannot be measured; then ``cannot_measure`` says
    why (``"not assessable: <reason>"``, from the measurability gate), every number is NaN and
    ``stemi.detected`` is None. ``leads_assessed`` names the standard leads with a usable signal.
    """

    measurable: bool
    cannot_measure: str
    intervals: Intervals | None
    st: tuple[STLevel, ...]
    amplitudes: dict[str, QRSAmplitudes]
    stemi: StemiResult | None
    warnings: tuple[str, ...]
    filter_description: str
    n_beats: int
    sex: str | None
    age: float | None
    source: str | None
    disclaimer: str = DISCLAIMER
    fiducials_ms: dict[str, float | None] = dataclasses.field(default_factory=dict)
    beat_times_s: tuple[float, ...] = ()
    leads_assessed: tuple[str, ...] = ()

    def st_by_lead(self) -> dict[str, STLevel]:
        """ST levels keyed by lead name."""
        return {level.lead: level for level in self.st}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN → None)."""
        stemi: dict[str, Any]
        if self.stemi is not None:
            stemi = self.stemi.to_dict()
        else:
            stemi = {"detected": None, "territories": [], "leads": [], "confidence": None,
                     "confidence_label": "none", "equivalents": [], "confounders": [],
                     "statement": f"Cannot measure — {self.cannot_measure}. No STEMI "
                                  "statement is possible.", "notes": [], "rules": []}
        return {
            "source": self.source,
            "measurable": self.measurable,
            "assessable": self.measurable,
            "cannot_measure": self.cannot_measure or None,
            "reason": self.cannot_measure or None,
            "leads_assessed": list(self.leads_assessed),
            "patient": {"sex": self.sex, "age": self.age},
            "n_beats": self.n_beats,
            "beat_times_s": list(self.beat_times_s),
            "filter": self.filter_description,
            "intervals": self.intervals.to_dict() if self.intervals else None,
            "fiducials_ms_from_qrs_onset": self.fiducials_ms,
            "st": [level.to_dict() for level in self.st],
            "stemi": {k: v for k, v in stemi.items() if k != "rules"},
            "rules": stemi["rules"],
            "warnings": list(self.warnings),
            "disclaimer": self.disclaimer,
        }

    def to_text(self) -> str:
        """A readable multi-line report."""
        lines = [f"ecglens analysis — {self.source or 'record'}"]
        sex = self.sex or "unknown"
        age = "unknown" if self.age is None else f"{self.age:g}"
        lines.append(f"Patient: sex {sex}, age {age}")
        if not self.measurable:
            lines.append(f"CANNOT MEASURE — {self.cannot_measure}.")
            lines.append("No intervals, ST levels or STEMI statement are possible.")
        else:
            iv = self.intervals
            assert iv is not None

            def f(v: float, unit: str) -> str:
                return "n/a" if not math.isfinite(v) else f"{v:.0f} {unit}"
            lines.append(
                f"HR {f(iv.hr_bpm, 'bpm')}, PR {f(iv.pr_ms, 'ms')}, QRS {f(iv.qrs_ms, 'ms')}, "
                f"QT {f(iv.qt_ms, 'ms')}, QTc Bazett {f(iv.qtc_bazett_ms, 'ms')}, "
                f"Fridericia {f(iv.qtc_fridericia_ms, 'ms')}, axis {f(iv.axis_deg, 'deg')}")
            lines.append(f"Beats: {self.n_beats}; filter: {self.filter_description}")
            lines.append("ST level vs PR segment (mV; 0.1 mV = 1 mm):")
            lines.append("  lead    at J   J+60ms  beats")
            for level in self.st:
                if level.measured:
                    lines.append(f"  {level.lead:<5} {level.st_j_mv:+6.2f}  {level.st_j60_mv:+6.2f}"
                                 f"  {level.n_beats:5d}")
                else:
                    lines.append(f"  {level.lead:<5}    n/a     n/a  ({level.reason})")
            assert self.stemi is not None
            lines.append("")
            lines.append("STEMI: " + self.stemi.statement)
            lines.append("Rules:")
            for rule in self.stemi.rules:
                state = {True: "FIRED", False: "no", None: "n/a"}[rule.fired]
                lines.append(f"  [{state:>5}] {rule.name}: {rule.detail}")
            for note in self.stemi.notes:
                lines.append(f"Note: {note}")
        for warning in self.warnings:
            lines.append(f"Warning: {warning}")
        lines.append("")
        lines.append(self.disclaimer)
        return "\n".join(lines)


def _cannot(reason: str, record: ECGRecord, warnings: list[str], filt: str, n_beats: int = 0,
            leads: tuple[str, ...] = ()) -> AnalysisReport:
    log.info("cannot measure: %s", reason)
    return AnalysisReport(False, reason, None, (), {}, None, tuple(warnings), filt, n_beats,
                          record.sex, record.age, record.provenance.get("source"),
                          leads_assessed=leads)


def detect_pacing(raw_mv: np.ndarray, fs: float, anchors: np.ndarray,
                  qrs_ms: float = float("nan")) -> RuleOutcome:
    """Ventricular pacing: a sharp spike shortly before most QRS complexes, and a wide QRS.

    Per beat, the largest absolute second difference (over the leads) 120–10 ms before the QRS
    energy maximum, against the median second difference around it. A spike if, in the median
    beat, it is ≥ 0.25 mV and ≥ 10× the local median; ventricular pacing if, in addition, the
    QRS is ≥ 120 ms (a spike before a narrow QRS is atrial pacing or an artefact, which does
    not confound the ST segment). Needs the raw signal at ≥ 250 Hz; a spike lost by
    digitizing paper is not seen.
    """
    name = "ventricular pacing"
    if fs < 250 or len(anchors) < 2:
        return RuleOutcome(name, None, (), "pacing spikes need ≥ 250 Hz and ≥ 2 beats")
    d2 = np.abs(raw_mv[2:] - 2 * raw_mv[1:-1] + raw_mv[:-2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d2 = np.nanmax(d2, axis=1)
    d2 = np.concatenate([[np.nan], d2, [np.nan]])
    spikes, ratios = [], []
    for a in anchors:
        lo, hi, c1 = a - int(0.12 * fs), a - int(0.01 * fs), a + int(0.04 * fs)
        if lo < 0 or c1 > len(d2) or not np.isfinite(d2[lo:c1]).any():
            continue
        pre = float(np.nanmax(d2[lo:hi]))
        local = float(np.nanmedian(d2[lo:c1]))
        spikes.append(pre)
        ratios.append(pre / max(local, 1e-6))
    if not spikes:
        return RuleOutcome(name, None, (), "no beat with signal around it")
    spike, ratio = float(np.median(spikes)), float(np.median(ratios))
    has_spike = spike >= PACING_SPIKE_MV and ratio >= PACING_SPIKE_RATIO
    wide = bool(np.isfinite(qrs_ms) and qrs_ms >= 120)
    return RuleOutcome(name, has_spike and wide, (),
                       f"pre-QRS spike {spike:.2f} mV (≥ {PACING_SPIKE_MV}), "
                       f"{ratio:.0f}× local (≥ {PACING_SPIKE_RATIO:.0f}), QRS {qrs_ms:.0f} ms "
                       "(≥ 120 for ventricular pacing)",
                       {"spike_mv": spike, "spike_ratio": ratio, "qrs_ms": qrs_ms})


def _beat_noise(signal_mv: np.ndarray, anchors: np.ndarray, med: delineate.MedianBeats,
                j: float) -> np.ndarray:
    """Per-lead median absolute deviation of beats from the median beat over J…J+80 ms (mV)."""
    n_leads = signal_mv.shape[1]
    if not np.isfinite(j) or len(anchors) == 0:
        return np.full(n_leads, np.nan)
    fs = med.fs
    win = windows(signal_mv, anchors, med.pre, med.beats.shape[0] - med.pre)
    seg = slice(int(j), int(j + 0.08 * fs))
    dev = np.abs(win[:, seg, :] - med.beats[None, seg, :])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(dev.reshape(-1, n_leads), axis=0)


def analyze_record(record: ECGRecord, sex: str | None = None, age: float | None = None
                   ) -> AnalysisReport:
    """Filter, delineate, measure intervals and ST, and apply the STEMI rules.

    The record first passes the measurability gate
    (:func:`ecglens.core.gate.assess_measurability`, purpose ``"analysis"``): a record that is
    not an ECG that can be measured (all NaN, too short, flat, noise, amplitudes in no unit,
    implausible heart rate, no dominant beat) gives ``measurable = False`` with the gate's
    reason and no STEMI statement; amplitudes in µV, nV or V are converted with a warning.

    Parameters
    ----------
    record
        Any record; leads are mapped to the standard 12 (missing ones are NaN). Runs of NaN
        (a 3x4 page: 2.5 s per lead) are handled.
    sex, age
        Override the record's sex (``"M"``/``"F"``) and age (years).

    Returns
    -------
    AnalysisReport
        ``measurable`` False with a reason when the record cannot be measured.
    """
    spec = FilterSpec()
    gate = assess_measurability(record, "analysis", spec)
    rec = gate.record
    sex = sex or rec.sex
    age = age if age is not None else rec.age
    if sex is not None:
        rec = rec.replace(sex=sex)
        sex = rec.sex
    if age is not None:
        rec = rec.replace(age=age)
    filt = spec.describe()
    fs = rec.fs
    warnings: list[str] = []
    if fs < 100:
        warnings.append(f"sampling rate {fs:g} Hz is low: fiducials are ±{1000 / fs:.0f} ms")
    warnings += gate.warnings
    if not gate.assessable or gate.beats is None:
        found_n = 0 if gate.beats is None else gate.beats.beats.n
        return _cannot(gate.reason, rec, warnings, filt, found_n, leads=gate.leads_assessed)
    found = gate.beats
    x = found.signal_mv
    lead_conf = tuple(rec.confidence or (1.0,) * len(rec.leads))
    low_conf = [name for name, c in zip(rec.leads, lead_conf, strict=True) if 0 < c < 0.5]
    if low_conf:
        warnings.append(f"low reading confidence in {', '.join(low_conf)}")

    beats = found.beats
    rr = np.diff(beats.anchors)
    rr_med = float(np.median(rr))
    if (~beats.kept).sum():
        warnings.append(f"{int((~beats.kept).sum())} of {beats.n} beats left out of the median "
                        "beat (ectopic or noisy)")
    if np.std(rr) / rr_med > 0.15:
        warnings.append("irregular rhythm (RR variation > 15 %)")
    med = delineate.median_beats(x, fs, beats)
    fid = delineate.delineate_median(med, rr_med)
    if not np.isfinite(fid.j_point):
        return _cannot(f"not assessable: QRS limits not found ({fid.reason})", rec, warnings,
                       filt, beats.n, leads=gate.leads_assessed)
    amps_list = qrs_amplitudes(med, fid)
    amps = dict(zip(rec.leads, amps_list, strict=True))
    intervals = compute_intervals(beats, med, fid, amps)
    noise = _beat_noise(x, beats.anchors[beats.kept], med, fid.j_point)
    st = tuple(measure_st(med, fid, rec.leads, noise))
    few = [lv.lead for lv in st if 0 < lv.n_beats < 2]
    if few:
        warnings.append(f"only one beat in {', '.join(few)}: ST less reliable")
    noisy = [lv.lead for lv in st if math.isfinite(lv.noise_mv) and lv.noise_mv > 0.05]
    if noisy:
        warnings.append(f"beat-to-beat ST variation > 0.05 mV in {', '.join(noisy)}")
    paced = detect_pacing(rec.signal, fs, beats.anchors[beats.kept], intervals.qrs_ms)
    conf = [c for c in lead_conf if c > 0]
    quality_penalty = min(0.5, 0.5 * (1.0 - float(np.mean(conf))) if conf else 0.5)
    quality_penalty += 0.1 if len(noisy) >= 3 else 0.0
    stemi = evaluate_stemi({lv.lead: lv for lv in st}, amps, intervals, sex, age, paced,
                           quality_penalty)
    on = fid.qrs_onset

    def rel(v: float) -> float | None:
        return None if not math.isfinite(v) else round((v - on) / fs * 1000.0, 1)
    fiducials_ms = {"p_onset": rel(fid.p_onset), "qrs_onset": 0.0, "j_point": rel(fid.j_point),
                    "t_end": rel(fid.t_end)}
    return AnalysisReport(True, "", intervals, st, amps, stemi, tuple(warnings), filt, beats.n,
                          sex, age, rec.provenance.get("source"), fiducials_ms=fiducials_ms,
                          beat_times_s=tuple(round(float(t), 3) for t in found.times_s),
                          leads_assessed=gate.leads_assessed)


__all__ = ["DISCLAIMER", "STANDARD_LEADS", "AnalysisReport", "analyze_record", "detect_pacing"]
