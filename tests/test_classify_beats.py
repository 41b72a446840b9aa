"""MIT-BIH beat classifier: AAMI mapping, RR features, matching, committed weights on DS2."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.classify.beats import (
    AAMI_MAP,
    BEAT_CLASSES,
    DS1,
    DS2,
    N_BEAT_FEATURES,
    PACED,
    BeatSet,
    BeatTrainConfig,
    TreeEnsemble,
    beat_features,
    beat_report,
    fit_hgb,
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


def _toy_beats(n=40, premature=20, wide=30):
    """Two synthetic records of Gaussian 'QRS' beats at 75 bpm; in record "a" beat
    ``premature`` comes 300 ms early and beat ``wide`` is a wide, tall beat."""
    t = np.arange(n) * 0.8
    t[premature] -= 0.3
    x = np.arange(117) - 45.0
    windows = np.tile(np.exp(-(x / 3.0) ** 2), (n, 1)).astype(np.float32)
    windows[wide] = 1.8 * np.exp(-(x / 9.0) ** 2)
    tpl = np.repeat(np.median(windows, 0, keepdims=True), n, 0)
    one = BeatSet(windows, tpl, rr_features(t), np.zeros(n, int), np.array(["a"] * n), t)
    two = BeatSet(windows[:10], tpl[:10], rr_features(t[:10]), np.zeros(10, int),
                  np.array(["b"] * 10), t[:10])
    return BeatSet.concat([one, two])


def test_beat_features_are_per_record_and_flag_ectopy():
    f = beat_features(_toy_beats())
    assert f.shape == (50, N_BEAT_FEATURES) and np.isfinite(f).all()
    assert f[20, 10] < 0.7 < f[5, 10]          # pre-RR / local median RR: premature
    assert f[20, 3] < 0.7                      # pre-RR / record median RR
    assert f[30, 18] < f[5, 18] - 0.1          # correlation with the record's median beat
    assert f[30, 22] > f[5, 22] + 0.1          # RMS difference to the median beat
    # record "b" (first 10 beats of "a") gets its own features, same as computed alone
    np.testing.assert_allclose(f[40:], beat_features(BeatSet(
        *(getattr(_toy_beats(), k)[40:] for k in
          ("windows", "templates", "rr", "labels", "records", "times_s")))), atol=1e-6)


def test_tree_ensemble_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(int) + 2 * (x[:, 1] > 1.0)
    cfg = BeatTrainConfig(hgb_iterations=15)
    model = fit_hgb(x, y, cfg)
    ens = TreeEnsemble.from_state(TreeEnsemble.from_sklearn(model).to_state())
    want = np.zeros((600, len(BEAT_CLASSES)))
    want[:, model.classes_] = model.predict_proba(x)
    np.testing.assert_allclose(ens.predict_proba(x), want, atol=1e-5)


def test_committed_weights_are_the_small_tree_model():
    from ecglens.classify.beats import WEIGHTS_DIR, load_beat_model

    assert (WEIGHTS_DIR / "beats.pt").stat().st_size < 1_000_000
    model, meta = load_beat_model()
    assert meta["arch"] == "hgb" and isinstance(model, TreeEnsemble)
    assert meta["train_records"] == list(DS1)


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
    from ecglens.classify.beats import label_beats, match_beats, read_mitdb

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
