"""Delineation and ST measurement on real LUDB records against the expert annotations."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.analysis import delineate
from ecglens.analysis.ludb import LUDB_LEADS, match_fiducials, read_fiducials, read_ludb_record
from ecglens.analysis.report import analyze_record
from ecglens.core import beats as beats_mod
from ecglens.core.filters import filter_lead, filter_record


@pytest.fixture(scope="module")
def ludb(shared_data):
    return shared_data / "ludb"


@pytest.mark.parametrize("record_id", [1, 50, 120])
def test_qrs_limits_match_ludb_experts(ludb, record_id):
    record = read_ludb_record(ludb / "data" / str(record_id)).standard12()
    x = filter_record(record)
    beats = beats_mod.detect_beats(x, record.fs)
    med = delineate.median_beats(x, record.fs, beats)
    fid = delineate.delineate_median(med, float(np.median(np.diff(beats.anchors))))
    errors = {"qrs_onset": [], "j_point": [], "t_end": []}
    for k, lead in enumerate(LUDB_LEADS):
        ann = read_fiducials(ludb, record_id, lead)
        t_end = fid.t_end_lead[k] if np.isfinite(fid.t_end_lead[k]) else fid.t_end
        for name, offset in (("qrs_onset", fid.qrs_onset), ("j_point", fid.j_point),
                             ("t_end", t_end)):
            e, missed, _ = match_fiducials(ann[name], beats.anchors + offset - med.pre,
                                           record.fs, ann["span"])
            errors[name].extend(np.abs(e).tolist())
            assert missed <= 1
    assert np.median(errors["qrs_onset"]) <= 12
    assert np.median(errors["j_point"]) <= 12
    assert np.median(errors["t_end"]) <= 40


def test_ludb_reader_restores_einthoven(ludb):
    record = read_ludb_record(ludb / "data" / "7")
    i, ii, iii = record.lead("I"), record.lead("II"), record.lead("III")
    assert np.max(np.abs(ii - i - iii)) < 0.003  # 1-2 µV rounding
    assert 0.3 < np.ptp(ii) < 5.0


def test_filter_keeps_st_level_and_nan_gaps():
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    # a 0.2-mV plateau lasting 300 ms every second, on a 0.3-Hz wander and 50-Hz hum
    plateau = 0.2 * ((t % 1.0) > 0.3) * ((t % 1.0) < 0.6)
    x = plateau + 0.5 * np.sin(2 * np.pi * 0.3 * t) + 0.05 * np.sin(2 * np.pi * 50 * t)
    x[2000:2300] = np.nan
    y = filter_lead(x, fs)
    assert np.isnan(y[2000:2300]).all() and np.isfinite(y[:2000]).all()
    inside = y[(t % 1.0 > 0.4) & (t % 1.0 < 0.5) & np.isfinite(y)]
    before = y[(t % 1.0 > 0.2) & (t % 1.0 < 0.28) & np.isfinite(y)]
    assert abs((inside.mean() - before.mean()) - 0.2) < 0.03


@pytest.mark.parametrize(("rhythm_strip", "qrs_tolerance_ms"), [(False, 20), (True, 8)])
def test_page_layout_with_nan_gaps_is_measured(ludb, rhythm_strip, qrs_tolerance_ms):
    """A 3x4 page (2.5 s per lead, NaN elsewhere), with or without a lead-II rhythm strip."""
    record = read_ludb_record(ludb / "data" / "1").standard12()
    signal = np.full(record.signal.shape, np.nan)
    n = record.n_samples
    columns = [("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6")]
    for c, leads in enumerate(columns):
        for lead in leads:
            k = record.leads.index(lead)
            signal[c * n // 4:(c + 1) * n // 4, k] = record.signal[c * n // 4:(c + 1) * n // 4, k]
    if rhythm_strip:
        signal[:, 1] = record.signal[:, 1]
    page = record.replace(signal=signal)
    assert (beats_mod.reference_lead(signal) == 1) is rhythm_strip
    full, paged = analyze_record(record), analyze_record(page)
    assert paged.measurable
    assert abs(paged.intervals.hr_bpm - full.intervals.hr_bpm) < 3
    assert abs(paged.intervals.qrs_ms - full.intervals.qrs_ms) <= qrs_tolerance_ms
    for a, b in zip(full.st, paged.st, strict=True):
        assert b.measured, b.reason
        assert abs(a.st_j_mv - b.st_j_mv) < 0.05
