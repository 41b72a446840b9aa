"""MIT-BIH beat classifier: AAMI mapping, RR features, matching, committed weights on DS2."""

from __future__ import annotations

import numpy as np
import pytest

from classify.beats import (
    AAMI_MAP,
    BEAT_CLASSES,
    DS1,
    DS2,
    PACED,
    beat_report,
    match_beats,
    rr_features,
)


def test_split_is_inter_patient_and_mapping_is_complete():
    assert len(DS1) == len(DS2) == 22
    assert not set(DS1) & set(DS2)
    assert not (set(DS1) | set(DS2)) & set(PACED)
    assert {AAMI_MAP[s] for s in "NLRej"} == {"N"}
    assert {AAMI_MAP[s] for s in "AaJS"} == {"S"}
    assert AAMI_MAP["V"] == AAMI_MAP["E"] == "V" and AAMI_MAP["F"] == "F"
    assert {AAMI_MAP[s] for s in "/fQ"} == {"Q"}


def test_rr_features_flag_a_premature_beat():
    t = np.arange(20) * 0.8
    t[10] -= 0.3                      # beat 10 comes 300 ms early
    f = rr_features(t)
    assert f.shape == (20, 7)
    assert f[10, 3] < 0.7             # pre-RR / local RR: premature
    assert f[10, 5] < 0.6             # pre-RR / post-RR: compensatory pause follows
    assert abs(f[5, 3] - 1.0) < 0.05


def test_matching_within_150_ms_and_report():
    ref = np.array([100, 460, 820, 1180])
    lab = np.array([0, 2, 0, 1])
    det = np.array([110, 500, 1500])            # 1 and 2 match (10, 40 samples), 1500 extra
    det_lab, missed = match_beats(ref, lab, det, fs=360.0)
    np.testing.assert_array_equal(det_lab, [0, 2, -1])
    np.testing.assert_array_equal(np.sort(missed), [0, 1])
    rep = beat_report(np.array([0, 2]), np.array([0, 2]), missed, np.array([0]))
    assert rep.sensitivity["V"] == 1.0 and rep.sensitivity["S"] == 0.0
    assert rep.ppv["N"] == 0.5 and rep.extra_detections == 1


@pytest.mark.parametrize("record", ["119", "233"])
def test_committed_model_labels_ventricular_ectopy(shared_data, record):
    """119 (DS1, bigeminy) and 233 (DS2, unseen patient): V beats are labelled V and
    normal beats N, from detected positions over the first 3 minutes."""
    from classify.beats import label_beats, match_beats, read_mitdb

    sig, fs, ref, lab = read_mitdb(shared_data / "mitdb", record)
    n = int(180 * fs)
    keep = ref < n - int(0.5 * fs)
    beats = label_beats(sig[:n], fs)
    det = np.array([round(b.time_s * fs) for b in beats])
    pred = np.array([BEAT_CLASSES.index(b.label) for b in beats])
    det_lab, missed = match_beats(ref[keep], lab[keep], det, fs)
    assert len(missed) <= 0.03 * keep.sum()                  # detector finds the beats
    v, nn = det_lab == BEAT_CLASSES.index("V"), det_lab == 0
    assert v.sum() >= 20
    assert np.mean(pred[v] == BEAT_CLASSES.index("V")) >= 0.85
    assert np.mean(pred[nn] == 0) >= 0.85
