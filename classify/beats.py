"""MIT-BIH beat classifier for the AAMI classes N, S, V, F, Q (inter-patient).

Protocol (anchors §5): de Chazal et al. 2004 — train on DS1, report on DS2, paced records
102, 104, 107, 217 excluded; channel 0 at 360 Hz (MLII except 102/104/114, where it is V5).
AAMI mapping used here (EC57 table; ``e`` and ``j`` go to N, unlike some papers that put them
in S)::

    N = N, L, R, e, j    S = A, a, J, S    V = V, E    F = F    Q = /, f, Q

Each beat is described by a 0.65-s window of the band-passed (0.5–40 Hz) signal resampled to
:data:`BEAT_FS_HZ`, centred on the R peak (−0.25 s … +0.40 s), and the record's median beat.
The default model (``ecglens-beats-hgb-0.3.0``) is gradient-boosted trees on 56
patient-normalised features (:func:`record_beat_features`: RR intervals relative to the
record's and the local rhythm, local RR irregularity, P/QRS/T-region morphology against the
record's median beat, and morphology minus its record median), balanced class weights, fixed
recipe chosen by 4-fold leave-records-out CV inside DS1 (never on DS2). The trees are stored
as plain tensors and evaluated with NumPy. The earlier small CNN (``--arch cnn``) is kept.

Evaluation: DS2 at the reference beat positions, and at the positions found by ecglens' one
beat detector (:func:`ecglens.core.beats.detect_beats`, each moved to its R peak), matched to
the reference within 150 ms.

Commands::

    python -m ecglens.classify.beats train --out classify/weights   # DS1 → beats.pt/.json (~15 s)
    python -m ecglens.classify.beats evaluate --out benchmarks/out/beats   # DS2, both positions
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BEAT_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
AAMI_MAP: dict[str, str] = {
    **dict.fromkeys(["N", "L", "R", "e", "j"], "N"),
    **dict.fromkeys(["A", "a", "J", "S"], "S"),
    **dict.fromkeys(["V", "E"], "V"),
    "F": "F",
    **dict.fromkeys(["/", "f", "Q"], "Q"),
}
DS1: tuple[str, ...] = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119",
                        "122", "124", "201", "203", "205", "207", "208", "209", "215", "220",
                        "223", "230")
DS2: tuple[str, ...] = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202",
                        "210", "212", "213", "214", "219", "221", "222", "228", "231", "232",
                        "233", "234")
PACED: tuple[str, ...] = ("102", "104", "107", "217")

BEAT_FS_HZ = 180.0
PRE_S, POST_S = 0.25, 0.40
N_WIN = round((PRE_S + POST_S) * BEAT_FS_HZ)  # 117 samples
N_RR_FEATURES = 7
MATCH_TOLERANCE_S = 0.15
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REPO = Path(__file__).resolve().parents[1]


# ============================================================================ features
BEAT_BAND_HZ = (0.5, 40.0)
"""Band of the beat classifier's input (order-2 zero-phase Butterworth, as trained)."""


