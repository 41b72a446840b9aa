"""Kaggle-2025 page score: alignment limits, offset removal, NaN as 0 mV, mean of ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ecglens.core.io import read_record, write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord
from ecglens.score.metrics import KAGGLE_MAX_RATIO, kaggle_align, kaggle_page_score
from ecglens.score.scoring import kaggle_set_db, score_folder

FS = 500.0
N = 5000
PERFECT_DB = 10 * math.log10(384)          # 25.84 dB
WINDOWS = {"I": 0, "II": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1,
           "V1": 2, "V2": 2, "V3": 2, "V4": 3, "V5": 3, "V6": 3}
"""3x4 page: the column (2.5 s) each lead is printed in; II is also the 10-s strip."""


def _beat(sigma: int = 10) -> np.ndarray:
    """An odd-symmetric wave (derivative of a Gaussian): it sums to zero, so any window of
    whole beats is zero-mean, and its ends are 0 mV."""
    k = np.arange(-5 * sigma, 5 * sigma + 1)
    return -k * np.exp(-(k**2) / (2.0 * sigma**2)) / sigma


def _underlying(seed: int) -> np.ndarray:
    """12 leads × 10 s of irregular beats, 0 mV within 0.3 s of every 2.5-s boundary."""
    rng = np.random.default_rng(seed)
    beat = _beat()
    half = len(beat) // 2
    signal = np.zeros((N, len(STANDARD_LEADS)))
    for k in range(len(STANDARD_LEADS)):
        for column in range(4):
            t = column * 1250 + 150 + half
            while t + half < (column + 1) * 1250 - 150:
                signal[t - half: t + half + 1, k] += rng.uniform(0.3, 1.5) * beat
                t += int(rng.integers(len(beat) + 5, 400))
    return signal


def _truth(underlying: np.ndarray) -> ECGRecord:
    """The printed windows of ``underlying`` (NaN outside them), as on a 3x4+1 page."""
    signal = np.full_like(underlying, np.nan)
    for k, lead in enumerate(STANDARD_LEADS):
        if lead == "II":
            signal[:, k] = underlying[:, k]
        else:
            start = WINDOWS[lead] * 1250
            signal[start:start + 1250, k] = underlying[start:start + 1250, k]
    return ECGRecord(signal=signal, fs=FS, leads=STANDARD_LEADS)


@pytest.fixture(scope="module")
def page() -> tuple[np.ndarray, ECGRecord]:
    underlying = _underlying(0)
    return underlying, _truth(underlying)


def _read(signal: np.ndarray) -> ECGRecord:
    return ECGRecord(signal=signal, fs=FS, leads=STANDARD_LEADS)


def _delayed(signal: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(signal)
    out[samples:] = signal[: len(signal) - samples]
    return out


def test_perfect_read_scores_the_cap(page: tuple[np.ndarray, ECGRecord]) -> None:
    underlying, truth = page
    score = kaggle_page_score(truth, _read(underlying))
    assert score.ratio == KAGGLE_MAX_RATIO
    assert score.db == pytest.approx(PERFECT_DB) and round(score.db, 2) == 25.84


def test_shift_within_limit_and_offset_are_forgiven(page: tuple[np.ndarray, ECGRecord]) -> None:
    underlying, truth = page
    read = _delayed(underlying, int(0.1 * FS)) + 0.3       # 0.1 s late, 0.3 mV high
    score = kaggle_page_score(truth, _read(read))
    assert set(score.lags.values()) == {-int(0.1 * FS)}
    assert score.db == pytest.approx(PERFECT_DB)


def test_shift_beyond_limit_is_not_forgiven(page: tuple[np.ndarray, ECGRecord]) -> None:
    underlying, truth = page
    score = kaggle_page_score(truth, _read(_delayed(underlying, int(0.3 * FS))))
    assert all(abs(lag) <= int(0.2 * FS) for lag in score.lags.values())
    assert score.db < 3.0


def test_half_gain_read_scores_ratio_four(page: tuple[np.ndarray, ECGRecord]) -> None:
    # zero-mean windows: no offset to remove, the lag stays 0, and the error is half the truth
    # everywhere, so the ratio is Σ t² / Σ (t/2)² = 4 exactly
    underlying, truth = page
    score = kaggle_page_score(truth, _read(0.5 * underlying))
    assert set(score.lags.values()) == {0}
    assert score.ratio == pytest.approx(4.0, rel=1e-9)
    assert score.db == pytest.approx(10 * math.log10(4), rel=1e-9)


def test_unread_page_scores_zero_db(page: tuple[np.ndarray, ECGRecord]) -> None:
    # every read sample NaN → 0 mV: the error is the truth itself (windows are zero-mean)
    underlying, truth = page
    nan_read = kaggle_page_score(truth, _read(np.full_like(underlying, np.nan)))
    assert nan_read.ratio == pytest.approx(1.0, rel=1e-9) and nan_read.db == pytest.approx(0.0)
    assert kaggle_page_score(truth, None).ratio == pytest.approx(1.0, rel=1e-9)


def test_read_nan_counts_as_zero_mv(page: tuple[np.ndarray, ECGRecord]) -> None:
    underlying, truth = page
    gappy = underlying.copy()
    ii = STANDARD_LEADS.index("II")
    gap = np.flatnonzero(np.abs(underlying[:, ii]) > 0.1)[:30]     # part of one beat
    gappy[gap, ii] = np.nan
    score = kaggle_page_score(truth, _read(gappy))
    assert score.lags["II"] == 0
    # lead II reads 0 mV in the gap; the least-squares offset is the mean error of the lead
    error = np.zeros(N)
    error[gap] = underlying[gap, ii]
    noise = float(np.sum((error - error.mean()) ** 2))
    assert score.ratio == pytest.approx(float(np.nansum(truth.signal**2)) / noise, rel=1e-9)


def test_alignment_matches_competition_examples() -> None:
    # the competition metric's own doctest cases
    label = np.array([0.0, 0, 1, 2, 1, 0, 0])
    aligned, lag = kaggle_align(label, np.array([1.0, 2, 1, 0, 0, 0, 0]), 10)
    assert lag == 2 and np.allclose(aligned, [np.nan, np.nan, 1, 2, 1, 0, 0], equal_nan=True)
    aligned, _ = kaggle_align(np.array([0.0, 1, 2, 1, 0]), np.array([10.0, 11, 12, 11, 10]), 10)
    assert np.allclose(aligned, [0, 1, 2, 1, 0])
    # a flat read correlates equally at every lag: the smallest |lag| (0) wins
    _, lag = kaggle_align(label, np.zeros(7), 3)
    assert lag == 0


def test_set_score_is_the_mean_of_ratios_not_of_db(page: tuple[np.ndarray, ECGRecord],
                                                   tmp_path: Path) -> None:
    underlying, truth = page
    truth_dir, read_dir = tmp_path / "truth", tmp_path / "read"
    for name in ("a", "b"):
        write_wfdb(truth, truth_dir / f"{name}_truth")
        (truth_dir / f"{name}_truth.json").write_text(json.dumps(
            {"layout": "3x4+1", "profile": "clean", "gain_mm_mv": 10, "speed_mm_s": 25}))
    write_wfdb(_read(underlying), read_dir / "a")          # page a perfect, page b unread
    result = score_folder(truth_dir, read_dir)
    pages = {p["id"]: p for p in result["pages"]}
    assert pages["a"]["kaggle_ratio"] == pytest.approx(384, rel=1e-3)
    assert pages["b"]["kaggle_ratio"] == pytest.approx(1.0, rel=1e-3)
    overall = next(g for g in result["groups"] if g["profile"] == "all")
    mean_of_ratios = 10 * math.log10((384 + 1) / 2)           # 22.85 dB
    mean_of_db = (PERFECT_DB + 0.0) / 2                        # 12.92 dB: not the score
    assert overall["kaggle_db"] == pytest.approx(mean_of_ratios, abs=0.01)
    assert abs(overall["kaggle_db"] - mean_of_db) > 9
    assert kaggle_set_db(result["pages"]) == pytest.approx(overall["kaggle_db"])


def test_real_truth_against_itself_scores_the_cap(shared_data: Path) -> None:
    truths = sorted((shared_data / "real_photos" / "paper2pulse" / "truth").glob("*.hea"))[:3]
    if len(truths) < 3:
        pytest.skip("Paper2Pulse truth records not found")
    for header in truths:
        truth = read_record(header)
        assert np.isnan(truth.signal).any()                # short leads: 2.5-s windows
        score = kaggle_page_score(truth, truth)
        assert round(score.db, 2) == 25.84
