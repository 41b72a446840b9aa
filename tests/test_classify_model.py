"""The 12-lead superclass classifier: shapes, masking, committed weights, ONNX, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecglens.classify import DISCLAIMER
from ecglens.classify.data import (
    CLASSES,
    N_SAMPLES,
    apply_augment,
    augment_seed,
    cinc_labels,
    draw_augment,
    normalize,
    pattern_mask,
    superclass_labels,
    training_input,
)


def test_forward_shapes_and_parameter_budget():
    import torch

    from ecglens.classify.model import ECGResNet1d, count_parameters

    model = ECGResNet1d().eval()
    out = model(torch.zeros(3, 24, N_SAMPLES))
    assert out.shape == (3, len(CLASSES))
    # a shorter input still gives one logit per class (global pooling)
    assert model(torch.zeros(1, 24, 500)).shape == (1, 5)
    assert 100_000 <= count_parameters(model) <= 500_000


def test_normalize_removes_median_and_marks_gaps():
    t = np.arange(N_SAMPLES) / 100.0
    sig = np.tile((0.5 + np.sin(2 * np.pi * t))[:, None], (1, 12)).astype(np.float32)
    sig[:250, 3] = np.nan
    sig[:, 7] = np.nan
    x = normalize(sig)
    assert x.shape == (24, N_SAMPLES)
    assert abs(float(np.median(x[0]))) < 1e-6          # median removed
    assert np.all(x[12 + 3, :250] == 0) and np.all(x[12 + 3, 250:] == 1)
    assert np.all(x[3, :250] == 0)                       # NaN → 0
    assert np.all(x[7] == 0) and np.all(x[12 + 7] == 0)  # absent lead: zeros, mask 0


def test_paper_patterns_match_the_page_layouts():
    m = pattern_mask("3x4")
    # lead I printed 0-2.5 s, aVR 2.5-5 s, V1 5-7.5 s, V6 7.5-10 s
    assert m[:250, 0].all() and not m[250:, 0].any()
    assert m[250:500, 3].all() and not m[:250, 3].any()
    assert m[500:750, 6].all() and m[750:, 11].all()
    m1 = pattern_mask("3x4+1")
    assert m1[:, 1].all()                                # II rhythm strip over 10 s
    assert pattern_mask("12x1").all()
    assert m.sum() == 12 * 250


def test_augmentation_is_drawn_from_the_seed_and_deterministic(shared_data):
    import wfdb

    rec = wfdb.rdrecord(str(shared_data / "ptbxl" / "records100" / "00000" / "00001_lr"))
    sig = rec.p_signal.astype(np.float32)
    seed = augment_seed(0, 3, 17)
    a, b = training_input(sig, seed), training_input(sig, seed)
    np.testing.assert_array_equal(a, b)
    c = training_input(sig, augment_seed(0, 4, 17))
    assert not np.array_equal(a, c)
    # a 3x4 draw blanks exactly the unprinted spans (mask channels)
    params = draw_augment(np.random.default_rng(1))
    import dataclasses

    params = dataclasses.replace(params, pattern="3x4", lag_samples=0, time_scale=1.0)
    x = normalize(apply_augment(sig, params))
    np.testing.assert_array_equal(x[12:].T.astype(bool), pattern_mask("3x4"))


def test_label_rules():
    statements = {"IMI": "MI", "NDT": "STTC", "NORM": "NORM"}
    np.testing.assert_array_equal(superclass_labels({"IMI": 15.0, "NDT": 0.0, "SR": 0.0},
                                                    statements), [0, 1, 1, 0, 0])
    lab = cinc_labels(["59118001", "426783006"])          # RBBB + sinus rhythm
    assert lab[CLASSES.index("CD")] == 1 and lab[CLASSES.index("NORM")] == 0
    assert cinc_labels(["426783006"])[0] == 1              # sinus rhythm only → NORM
    assert np.isnan(cinc_labels(["284470004"])[0])         # PAC only → NORM unknown


@pytest.fixture(scope="module")
def fold9_inputs(shared_data):
    from ecglens.classify.data import load_ptbxl

    data = load_ptbxl(shared_data / "ptbxl", max_records=60)
    return data, np.stack([normalize(s) for s in data.signals])


def test_committed_weights_give_probabilities_for_real_records(shared_data):
    from ecglens.classify.predict import classify_record, load_model
    from ecglens.core.io import read_record

    loaded = load_model()
    assert loaded.metadata["classes"] == list(CLASSES)
    assert set(loaded.thresholds) == set(CLASSES)
    # ecg_id 1: PTB-XL labels NORM only
    rec = read_record(shared_data / "ptbxl" / "records100" / "00000" / "00001_lr")
    result = classify_record(rec)
    p = np.array(list(result.probabilities.values()))
    assert np.all((p >= 0) & (p <= 1))
    assert max(result.probabilities, key=result.probabilities.get) == "NORM"
    assert result.disclaimer == DISCLAIMER
    # the 500-Hz twin read the same way gives nearly the same probabilities
    rec500 = read_record(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    p500 = np.array(list(classify_record(rec500).probabilities.values()))
    assert np.max(np.abs(p500 - p)) < 0.05


def test_onnx_matches_torch(fold9_inputs, tmp_path):
    from ecglens.classify.export_onnx import compare, export
    from ecglens.classify.predict import WEIGHTS_DIR

    onnx_path = WEIGHTS_DIR / "superclass.onnx"
    if not onnx_path.exists():
        onnx_path = export(out=tmp_path / "m.onnx")
    _, inputs = fold9_inputs
    check = compare(inputs[:32], onnx_path)
    assert check.max_abs_diff < 1e-4


def test_integrated_gradients_complete_to_the_logit_difference(fold9_inputs):
    import torch

    from ecglens.classify.predict import integrated_gradients, load_model

    model = load_model().model
    _, inputs = fold9_inputs
    x = inputs[0]
    attr = integrated_gradients(model, x, target=0, steps=64)
    assert attr.shape == (N_SAMPLES, 12)
    base = x.copy()
    base[:12] = 0
    with torch.no_grad():
        diff = float(model(torch.from_numpy(np.stack([x, base])))[:, 0].diff().neg()[0])
    assert abs(attr.sum() - diff) < 0.1 * max(1.0, abs(diff))


def test_cli_json_reports_classes_thresholds_version_disclaimer(shared_data, capsys, tmp_path):
    from ecglens.cli import main

    path = shared_data / "ptbxl" / "records100" / "00000" / "00001_lr.hea"
    png = tmp_path / "sal.png"
    assert main(["classify", str(path), "--json", "--saliency", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == list(CLASSES)
    assert set(out["thresholds"]) == set(CLASSES)
    assert all(0 <= out["probabilities"][c] <= 1 for c in CLASSES)
    assert out["model_version"].startswith("ecglens-superclass")
    assert out["disclaimer"] == DISCLAIMER
    assert png.exists() and png.stat().st_size > 10_000
    assert out["beats"]["counts"]["N"] >= 8               # sinus rhythm, 10 s


def test_full_ptbxl_layout_derives_the_same_labels(shared_data, tmp_path):
    """`--ptbxl PATH` on PhysioNet's layout (no labels.csv): labels come from scp_codes by the
    Strodthoff rule and agree with the shared labels.csv for every record."""
    import shutil

    from ecglens.classify.data import read_ptbxl_table

    src = shared_data / "ptbxl"
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(src / name, tmp_path / name)
    ids_full, files_full, folds_full, labels_full = read_ptbxl_table(tmp_path)
    ids, files, folds, labels = read_ptbxl_table(src)
    order = {i: k for k, i in enumerate(ids_full)}
    k = np.array([order[i] for i in ids])
    np.testing.assert_array_equal(folds_full[k], folds)
    np.testing.assert_array_equal(labels_full[k], labels)
    assert [files_full[j] for j in k] == files
