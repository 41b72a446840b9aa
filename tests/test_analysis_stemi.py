"""STEMI rules on real records: injected ST shifts, a non-STEMI record, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecglens.analysis import delineate
from ecglens.analysis.ludb import read_ludb_record
from ecglens.analysis.report import DISCLAIMER, analyze_record
from ecglens.analysis.stemi import v2v3_threshold_mv
from ecglens.core import beats as beats_mod
from ecglens.core.filters import filter_record
from ecglens.core.record import ECGRecord


@pytest.fixture(scope="module")
def clean_record(shared_data):
    """LUDB record 1: sinus rhythm, no ischaemia."""
    return read_ludb_record(shared_data / "ludb" / "data" / "1").standard12()


def _inject(record: ECGRecord, leads, shift_mv: float) -> ECGRecord:
    x = filter_record(record)
    beats = beats_mod.detect_beats(x, record.fs)
    med = delineate.median_beats(x, record.fs, beats)
    fid = delineate.delineate_median(med, float(np.median(np.diff(beats.anchors))))
    bump = np.zeros(record.n_samples)
    ramp = int(0.02 * record.fs)
    for a in beats.anchors:
        j, t_end = int(a + fid.j_point - med.pre), int(a + fid.t_end - med.pre)
        if j - ramp < 0 or t_end >= record.n_samples:
            continue
        bump[j - ramp:t_end] = 1.0
        bump[j - ramp:j] = np.linspace(0, 1, ramp)
    signal = record.signal.copy()
    for lead in leads:
        signal[:, record.leads.index(lead)] += shift_mv * bump
    return record.replace(signal=signal)


def test_clean_record_is_not_called_stemi(clean_record):
    report = analyze_record(clean_record)
    assert report.measurable
    assert report.stemi.detected is False
    assert 40 < report.intervals.hr_bpm < 120
    assert 60 <= report.intervals.qrs_ms <= 120


def test_inferior_injection_is_called_inferior(clean_record):
    report = analyze_record(_inject(clean_record, ("II", "III", "aVF"), 0.3))
    assert report.stemi.detected is True
    assert report.stemi.territories == ("inferior",)
    st = report.st_by_lead()
    assert abs(st["III"].st_j_mv - 0.3) < 0.08
    assert {"II", "III", "aVF"} <= set(report.stemi.leads)


def test_lateral_injection_and_non_contiguous_leads(clean_record):
    lateral = analyze_record(_inject(clean_record, ("I", "aVL", "V5", "V6"), 0.25))
    assert lateral.stemi.detected is True and lateral.stemi.territories == ("lateral",)
    scattered = analyze_record(_inject(clean_record, ("V1", "V4"), 0.4))
    assert scattered.stemi.detected is False
    rule = next(r for r in scattered.stemi.rules if r.name.startswith("ST elevation"))
    assert rule.fired is False


def test_depression_is_never_a_stemi_call(clean_record):
    report = analyze_record(_inject(clean_record, ("V1", "V2", "V3"), -0.2))
    assert report.stemi.detected is False
    posterior = next(r for r in report.stemi.rules if r.name.startswith("posterior"))
    assert posterior.fired is True


def test_v2v3_thresholds_follow_sex_and_age():
    assert v2v3_threshold_mv("M", 55)[0] == 0.20
    assert v2v3_threshold_mv("M", 30)[0] == 0.25
    assert v2v3_threshold_mv("F", 30)[0] == 0.15
    value, note = v2v3_threshold_mv(None, None)
    assert value == 0.15 and "unknown" in note


def _bad_inputs(fs: float = 500.0) -> dict[str, ECGRecord]:
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    rng = np.random.default_rng(0)
    n = int(10 * fs)
    return {
        "flat": ECGRecord(np.zeros((n, 12)) + 0.3, fs, leads),
        "noise": ECGRecord(rng.normal(0, 0.3, (n, 12)), fs, leads),
        "all_nan": ECGRecord(np.full((n, 12), np.nan), fs, leads),
    }


@pytest.mark.parametrize("kind", ["flat", "noise", "all_nan"])
def test_bad_input_cannot_measure(kind):
    report = analyze_record(_bad_inputs()[kind])
    assert report.measurable is False
    assert report.cannot_measure
    assert report.stemi is None
    out = report.to_dict()
    assert out["stemi"]["detected"] is None
    assert out["disclaimer"] == DISCLAIMER
    assert "cannot measure" in report.to_text().lower()


def test_two_seconds_cannot_measure(clean_record):
    short = clean_record.replace(signal=clean_record.signal[:1000])
    report = analyze_record(short)
    assert report.measurable is False and "2.0 s" in report.cannot_measure
    json.dumps(report.to_dict())