def bandpass(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """The classifier's band-pass (:func:`ecglens.core.filters.bandpass_filled`, 0.5–40 Hz)."""
    from ecglens.core.filters import bandpass_filled

    return bandpass_filled(signal_mv, fs, *BEAT_BAND_HZ, order=2)


def to_beat_rate(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """Band-pass and resample one lead to :data:`BEAT_FS_HZ`."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    x = bandpass(signal_mv, fs)
    ratio = Fraction(BEAT_FS_HZ / fs).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def rr_features(r_times_s: np.ndarray) -> np.ndarray:
    """``(n_beats, 7)`` RR features in seconds and ratios.

    pre-RR, post-RR, local mean RR (±10 beats), pre/local, post/local, pre/post,
    local/record-median RR. Edge beats borrow their missing neighbour interval.
    """
    t = np.asarray(r_times_s, float)
    n = len(t)
    if n < 2:
        return np.tile([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], (n, 1)).astype(np.float32)
    rr = np.diff(t)
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])
    kernel_half = 10
    csum = np.concatenate([[0.0], np.cumsum(pre)])
    idx = np.arange(n)
    lo, hi = np.clip(idx - kernel_half, 0, n), np.clip(idx + kernel_half + 1, 0, n)
    local = (csum[hi] - csum[lo]) / (hi - lo)
    median = float(np.median(rr))
    feats = np.stack([pre, post, local, pre / local, post / local, pre / post, local / median],
                     axis=1)
    return np.clip(feats, 0.0, 5.0).astype(np.float32)


def beat_windows(x_beat_rate: np.ndarray, r_times_s: np.ndarray) -> np.ndarray:
    """``(n_beats, 117)`` windows (mV, window median removed) around each R time."""
    pre = round(PRE_S * BEAT_FS_HZ)
    centers = np.round(np.asarray(r_times_s) * BEAT_FS_HZ).astype(int)
    padded = np.concatenate([np.zeros(pre), x_beat_rate, np.zeros(N_WIN)])
    idx = centers[:, None] + np.arange(N_WIN)[None, :]
    idx = np.clip(idx, 0, len(padded) - 1)
    w = padded[idx]
    return (w - np.median(w, axis=1, keepdims=True)).astype(np.float32)


def beat_template(windows: np.ndarray) -> np.ndarray:
    """The record's median beat, repeated per beat ``(n_beats, 117)``.

    Given to the model next to each beat, so that "unlike this patient's usual beat" can be
    learnt across patients (amplitude and morphology differ between people).
    """
    if len(windows) == 0:
        return windows
    return np.repeat(np.median(windows, axis=0, keepdims=True), len(windows), axis=0)


@dataclasses.dataclass(frozen=True)
class BeatSet:
    """Beats of one or more records: windows, the record's median beat (template) repeated
    per beat, RR features, labels (index into classes)."""

    windows: np.ndarray
    templates: np.ndarray
    rr: np.ndarray
    labels: np.ndarray
    records: np.ndarray
    times_s: np.ndarray

    @staticmethod
    def concat(sets: Sequence[BeatSet]) -> BeatSet:
        return BeatSet(*(np.concatenate([getattr(s, f.name) for s in sets])
                         for f in dataclasses.fields(BeatSet)))


def read_mitdb(root: Path, name: str) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Channel 0 (mV), fs, reference beat sample indices and their AAMI labels (−1 = not a
    beat class)."""
    import wfdb

    rec = wfdb.rdrecord(str(root / name), channels=[0])
    ann = wfdb.rdann(str(root / name), "atr")
    keep = np.array([s in AAMI_MAP for s in ann.symbol])
    samples = np.asarray(ann.sample)[keep]
    labels = np.array([BEAT_CLASSES.index(AAMI_MAP[s]) for s, k in zip(ann.symbol, keep,
                                                                     strict=True) if k])
    return rec.p_signal[:, 0], float(rec.fs), samples, labels


def record_beats(signal_mv: np.ndarray, fs: float, r_samples: np.ndarray,
                 labels: np.ndarray | None = None, record: str = "") -> BeatSet:
    """Features of the beats at ``r_samples`` (indices at ``fs``) of one lead."""
    x = to_beat_rate(signal_mv, fs)
    times = np.asarray(r_samples, float) / fs
    labels = np.full(len(times), -1) if labels is None else np.asarray(labels)
    windows = beat_windows(x, times)
    return BeatSet(windows, beat_template(windows), rr_features(times), labels.astype(int),
                   np.array([record] * len(times)), times)


R_REFINE_S = 0.05
"""A detected beat's window is centred on the largest band-passed |signal| within ±50 ms of
the detector's anchor (MIT-BIH annotations, on which the classifier learnt, sit on the R peak)."""


def detect_r_peaks(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices of one lead from ecglens' one beat detector
    (:func:`ecglens.core.beats.detect_beats`), each moved to the R peak (:data:`R_REFINE_S`)."""
    from ecglens.core.beats import detect_beats

    x = np.asarray(signal_mv, float)
    anchors = detect_beats(x[:, None], fs).anchors
    return refine_to_r(x, fs, anchors)


def refine_to_r(signal_mv: np.ndarray, fs: float, anchors: np.ndarray) -> np.ndarray:
    """Move each anchor to the largest band-passed |signal| within ±:data:`R_REFINE_S`."""
    if len(anchors) == 0:
        return np.zeros(0, int)
    y = np.abs(bandpass(signal_mv, fs))
    half = max(1, round(R_REFINE_S * fs))
    out = []
    for a in np.asarray(anchors, int):
        lo, hi = max(0, a - half), min(len(y), a + half + 1)
        out.append(lo + int(np.argmax(y[lo:hi])))
    return np.asarray(out, int)


R_INDEX = round(PRE_S * BEAT_FS_HZ)  # R sample inside a window (45)
N_BEAT_FEATURES = 56


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x * x).mean(1))


def record_beat_features(times_s: np.ndarray, windows: np.ndarray,
                         template: np.ndarray) -> np.ndarray:
    """``(n_beats, 56)`` patient-normalised features of the beats of ONE record/strip.

    18 RR features — pre/post-RR (s), local mean RR (±10 beats), and pre/post/local RR over
    the record median, the ±10-beat mean, the ±10-beat median, the mean of the last 10
    intervals and the ±50-beat median; pre/post; the previous beat's pre-RR; local RR
    irregularity (CV and mean successive difference over ±10 beats: separates atrial
    fibrillation from isolated prematurity). 19 morphology features of the beat against the
    record's median beat, in units of the median beat's peak-to-peak amplitude (correlation
    and RMS difference over the P region −0.25…−0.07 s, the QRS −0.07…+0.075 s and the
    T region; extremes; QRS slope width), and the same 19 minus their record median
    ("unlike this patient's usual beat").
    """
    from numpy.lib.stride_tricks import sliding_window_view

    t = np.asarray(times_s, float)
    n = len(t)
    if n == 0:
        return np.zeros((0, N_BEAT_FEATURES), np.float32)
    if n >= 2:
        rr = np.maximum(np.diff(t), 1e-3)
        pre = np.concatenate([[rr[0]], rr])
        post = np.concatenate([rr, [rr[-1]]])
    else:
        pre = post = np.ones(n)
    med = float(np.median(pre))
    csum = np.concatenate([[0.0], np.cumsum(pre)])
    idx = np.arange(n)
    lo, hi = np.clip(idx - 10, 0, n), np.clip(idx + 11, 0, n)
    local = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    past = np.where(idx > 0, (csum[idx] - csum[lo]) / np.maximum(idx - lo, 1), pre)
    win = sliding_window_view(np.pad(pre, 10, mode="edge"), 21)
    lmed = np.median(win, axis=1)
    lstd = win.std(1) / np.maximum(win.mean(1), 1e-3)
    lmsd = np.abs(np.diff(win, axis=1)).mean(1) / np.maximum(lmed, 1e-3)
    lmed50 = np.median(sliding_window_view(np.pad(pre, 50, mode="edge"), 101), axis=1)
    prev_pre = np.concatenate([[pre[0]], pre[:-1]])
    rrf = np.clip(np.stack([
        pre, post, local, pre / med, post / med, local / med, pre / local, post / local,
        pre / post, pre / past, pre / lmed, post / lmed, prev_pre / lmed, (post - pre) / med,
        lstd, lmsd, pre / lmed50, lmed / lmed50], axis=1), 0.0, 5.0)
    w = np.asarray(windows, float)
    tpl = np.broadcast_to(np.asarray(template, float), w.shape)
    scale = max(float(np.ptp(template)), 0.05)
    wn, d = w / scale, (w - tpl) / scale
    p_reg, q_reg = slice(0, R_INDEX - 13), slice(R_INDEX - 13, R_INDEX + 14)
    t_reg = slice(R_INDEX + 14, None)
    dq = np.abs(np.diff(wn[:, q_reg], axis=1))
    morph = np.stack([
        _row_corr(w, tpl), _row_corr(w[:, p_reg], tpl[:, p_reg]),
        _row_corr(w[:, q_reg], tpl[:, q_reg]), _row_corr(w[:, t_reg], tpl[:, t_reg]),
        _rms(d), _rms(d[:, p_reg]), _rms(d[:, q_reg]), _rms(d[:, t_reg]),
        wn[:, q_reg].max(1), wn[:, q_reg].min(1), wn[:, p_reg].max(1), wn[:, p_reg].min(1),
        wn[:, t_reg].max(1), wn[:, t_reg].min(1), _rms(wn[:, q_reg]), _rms(wn[:, p_reg]),
        (dq > 0.3 * dq.max(1, keepdims=True)).sum(1) / 10.0, dq.max(1), np.ptp(wn, 1)],
        axis=1)
    morph = np.concatenate([morph, morph - np.median(morph, 0, keepdims=True)], axis=1)
    return np.concatenate([rrf, morph], axis=1).astype(np.float32)


def beat_features(beats: BeatSet) -> np.ndarray:
    """:func:`record_beat_features` of every beat, computed record by record (the beats of a
    record must be in time order and consecutive, as :func:`record_beats` gives them)."""
    out = np.zeros((len(beats.labels), N_BEAT_FEATURES), np.float32)
    recs = np.asarray(beats.records)
    for r in dict.fromkeys(recs.tolist()):
        sel = np.flatnonzero(recs == r)
        out[sel] = record_beat_features(beats.times_s[sel], beats.windows[sel],
                                        beats.templates[sel[0]])
    return out


# ============================================================================ model
def build_model(n_classes: int = len(BEAT_CLASSES)) -> Any:
    """Small CNN on the beat window and the record's median beat (2 channels) + MLP on the
    RR features (~27 k parameters)."""
    import torch
    from torch import nn

    class BeatNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv1d(2, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
                nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
                nn.Conv1d(32, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(),
                nn.AdaptiveAvgPool1d(8))
            self.rr = nn.Sequential(nn.Linear(N_RR_FEATURES, 16), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(32 * 8 + 16, 64), nn.ReLU(), nn.Dropout(0.3),
                                      nn.Linear(64, n_classes))

        def forward(self, window: torch.Tensor, template: torch.Tensor,
                    rr: torch.Tensor) -> torch.Tensor:
            h = self.conv(torch.stack([window, template], dim=1)).flatten(1)
            return self.head(torch.cat([h, self.rr(rr)], dim=1))

    return BeatNet()


# ---------------------------------------------------------------- gradient-boosted trees
@dataclasses.dataclass(frozen=True)
class TreeEnsemble:
    """A scikit-learn ``HistGradientBoostingClassifier`` exported to flat arrays (stored as
    tensors in ``beats.pt``) and evaluated with NumPy — no pickle, no scikit-learn at
    inference. ``feature``/``threshold``/``left``/``right``/``value``/``leaf`` are
    ``(n_trees, n_nodes)`` (padded), ``tree_class`` the class column each tree adds to,
    ``baseline`` the initial raw score per class, ``classes`` the model's class indices."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    tree_class: np.ndarray
    baseline: np.ndarray
    classes: np.ndarray

    @staticmethod
    def from_sklearn(model: Any) -> TreeEnsemble:
        trees = [(k, t.nodes) for it in model._predictors for k, t in enumerate(it)]
        width = max(len(nodes) for _, nodes in trees)

        def pad(field: str, dtype: Any) -> np.ndarray:
            out = np.zeros((len(trees), width), dtype)
            for i, (_, nodes) in enumerate(trees):
                out[i, :len(nodes)] = nodes[field]
            return out

        return TreeEnsemble(
            pad("feature_idx", np.int16), pad("num_threshold", np.float32),
            pad("left", np.int16), pad("right", np.int16), pad("value", np.float32),
            pad("is_leaf", bool), pad("missing_go_to_left", bool),
            np.array([k for k, _ in trees], np.int16),
            np.asarray(model._baseline_prediction, np.float32).ravel(),
            np.asarray(model.classes_, np.int16))

    def to_state(self) -> dict[str, Any]:
        import torch

        return {f.name: torch.from_numpy(np.ascontiguousarray(getattr(self, f.name)))
                for f in dataclasses.fields(self)}

    @staticmethod
    def from_state(state: dict[str, Any]) -> TreeEnsemble:
        return TreeEnsemble(**{f.name: state[f.name].numpy()
                               for f in dataclasses.fields(TreeEnsemble)})

    def predict_proba(self, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """``(n, len(BEAT_CLASSES))`` class probabilities (softmax of the summed leaves)."""
        x = np.asarray(x, np.float32)
        n_trees = len(self.tree_class)
        tree_ix = np.arange(n_trees)[None, :]
        out = np.zeros((len(x), len(BEAT_CLASSES)), np.float32)
        for s in range(0, len(x), chunk):
            xc = x[s:s + chunk]
            node = np.zeros((len(xc), n_trees), np.int64)
            rows = np.arange(len(xc))[:, None]
            for _ in range(self.feature.shape[1]):
                leaf = self.leaf[tree_ix, node]
                if leaf.all():
                    break
                v = xc[rows, self.feature[tree_ix, node]]
                go_left = np.where(np.isnan(v), self.missing_left[tree_ix, node],
                                   v <= self.threshold[tree_ix, node])
                nxt = np.where(go_left, self.left[tree_ix, node], self.right[tree_ix, node])
                node = np.where(leaf, node, nxt)
            contrib = self.value[tree_ix, node]
            raw = np.tile(self.baseline, (len(xc), 1)).astype(np.float64)
            for k in range(len(self.baseline)):
                raw[:, k] += contrib[:, self.tree_class == k].sum(1)
            raw -= raw.max(1, keepdims=True)
            p = np.exp(raw)
            p /= p.sum(1, keepdims=True)
            out[s:s + chunk][:, self.classes] = p
        return out


def balanced_sample_weights(labels: np.ndarray, power: float = 1.0,
                            cap: float = 50.0) -> np.ndarray:
    """Per-beat weights ``(n_total / (k · n_class) / that of N) ** power``, capped."""
    counts = np.bincount(labels, minlength=len(BEAT_CLASSES)).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(BEAT_CLASSES), 0.0)
    return np.minimum((w / w[0]) ** power, cap)[labels]


@dataclasses.dataclass(frozen=True)
class BeatTrainConfig:
    """Recipe of the beat classifier (fixed; nothing is chosen on DS2).

    ``arch="hgb"`` (default, chosen by 4-fold leave-records-out CV inside DS1): gradient-
    boosted trees on :func:`beat_features`; ``arch="cnn"``: the earlier small CNN
    (``ecglens-beats-cnn-0.2.0``), kept for comparison."""

    data: str = str(REPO.parent / "shared" / "data" / "mitdb")
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    jitter_s: float = 0.02
    max_class_weight: float = 10.0
    arch: str = "hgb"
    hgb_iterations: int = 200
    hgb_learning_rate: float = 0.05
    hgb_leaves: int = 15
    hgb_l2: float = 1.0
    hgb_weight_power: float = 1.0


def load_split(root: Path, names: Sequence[str], detected: bool = False) -> tuple[BeatSet, dict]:
    """Beats of ``names``; with ``detected`` the detector's positions (labels matched to the
    reference within 150 ms, −1 for detections with no reference beat) and a dict of
    reference beats the detector missed, per record: ``{name: labels_of_missed}``."""
    sets, missed = [], {}
    for name in names:
        sig, fs, ref, lab = read_mitdb(root, name)
        if detected:
            det = detect_r_peaks(sig, fs)
            det_lab, miss = match_beats(ref, lab, det, fs)
            sets.append(record_beats(sig, fs, det, det_lab, name))
            missed[name] = miss
        else:
            sets.append(record_beats(sig, fs, ref, lab, name))
    return BeatSet.concat(sets), missed


def match_beats(ref: np.ndarray, ref_labels: np.ndarray, det: np.ndarray,
                fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy nearest matching within :data:`MATCH_TOLERANCE_S`.

    Returns the reference label of each detection (−1 if unmatched) and the labels of
    reference beats left unmatched.
    """
    tol = MATCH_TOLERANCE_S * fs
    det_labels = np.full(len(det), -1)
    used = np.zeros(len(ref), bool)
    if len(ref):
        for i, d in enumerate(det):
            j = int(np.searchsorted(ref, d))
            best, best_dist = -1, tol + 1
            for c in (j - 1, j):
                if 0 <= c < len(ref) and not used[c] and abs(ref[c] - d) < best_dist:
                    best, best_dist = c, abs(ref[c] - d)
            if best >= 0 and best_dist <= tol:
                used[best] = True
                det_labels[i] = ref_labels[best]
    return det_labels, np.asarray(ref_labels)[~used]


def fit_hgb(features: np.ndarray, labels: np.ndarray, cfg: BeatTrainConfig) -> Any:
    """The boosted-tree classifier on beat features (fixed iterations, no early stopping)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=cfg.hgb_iterations, learning_rate=cfg.hgb_learning_rate,
        max_leaf_nodes=cfg.hgb_leaves, l2_regularization=cfg.hgb_l2, early_stopping=False,
        random_state=cfg.seed)
    return model.fit(features, labels,
                     sample_weight=balanced_sample_weights(labels, cfg.hgb_weight_power))


def train_beats(cfg: BeatTrainConfig) -> tuple[dict, dict]:
    """Train on DS1; returns (state_dict, metadata)."""
    if cfg.arch == "cnn":
        return train_beats_cnn(cfg)
    import os

    t_start = time.time()
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    beats, _ = load_split(Path(cfg.data), DS1)
    counts = np.bincount(beats.labels, minlength=len(BEAT_CLASSES))
    model = fit_hgb(beat_features(beats), beats.labels, cfg)
    ensemble = TreeEnsemble.from_sklearn(model)
    meta = {
        "classes": list(BEAT_CLASSES), "aami_map": AAMI_MAP, "train_records": list(DS1),
        "beat_fs_hz": BEAT_FS_HZ, "window_s": [-PRE_S, POST_S], "config": dataclasses.asdict(cfg),
        "arch": "hgb", "n_features": N_BEAT_FEATURES, "n_trees": len(ensemble.tree_class),
        "ds1_counts": counts.tolist(), "train_wall_s": round(time.time() - t_start, 1),
        "model_version": "ecglens-beats-hgb-0.3.0",
    }
    return ensemble.to_state(), meta


def train_beats_cnn(cfg: BeatTrainConfig) -> tuple[dict, dict]:
    """The earlier CNN recipe on DS1; returns (state_dict, metadata)."""
    import torch

    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(cfg.seed)
    root = Path(cfg.data)
    # jittered copies of the R position make the model tolerant to detector placement
    beats, _ = load_split(root, DS1)
    counts = np.bincount(beats.labels, minlength=len(BEAT_CLASSES)).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(BEAT_CLASSES), 0.0)
    weights = np.minimum(np.sqrt(weights / weights[0]), cfg.max_class_weight)
    log.info("DS1 beats per class %s, class weights %s", counts.astype(int).tolist(),
             np.round(weights, 2).tolist())
    signals = {n: read_mitdb(root, n) for n in DS1}
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-3)
    n = len(beats.labels)
    steps = int(np.ceil(n / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    history = []
    for epoch in range(cfg.epochs):
        # per epoch: windows at R ± jitter (drawn from the seed), RR features unchanged
        windows = []
        for name in DS1:
            _sig, fs, ref, _ = signals[name]
            x = _beat_rate_cached(name, cfg.data)
            jitter = rng.uniform(-cfg.jitter_s, cfg.jitter_s, len(ref))
            windows.append(beat_windows(x, ref / fs + jitter))
        win = np.concatenate(windows)
        gain = rng.uniform(0.8, 1.2, (len(win), 1)).astype(np.float32)
        win = win * gain
        tpl = beats.templates * gain
        order = rng.permutation(n)
        model.train()
        total = 0.0
        for b in range(steps):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            logits = model(torch.from_numpy(win[idx]), torch.from_numpy(tpl[idx]),
                           torch.from_numpy(beats.rr[idx]))
            loss = loss_fn(logits, torch.from_numpy(beats.labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        history.append({"epoch": epoch, "loss": total / n})
        log.info("beats epoch %d loss %.4f", epoch, total / n)
    meta = {
        "classes": list(BEAT_CLASSES), "aami_map": AAMI_MAP, "train_records": list(DS1),
        "beat_fs_hz": BEAT_FS_HZ, "window_s": [-PRE_S, POST_S], "config": dataclasses.asdict(cfg),
        "ds1_counts": counts.astype(int).tolist(), "class_weights": weights.tolist(),
        "history": history, "train_wall_s": round(time.time() - t_start, 1),
        "arch": "cnn", "model_version": "ecglens-beats-cnn-0.2.0",
    }
    return model.state_dict(), meta


@functools.lru_cache(maxsize=64)
def _beat_rate_cached(name: str, data: str) -> np.ndarray:
    sig, fs, _, _ = read_mitdb(Path(data), name)
    return to_beat_rate(sig, fs)


# ============================================================================ inference
@functools.lru_cache(maxsize=2)
def load_beat_model(weights_dir: str | None = None) -> tuple[Any, dict]:
    """The committed beat model and its metadata."""
    import torch

    from ecglens.core.errors import ModelError

    folder = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    if not (folder / "beats.pt").exists():
        raise ModelError(f"no beat-classifier weights in {folder}", str(folder))
    meta = json.loads((folder / "beats.json").read_text())
    state = torch.load(folder / "beats.pt", map_location="cpu", weights_only=True)
    if meta.get("arch", "cnn") == "hgb":
        return TreeEnsemble.from_state(state), meta
    model = build_model()
    model.load_state_dict(state)
    model.eval()
    return model, meta


def predict_beats(beats: BeatSet, weights_dir: str | None = None) -> np.ndarray:
    """Class probabilities ``(n_beats, 5)``."""
    import torch

    model, _ = load_beat_model(weights_dir)
    if isinstance(model, TreeEnsemble):
        if len(beats.labels) == 0:
            return np.zeros((0, len(BEAT_CLASSES)), np.float32)
        return model.predict_proba(beat_features(beats))
    with torch.no_grad():
        out = [torch.softmax(model(torch.from_numpy(beats.windows[i:i + 4096]),
                                   torch.from_numpy(beats.templates[i:i + 4096]),
                                   torch.from_numpy(beats.rr[i:i + 4096])), dim=1).numpy()
               for i in range(0, len(beats.labels), 4096)]
    return np.concatenate(out) if out else np.zeros((0, len(BEAT_CLASSES)), np.float32)


@dataclasses.dataclass(frozen=True)
class BeatLabel:
    """One labelled beat: R time (s from the lead start), AAMI class, its probability."""

    time_s: float
    label: str
    probability: float


def label_beats(signal_mv: np.ndarray, fs: float, weights_dir: str | None = None,
                anchors: np.ndarray | None = None) -> list[BeatLabel]:
    """Label every beat of one lead (e.g. a page's lead-II rhythm strip).

    ``anchors`` are the beats' samples from :func:`ecglens.core.beats.find_record_beats` (the
    same beats the analysis uses); without them the one detector runs on this lead. A beat's
    ``time_s`` is its anchor; its window is centred on the R peak (:func:`refine_to_r`).
    NaN spans are treated as flat (0 mV); use the longest finite run of a strip.
    """
    from ecglens.core.beats import detect_beats

    x = np.asarray(signal_mv, float)
    if anchors is None:
        anchors = detect_beats(x[:, None], fs).anchors
    anchors = np.asarray(anchors, int)
    if len(anchors) == 0:
        return []
    beats = record_beats(x, fs, refine_to_r(x, fs, anchors))
    probs = predict_beats(beats, weights_dir)
    return [BeatLabel(float(a / fs), BEAT_CLASSES[int(np.argmax(p))], float(np.max(p)))
            for a, p in zip(anchors, probs, strict=True)]


# ============================================================================ metrics
@dataclasses.dataclass(frozen=True)
class BeatReport:
    """Per-class sensitivity/PPV, macro-F1 and the confusion matrix (rows = reference)."""

    confusion: list[list[int]]
    sensitivity: dict[str, float]
    ppv: dict[str, float]
    f1: dict[str, float]
    macro_f1_nsvf: float
    macro_f1_all: float
    n_beats: int
    missed_by_detector: dict[str, int]
    extra_detections: int


def beat_report(y_true: np.ndarray, y_pred: np.ndarray, missed: np.ndarray | None = None,
                extra_pred: np.ndarray | None = None) -> BeatReport:
    """Metrics; ``missed`` reference labels count as false negatives of their class and
    ``extra_pred`` (predictions for detections without a reference beat) as false positives."""
    k = len(BEAT_CLASSES)
    cm = np.zeros((k, k), int)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[t, p] += 1
    fn_extra = np.bincount(missed, minlength=k) if missed is not None and len(missed) else \
        np.zeros(k, int)
    fp_extra = np.bincount(extra_pred, minlength=k) if extra_pred is not None and \
        len(extra_pred) else np.zeros(k, int)
    se, ppv, f1 = {}, {}, {}
    for i, c in enumerate(BEAT_CLASSES):
        tp = cm[i, i]
        pos = cm[i].sum() + fn_extra[i]
        pred = cm[:, i].sum() + fp_extra[i]
        se[c] = float(tp / pos) if pos else float("nan")
        ppv[c] = float(tp / pred) if pred else float("nan")
        f1[c] = float(2 * tp / (pos + pred)) if pos + pred else float("nan")
    return BeatReport(cm.tolist(), se, ppv, f1,
                      float(np.nanmean([f1[c] for c in "NSVF"])),
                      float(np.nanmean(list(f1.values()))), len(y_true),
                      {c: int(v) for c, v in zip(BEAT_CLASSES, fn_extra, strict=True)},
                      int(fp_extra.sum()))


def evaluate_ds2(data: str | Path, weights_dir: str | None = None) -> dict[str, BeatReport]:
    """DS2 with reference positions and with detected positions."""
    root = Path(data)
    out = {}
    ref_beats, _ = load_split(root, DS2)
    pred = predict_beats(ref_beats, weights_dir).argmax(1)
    out["reference_positions"] = beat_report(ref_beats.labels, pred)
    det_beats, missed = load_split(root, DS2, detected=True)
    pred = predict_beats(det_beats, weights_dir).argmax(1)
    matched = det_beats.labels >= 0
    all_missed = np.concatenate([m for m in missed.values()]).astype(int)
    out["detected_positions"] = beat_report(det_beats.labels[matched], pred[matched],
                                            all_missed, pred[~matched])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecglens.classify.beats train|evaluate``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m ecglens.classify.beats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["train", "evaluate"])
    p.add_argument("--data", default=BeatTrainConfig.data, help="MIT-BIH folder")
    p.add_argument("--out", required=True, help="weights folder (train) / report folder")
    p.add_argument("--weights", default=None, help="weights folder to evaluate")
    p.add_argument("--epochs", type=int, default=BeatTrainConfig.epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", choices=["hgb", "cnn"], default=BeatTrainConfig.arch)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.action == "train":
        import torch

        cfg = BeatTrainConfig(data=a.data, epochs=a.epochs, seed=a.seed, arch=a.arch)
        state, meta = train_beats(cfg)
        meta["command"] = "python -m ecglens.classify.beats " + " ".join(
            sys.argv[1:] if argv is None else argv)
        torch.save(state, out / "beats.pt")
        (out / "beats.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(json.dumps({"train_wall_s": meta["train_wall_s"]}))
    else:
        reports = evaluate_ds2(a.data, a.weights)
        text = json.dumps({k: dataclasses.asdict(v) for k, v in reports.items()}, indent=1)
        (out / "beats_ds2.json").write_text(text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
